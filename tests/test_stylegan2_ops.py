"""gan_jax/models/stylegan2/ops.py computes what stylegan2-ada-pytorch's ops compute:
tests/stylegan2_torch.py (those ops as the official reference path computes them, NCHW) on the
same random inputs and weights.

Checked: upfirdn2d (up, down, positive and negative padding, flip, gain, odd sides; lax's grouped
convolution and, for conv_impl 'hybrid', the separable filters' 1-D passes), upsample2d
and downsample2d, every case of conv2d_resample (kernel 1 and 3, up 2, down 2, groups, flipped
weights, asymmetric padding), bias_act with clamp, the modulated convolution fused and not (with
and without demodulation, up 2, noise, batch 1 and 3; each against the reference's, so the two
agree with each other), the minibatch standard deviation layer,
the equalised-lr dense and conv layers. Outputs and the gradients of a random projection of them
with respect to every input and weight. Float32 throughout: outputs agree within atol 1e-5 +
rtol 1e-5 (values of order 1; the modulated convs' within 2e-5), gradients within 1e-5 of the
largest gradient of the same array.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import reference_import
from gan_jax.models.stylegan2 import ops

torch = reference_import('torch')   # CI installs it: missing there, the run fails
import stylegan2_torch as ref  # pylint: disable=g-import-not-at-top,wrong-import-position

ATOL = RTOL = 1e-5
GRAD_TOL = 1e-5


def _nchw(a):
  return ref.tensor(np.asarray(a).transpose(0, 3, 1, 2)).requires_grad_(True)


def _nhwc(t):
  return t.detach().numpy().transpose(0, 2, 3, 1)


def _normal(seed, shape, scale=1.0):
  """N(0, scale^2) draws (numpy's: jax.random compiles anew for every shape, ~3 s here)."""
  return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _close(ours, theirs, atol=ATOL, rtol=RTOL):
  np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), atol=atol, rtol=rtol)


def _grad_close(ours, theirs, name=''):
  scale = float(np.abs(theirs).max())
  assert scale > 0, name
  np.testing.assert_allclose(np.asarray(ours), theirs, atol=GRAD_TOL * scale, rtol=0,
                             err_msg=name)


@functools.partial(jax.jit, static_argnums=0)
def _value_and_vjp(fn, cot, *inputs):
  out, vjp = jax.vjp(fn, *inputs)
  return out, vjp(cot)


def _check(fn, t_fn, inputs, layouts, atol=ATOL):
  """fn(*inputs) (NHWC) equals t_fn(*torch inputs) (NCHW), and so do the gradients of
  sum(out * cotangent) with respect to every input. layouts: per input 'x' (NHWC image ->
  NCHW), 'w' (HWIO kernel -> OIHW) or '-' (as is)."""
  cot = _normal(99, jax.eval_shape(fn, *inputs).shape)
  out, grads = _value_and_vjp(fn, cot, *inputs)
  convert = {'x': _nchw, 'w': lambda a: ref.conv_weight(a).requires_grad_(True),
             '-': lambda a: ref.tensor(a).requires_grad_(True)}
  t_inputs = [convert[k](a) for k, a in zip(layouts, inputs)]
  t_out = t_fn(*t_inputs)
  t_cot = ref.tensor(np.asarray(cot).transpose(0, 3, 1, 2) if out.ndim == 4 else cot)
  (t_out * t_cot).sum().backward()
  _close(out, _nhwc(t_out) if out.ndim == 4 else t_out.detach().numpy(), atol=atol)
  back = {'x': lambda g: g.numpy().transpose(0, 2, 3, 1),
          'w': lambda g: g.numpy().transpose(2, 3, 1, 0), '-': lambda g: g.numpy()}
  for i, (k, g, t) in enumerate(zip(layouts, grads, t_inputs)):
    _grad_close(g, back[k](t.grad), f'input {i}')
  return out


FIR = ops.setup_filter()


def test_setup_filter_is_the_official_normalised_outer_product():
  f = np.array([1, 3, 3, 1], np.float32)
  np.testing.assert_allclose(FIR, np.outer(f, f) / 64, rtol=1e-7)
  np.testing.assert_allclose(ops.setup_filter(gain=4).sum(), 4, rtol=1e-6)
  np.testing.assert_allclose(FIR, ref.setup_filter().numpy(), rtol=1e-7)


@pytest.mark.parametrize('up,down,padding,flip,gain,f', [
    (2, 1, (2, 1, 2, 1), False, 4, FIR),
    (2, 2, (1, 2, 0, 3), True, 2, FIR),
    (1, 1, (-1, 2, 1, -2), False, 1, np.arange(6, dtype=np.float32).reshape(2, 3)),  # asymmetric
    (3, 1, (0, 0, 1, 1), False, 1, None),
    (1, 2, (1, 1, 1, 1), True, 1, ops.setup_filter((1, 2, 1)) * np.float32(3)),  # odd, gain
])
@pytest.mark.parametrize('conv_impl', ['xla', 'hybrid'])   # hybrid: separable filters' 1-D form
def test_upfirdn2d_is_the_officials(up, down, padding, flip, gain, f, conv_impl):
  x = _normal(0, (2, 7, 5, 3))
  t_f = None if f is None else torch.from_numpy(np.asarray(f))
  _check(lambda x: ops.upfirdn2d(x, f, up, down, padding, flip, gain, conv_impl),
         lambda x: ref.upfirdn2d(x, t_f, up, down, padding, flip, gain), [x], 'x')


def _grouped_convs(fn, *args) -> int:
  """How many lax convolutions with feature groups fn's jaxpr (and its gradient's) holds."""
  text = str(jax.make_jaxpr(jax.grad(lambda *a: jnp.sum(fn(*a) ** 2)))(*args))
  return sum(int(n) > 1 for n in re.findall(r'feature_group_count=(\d+)', text))


def test_separable_filters_take_no_grouped_convolution_but_others_do():
  x = _normal(0, (2, 8, 8, 3))
  assert _grouped_convs(lambda x: ops.upfirdn2d(x, FIR, 2, 1, 1), x) == 2   # forward, grad
  assert _grouped_convs(lambda x: ops.upfirdn2d(x, FIR, 2, 1, 1, conv_impl='hybrid'), x) == 0
  assert _grouped_convs(lambda x: ops.downsample2d(x, FIR, conv_impl='hybrid'), x) == 0
  assert ops.separable_taps(FIR) is not None
  np.testing.assert_array_equal(np.outer(*ops.separable_taps(FIR)), FIR)   # exact taps
  rank2 = np.arange(6, dtype=np.float32).reshape(2, 3)
  assert ops.separable_taps(rank2) is None and ops.separable_taps(jnp.asarray(FIR)) is None
  assert _grouped_convs(lambda x: ops.upfirdn2d(x, rank2, conv_impl='hybrid'), x) == 2


@pytest.mark.parametrize('side', [4, 5])
@pytest.mark.parametrize('conv_impl', ['xla', 'hybrid'])
def test_upsample_and_downsample_are_the_officials(side, conv_impl):
  x = _normal(1, (3, side, side, 2))
  t_f = ref.setup_filter()
  up = _check(lambda x: ops.upsample2d(x, FIR, conv_impl=conv_impl),
              lambda x: ref.upsample2d(x, t_f), [x], 'x')
  assert up.shape == (3, 2 * side, 2 * side, 2)
  down = _check(lambda x: ops.downsample2d(x, FIR, conv_impl=conv_impl),
                lambda x: ref.downsample2d(x, t_f), [up], 'x')
  assert down.shape == x.shape
  # a constant stays a constant away from the borders (the filter keeps DC)
  ones = ops.upsample2d(jnp.ones((1, 6, 6, 1)), FIR)
  _close(ones[0, 2:-2, 2:-2, 0], np.ones((8, 8)), atol=1e-6)


@pytest.mark.parametrize('k,up,down,padding,groups,flip', [
    (3, 1, 1, 1, 1, True),
    (3, 2, 1, 1, 1, False),     # SynthesisLayer's conv0
    (1, 2, 1, 0, 1, False),     # a resnet G's skip
    (3, 1, 2, 1, 1, True),      # DiscriminatorBlock's conv1
    (1, 1, 2, 0, 1, True),      # its skip
    (3, 2, 1, 1, 2, False),     # the fused modconv's grouped form
    (3, 1, 1, (0, 1, 2, 1), 1, True),   # asymmetric: pad, then the conv
    (3, 2, 2, 1, 1, False),     # up then down
])
@pytest.mark.parametrize('conv_impl', ['xla', 'hybrid'])
def test_conv2d_resample_is_the_officials(k, up, down, padding, groups, flip, conv_impl):
  cin, cout = 4, 6
  x = _normal(2, (2, 6, 5, cin))
  w = _normal(3, (k, k, cin // groups, cout), 0.3)
  f = None if up == down == 1 else FIR
  t_f = None if f is None else ref.setup_filter()
  _check(lambda x, w: ops.conv2d_resample(x, w, f, up, down, padding, groups, flip, conv_impl),
         lambda x, w: ref.conv2d_resample(x, w, t_f, up, down, padding, groups, flip),
         [x, w], 'xw')


def test_bias_act_is_the_officials():
  x = _normal(4, (2, 5, 5, 3), 3.0)
  b = _normal(5, (3,))
  out = _check(lambda x, b: ops.bias_act(x, b, 'lrelu', clamp=2.5),
               lambda x, b: ref.bias_act(x, b, 'lrelu', clamp=2.5), [x, b], 'x-')
  assert float(jnp.abs(out).max()) == pytest.approx(2.5)   # the clamp bites
  _check(lambda x, b: ops.bias_act(x, b, 'lrelu', gain=0.5),
         lambda x, b: ref.bias_act(x, b, 'lrelu', gain=0.5), [x, b], 'x-')


@pytest.mark.parametrize('batch,k,up,demodulate,noise', [
    (3, 3, 1, True, True),
    (1, 3, 2, True, False),
    (3, 3, 2, True, True),
    (2, 1, 1, False, False),    # ToRGB
])
def test_modulated_conv2d_fused_and_not_are_the_officials(batch, k, up, demodulate, noise):
  """Both formulations against the reference's (so within 4e-5 of each other)."""
  cin, cout, side = 5, 4, 4
  x = _normal(6, (batch, side, side, cin))
  w = _normal(7, (k, k, cin, cout))
  styles = 1 + 0.3 * _normal(8, (batch, cin))
  n = 0.2 * _normal(9, (batch, side * up, side * up, 1)) if noise else None
  f = FIR if up > 1 else None
  kwargs = dict(up=up, padding=k // 2, demodulate=demodulate, flip_weight=up == 1)
  t_n = None if n is None else ref.tensor(np.asarray(n).transpose(0, 3, 1, 2))
  t_f = None if f is None else ref.setup_filter()
  for fused in (True, False):
    out = _check(lambda x, w, s, fused=fused: ops.modulated_conv2d(
        x, w, s, n, resample_filter=f, fused_modconv=fused, **kwargs),
                 lambda x, w, s, fused=fused: ref.modulated_conv2d(
                     x, w, s, t_n, resample_filter=t_f, fused_modconv=fused, **kwargs),
                 [x, w, styles], 'xw-', atol=2e-5)
    if demodulate:   # unit-norm kernels: outputs of order 1
      assert 0.3 < float(jnp.std(out)) < 3


@pytest.mark.parametrize('batch,group,channels', [(8, 4, 1), (6, None, 1), (2, 4, 2)])
def test_minibatch_std_is_the_officials(batch, group, channels):
  x = _normal(10, (batch, 4, 4, 6))
  out = _check(lambda x: ops.minibatch_std(x, group, channels),
               lambda x: ref.minibatch_std(x, group, channels), [x], 'x')
  assert out.shape == (batch, 4, 4, 6 + channels)
  # examples i and i + N / G share a group, so they see the same statistic
  g = batch if group is None else min(group, batch)
  _close(out[0, ..., 6:], out[batch // g, ..., 6:])


@pytest.mark.parametrize('activation,lr_multiplier,bias_init', [('linear', 1.0, 0.0),
                                                                ('lrelu', 0.01, 1.0)])
def test_fully_connected_is_the_officials(activation, lr_multiplier, bias_init):
  layer = ops.FullyConnected(6, activation, lr_multiplier, bias_init)
  x = _normal(11, (3, 5))
  params = layer.init(jax.random.PRNGKey(0), x)['params']
  # stored N(0, 1) / lr_multiplier
  assert 0.5 / lr_multiplier < float(jnp.std(params['weight'])) < 2 / lr_multiplier
  params = {**params, 'bias': params['bias'] + _normal(12, (6,), 0.5)}
  t_layer = ref.FullyConnectedLayer(5, 6, activation=activation, lr_multiplier=lr_multiplier,
                                    bias_init=bias_init)
  with torch.no_grad():
    t_layer.weight.copy_(ref.dense_weight(params['weight']))
    t_layer.bias.copy_(ref.tensor(params['bias']))
  cot = _normal(13, (3, 6))
  out, (g_params, g_x) = _value_and_vjp(lambda p, x: layer.apply({'params': p}, x), cot,
                                        params, x)
  t_x = ref.tensor(x).requires_grad_(True)
  t_out = t_layer(t_x)
  (t_out * ref.tensor(cot)).sum().backward()
  _close(out, t_out.detach().numpy())
  _grad_close(g_x, t_x.grad.numpy())
  _grad_close(g_params['weight'], t_layer.weight.grad.numpy().T)
  _grad_close(g_params['bias'], t_layer.bias.grad.numpy())


@pytest.mark.parametrize('k,up,down,bias,activation,clamp,gain', [
    (3, 1, 1, True, 'lrelu', None, 1.0),
    (3, 1, 2, True, 'lrelu', 0.5, float(np.sqrt(0.5))),   # resnet D's conv1, clamped
    (1, 1, 2, False, 'linear', None, float(np.sqrt(0.5))),  # its skip
    (3, 2, 1, True, 'lrelu', None, 1.0),
])
def test_conv2d_layer_is_the_officials(k, up, down, bias, activation, clamp, gain):
  layer = ops.Conv2dLayer(5, k, bias, activation, up, down, clamp)
  x = _normal(14, (2, 6, 6, 3))
  params = layer.init(jax.random.PRNGKey(1), x)['params']
  if bias:
    params = {**params, 'bias': _normal(15, (5,), 0.3)}
  t_layer = ref.Conv2dLayer(3, 5, k, bias, activation, up, down, clamp)
  with torch.no_grad():
    t_layer.weight.copy_(ref.conv_weight(params['weight']))
    if bias:
      t_layer.bias.copy_(ref.tensor(params['bias']))
  fn = lambda p, x: layer.apply({'params': p}, x, gain=gain)
  cot = _normal(16, jax.eval_shape(fn, params, x).shape)
  out, (g_params, g_x) = _value_and_vjp(fn, cot, params, x)
  t_x = _nchw(x)
  t_out = t_layer(t_x, gain=gain)
  (t_out * ref.tensor(np.asarray(cot).transpose(0, 3, 1, 2))).sum().backward()
  _close(out, _nhwc(t_out))
  _grad_close(g_x, t_x.grad.numpy().transpose(0, 2, 3, 1))
  _grad_close(g_params['weight'], t_layer.weight.grad.numpy().transpose(2, 3, 1, 0))
  if clamp is not None:
    assert float(jnp.abs(out).max()) == pytest.approx(clamp * gain)
