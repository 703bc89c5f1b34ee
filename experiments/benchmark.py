r"""Times one training iteration (n_critic critic updates + one G update) of a config.

  python experiments/benchmark.py --config=configs/wgan_gp.py:mnist --steps=5 [--torch]
  # any config field: --config.parallelism=pmap --config.steps_per_call=4 --config.batch_size=64

Prints one JSON line: device kind and count, batch size, n_critic, compile seconds, steady-state
iterations/s and images/s (real images the critic sees per second), and peak memory where the
backend reports it. Data is random uint8 of the dataset's shape: speed does not depend on it,
and nothing is downloaded.
"""

import json
import os
import resource
import sys
import time

from absl import app, flags
import jax
import numpy as np
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gan_jax import checks, input_pipeline, platforms  # pylint: disable=g-import-not-at-top
from gan_jax.stepper import Stepper  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)
flags.DEFINE_integer('steps', 5, 'Timed iterations after the compiling one.')
flags.DEFINE_bool('torch', False, 'Also time a PyTorch version (conv and resnet '
                  'configs; needs torch).')
flags.DEFINE_string('torch_device', 'cpu', "--torch: 'cpu' or 'cuda'.")
flags.DEFINE_bool('torch_compile', False, '--torch: under torch.compile instead of eager.')
flags.mark_flags_as_required(['config'])


def _sig(x: float, digits: int = 4) -> float:
  return float(f'{x:.{digits}g}')


def benchmark(config, steps: int) -> dict:
  """The bare compiled call of the training loop's Stepper, on one batch kept on the device."""
  checks.check_config(config, jax.device_count())
  if config.compilation_cache not in ('', 'none'):  # a directory: time a cold or warm compile
    platforms.use_compilation_cache(config.compilation_cache)
  spec = input_pipeline.spec(config.dataset)
  checks.check_data(config, spec.image_shape, spec.num_classes)
  stepper = Stepper(config, spec.image_shape, spec.num_classes)
  rng = np.random.default_rng(0)
  k, n, b = config.steps_per_call, config.n_critic, config.batch_size
  host = [{'image': rng.integers(0, 256, (n, b, *spec.image_shape), dtype=np.uint8),
           'label': rng.integers(0, max(spec.num_classes, 1), (n, b)).astype(np.int32)}
          for _ in range(k)]
  batch = stepper.put(host)
  state = stepper.place(stepper.init())
  t0 = time.perf_counter()
  state, metrics, _ = stepper.step(state, batch)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - t0
  calls = max(1, steps // k)
  t0 = time.perf_counter()
  for _ in range(calls):
    state, metrics, _ = stepper.step(state, batch)
  jax.block_until_ready(metrics)
  seconds = (time.perf_counter() - t0) / (calls * k)
  device = jax.devices()[0]
  stats = device.memory_stats() if hasattr(device, 'memory_stats') else None
  peak = (stats or {}).get('peak_bytes_in_use')
  return {
      'config': f'{config.gan}:{config.dataset.name}', 'arch': config.model.arch,
      'width': config.model.width, 'device_kind': device.device_kind,
      'device_count': jax.device_count(), 'parallelism': config.parallelism,
      'steps_per_call': k, 'batch_size': b, 'n_critic': n,
      'compile_s': round(compile_s, 2), 'seconds_per_iter': _sig(seconds),
      'iters_per_s': _sig(1 / seconds), 'images_per_s': _sig(n * b / seconds),
      'peak_device_bytes': peak,
      'peak_host_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
  }


def main(_):
  result = benchmark(FLAGS.config, FLAGS.steps)
  if FLAGS.torch:
    from experiments import torch_reference  # pylint: disable=g-import-not-at-top
    image_shape = input_pipeline.spec(FLAGS.config.dataset).image_shape
    result.update(torch_reference.benchmark(FLAGS.config, image_shape, FLAGS.steps,
                                            FLAGS.torch_device, FLAGS.torch_compile))
    result['speedup_vs_torch'] = round(
        result['torch_seconds_per_iter'] / result['seconds_per_iter'], 3)
  print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
