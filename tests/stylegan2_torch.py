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

import jax
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


# --- networks ----------------------------------------------------------------------------------

def _resolutions(side):
  return [2 ** i for i in range(2, int(np.log2(side)) + 1)]


def _label_vector(c, c_dim):
  return F.one_hot(c, c_dim).float() if c.ndim == 1 else c.float()


class MappingNetwork(torch.nn.Module):
  """The official MappingNetwork (labels: integer classes, one-hot here, or vectors)."""

  def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=8, lr_multiplier=0.01,
               w_avg_beta=0.995):
    super().__init__()
    self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
    self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
    embed_features = w_dim if c_dim > 0 else 0
    features = [z_dim + embed_features] + [w_dim] * num_layers
    if c_dim > 0:
      self.embed = FullyConnectedLayer(c_dim, embed_features)
    for idx in range(num_layers):
      setattr(self, f'fc{idx}', FullyConnectedLayer(features[idx], features[idx + 1],
                                                    activation='lrelu',
                                                    lr_multiplier=lr_multiplier))
    if num_ws is not None and w_avg_beta is not None:
      self.register_buffer('w_avg', torch.zeros([w_dim]))

  def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, skip_w_avg_update=False):
    x = None
    if self.z_dim > 0:
      x = normalize_2nd_moment(z.float())
    if self.c_dim > 0:
      y = normalize_2nd_moment(self.embed(_label_vector(c, self.c_dim)))
      x = torch.cat([x, y], dim=1) if x is not None else y
    for idx in range(self.num_layers):
      x = getattr(self, f'fc{idx}')(x)
    if self.w_avg_beta is not None and self.training and not skip_w_avg_update:
      self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
    if self.num_ws is not None:
      x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
    if truncation_psi != 1:
      if self.num_ws is None or truncation_cutoff is None:
        x = self.w_avg.lerp(x, truncation_psi)
      else:
        x = x.clone()
        x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
    return x


class SynthesisLayer(torch.nn.Module):
  """The official SynthesisLayer."""

  def __init__(self, in_channels, out_channels, w_dim, resolution, kernel_size=3, up=1,
               use_noise=True, conv_clamp=None):
    super().__init__()
    self.resolution, self.up, self.use_noise = resolution, up, use_noise
    self.conv_clamp = conv_clamp
    self.register_buffer('resample_filter', setup_filter())
    self.padding = kernel_size // 2
    self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
    self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size,
                                                  kernel_size]))
    if use_noise:
      self.register_buffer('noise_const', torch.randn([resolution, resolution]))
      self.noise_strength = torch.nn.Parameter(torch.zeros([]))
    self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

  def forward(self, x, w, noise_mode='random', fused_modconv=True, gain=1):
    styles = self.affine(w)
    noise = None
    if self.use_noise and noise_mode == 'random':
      noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution]) * self.noise_strength
    if self.use_noise and noise_mode == 'const':
      noise = self.noise_const * self.noise_strength
    x = modulated_conv2d(x, self.weight, styles, noise, up=self.up, padding=self.padding,
                         resample_filter=self.resample_filter, flip_weight=self.up == 1,
                         fused_modconv=fused_modconv)
    clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
    return bias_act(x, self.bias, act='lrelu', gain=LRELU_GAIN * gain, clamp=clamp)


class ToRGBLayer(torch.nn.Module):
  """The official ToRGBLayer."""

  def __init__(self, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None):
    super().__init__()
    self.conv_clamp = conv_clamp
    self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
    self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size,
                                                  kernel_size]))
    self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
    self.weight_gain = 1 / np.sqrt(in_channels * kernel_size ** 2)

  def forward(self, x, w, fused_modconv=True):
    styles = self.affine(w) * self.weight_gain
    x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
    return bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(torch.nn.Module):
  """The official SynthesisBlock, architecture 'skip'."""

  def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels,
               conv_clamp=None):
    super().__init__()
    self.in_channels = in_channels
    self.register_buffer('resample_filter', setup_filter())
    self.num_conv = 1 if in_channels == 0 else 2
    if in_channels == 0:
      self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
    else:
      self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                  conv_clamp=conv_clamp)
    self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution,
                                conv_clamp=conv_clamp)
    self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)

  def forward(self, x, img, ws, fused_modconv=True, noise_mode='random'):
    w_iter = iter(ws.unbind(dim=1))
    kwargs = dict(fused_modconv=fused_modconv, noise_mode=noise_mode)
    if self.in_channels == 0:
      x = self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
      x = self.conv1(x, next(w_iter), **kwargs)
    else:
      x = self.conv0(x, next(w_iter), **kwargs)
      x = self.conv1(x, next(w_iter), **kwargs)
    if img is not None:
      img = upsample2d(img, self.resample_filter)
    y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
    return x, y if img is None else img + y


class SynthesisNetwork(torch.nn.Module):

  def __init__(self, w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512,
               conv_clamp=None):
    super().__init__()
    self.block_resolutions = _resolutions(img_resolution)
    ch = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
    self.num_ws = 0
    for res in self.block_resolutions:
      block = SynthesisBlock(ch[res // 2] if res > 4 else 0, ch[res], w_dim, res, img_channels,
                             conv_clamp)
      self.num_ws += block.num_conv
      setattr(self, f'b{res}', block)
    self.num_ws += 1   # the last ToRGB

  def forward(self, ws, **kwargs):
    x = img = None
    w_idx = 0
    for res in self.block_resolutions:
      block = getattr(self, f'b{res}')
      x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + 1), **kwargs)
      w_idx += block.num_conv
    return img


class Generator(torch.nn.Module):

  def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_layers=8,
               channel_base=32768, channel_max=512, conv_clamp=None):
    super().__init__()
    self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, channel_base,
                                      channel_max, conv_clamp)
    self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.synthesis.num_ws, mapping_layers)

  def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, **kwargs):
    return self.synthesis(self.mapping(z, c, truncation_psi, truncation_cutoff), **kwargs)


def run_G(G, z, c, other_z, cutoff, **synthesis_kwargs):
  """StyleGAN2Loss.run_G with its random draws given: `other_z` (its randn_like(z)) and
  `cutoff` (num_ws: no mixing). Returns (img, ws)."""
  ws = G.mapping(z, c)
  if cutoff < ws.shape[1]:
    ws[:, cutoff:] = G.mapping(other_z, c, skip_w_avg_update=True)[:, cutoff:]
  return G.synthesis(ws, **synthesis_kwargs), ws


def path_length_penalty(G, z, c, other_z, cutoff, noise, pl_mean, pl_decay,
                        **synthesis_kwargs):
  """StyleGAN2Loss's Gpl phase on z and c (already shrunk) with its draws given: `noise` its
  torch.randn_like(gen_img). Returns (mean penalty, lengths, pl_mean after); the penalty keeps
  its graph (backward() gives the parameters' gradients)."""
  gen_img, gen_ws = run_G(G, z, c, other_z, cutoff, **synthesis_kwargs)
  pl_noise = noise / np.sqrt(gen_img.shape[2] * gen_img.shape[3])
  pl_grads = torch.autograd.grad(outputs=[(gen_img * pl_noise).sum()], inputs=[gen_ws],
                                 create_graph=True, only_inputs=True)[0]
  pl_lengths = pl_grads.square().sum(2).mean(1).sqrt()
  pl_mean = pl_mean.lerp(pl_lengths.mean(), pl_decay).detach()
  return (pl_lengths - pl_mean).square().mean(), pl_lengths, pl_mean


class DiscriminatorBlock(torch.nn.Module):
  """The official DiscriminatorBlock, architecture 'resnet' or 'orig'."""

  def __init__(self, in_channels, tmp_channels, out_channels, img_channels,
               architecture='resnet', conv_clamp=None):
    super().__init__()
    self.in_channels, self.architecture = in_channels, architecture
    self.register_buffer('resample_filter', setup_filter())
    if in_channels == 0:
      self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation='lrelu',
                                 conv_clamp=conv_clamp)
    self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation='lrelu',
                             conv_clamp=conv_clamp)
    self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation='lrelu', down=2,
                             conv_clamp=conv_clamp)
    if architecture == 'resnet':
      self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)

  def forward(self, x, img):
    if self.in_channels == 0:
      y = self.fromrgb(img)
      x = x + y if x is not None else y
    if self.architecture == 'resnet':
      y = self.skip(x, gain=np.sqrt(0.5))
      x = self.conv0(x)
      x = self.conv1(x, gain=np.sqrt(0.5))
      return y + x
    return self.conv1(self.conv0(x))


class DiscriminatorEpilogue(torch.nn.Module):

  def __init__(self, in_channels, cmap_dim, resolution, mbstd_group_size=4, mbstd_num_channels=1,
               conv_clamp=None):
    super().__init__()
    self.cmap_dim = cmap_dim
    self.mbstd_group_size, self.mbstd_num_channels = mbstd_group_size, mbstd_num_channels
    self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation='lrelu',
                            conv_clamp=conv_clamp)
    self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation='lrelu')
    self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

  def forward(self, x, cmap):
    if self.mbstd_num_channels > 0:
      x = minibatch_std(x, self.mbstd_group_size, self.mbstd_num_channels)
    x = self.conv(x)
    x = self.fc(x.flatten(1))
    x = self.out(x)
    if self.cmap_dim > 0:
      x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
    return x


class Discriminator(torch.nn.Module):

  def __init__(self, c_dim, img_resolution, img_channels, architecture='resnet',
               channel_base=32768, channel_max=512, conv_clamp=None, cmap_dim=None,
               mbstd_group_size=4, mbstd_num_channels=1, mapping_layers=8):
    super().__init__()
    self.c_dim = c_dim
    self.block_resolutions = _resolutions(img_resolution)[:0:-1]
    ch = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
    cmap_dim = (ch[4] if cmap_dim is None else cmap_dim) if c_dim > 0 else 0
    for res in self.block_resolutions:
      setattr(self, f'b{res}', DiscriminatorBlock(
          ch[res] if res < img_resolution else 0, ch[res], ch[res // 2], img_channels,
          architecture, conv_clamp))
    if c_dim > 0:
      self.mapping = MappingNetwork(0, c_dim, cmap_dim, None, mapping_layers, w_avg_beta=None)
    self.b4 = DiscriminatorEpilogue(ch[4], cmap_dim, 4, mbstd_group_size, mbstd_num_channels,
                                    conv_clamp)

  def forward(self, img, c):
    x = None
    for res in self.block_resolutions:
      x = getattr(self, f'b{res}')(x, img)
    cmap = self.mapping(None, c) if self.c_dim > 0 else None
    return self.b4(x, cmap)


def random_variables(module, *args, seed=0):
  """Variables of `module`'s shapes drawn as its initialisers draw them (weights N(0, 1), the
  mapping layers' N(0, 1) / lr_multiplier, the constants N(0, 1)), with biases (the affine
  layers' around their initial 1), noise strengths and w_avg random too (initially 0 or 1: a
  check would not see them). Drawn with numpy: jitting init costs ~10 s of compilation here."""
  rng = np.random.default_rng(seed)
  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    x = rng.standard_normal(leaf.shape).astype(np.float32)
    if name.endswith("['bias']"):
      return x * 0.3 + ("['affine']" in name)
    if name.endswith("['noise_strength']") or name.endswith("['w_avg']"):
      return x * 0.5
    if "['mapping']['fc" in name and name.endswith("['weight']"):
      return x / 0.01
    return x
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), *args)
  return jax.tree_util.tree_map_with_path(draw, shapes)


def parameter_count(module):
  return sum(p.numel() for p in module.parameters())


def flax_parameter_count(module, *args):
  """The parameters of flax `module` applied to `args` (shapes only: nothing is computed)."""
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), *args)['params']
  return sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes))


def load_flax(module, variables):
  """Copies gan_jax's variables ({'params': ..., 'batch_stats': ...}, official names) into
  `module`'s parameters and buffers; returns the number copied. Raises KeyError for a tensor
  gan_jax does not have."""
  flat = {}
  for collection in variables.values():
    flat.update({'.'.join(k.key for k in path): leaf
                 for path, leaf in _flatten_with_path(collection)})
  tensors = dict(module.named_parameters())
  tensors.update((name, b) for name, b in module.named_buffers()
                 if not name.endswith('resample_filter'))
  with torch.no_grad():
    for name, t in tensors.items():
      t.copy_(to_torch_layout(name, flat[name], t.shape))
  return len(tensors)


def _flatten_with_path(tree):
  return jax.tree_util.tree_flatten_with_path(tree)[0]


def to_torch_layout(name, value, shape):
  """gan_jax's array `value` of tensor `name` in the official layout `shape`."""
  a = np.asarray(value, np.float32)
  if a.ndim == 4:                                   # HWIO -> OIHW
    a = a.transpose(3, 2, 0, 1)
  elif name.endswith('b4.fc.weight'):               # [(H, W, C), O] -> [O, (C, H, W)]
    c = shape[0]
    side = int(round(np.sqrt(a.shape[0] // c)))
    a = a.reshape(side, side, c, c).transpose(3, 2, 0, 1).reshape(c, -1)
  elif a.ndim == 2 and name.endswith('weight'):     # dense [in, out] -> [out, in]
    a = a.T
  elif a.ndim == 3:                                 # const [H, W, C] -> [C, H, W]
    a = a.transpose(2, 0, 1)
  assert a.shape == tuple(shape), (name, a.shape, tuple(shape))
  return torch.from_numpy(np.array(a, np.float32, order="C"))   # (0-d stays 0-d)


def torch_grad(parameter) -> np.ndarray:
  """A torch parameter's .grad as numpy; zeros where the loss does not reach it (.grad None)."""
  return (np.zeros(parameter.shape, np.float32) if parameter.grad is None
          else parameter.grad.numpy())


def grads_in_torch_layout(module, flax_grads):
  """{name: (our gradient in the official layout, torch's .grad)} of every parameter (torch's
  zeros where the loss does not reach it, .grad None)."""
  flat = {'.'.join(k.key for k in path): leaf for path, leaf in _flatten_with_path(flax_grads)}
  return {name: (to_torch_layout(name, flat[name], p.shape).numpy(), torch_grad(p))
          for name, p in module.named_parameters()}
