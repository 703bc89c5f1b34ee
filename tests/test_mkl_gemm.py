"""The bfloat16 products of model.conv_impl 'mkl' (oneMKL's, an XLA custom call:
gan_jax/mkl_gemm.py) and 'bf16' (XLA's own dot: layers.xla_bf16_matmul), and the convolutions
built on them, against float32 XLA on bfloat16-rounded operands."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import flops, layers, mkl_gemm
from gan_jax.errors import ConfigError

from conftest import require_mkl


def _needs(impl):
  """'mkl' needs its kernel (conftest.require_mkl); 'bf16' needs nothing."""
  if impl == 'mkl':
    require_mkl()


IMPLS = pytest.mark.parametrize('impl', ['mkl', 'bf16'])


def _bf16(x):
  return jnp.asarray(x, jnp.bfloat16).astype(jnp.float32)


@IMPLS
@pytest.mark.parametrize('trans_a', [False, True])
@pytest.mark.parametrize('trans_b', [False, True])
def test_matmul_sums_bfloat16_products_in_float32(impl, trans_a, trans_b):
  _needs(impl)
  rng = np.random.RandomState(0)
  a = rng.randn(*((2, 37, 70) if trans_a else (2, 70, 37)))
  b = rng.randn(*((2, 45, 37) if trans_b else (2, 37, 45)))
  got = jax.jit(lambda a, b: layers.PRODUCTS[impl](a, b, trans_a, trans_b))(a, b)
  op = lambda x, t: _bf16(x).swapaxes(-1, -2) if t else _bf16(x)
  want = jnp.matmul(op(a, trans_a), op(b, trans_b), precision='highest')
  assert got.dtype == jnp.float32 and got.shape == (2, 70, 45)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)  # the same products, summed in f32
  # not a float32 product: the operands were rounded
  exact = jnp.matmul(a.swapaxes(-1, -2) if trans_a else a, b.swapaxes(-1, -2) if trans_b else b)
  assert float(jnp.max(jnp.abs(got - exact))) > 1e-3


@IMPLS
def test_matmul_under_vmap_and_empty_sums(impl):
  _needs(impl)
  matmul = layers.PRODUCTS[impl]
  a = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 5))
  b = jax.random.normal(jax.random.PRNGKey(1), (5, 6))
  got = jax.vmap(lambda a: matmul(a, b))(a)         # b broadcast to the batch
  np.testing.assert_allclose(got, _bf16(a) @ _bf16(b), rtol=1e-5, atol=1e-5)
  assert not jnp.any(matmul(jnp.ones((3, 0)), jnp.ones((0, 2))))
  with pytest.raises(TypeError if impl == 'bf16' else ValueError,
                     match='contracting' if impl == 'bf16' else 'do not multiply'):
    matmul(jnp.ones((3, 4)), jnp.ones((5, 2)))


@IMPLS
def test_flops_count_the_product(impl):
  _needs(impl)
  fn = jax.jit(lambda a, b: layers.PRODUCTS[impl](a, b, trans_a=True))
  assert flops.of_call(fn, jnp.ones((5, 4)), jnp.ones((5, 6))) == 2 * 4 * 6 * 5


def _params(k, cin, f, key=0):
  kernel = _bf16(jax.random.normal(jax.random.PRNGKey(key), (k, k, cin, f)) * 0.2)
  return {'params': {'kernel': kernel, 'bias': jnp.linspace(-1, 1, f)}}


STRIDE_1 = lambda f, k, impl: layers.Conv(f, k, impl, stride=1)


@IMPLS
@pytest.mark.parametrize('module', [layers.Conv, layers.ConvTranspose, STRIDE_1])
@pytest.mark.parametrize('k, size', [(4, 8), (5, 7), (5, 4), (3, 7), (1, 4)])
def test_layers_equal_float32_on_bfloat16_operands(impl, module, k, size):
  """The outputs: the same products as 'fast' on inputs and kernels that bfloat16 holds."""
  _needs(impl)
  x = _bf16(jax.random.normal(jax.random.PRNGKey(1), (2, size, size + 1, 6)))
  params = _params(k, 6, 5)
  got = module(5, k, impl).apply(params, x)
  want = module(5, k, 'fast').apply(params, x)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@IMPLS
@pytest.mark.parametrize('module', [layers.Conv, layers.ConvTranspose, STRIDE_1])
def test_first_and_second_derivatives(impl, module):
  """The gradient penalty's two orders of derivative: D and W round their float32 cotangents
  to bfloat16, so these agree with float32 to bfloat16's precision (2^-8)."""
  x = jax.random.normal(jax.random.PRNGKey(2), (4, 8, 8, 6))
  params = _params(4, 6, 5)

  def gp_like(p, impl):
    input_grad = jax.grad(lambda x: jnp.sum(jnp.sin(module(5, 4, impl).apply(p, x))))(x)
    return jnp.sum(input_grad ** 2)

  _needs(impl)
  for order in (gp_like, jax.grad(gp_like)):
    got, want = order(params, impl), order(params, 'fast')
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      scale = float(jnp.max(jnp.abs(b)))
      assert float(jnp.max(jnp.abs(a - b))) < 2e-2 * scale, (a, b)


def test_a_training_step_runs_and_refuses_other_platforms():
  _needs('mkl')
  model = layers.Conv(4, 3, 'mkl')
  x = jnp.ones((2, 8, 8, 3))
  params = model.init(jax.random.PRNGKey(0), x)
  grads = jax.jit(jax.grad(lambda p: jnp.sum(model.apply(p, x) ** 2)))(params)
  assert jnp.all(jnp.isfinite(grads['params']['kernel']))
  with pytest.raises(ConfigError, match="'mkl' runs on a CPU"):
    layers.resolve('mkl', 'tpu')
