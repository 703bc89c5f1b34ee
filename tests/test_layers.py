"""The CPU-fast layers compute what nn.Conv / nn.ConvTranspose compute, to any derivative."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import layers


def _params(k, cin, f, key=0):
  kernel = jax.random.normal(jax.random.PRNGKey(key), (k, k, cin, f)) * 0.2
  return {'params': {'kernel': kernel, 'bias': jnp.linspace(-1, 1, f)}}


@pytest.mark.parametrize('k', [3, 4, 5])
@pytest.mark.parametrize('size', [4, 7, 8, 14, 64, 128])  # 64, 128: the 64 and 128 px models
@pytest.mark.parametrize('stride', [1, 2])
def test_fast_conv_equals_nn_conv(k, size, stride):
  x = jax.random.normal(jax.random.PRNGKey(1), (2, size, size, 3))
  params = _params(k, 3, 5)
  want = nn.Conv(5, (k, k), strides=(stride, stride), padding='SAME').apply(params, x)
  for impl in ('fast', 'hybrid', 'xla'):
    got = layers.Conv(5, k, impl, stride=stride).apply(params, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize('k', [3, 4, 5])
@pytest.mark.parametrize('size', [4, 7, 32, 64])  # to 64, 128: the 64 and 128 px generators
def test_fast_conv_transpose_equals_nn_conv_transpose(k, size):
  x = jax.random.normal(jax.random.PRNGKey(1), (2, size, size, 3))
  params = _params(k, 3, 5)
  want = nn.ConvTranspose(5, (k, k), strides=(2, 2), padding='SAME').apply(params, x)
  for impl in ('fast', 'hybrid', 'xla'):
    got = layers.ConvTranspose(5, k, impl).apply(params, x)
    assert got.shape == want.shape == (2, 2 * size, 2 * size, 5)
    np.testing.assert_allclose(got, want, atol=1e-5)


STRIDE_1 = functools.partial(layers.Conv, stride=1)  # the ResNet's convolutions


def _assert_trees_close(got, want, rtol, atol_fraction):
  """Leafwise allclose, with atol a fraction of `want`'s largest entry (float32 sums)."""
  atol = atol_fraction * max(float(jnp.max(jnp.abs(a))) for a in jax.tree.leaves(want))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=rtol, atol=atol), got, want)


@pytest.mark.parametrize('module, k, size, features', [
    *[(m, k, size, 4) for m in (layers.Conv, layers.ConvTranspose, STRIDE_1)
      for k, size in ((5, 7), (4, 8), (5, 4), (3, 7))],
    (layers.Conv, 1, 4, 4), (STRIDE_1, 1, 4, 4),  # 1x1 kernels: the ResNet's shortcuts
    (STRIDE_1, 3, 8, 3),  # the ResNet's last conv, to RGB
    (layers.Conv, 4, 64, 4), (layers.ConvTranspose, 4, 32, 4),  # the 64 px DCGAN's outer layers
    (STRIDE_1, 3, 64, 4)])  # the 64 px ResNet's
def test_fast_layers_match_first_and_second_derivatives(module, k, size, features):
  """The gradient penalty differentiates d critic / d x w.r.t. the weights: check both (size 4
  with k 5: the kernel is wider than the input). 4 input channels: hybrid's weight gradient
  takes the lax and per-tap forms from 4 channels on, the matmul below."""
  x = jax.random.normal(jax.random.PRNGKey(2), (2, size, size, 4))
  params = _params(k, 4, features)

  def gp_like(p, impl):
    input_grad = jax.grad(lambda x: jnp.sum(jnp.sin(module(features, k, impl).apply(p, x))))(x)
    return jnp.sum(input_grad ** 2)

  for order in (gp_like, jax.grad(gp_like)):
    plain = order(params, 'xla')
    for impl in ('fast', 'hybrid'):
      _assert_trees_close(order(params, impl), plain, rtol=1e-4, atol_fraction=1e-6)


@pytest.mark.parametrize('module', [layers.Conv, layers.ConvTranspose, STRIDE_1])
def test_third_derivatives_and_non_square_inputs(module):
  """F, D and W are each other's derivatives to any order; check the third, on a 7 x 9 input."""
  x = jax.random.normal(jax.random.PRNGKey(3), (2, 7, 9, 4))
  params = _params(4, 4, 4)

  def third(impl):
    def f(p, x):
      return jnp.sum(jnp.sin(module(4, 4, impl).apply(p, x)))
    d2 = lambda p: jnp.sum(jnp.cos(jax.grad(f, argnums=1)(p, x)))  # weights -> input grad
    return jax.grad(lambda p: jnp.sum(jnp.sin(jax.grad(d2)(p)['params']['kernel'])))(params)

  plain = third('xla')
  for impl in ('fast', 'hybrid'):
    _assert_trees_close(third(impl), plain, rtol=1e-3, atol_fraction=1e-4)


@pytest.mark.parametrize('size, k, pads, stride', [((8, 8), 4, ((1, 1), (1, 1)), 2),
                                                   ((7, 9), 5, ((2, 2), (1, 2)), 2),
                                                   ((4, 5), 3, ((0, 1), (1, 1)), 2),
                                                   ((7, 6), 3, ((1, 1), (1, 1)), 1)])
def test_col2im_is_the_adjoint_of_im2col(size, k, pads, stride):
  x = jax.random.normal(jax.random.PRNGKey(4), (2, *size, 3))
  cols = layers.im2col(x, k, k, stride, pads)
  c = jax.random.normal(jax.random.PRNGKey(5), cols.shape)
  np.testing.assert_allclose(jnp.vdot(cols, c),
                             jnp.vdot(x, layers.col2im(c, k, size, pads, stride)), rtol=1e-5)


def test_impl_names_are_checked():
  with pytest.raises(ValueError, match="'auto', 'hybrid', 'fast', 'xla'"):
    layers.resolve('cudnn')


def test_mkl_without_onemkl_is_one_line(monkeypatch, config_factory):
  """conv_impl 'mkl' where the mkl wheel is missing: the config check refuses it, naming the
  install command, before anything runs."""
  from gan_jax import checks, mkl_gemm  # pylint: disable=g-import-not-at-top
  from gan_jax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(mkl_gemm, 'library_dir', lambda: None)
  mkl_gemm.register.cache_clear()
  config = config_factory('dcgan.py:digits,runlocal')
  config.model.conv_impl = 'mkl'
  try:
    with pytest.raises(ConfigError, match='requirements-mkl.txt'):
      checks.check_config(config, 1)
  finally:
    mkl_gemm.register.cache_clear()


@pytest.mark.parametrize('impl', ['hybrid'])    # what 'auto' picks on a CPU
@pytest.mark.parametrize('k, stride, dilation, pads', [
    (3, 1, 1, ((1, 1), (1, 1))), (3, 1, 1, ((0, 0), (0, 0))), (1, 1, 1, ((0, 0), (0, 0))),
    (3, 2, 1, ((0, 0), (0, 0))), (4, 2, 1, ((0, 1), (1, 0))), (1, 2, 1, ((0, 0), (0, 0))),
    (3, 1, 2, ((2, 2), (2, 2))), (3, 1, 2, ((1, 1), (1, 1))), (4, 1, 2, ((3, 2), (0, 1))),
    (1, 1, 2, ((0, 0), (0, 0)))])
def test_conv_general_equals_lax_to_the_second_derivative(impl, k, stride, dilation, pads):
  """layers.conv_general (StyleGAN2's convolutions on a CPU: its strided ones and its
  transposed ones, a dilated input) against lax.conv_general_dilated, non-square inputs."""
  rng = np.random.default_rng(k * 10 + stride + dilation)
  x = jnp.asarray(rng.normal(size=(2, 7, 6, 3)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(k, k, 3, 5)) * 0.3, jnp.float32)
  fn = lambda impl: lambda x, w: layers.conv_general(x, w, stride, pads, dilation, impl)
  np.testing.assert_allclose(fn(impl)(x, w), fn('xla')(x, w), rtol=1e-5, atol=1e-5)

  def penalty(w, impl):   # the gradient penalty's shape: the input gradient's square norm
    dx = jax.grad(lambda x: jnp.sum(jnp.sin(fn(impl)(x, w))))(x)
    return jnp.sum(dx ** 2)

  for order in (penalty, jax.grad(penalty)):
    got, want = order(w, impl), order(w, 'xla')
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(want))))


def test_conv_general_refuses_what_it_does_not_compute():
  x, w = jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 2))
  with pytest.raises(ValueError, match='stride 1 and padding of at most'):
    layers.conv_general(x, w, 1, ((3, 3), (3, 3)), 2)
  with pytest.raises(ValueError, match='a square kernel'):
    layers.conv_general(x, jnp.ones((3, 1, 2, 2)), 1, ((1, 1), (0, 0)))
