"""StyleGAN2's building blocks (Karras et al. 2020), computed as stylegan2-ada-pytorch's
torch_utils/ops and training/networks.py compute them, in NHWC and float32.

  * `setup_filter`, `upfirdn2d` (zero-insertion upsample, pad or crop, FIR filter, downsample),
    `upsample2d`, `downsample2d` and `conv2d_resample` (up: transposed conv then the filter;
    down: the filter then a strided conv), with the official padding arithmetic, so shapes and
    pixel alignment are the official ones.
  * `bias_act`: bias, activation, gain (lrelu's sqrt(2)) and an optional clamp.
  * `modulated_conv2d`: styles scale the kernel's input channels, demodulation rescales each
    output channel to unit norm; fused (per-example kernels, one grouped conv) or not (the
    activations scaled before and after one shared conv). Both compute the same function.
  * `minibatch_std`, `normalize_2nd_moment`.
  * Flax layers with equalised learning rates: `FullyConnected` (weights N(0, 1) / lr_multiplier,
    scaled by lr_multiplier / sqrt(fan_in) at run time) and `Conv2dLayer`.

Kernels are stored HWIO ([kh, kw, in, out]) and dense weights [in, out]; tests/stylegan2_torch.py
transposes them into the official layouts.
"""

from typing import Optional, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import layers

DIMS = ('NHWC', 'HWIO', 'NHWC')
FIR = (1, 3, 3, 1)   # the official resample_filter
# activation -> (function of (x, alpha), default alpha, default gain)
ACTIVATIONS = {
    'linear': (lambda x, alpha: x, 0.0, 1.0),
    'relu': (lambda x, alpha: jax.nn.relu(x), 0.0, float(np.sqrt(2))),
    'lrelu': (lambda x, alpha: jax.nn.leaky_relu(x, alpha), 0.2, float(np.sqrt(2))),
}

Padding = Union[int, Sequence[int]]


def setup_filter(f=FIR, gain: float = 1.0, normalize: bool = True) -> np.ndarray:
  """The 2-D FIR filter [fh, fw] of taps `f` (1-D: its outer product with itself), summing to
  1 when `normalize`, times `gain` (official setup_filter, non-separable)."""
  f = np.asarray(f, np.float32)
  if f.ndim == 0:
    f = f[None]
  if f.ndim == 1:
    f = np.outer(f, f)
  if normalize:
    f = f / f.sum()
  return (f * gain).astype(np.float32)


def _padding4(padding: Padding) -> Tuple[int, int, int, int]:
  """(x0, x1, y0, y1) of an int, an (x, y) pair or an (x0, x1, y0, y1) tuple."""
  if isinstance(padding, int):
    return (padding,) * 4
  padding = tuple(int(p) for p in padding)
  if len(padding) == 2:
    return padding[0], padding[0], padding[1], padding[1]
  return padding


def separable_taps(f) -> Optional[Tuple[np.ndarray, np.ndarray]]:
  """(fy, fx): 1-D taps whose outer product is the 2-D filter f, or None when f is not a
  concrete rank-1 array (a traced or non-separable filter). setup_filter's filters are outer
  products; for the official [1, 3, 3, 1] the taps are [1, 3, 3, 1] / 8, exact in float32."""
  if not isinstance(f, np.ndarray) or f.ndim != 2 or not f.sum():
    return None
  f = f.astype(np.float64)
  fy, fx = f.sum(axis=1), f.sum(axis=0) / f.sum()
  if not np.allclose(np.outer(fy, fx), f, rtol=1e-6, atol=0):
    return None
  return fy.astype(np.float32), fx.astype(np.float32)


def fir_1d(x, taps, axis: int, down: int):
  """Correlation of x with the 1-D `taps` along `axis`, every down-th output: a sum of strided
  slices, which XLA fuses into one elementwise loop (upfirdn2d's separable filters, and ADA's
  resampling in gan_jax/ada.py)."""
  out = (x.shape[axis] - len(taps)) // down + 1
  terms = [jax.lax.slice_in_dim(x, t, t + (out - 1) * down + 1, down, axis) * float(taps[t])
           for t in range(len(taps))]
  acc = terms[0]
  for term in terms[1:]:
    acc = acc + term
  return acc


def upfirdn2d(x, f, up: int = 1, down: int = 1, padding: Padding = 0,
              flip_filter: bool = False, gain: float = 1.0, conv_impl: str = 'xla'):
  """Upsamples x [N, H, W, C] by inserting up - 1 zeros after each pixel, pads it (negative:
  crops) by `padding` (x0, x1, y0, y1), convolves every channel with the 2-D filter f (a true
  convolution; flip_filter: correlation) times gain, and keeps every down-th pixel.
  Output side: (H * up + y0 + y1 - fh) // down + 1.
  conv_impl 'xla': the filter as lax's grouped convolution (a feature group per channel);
  any other (gan_jax/layers.py's forms, 'hybrid' on a CPU): a separable filter (setup_filter's)
  as two 1-D passes of strided slices, the same sums in another order (float32 rounding apart),
  6-90 times faster with their gradients on XLA:CPU, where grouped convolutions are slow
  (docs/stylegan2.md, 'On a CPU'; experiments/modconv_bench.py --filters)."""
  f = setup_filter(1.0) if f is None else f
  taps = separable_taps(f) if conv_impl != 'xla' else None
  f = jnp.asarray(f, x.dtype)
  px0, px1, py0, py1 = _padding4(padding)
  # zero insertion and padding in one: interior up - 1 zeros, up - 1 more after the last pixel
  x = jax.lax.pad(x, jnp.zeros((), x.dtype),
                  [(0, 0, 0), (py0, py1 + up - 1, up - 1), (px0, px1 + up - 1, up - 1), (0, 0, 0)])
  if taps is not None:
    fy, fx = (t if flip_filter else t[::-1] for t in taps)   # correlations
    return fir_1d(fir_1d(x, fy * np.float32(gain), 1, down), fx, 2, down)
  kernel = f if flip_filter else f[::-1, ::-1]   # lax correlates
  c = x.shape[-1]
  kernel = jnp.tile((kernel * gain)[:, :, None, None], (1, 1, 1, c))   # [fh, fw, 1, C]
  return jax.lax.conv_general_dilated(x, kernel, (down, down), 'VALID', dimension_numbers=DIMS,
                                      feature_group_count=c)


def upsample2d(x, f, up: int = 2, padding: Padding = 0, gain: float = 1.0,
               conv_impl: str = 'xla'):
  """x [N, H, W, C] -> [N, H * up, W * up, C], filtered by f with gain up**2 (keeps DC)."""
  fh, fw = f.shape
  px0, px1, py0, py1 = _padding4(padding)
  pad = (px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2,
         py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2)
  return upfirdn2d(x, f, up=up, padding=pad, gain=gain * up * up, conv_impl=conv_impl)


def downsample2d(x, f, down: int = 2, padding: Padding = 0, gain: float = 1.0,
                 conv_impl: str = 'xla'):
  """x [N, H, W, C] -> [N, H // down, W // down, C], filtered by f."""
  fh, fw = f.shape
  px0, px1, py0, py1 = _padding4(padding)
  pad = (px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2,
         py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2)
  return upfirdn2d(x, f, down=down, padding=pad, gain=gain, conv_impl=conv_impl)


def _conv(x, w, stride: int = 1, padding=((0, 0), (0, 0)), groups: int = 1, flip: bool = False,
          lhs_dilation: int = 1, conv_impl: str = 'xla'):
  """Convolution of x [N, H, W, C] with kernel w [kh, kw, C / groups, O]: a correlation
  (torch's conv2d), or a true convolution when `flip`. conv_impl: 'xla' (the lax call) or
  gan_jax/layers.py's F/D/W forms ('hybrid' on a CPU: the lax weight gradients are slow
  there), for one group and a square kernel (grouped ones stay lax)."""
  if flip:
    w = w[::-1, ::-1]
  if conv_impl != 'xla' and groups == 1 and w.shape[0] == w.shape[1]:
    return layers.conv_general(x, w.astype(x.dtype), stride, padding, lhs_dilation, conv_impl)
  return jax.lax.conv_general_dilated(x, w.astype(x.dtype), (stride, stride), padding,
                                      lhs_dilation=(lhs_dilation, lhs_dilation),
                                      dimension_numbers=DIMS, feature_group_count=groups)


def conv2d_resample(x, w, f=None, up: int = 1, down: int = 1, padding: Padding = 0,
                    groups: int = 1, flip_weight: bool = True, conv_impl: str = 'xla'):
  """Convolution of x [N, H, W, C] with w [kh, kw, C / groups, O] with optional 2x up- or
  downsampling through the FIR filter f, padding once (official conv2d_resample):
    up:   a transposed convolution (stride up), then f with gain up**2;
    down: f, then a strided convolution (1x1 kernels: f with its stride, then the 1x1 conv).
  flip_weight: correlation (torch's conv2d); False: convolution (the official layers' choice
  when up > 1). conv_impl: the convolution's form (`_conv`) and the filter's (`upfirdn2d`)."""
  kh, kw = w.shape[:2]
  fh, fw = (1, 1) if f is None else f.shape
  px0, px1, py0, py1 = _padding4(padding)
  if up > 1:
    px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
    py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
  if down > 1:
    px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
    py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
  pad = (px0, px1, py0, py1)
  flip = not flip_weight

  if kw == 1 and kh == 1 and down > 1 and up == 1:
    x = upfirdn2d(x, f, down=down, padding=pad, conv_impl=conv_impl)
    return _conv(x, w, groups=groups, flip=flip, conv_impl=conv_impl)
  if kw == 1 and kh == 1 and up > 1 and down == 1:
    x = _conv(x, w, groups=groups, flip=flip, conv_impl=conv_impl)
    return upfirdn2d(x, f, up=up, padding=pad, gain=up ** 2, conv_impl=conv_impl)
  if down > 1 and up == 1:
    x = upfirdn2d(x, f, padding=pad, conv_impl=conv_impl)
    return _conv(x, w, stride=down, groups=groups, flip=flip, conv_impl=conv_impl)
  if up > 1:
    # torch's conv_transpose2d(stride up, padding pt): correlation of the zero-inserted input,
    # padded by k - 1 - pt, with the flipped kernel (the official code hands it the kernel
    # flipped when flip_weight, so flip_weight is a correlation with w here too); the rest of
    # the padding goes to the filter
    px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
    pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
    x = _conv(x, w, padding=((kh - 1 - pyt,) * 2, (kw - 1 - pxt,) * 2), groups=groups,
              flip=flip, lhs_dilation=up, conv_impl=conv_impl)
    x = upfirdn2d(x, f, padding=(px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt), gain=up ** 2,
                  conv_impl=conv_impl)
    if down > 1:
      x = upfirdn2d(x, f, down=down, conv_impl=conv_impl)
    return x
  if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
    return _conv(x, w, padding=((py0, py0), (px0, px0)), groups=groups, flip=flip,
                 conv_impl=conv_impl)
  x = upfirdn2d(x, None, padding=pad, conv_impl=conv_impl)
  return _conv(x, w, groups=groups, flip=flip, conv_impl=conv_impl)


def bias_act(x, b=None, act: str = 'linear', alpha: Optional[float] = None,
             gain: Optional[float] = None, clamp: Optional[float] = None):
  """x plus b (on the last axis), then `act`, times `gain` (default: the activation's: sqrt(2)
  for relu and lrelu), clipped to [-clamp, clamp] when clamp is given."""
  func, def_alpha, def_gain = ACTIVATIONS[act]
  if b is not None:
    x = x + b.astype(x.dtype)
  x = func(x, def_alpha if alpha is None else alpha)
  gain = def_gain if gain is None else gain
  if gain != 1:
    x = x * gain
  if clamp is not None:
    x = jnp.clip(x, -clamp, clamp)
  return x


def normalize_2nd_moment(x, axis: int = 1, eps: float = 1e-8):
  """x scaled to unit mean square along `axis`."""
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=axis, keepdims=True) + eps)


def modulated_conv2d(x, weight, styles, noise=None, up: int = 1, down: int = 1,
                     padding: Padding = 0, resample_filter=None, demodulate: bool = True,
                     flip_weight: bool = True, fused_modconv: bool = True,
                     conv_impl: str = 'xla'):
  """StyleGAN2's modulated convolution of x [N, H, W, I] with weight [kh, kw, I, O] and styles
  [N, I]: the kernel's input channels times the example's styles, and with `demodulate` each
  output channel divided by its per-example norm sqrt(sum w^2 + 1e-8). `noise` (broadcast to
  the output) is added after. fused_modconv: per-example kernels in one grouped convolution
  (feature_group_count N); otherwise x * styles, the shared convolution, then times the
  demodulation coefficients (the same function, fewer weights). conv_impl: the convolution's
  form (conv2d_resample's; the fused form's grouped convolution stays lax)."""
  n, _, _, cin = x.shape
  kh, kw, _, cout = weight.shape
  w = dcoefs = None
  if fused_modconv:
    w = weight[None] * styles[:, None, None, :, None]                      # [N, kh, kw, I, O]
  if demodulate:
    # sum over (kh, kw, I) of (weight * styles)^2 = styles^2 @ (weight^2 summed over taps):
    # the official sum, reassociated, without the per-example kernels [N, kh, kw, I, O]
    # (float32 products on a TPU too: HIGHEST, not its default bfloat16 passes)
    squares = jnp.matmul(jnp.square(styles), jnp.sum(jnp.square(weight), axis=(0, 1)),
                         precision=jax.lax.Precision.HIGHEST)
    dcoefs = jax.lax.rsqrt(squares + 1e-8)                                 # [N, O]
  conv = dict(f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight,
              conv_impl=conv_impl)

  if not fused_modconv:
    x = x * styles[:, None, None, :].astype(x.dtype)
    x = conv2d_resample(x, weight.astype(x.dtype), **conv)
    if demodulate:
      x = x * dcoefs[:, None, None, :].astype(x.dtype)
    return x if noise is None else x + noise.astype(x.dtype)

  if demodulate:
    w = w * dcoefs[:, None, None, None, :]
  h, wd = x.shape[1:3]
  # examples as channel groups: x [1, H, W, N * I], kernel [kh, kw, I, N * O]
  x = x.transpose(1, 2, 0, 3).reshape(1, h, wd, n * cin)
  w = w.transpose(1, 2, 3, 0, 4).reshape(kh, kw, cin, n * cout)
  x = conv2d_resample(x, w.astype(x.dtype), groups=n, **conv)
  x = x.reshape(*x.shape[1:3], n, cout).transpose(2, 0, 1, 3)
  return x if noise is None else x + noise.astype(x.dtype)


def minibatch_std(x, group_size: Optional[int] = 4, num_channels: int = 1):
  """x [N, H, W, C] with num_channels more channels: the standard deviation over each group of
  min(group_size, N) examples (examples i and i + N / G share a group, as the official reshape
  makes them), averaged over positions and each of num_channels slices of the channels. N must
  be a multiple of the group size (None: the whole batch)."""
  n, h, w, c = x.shape
  g = n if group_size is None else min(group_size, n)
  y = x.reshape(g, n // g, h, w, num_channels, c // num_channels).astype(jnp.float32)
  y = y - y.mean(axis=0)
  y = jnp.sqrt(jnp.square(y).mean(axis=0) + 1e-8)     # [n, H, W, F, c]
  y = y.mean(axis=(1, 2, 4))                           # [n, F]
  y = jnp.tile(y, (g, 1))                              # [N, F]: example i has group i mod n
  y = jnp.broadcast_to(y[:, None, None, :], (n, h, w, num_channels)).astype(x.dtype)
  return jnp.concatenate([x, y], axis=-1)


def _normal_over(scale: float):
  """Initialiser N(0, 1) * scale."""
  return lambda key, shape: jax.random.normal(key, shape) * scale


class FullyConnected(nn.Module):
  """The official FullyConnectedLayer: params weight [in, out] ~ N(0, 1) / lr_multiplier and bias
  (bias_init), used as weight * lr_multiplier / sqrt(in) and bias * lr_multiplier (equalised
  learning rate), then bias_act(activation)."""
  features: int
  activation: str = 'linear'
  lr_multiplier: float = 1.0
  bias_init: float = 0.0
  use_bias: bool = True

  @nn.compact
  def __call__(self, x):
    fan_in = x.shape[-1]
    weight = self.param('weight', _normal_over(1 / self.lr_multiplier), (fan_in, self.features))
    x = x @ (weight * (self.lr_multiplier / np.sqrt(fan_in))).astype(x.dtype)
    b = None
    if self.use_bias:
      b = self.param('bias', nn.initializers.constant(self.bias_init), (self.features,))
      b = b * self.lr_multiplier
    return bias_act(x, b, act=self.activation)


class Conv2dLayer(nn.Module):
  """The official Conv2dLayer: params weight [k, k, in, out] ~ N(0, 1) scaled by 1 / sqrt(in k^2)
  at run time, bias zeros; conv2d_resample (padding k // 2, up or down by 2 through the FIR
  filter), then bias_act with the activation's gain times `gain` and clamp conv_clamp * gain."""
  features: int
  kernel_size: int = 3
  use_bias: bool = True
  activation: str = 'linear'
  up: int = 1
  down: int = 1
  conv_clamp: Optional[float] = None
  conv_impl: str = 'xla'     # conv2d_resample's

  @nn.compact
  def __call__(self, x, gain: float = 1.0):
    k, cin = self.kernel_size, x.shape[-1]
    weight = self.param('weight', _normal_over(1.0), (k, k, cin, self.features))
    b = self.param('bias', nn.initializers.zeros, (self.features,)) if self.use_bias else None
    x = conv2d_resample(x, weight * (1 / np.sqrt(cin * k * k)), setup_filter(), up=self.up,
                        down=self.down, padding=k // 2, flip_weight=self.up == 1,
                        conv_impl=self.conv_impl)
    act_gain = ACTIVATIONS[self.activation][2] * gain
    clamp = None if self.conv_clamp is None else self.conv_clamp * gain
    return bias_act(x, b, act=self.activation, gain=act_gain, clamp=clamp)
