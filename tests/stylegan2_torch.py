"""A PyTorch StyleGAN2 written as stylegan2-ada-pytorch (github.com/NVlabs/stylegan2-ada-pytorch,
torch_utils/ops and training/networks.py) computes it on its reference (non-CUDA) path, NCHW, to
check gan_jax/models/stylegan2 against (tests/test_stylegan2_ops.py, test_stylegan2_networks.py):

  * `upfirdn2d`: zero insertion by reshape and pad, pad or crop, the filter flipped and applied
    as a depthwise conv2d, then a strided slice; `upsample2d`, `downsample2d`.
  * `conv2d_resample`: the official case analysis, with torch's conv_transpose2d for up > 1
    (the kernel transposed per group) and conv2d elsewhere.
  * `bias_act`, `modulated_conv2d` (fused: grouped conv; not fused: scale, conv, fma),
    `minibatch_std`, `normalize_2nd_moment`; `FullyConnectedLayer`, `Conv2dLayer`.

Weights are in the official layouts (conv [O, I, kh, kw], dense [out, in]); `from_flax` turns
gan_jax's HWIO and [in, out] arrays into them.
"""

import numpy as np
import torch
from torch.nn import functional as F

LRELU_GAIN = float(np.sqrt(2))
ACTS = {'linear': (lambda x, a: x, 0.0, 1.0),
        'relu': (lambda x, a: F.relu(x), 0.0, LRELU_GAIN),
        'lrelu': (lambda x, a: F.leaky_relu(x, a), 0.2, LRELU_GAIN)}


def setup_filter(f=(1, 3, 3, 1)):
  f = torch.as_tensor(f, dtype=torch.float32)
  f = torch.outer(f, f) if f.ndim == 1 else f
  return f / f.sum()


def _pad4(padding):
  if isinstance(padding, int):
    return [padding] * 4
  return [padding[0], padding[0], padding[1], padding[1]] if len(padding) == 2 else list(padding)


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
  """The official _upfirdn2d_ref for a 2-D filter (None: identity)."""
  f = torch.ones([1, 1]) if f is None else f
  n, c, h, w = x.shape
  px0, px1, py0, py1 = _pad4(padding)
  x = x.reshape(n, c, h, 1, w, 1)
  x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
  x = x.reshape(n, c, h * up, w * up)
  x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
  x = x[:, :, max(-py0, 0):x.shape[2] - max(-py1, 0), max(-px0, 0):x.shape[3] - max(-px1, 0)]
  f = f * gain
  if not flip_filter:
    f = f.flip([0, 1])
  f = f[None, None].repeat(c, 1, 1, 1)
  x = F.conv2d(x, f, groups=c)
  return x[:, :, ::down, ::down]


def upsample2d(x, f, up=2):
  fh, fw = f.shape
  p = [(fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2]
  return upfirdn2d(x, f, up=up, padding=p, gain=up * up)


def downsample2d(x, f, down=2):
  fh, fw = f.shape
  p = [(fw - down + 1) // 2, (fw - down) // 2, (fh - down + 1) // 2, (fh - down) // 2]
  return upfirdn2d(x, f, down=down, padding=p)


def _conv(x, w, stride=1, padding=0, groups=1, transpose=False, flip_weight=True):
  """The official _conv2d_wrapper without its memory-format shortcuts."""
  if not flip_weight:
    w = w.flip([2, 3])
  if transpose:
    return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
  return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True):
  """The official conv2d_resample (w [O, I / groups, kh, kw])."""
  out_channels, in_per_group, kh, kw = w.shape
  fh, fw = (1, 1) if f is None else f.shape
  px0, px1, py0, py1 = _pad4(padding)
  if up > 1:
    px0 += (fw + up - 1) // 2
    px1 += (fw - up) // 2
    py0 += (fh + up - 1) // 2
    py1 += (fh - up) // 2
  if down > 1:
    px0 += (fw - down + 1) // 2
    px1 += (fw - down) // 2
    py0 += (fh - down + 1) // 2
    py1 += (fh - down) // 2
  if kw == 1 and kh == 1 and (down > 1 and up == 1):
    x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1])
    return _conv(x, w, groups=groups, flip_weight=flip_weight)
  if kw == 1 and kh == 1 and (up > 1 and down == 1):
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up ** 2)
  if down > 1 and up == 1:
    x = upfirdn2d(x, f, padding=[px0, px1, py0, py1])
    return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
  if up > 1:
    if groups == 1:
      w = w.transpose(0, 1)
    else:
      w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw)
      w = w.transpose(1, 2)
      w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
    px0 -= kw - 1
    px1 -= kw - up
    py0 -= kh - 1
    py1 -= kh - up
    pxt = max(min(-px0, -px1), 0)
    pyt = max(min(-py0, -py1), 0)
    x = _conv(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True,
              flip_weight=not flip_weight)
    x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2)
    if down > 1:
      x = upfirdn2d(x, f, down=down)
    return x
  if up == 1 and down == 1:
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
      return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
  x = upfirdn2d(x, None, padding=[px0, px1, py0, py1])
  return _conv(x, w, groups=groups, flip_weight=flip_weight)


def bias_act(x, b=None, act='linear', gain=None, clamp=None):
  func, alpha, def_gain = ACTS[act]
  if b is not None:
    x = x + b.reshape([-1 if i == 1 else 1 for i in range(x.ndim)])
  x = func(x, alpha)
  gain = def_gain if gain is None else gain
  if gain != 1:
    x = x * gain
  if clamp is not None:
    x = x.clamp(-clamp, clamp)
  return x


def normalize_2nd_moment(x, dim=1, eps=1e-8):
  return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def modulated_conv2d(x, weight, styles, noise=None, up=1, down=1, padding=0, resample_filter=None,
                     demodulate=True, flip_weight=True, fused_modconv=True):
  """The official modulated_conv2d in float32 (weight [O, I, kh, kw], styles [N, I])."""
  batch = x.shape[0]
  out_channels, in_channels, kh, kw = weight.shape
  w = dcoefs = None
  if demodulate or fused_modconv:
    w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)
  if demodulate:
    dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
  if demodulate and fused_modconv:
    w = w * dcoefs.reshape(batch, -1, 1, 1, 1)
  conv = dict(f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight)
  if not fused_modconv:
    x = x * styles.reshape(batch, -1, 1, 1)
    x = conv2d_resample(x, weight, **conv)
    if demodulate and noise is not None:
      return torch.addcmul(noise, x, dcoefs.reshape(batch, -1, 1, 1))   # official fma
    if demodulate:
      return x * dcoefs.reshape(batch, -1, 1, 1)
    return x if noise is None else x + noise
  x = x.reshape(1, -1, *x.shape[2:])
  w = w.reshape(-1, in_channels, kh, kw)
  x = conv2d_resample(x, w, groups=batch, **conv)
  x = x.reshape(batch, -1, *x.shape[2:])
  return x if noise is None else x + noise


def minibatch_std(x, group_size=4, num_channels=1):
  n, c, h, w = x.shape
  g = min(group_size, n) if group_size is not None else n
  f = num_channels
  y = x.reshape(g, -1, f, c // f, h, w)
  y = y - y.mean(dim=0)
  y = y.square().mean(dim=0)
  y = (y + 1e-8).sqrt()
  y = y.mean(dim=[2, 3, 4])
  y = y.reshape(-1, f, 1, 1)
  y = y.repeat(g, 1, h, w)
  return torch.cat([x, y], dim=1)


class FullyConnectedLayer(torch.nn.Module):
  """The official FullyConnectedLayer (weight [out, in])."""

  def __init__(self, in_features, out_features, bias=True, activation='linear', lr_multiplier=1,
               bias_init=0):
    super().__init__()
    self.activation = activation
    self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
    self.bias = (torch.nn.Parameter(torch.full([out_features], np.float32(bias_init)))
                 if bias else None)
    self.weight_gain = lr_multiplier / np.sqrt(in_features)
    self.bias_gain = lr_multiplier

  def forward(self, x):
    w = self.weight * self.weight_gain
    b = self.bias
    if b is not None and self.bias_gain != 1:
      b = b * self.bias_gain
    if self.activation == 'linear' and b is not None:
      return torch.addmm(b.unsqueeze(0), x, w.t())
    return bias_act(x.matmul(w.t()), b, act=self.activation)


class Conv2dLayer(torch.nn.Module):
  """The official Conv2dLayer (weight [O, I, k, k])."""

  def __init__(self, in_channels, out_channels, kernel_size, bias=True, activation='linear',
               up=1, down=1, conv_clamp=None):
    super().__init__()
    self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
    self.register_buffer('resample_filter', setup_filter())
    self.padding = kernel_size // 2
    self.weight_gain = 1 / np.sqrt(in_channels * kernel_size ** 2)
    self.act_gain = ACTS[activation][2]
    self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size,
                                                  kernel_size]))
    self.bias = torch.nn.Parameter(torch.zeros([out_channels])) if bias else None

  def forward(self, x, gain=1):
    w = self.weight * self.weight_gain
    x = conv2d_resample(x, w, self.resample_filter, up=self.up, down=self.down,
                        padding=self.padding, flip_weight=self.up == 1)
    clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
    return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


# --- gan_jax's layouts -------------------------------------------------------------------------

def conv_weight(hwio):
  """An official conv weight [O, I, kh, kw] of gan_jax's [kh, kw, I, O]."""
  return torch.from_numpy(np.ascontiguousarray(np.asarray(hwio, np.float32).transpose(3, 2, 0, 1)))


def dense_weight(io):
  """An official dense weight [out, in] of gan_jax's [in, out]."""
  return torch.from_numpy(np.ascontiguousarray(np.asarray(io, np.float32).T))


def tensor(a):
  return torch.from_numpy(np.array(a, np.float32))
