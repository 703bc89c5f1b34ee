"""FLOPs from jaxprs, the accelerators' peaks, TPU targets and the compile report's arithmetic:
everything of --mode=compile and train/mfu that needs no libtpu (tests/test_tpu_compile.py
compiles for real)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from gan_jax import aot, flops, hardware, layers, models, schedule, targets
from gan_jax.errors import ConfigError
from gan_jax.stepper import Stepper


def test_matrix_products_counted_once_per_scan_iteration():
  """XLA's cost analysis counts a scan's body once; flops.count multiplies by its length."""
  def f(x, w, n):
    return jax.lax.scan(lambda c, _: (jnp.tanh(c @ w), None), x, None, length=n)[0]
  x, w = jnp.ones((16, 32)), jnp.ones((32, 32))
  for n in (1, 7):
    assert flops.of_call(jax.jit(f, static_argnums=2), x, w, n) == n * 2 * 16 * 32 * 32
  xla = jax.jit(f, static_argnums=2).lower(x, w, 7).compile().cost_analysis()
  xla = xla[0] if isinstance(xla, list) else xla
  assert xla['flops'] < 2 * 2 * 16 * 32 * 32  # what makes the jaxpr count necessary


def test_batched_dot_cond_and_nested_calls():
  a, b = jnp.ones((3, 4, 5)), jnp.ones((3, 5, 6))
  batched = 2 * 3 * 4 * 5 * 6
  assert flops.of_call(jax.jit(lambda a, b: jnp.einsum('bij,bjk->bik', a, b)), a, b) == batched
  # a cond counts its costlier branch; a nested jit and a vmap count as their contents
  cond = lambda p, a, b: jax.lax.cond(p, lambda: a @ b, lambda: a @ b * 0 + 1)
  assert flops.of_call(jax.jit(cond), True, a, b) == batched
  nested = jax.jit(lambda a, b: jax.jit(jax.vmap(jnp.matmul))(a, b))
  assert flops.of_call(nested, a, b) == batched


def test_convolution_and_its_gradients():
  """A 'SAME' stride-2 conv: each output element is k*k*Cin multiply-adds; its input gradient
  (a conv of the 2x-dilated output gradient) and weight gradient each do the same work."""
  x, w = jnp.ones((2, 8, 8, 3)), jnp.ones((5, 5, 3, 4))
  conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (2, 2), 'SAME',
                                                   dimension_numbers=layers.DIMS)
  forward = 2 * (2 * 4 * 4 * 4) * (5 * 5 * 3)
  assert flops.of_call(jax.jit(conv), x, w) == forward
  grads = jax.jit(jax.grad(lambda x, w: jnp.sum(conv(x, w)), argnums=(0, 1)))
  assert flops.of_call(grads, x, w) == 3 * forward


def test_call_flops_grow_with_iterations_and_critic_updates():
  config = load_config('wgan_gp.py:digits,runlocal')
  stepper = Stepper(config, (28, 28, 1), 10)
  one = stepper.call_flops(1, 1, 8, 'uint8', True)
  five = stepper.call_flops(1, 5, 8, 'uint8', True)
  assert one > 0
  assert stepper.call_flops(3, 5, 8, 'uint8', True) == pytest.approx(3 * five, rel=1e-12)
  critic = (five - one) / 4  # one critic update; the rest is the generator's update
  assert 0 < critic < one
  # twice the batch: the same program on twice the rows (the parameters' work does not grow)
  assert stepper.call_flops(1, 5, 16, 'uint8', True) == pytest.approx(2 * five, rel=1e-6)


def test_conv_layers_follow_the_platform_compiled_for():
  assert layers.resolve('auto', 'tpu') == layers.resolve('auto', 'gpu') == 'xla'
  assert layers.resolve('auto', 'cpu') == 'hybrid'
  assert layers.resolve('fast', 'tpu') == 'fast'  # a chosen implementation stays
  model = load_config('dcgan.py:cifar10').model
  for platform, impl in (('tpu', 'xla'), ('cpu', 'hybrid')):
    generator, critic = models.build(model, (32, 32, 3), 0, platform=platform)
    assert generator.conv_impl == critic.conv_impl == impl


def test_peaks_by_device_kind():
  assert hardware.peak_flops('TPU v5 lite', 'bfloat16') == 197e12
  assert hardware.peak_flops('TPU v4', 'float32') == 275e12
  assert hardware.peak_flops('NVIDIA A100-SXM4-80GB', 'float32') == 156e12  # TF32
  assert hardware.peak_flops('NVIDIA H100 80GB HBM3', 'bfloat16') == 989e12
  assert hardware.peak_flops('cpu', 'float32') is None
  assert hardware.chip('NVIDIA GeForce RTX 9999') is None


@pytest.mark.parametrize('target, topology, hosts_note', [
    ('v4-8', 'v4:2x2x1', {'chip_config_name': 'megacore', 'chips_per_host_bounds': (2, 2, 1)}),
    ('v4-16', 'v4:2x2x2', {'chip_config_name': 'megacore', 'chips_per_host_bounds': (2, 2, 1)}),
    ('v4-128', 'v4:4x4x4', {'chip_config_name': 'megacore', 'chips_per_host_bounds': (2, 2, 1)}),
    ('v5p-8', 'v5p:2x2x1', {'chip_config_name': 'megacore', 'chips_per_host_bounds': (2, 2, 1)}),
    ('v5litepod-8', 'v5e:2x4', {'chips_per_host_bounds': (2, 4, 1)}),
    ('v5e-1', 'v5e:1x1', {'chips_per_host_bounds': (1, 1, 1)}),
    ('v5e-16', 'v5e:4x4', {'chips_per_host_bounds': (2, 2, 1)}),
    ('v6e-8', 'v6e:2x4', {'chips_per_host_bounds': (2, 4, 1)}),
    ('v5e:2x4', 'v5e:2x4', {'chips_per_host_bounds': (2, 4, 1)}),
    ('v3-8', 'v3:2x2', {}),
])
def test_targets_are_laid_out_as_tpu_vms_are(target, topology, hosts_note):
  assert targets.parse(target) == (topology, hosts_note)


@pytest.mark.parametrize('target', ['v7-8', 'v5e-12', 'v4-4', 'tpu', 'v5e:2'])
def test_unknown_targets_are_one_line(target):
  with pytest.raises(ConfigError, match='--target'):
    targets.parse(target)


def test_out_of_memory_messages():
  message = ('RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory required for HLO '
             'temporaries (212.46G) exceeds available HBM (15.75G).')
  assert aot._out_of_memory(RuntimeError(message)) == 212.46 * 2 ** 30
  assert targets.hbm_in_message(message) == 15.75 * 2 ** 30
  assert aot._out_of_memory(RuntimeError('INVALID_ARGUMENT: something else')) is None


def test_largest_call_is_the_one_with_most_critic_batches():
  wgan = load_config('wgan.py:mnist')  # 100 critic updates for the first 25 steps, then 5
  assert schedule.largest_call(wgan) == (wgan.max_steps_per_call, 5)
  config = load_config('wgan_gp.py:digits,runlocal')  # 4 steps, logs every 2
  assert schedule.largest_call(config) == (2, config.n_critic)


def test_batch_search_predicts_from_the_line_and_brackets():
  line = lambda b: {'fits': True, 'hbm_bytes_per_device': 100.0 + 10.0 * b}
  results = {4: line(4), 8: line(8)}
  assert aot._next_candidate(results, 8, None, 1000.0) == 90  # 100 + 10 * 90 = 1000
  results[90] = line(90)  # the line was right: one step above it, to find where it fails
  assert aot._next_candidate(results, 90, None, 1000.0) == 91
  results = {400: line(400), 1000: line(1000)}  # 1 % above the largest that fits
  assert aot._next_candidate(results, 1000, None, 5000.0) == 1010
  assert aot._next_candidate({4: line(4)}, 4, None, 1000.0) == 8      # no line yet: double
  assert aot._next_candidate({}, 0, 16, 1000.0) == 8                  # nothing fits: halve
  # bracketed: where the line between the ends meets the capacity, then the midpoint
  over = {'fits': False, 'hbm_bytes_per_device': 1300.0}
  assert aot._next_candidate({50: line(50), 120: over}, 50, 120, 1000.0) == 90
  assert aot._next_candidate({50: line(50), 70: line(70), 120: over}, 70, 120, 1000.0) == 95
  # a failing end just over the capacity: the line says bad - 1; the guess keeps 1 % inside
  # (SNGAN on a v5p-8 tried 10,019, 10,018 ... against 10,020, each compile minutes long)
  just_over = {'fits': False, 'hbm_bytes_per_device': 100.0 + 10.0 * 10020 + 1}
  tight = {9712: line(9712), 10020: just_over}
  assert aot._next_candidate(tight, 9712, 10020, 100.0 + 10.0 * 10020) == 10020 - 97
  assert aot._next_candidate({1: line(1), 3: over}, 1, 3, 1000.0) == 2   # no room inside


def test_abstract_batch_is_what_put_makes():
  config = load_config('acgan.py:digits,runlocal')
  stepper = Stepper(config, (28, 28, 1), 10)
  host = [{'image': np.zeros((config.n_critic, 8, 28, 28, 1), np.uint8),
           'label': np.zeros((config.n_critic, 8), np.int32)} for _ in range(3)]
  real = stepper.put(host)
  abstract = stepper.abstract_batch(3, config.n_critic, 8, 'uint8', labels=True)
  for name in ('image', 'label'):
    assert (real[name].shape, real[name].dtype, real[name].sharding) == (
        abstract[name].shape, abstract[name].dtype, abstract[name].sharding)


def test_a_call_that_does_not_compile_is_one_line(monkeypatch):
  """XLA's other errors (not out of memory) become a CompileError: main.py prints one line."""
  from gan_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  from gan_jax.errors import CompileError  # pylint: disable=g-import-not-at-top

  class Refused:
    def compile(self):
      raise RuntimeError('INTERNAL: no lowering for this op\nmore lines')
  monkeypatch.setattr(Stepper, 'lower', lambda self, *args: Refused())
  config = load_config('wgan_gp.py:digits,runlocal')
  spec = input_pipeline.spec(config.dataset)
  with pytest.raises(CompileError, match=r'does not compile for 1 x cpu: INTERNAL: no lowering '
                                         r'for this op$'):
    aot.compile_call(config, spec, jax.devices(), 8)
