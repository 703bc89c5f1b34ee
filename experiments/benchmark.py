r"""Times one training iteration (n_critic critic updates + one G update) of a config.

  python experiments/benchmark.py --config=configs/wgan_gp.py:mnist --steps=5 [--torch]

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
from configs import common  # pylint: disable=g-import-not-at-top
from gan_jax import sharding, train  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)
flags.DEFINE_integer('steps', 5, 'Timed iterations after the compiling one.')
flags.DEFINE_bool('torch', False, 'Also time an eager PyTorch version (conv configs; needs torch).')
flags.mark_flags_as_required(['config'])


def benchmark(config, steps: int) -> dict:
  image_shape, num_classes = common.DATASETS[config.dataset.name]
  train.validate(config, jax.device_count())
  gan = train.build_gan(config, image_shape, num_classes)
  mesh = sharding.make_mesh()
  init_fn, step_fn, _ = train.compile_fns(gan, mesh, image_shape, config.seed)
  rng = np.random.default_rng(0)
  n, b = config.n_critic, config.batch_size
  batch = {'image': rng.integers(0, 256, (n, b, *image_shape), dtype=np.uint8),
           'label': rng.integers(0, num_classes, (n, b)).astype(np.int32)}
  batch = sharding.to_global(batch, sharding.batch_sharding(mesh))
  state = init_fn()
  t0 = time.perf_counter()
  state, metrics = step_fn(state, batch)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  for _ in range(steps):
    state, metrics = step_fn(state, batch)
  jax.block_until_ready(metrics)
  seconds = (time.perf_counter() - t0) / steps
  device = jax.devices()[0]
  stats = device.memory_stats() if hasattr(device, 'memory_stats') else None
  peak = (stats or {}).get('peak_bytes_in_use')
  return {
      'config': f'{config.gan}:{config.dataset.name}', 'arch': config.model.arch,
      'width': config.model.width, 'device_kind': device.device_kind,
      'device_count': jax.device_count(), 'batch_size': b, 'n_critic': n,
      'compile_s': round(compile_s, 2), 'seconds_per_iter': round(seconds, 4),
      'iters_per_s': round(1 / seconds, 3), 'images_per_s': round(n * b / seconds, 1),
      'peak_device_bytes': peak,
      'peak_host_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
  }


def main(_):
  result = benchmark(FLAGS.config, FLAGS.steps)
  if FLAGS.torch:
    from experiments import torch_reference  # pylint: disable=g-import-not-at-top
    image_shape = common.DATASETS[FLAGS.config.dataset.name][0]
    result.update(torch_reference.benchmark(FLAGS.config, image_shape, FLAGS.steps))
    result['speedup_vs_torch'] = round(
        result['torch_seconds_per_iter'] / result['seconds_per_iter'], 3)
  print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
