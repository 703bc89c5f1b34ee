r"""Times one training iteration (n_critic critic updates + one G update) of a config.

  python experiments/benchmark.py --config=configs/wgan_gp.py:mnist --steps=5 [--torch]
  # any config field: --config.parallelism=pmap --config.steps_per_call=4 --config.batch_size=64

Prints one JSON line: device kind and count, batch size, n_critic, compile seconds, steady-state
iterations/s and images/s (real images the critic sees per second), and peak memory where the
backend reports it. Data is random uint8 of the dataset's shape: speed does not depend on it,
and nothing is downloaded.

--loop also times the real training loop (gan_jax/trainer.py: data stream, logs, sample grids,
checkpoints, as the config sets them) for --steps steps on the config's data, in a temporary
workdir, and prints its iterations/s beside the bare step's and their ratio (`loop_vs_bare`):

  python experiments/benchmark.py --config=configs/dcgan.py:digits,runlocal,mlp --loop \
      --steps=3000 --config.log_every=100 --config.sample_every=500 --config.checkpoint_every=1000

With --config.num_seeds=N > 1 it times one compiled call of all N members against N separate
runs (the same config with one seed, its bare step timed N times over): `separate_seconds_per_iter`
is one run's iteration, `seeds_speedup` N of those over one iteration of all members:

  python experiments/benchmark.py --config=configs/dcgan.py:digits,runlocal --config.num_seeds=8

(runlocal configs log, sample and checkpoint every 2 steps, for the tests: the command sets the
defaults of configs/common.py back.) The loop runs twice with the same compiled Stepper: the
first run compiles (`loop_first_run_s`); later runs are timed from the end of their first call
to the end of train(), which includes the last checkpoint's save. Timed loop runs and bare-step
timings alternate --repeats times, and the best of each counts (on a shared machine other work
only ever slows a measurement down); every run's figure is printed too.
"""

import json
import os
import resource
import sys
import tempfile
import time

from absl import app, flags
import jax
import numpy as np
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gan_jax import checks, input_pipeline, layers, platforms, trainer  # pylint: disable=g-import-not-at-top
from gan_jax.stepper import Stepper  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)
flags.DEFINE_integer('steps', 5, 'Timed iterations after the compiling one.')
flags.DEFINE_bool('torch', False, 'Also time a PyTorch version (conv and resnet '
                  'configs; needs torch).')
flags.DEFINE_string('torch_device', 'cpu', "--torch: 'cpu' or 'cuda'.")
flags.DEFINE_bool('torch_compile', False, '--torch: under torch.compile instead of eager.')
flags.DEFINE_bool('torch_autocast', False, '--torch: each iteration under '
                  'torch.autocast(bfloat16), convolutions and products in bfloat16 (what '
                  "model.conv_impl 'mkl' and 'bf16' do here).")
flags.DEFINE_bool('loop', False, 'Also time the training loop (trainer.train) for --steps '
                  'steps and print its iterations/s and loop_vs_bare.')
flags.DEFINE_integer('repeats', 2, '--loop: times the loop and the bare step are each timed, '
                     'alternating; the best of each counts.', lower_bound=1)
flags.DEFINE_bool('gemm_peak', False, 'Also measure the device\'s float32 matrix-product peak '
                  '(the best of 2048 to 4096 square products; with model.conv_impl mkl or '
                  'bf16, that impl\'s bfloat16 product) and print the step\'s FLOP/s as '
                  'a fraction of it.')
flags.mark_flags_as_required(['config'])


def _sig(x: float, digits: int = 4) -> float:
  return float(f'{x:.{digits}g}')


class _Bare:
  """The bare compiled call of the training loop's Stepper, on one batch kept on the device."""

  def __init__(self, config):
    checks.check_config(config, jax.device_count())
    if config.compilation_cache not in ('', 'none'):  # a directory: time a cold or warm compile
      platforms.use_compilation_cache(config.compilation_cache)
    spec = input_pipeline.spec(config.dataset)
    checks.check_data(config, spec.image_shape, spec.num_classes)
    self.stepper = Stepper(config, spec.image_shape, spec.num_classes)
    rng = np.random.default_rng(0)
    # steps_per_call 0 (auto, the loop's choice): the bare step is one iteration per call.
    self.k, n, b = config.steps_per_call or 1, config.n_critic, config.batch_size
    lead = (config.num_seeds,) if config.num_seeds > 1 else ()   # the members' axis
    host = [{'image': rng.integers(0, 256, (*lead, n, b, *spec.image_shape), dtype=np.uint8),
             'label': rng.integers(0, max(spec.num_classes, 1), (*lead, n, b)).astype(np.int32)}
            for _ in range(self.k)]
    self.batch = self.stepper.put(host)
    self.state = self.stepper.init()
    t0 = time.perf_counter()
    self.state, metrics, _ = self.stepper.step(self.state, self.batch)
    jax.block_until_ready(metrics)
    self.compile_s = time.perf_counter() - t0

  def seconds_per_iter(self, steps: int) -> float:
    calls = max(1, steps // self.k)
    t0 = time.perf_counter()
    for _ in range(calls):
      self.state, metrics, _ = self.stepper.step(self.state, self.batch)
    jax.block_until_ready(metrics)
    return (time.perf_counter() - t0) / (calls * self.k)


def gemm_peak(impl: str = 'xla', repeats: int = 5) -> float:
  """The best FLOP/s of one device's jitted square matrix products (2048, 3072, 4096) in the
  precision model.conv_impl `impl` multiplies in: XLA's float32 product, or for the bfloat16
  impls ('mkl', 'bf16') their product (gan_jax/layers.py PRODUCTS)."""
  best = 0.0
  for n in (2048, 3072, 4096):
    a = jax.device_put(np.ones((n, n), np.float32))
    product = jax.jit(layers.PRODUCTS.get(impl, lambda a, b: a @ b))
    product(a, a).block_until_ready()
    for _ in range(repeats):
      t0 = time.perf_counter()
      product(a, a).block_until_ready()
      best = max(best, 2 * n ** 3 / (time.perf_counter() - t0))
  return best


def benchmark(config, steps: int, bare=None) -> dict:
  """The bare compiled call's timing (`bare`: an already compiled _Bare)."""
  bare = bare or _Bare(config)
  seconds = bare.seconds_per_iter(steps)
  n, b = config.n_critic, config.batch_size
  device = jax.devices()[0]
  stats = device.memory_stats() if hasattr(device, 'memory_stats') else None
  peak = (stats or {}).get('peak_bytes_in_use')
  # FLOPs per device of one iteration (gan_jax/flops.py: matrix products and convolutions)
  flops = bare.stepper.call_flops(bare.k, n, b, 'uint8', True) / bare.k
  return {
      'config': f'{config.gan}:{config.dataset.name}', 'arch': config.model.arch,
      'width': config.model.width, 'device_kind': device.device_kind,
      'device_count': jax.device_count(), 'parallelism': config.parallelism,
      'steps_per_call': bare.k, 'batch_size': b, 'n_critic': n,
      'compile_s': round(bare.compile_s, 2), 'seconds_per_iter': _sig(seconds),
      'iters_per_s': _sig(1 / seconds),
      'images_per_s': _sig(n * b * config.num_seeds / seconds),   # every member's images
      'gflop_per_iter_per_device': _sig(flops / 1e9),
      'tflops_per_s_per_device': _sig(flops / seconds / 1e12),
      'peak_device_bytes': peak,
      'peak_host_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
  }


class _TimedStepper:
  """A Stepper that notes each compiled call's length, and when the first one of a run ends
  (it waits for that one: the timing starts there)."""

  def __init__(self, stepper: Stepper):
    self._stepper, self.returns = stepper, []

  def __getattr__(self, name):
    return getattr(self._stepper, name)

  def step(self, state, batch):
    out = self._stepper.step(state, batch)
    if not self.returns:
      jax.block_until_ready(out)
    self.returns.append((time.perf_counter(), int(out[1]['critic_loss'].shape[0])))
    return out

  def train(self, state, host_batches):
    return self.step(state, self.put(host_batches))


class _Loop:
  """trainer.train for `steps` steps on the config's data, each run in a new temporary
  workdir, with one Stepper: the first run compiles, later ones are timed from the end of
  their first call to the end of train() (the last checkpoint's save included)."""

  def __init__(self, config, steps: int):
    self.config = config.copy_and_resolve_references()
    self.config.num_steps = self.steps = steps
    checks.check_config(self.config, jax.device_count())
    self.data = input_pipeline.load(self.config.dataset)
    checks.check_data(self.config, self.data.image_shape, self.data.num_classes)
    self.stepper = _TimedStepper(Stepper(self.config, self.data.image_shape,
                                         self.data.num_classes))
    self.first_run_s = self._run()[0]

  def _run(self):
    """(seconds of train(), seconds after its first call ended, iterations in them)."""
    self.stepper.returns = []
    with tempfile.TemporaryDirectory() as workdir:
      t0 = time.perf_counter()
      trainer.train(self.config, workdir, self.stepper, self.data)
      end = time.perf_counter()
    first_return, first_k = self.stepper.returns[0]
    if first_k >= self.steps:
      raise ValueError(f'--steps={self.steps} is one call of the loop: give more steps than '
                       f'its first call has ({first_k})')
    return end - t0, end - first_return, self.steps - first_k

  def iters_per_s(self) -> float:
    _, seconds, iterations = self._run()
    return iterations / seconds


def main(_):
  config = FLAGS.config
  bare = _Bare(config)
  result = benchmark(config, FLAGS.steps, bare)
  if config.num_seeds > 1:  # against N separate runs, one after another on the same devices
    one = config.copy_and_resolve_references()
    one.num_seeds = 1
    separate = _Bare(one).seconds_per_iter(FLAGS.steps)
    result.update(num_seeds=config.num_seeds, separate_seconds_per_iter=_sig(separate),
                  seeds_speedup=round(config.num_seeds * separate /
                                      result['seconds_per_iter'], 3))
  if FLAGS.loop:
    # The bare step and the loop alternate, each timed --repeats times; the best of each
    # counts (other work on the machine only ever slows a measurement down).
    loop = _Loop(config, FLAGS.steps)
    bare_runs, loop_runs = [result['iters_per_s']], []
    for r in range(FLAGS.repeats):
      loop_runs.append(_sig(loop.iters_per_s()))
      if r:
        bare_runs.append(_sig(1 / bare.seconds_per_iter(FLAGS.steps)))
    best_bare = max(bare_runs)
    result.update(iters_per_s=best_bare, seconds_per_iter=_sig(1 / best_bare),
                  images_per_s=_sig(config.n_critic * config.batch_size * best_bare),
                  bare_iters_per_s_runs=bare_runs, loop_steps=FLAGS.steps,
                  loop_calls=len(loop.stepper.returns),
                  loop_call_lengths=sorted({k for _, k in loop.stepper.returns}),
                  loop_first_run_s=round(loop.first_run_s, 2),
                  loop_iters_per_s=max(loop_runs), loop_iters_per_s_runs=loop_runs,
                  loop_vs_bare=round(max(loop_runs) / best_bare, 3))
  if FLAGS.torch:
    from experiments import torch_reference  # pylint: disable=g-import-not-at-top
    image_shape = input_pipeline.spec(config.dataset).image_shape
    result.update(torch_reference.benchmark(config, image_shape, FLAGS.steps,
                                            FLAGS.torch_device, FLAGS.torch_compile,
                                            FLAGS.torch_autocast))
    result['speedup_vs_torch'] = round(
        result['torch_seconds_per_iter'] / result['seconds_per_iter'], 3)
  if FLAGS.gemm_peak:
    impl = config.model.conv_impl
    peak = gemm_peak(impl)
    result.update(gemm={'mkl': 'mkl bfloat16', 'bf16': 'xla bfloat16'}.get(impl, 'xla float32'),
                  gemm_tflops_per_s=_sig(peak / 1e12),
                  fraction_of_gemm_peak=_sig(result['tflops_per_s_per_device'] * 1e12 / peak, 3))
  print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
