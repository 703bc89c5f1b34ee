"""StyleGAN2's networks as stylegan2-ada-pytorch's training/networks.py builds them, NHWC:

  * `MappingNetwork`: z normalised to unit mean square, with a class embedding (a dense layer of
    the one-hot label, normalised alike) concatenated after it when conditional, then
    `num_layers` lrelu dense layers at lr_multiplier 0.01; in training it tracks w_avg, the
    moving average of w (beta 0.995), and truncation pulls w toward it.
  * `SynthesisNetwork` ('skip'): a learned 4x4 constant, then per resolution a block of
    modulated 3x3 convs (above 4x4 the first upsamples by 2), each with its noise input (a
    learned strength) and lrelu, and a ToRGB (1x1 modulated conv without demodulation) whose
    image is added to the upsampled image of the blocks before.
  * `GeneratorNetwork`: mapping then synthesis, callable as its halves `map` and `synthesize`.
  * `DiscriminatorNetwork` ('resnet' or 'orig'): FromRGB at full resolution, per resolution two 3x3
    convs (the second downsampling by 2) and, for 'resnet', a 1x1 skip conv down (both branches
    times sqrt(0.5)), then the epilogue at 4x4: minibatch standard deviation, conv, dense,
    dense to 1, or to cmap_dim projected onto the label's mapping (`cmap`, an 8-layer mapping
    of the one-hot label) divided by sqrt(cmap_dim).

Channels per resolution: min(channel_base // res, channel_max). Every conv (but the skips)
clamps its output to +-conv_clamp. Flax module and parameter names are the official attribute
names (synthesis/b8/conv0/affine/weight), kernels HWIO, dense weights [in, out].

State beside the parameters, in the 'batch_stats' collection (the one the trainer already
carries through training steps, and its EMA blends): the mapping's `w_avg` [w_dim], updated in
training mode toward the batch's mean w (under pmap the global batch's, as batch norm's
statistics are synced: the official code keeps one per GPU and saves rank 0's), and each synthesis layer's fixed `noise_const` [res, res] (noise_mode 'const').
noise_mode 'random' draws from the 'noise' PRNG stream (`apply(..., rngs={'noise': key})`).
"""

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.models.stylegan2.ops import (ACTIVATIONS, Conv2dLayer, FullyConnected, bias_act,
                                          minibatch_std, modulated_conv2d, normalize_2nd_moment,
                                          setup_filter, upsample2d)

STATE = 'batch_stats'   # the collection of w_avg and the noise constants
NOISE_MODES = ('random', 'const', 'none')
SQRT_HALF = float(np.sqrt(0.5))


def channels(res: int, channel_base: int, channel_max: int) -> int:
  """The official channels at resolution `res`."""
  return min(channel_base // res, channel_max)


def resolutions(image_side: int) -> list:
  """[4, 8, ..., image_side]: the synthesis blocks' resolutions."""
  return [2 ** i for i in range(2, int(np.log2(image_side)) + 1)]


def generator_num_ws(image_side: int) -> int:
  """How many ws the synthesis network of `image_side` takes: one per conv (1 at 4x4, 2 at
  each resolution above) and one for the last ToRGB."""
  return 2 * len(resolutions(image_side))


def _label_vector(labels, c_dim: int):
  """One-hot of integer labels [B], or labels [B, c_dim] as given, float32."""
  labels = jnp.asarray(labels)
  if labels.ndim == 1:
    return jax.nn.one_hot(labels, c_dim, dtype=jnp.float32)
  return labels.astype(jnp.float32)


class MappingNetwork(nn.Module):
  """z [B, z_dim] and labels -> w [B, w_dim], or [B, num_ws, w_dim] broadcast (module doc)."""
  z_dim: int
  c_dim: int
  w_dim: int
  num_ws: Optional[int]
  num_layers: int = 8
  embed_features: Optional[int] = None   # None: w_dim
  layer_features: Optional[int] = None   # None: w_dim
  activation: str = 'lrelu'
  lr_multiplier: float = 0.01
  w_avg_beta: Optional[float] = 0.995    # None: no w_avg
  axis_name: Optional[str] = None       # pmap's device axis: w_avg follows the global batch

  @nn.compact
  def __call__(self, z, labels, train: bool = False, truncation_psi: float = 1.0,
               truncation_cutoff: Optional[int] = None, skip_w_avg_update: bool = False):
    """skip_w_avg_update: a training-mode call that leaves w_avg (the official style mixing's
    second mapping)."""
    parts = []
    if self.z_dim > 0:
      parts.append(normalize_2nd_moment(z.astype(jnp.float32)))
    if self.c_dim > 0:
      embed = FullyConnected(self.embed_features or self.w_dim, name='embed')
      parts.append(normalize_2nd_moment(embed(_label_vector(labels, self.c_dim))))
    x = jnp.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    for idx in range(self.num_layers):
      last = idx == self.num_layers - 1
      features = self.w_dim if last else (self.layer_features or self.w_dim)
      x = FullyConnected(features, self.activation, self.lr_multiplier, name=f'fc{idx}')(x)

    tracks = self.num_ws is not None and self.w_avg_beta is not None
    if tracks:
      w_avg = self.variable(STATE, 'w_avg', jnp.zeros, (self.w_dim,))
      if train and not skip_w_avg_update and not self.is_initializing():
        # lerp(mean, w_avg, beta); no gradient flows into the statistic
        batch_mean = jax.lax.stop_gradient(x.mean(axis=0))
        if self.axis_name is not None:  # as the jit mesh's global batch (the official: each GPU's)
          batch_mean = jax.lax.pmean(batch_mean, self.axis_name)
        w_avg.value = batch_mean + self.w_avg_beta * (w_avg.value - batch_mean)
    if self.num_ws is not None:
      x = jnp.broadcast_to(x[:, None], (x.shape[0], self.num_ws, self.w_dim))
    if truncation_psi != 1:
      if not tracks:
        raise ValueError('truncation needs w_avg (num_ws and w_avg_beta set)')
      avg = w_avg.value
      truncated = avg + truncation_psi * (x - avg)
      if self.num_ws is None or truncation_cutoff is None:
        x = truncated
      else:
        x = jnp.concatenate([truncated[:, :truncation_cutoff], x[:, truncation_cutoff:]], axis=1)
    return x


class SynthesisLayer(nn.Module):
  """A modulated conv (styles from w by `affine`, bias init 1), its noise input and bias_act."""
  features: int
  resolution: int
  kernel_size: int = 3
  up: int = 1
  use_noise: bool = True
  activation: str = 'lrelu'
  conv_clamp: Optional[float] = None
  conv_impl: str = 'xla'     # the convolution's form (ops.conv2d_resample)

  @nn.compact
  def __call__(self, x, w, noise_mode: str = 'random', fused_modconv: bool = True,
               gain: float = 1.0):
    k, cin, res = self.kernel_size, x.shape[-1], self.resolution
    styles = FullyConnected(cin, bias_init=1.0, name='affine')(w)
    weight = self.param('weight', nn.initializers.normal(1.0), (k, k, cin, self.features))
    noise = None
    if self.use_noise:
      const = self.variable(STATE, 'noise_const',
                            lambda: jax.random.normal(self.make_rng('params'), (res, res)))
      strength = self.param('noise_strength', nn.initializers.zeros, ())
      if noise_mode == 'random':
        noise = jax.random.normal(self.make_rng('noise'), (x.shape[0], res, res, 1)) * strength
      elif noise_mode == 'const':
        noise = const.value[None, :, :, None] * strength
    x = modulated_conv2d(x, weight, styles, noise, up=self.up, padding=k // 2,
                         resample_filter=setup_filter(), flip_weight=self.up == 1,
                         fused_modconv=fused_modconv, conv_impl=self.conv_impl)
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    act_gain = ACTIVATIONS[self.activation][2] * gain
    clamp = None if self.conv_clamp is None else self.conv_clamp * gain
    return bias_act(x, bias, self.activation, gain=act_gain, clamp=clamp)


class ToRGBLayer(nn.Module):
  """A modulated 1x1 conv without demodulation, its styles scaled by 1 / sqrt(fan_in)."""
  features: int
  kernel_size: int = 1
  conv_clamp: Optional[float] = None
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x, w, fused_modconv: bool = True):
    k, cin = self.kernel_size, x.shape[-1]
    styles = FullyConnected(cin, bias_init=1.0, name='affine')(w) * (1 / np.sqrt(cin * k * k))
    weight = self.param('weight', nn.initializers.normal(1.0), (k, k, cin, self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    x = modulated_conv2d(x, weight, styles, demodulate=False, fused_modconv=fused_modconv,
                         conv_impl=self.conv_impl)
    return bias_act(x, bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
  """The 'skip' block at `resolution`: const (first block) or conv0 (up 2), conv1, ToRGB added
  to the upsampled image. ws [B, num_conv + 1, w_dim]."""
  in_channels: int      # 0: the first block
  out_channels: int
  resolution: int
  img_channels: int
  conv_clamp: Optional[float] = None
  use_noise: bool = True
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x, img, ws, noise_mode: str = 'random', fused_modconv: bool = True):
    res, c = self.resolution, self.out_channels
    layer = dict(resolution=res, conv_clamp=self.conv_clamp, use_noise=self.use_noise,
                 conv_impl=self.conv_impl)
    kwargs = dict(noise_mode=noise_mode, fused_modconv=fused_modconv)
    if self.in_channels == 0:
      const = self.param('const', nn.initializers.normal(1.0), (res, res, c))
      x = jnp.broadcast_to(const[None], (ws.shape[0], res, res, c))
      x = SynthesisLayer(c, name='conv1', **layer)(x, ws[:, 0], **kwargs)
    else:
      x = SynthesisLayer(c, up=2, name='conv0', **layer)(x, ws[:, 0], **kwargs)
      x = SynthesisLayer(c, name='conv1', **layer)(x, ws[:, 1], **kwargs)
    if img is not None:
      img = upsample2d(img, setup_filter(), conv_impl=self.conv_impl)
    y = ToRGBLayer(self.img_channels, conv_clamp=self.conv_clamp, conv_impl=self.conv_impl,
                   name='torgb')(
        x, ws[:, -1], fused_modconv=fused_modconv)
    return x, y if img is None else img + y


class SynthesisNetwork(nn.Module):
  """ws [B, num_ws, w_dim] -> images [B, R, R, img_channels] ('skip' blocks from 4x4 to R)."""
  img_resolution: int
  img_channels: int = 3
  channel_base: int = 32768
  channel_max: int = 512
  conv_clamp: Optional[float] = None
  use_noise: bool = True
  conv_impl: str = 'xla'     # 'xla' (lax) or gan_jax/layers.py's forms ('hybrid' on a CPU)

  @nn.compact
  def __call__(self, ws, noise_mode: str = 'random', fused_modconv: bool = True):
    if noise_mode not in NOISE_MODES:
      raise ValueError(f'noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}')
    x = img = None
    w_idx = 0
    for res in resolutions(self.img_resolution):
      cin = 0 if res == 4 else channels(res // 2, self.channel_base, self.channel_max)
      num_conv = 1 if res == 4 else 2
      # each ToRGB takes the w after its block's convs (the next block's first)
      block_ws = ws[:, w_idx:w_idx + num_conv + 1]
      x, img = SynthesisBlock(cin, channels(res, self.channel_base, self.channel_max), res,
                              self.img_channels, self.conv_clamp, self.use_noise,
                              self.conv_impl, name=f'b{res}')(x, img, block_ws, noise_mode,
                                                              fused_modconv)
      w_idx += num_conv
    return img


class DiscriminatorBlock(nn.Module):
  """FromRGB (first block), conv0, conv1 (down 2), and for 'resnet' the 1x1 skip (down 2)."""
  in_channels: int      # 0: the first block
  tmp_channels: int
  out_channels: int
  architecture: str = 'resnet'
  conv_clamp: Optional[float] = None
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x, img):
    conv = dict(activation='lrelu', conv_clamp=self.conv_clamp, conv_impl=self.conv_impl)
    if self.in_channels == 0:
      x = Conv2dLayer(self.tmp_channels, 1, name='fromrgb', **conv)(img)
    if self.architecture == 'resnet':
      y = Conv2dLayer(self.out_channels, 1, use_bias=False, down=2, conv_impl=self.conv_impl,
                      name='skip')(x, SQRT_HALF)
      x = Conv2dLayer(self.tmp_channels, 3, name='conv0', **conv)(x)
      x = Conv2dLayer(self.out_channels, 3, down=2, name='conv1', **conv)(x, SQRT_HALF)
      return y + x
    x = Conv2dLayer(self.tmp_channels, 3, name='conv0', **conv)(x)
    return Conv2dLayer(self.out_channels, 3, down=2, name='conv1', **conv)(x)


class DiscriminatorEpilogue(nn.Module):
  """4x4 x [B, 4, 4, C] -> minibatch std, conv, dense, out: [B, 1] or <out, cmap> / sqrt(dim)."""
  cmap_dim: int = 0
  mbstd_group_size: Optional[int] = 4
  mbstd_num_channels: int = 1
  conv_clamp: Optional[float] = None
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x, cmap=None):
    c = x.shape[-1]
    if self.mbstd_num_channels > 0:
      x = minibatch_std(x, self.mbstd_group_size, self.mbstd_num_channels)
    x = Conv2dLayer(c, 3, activation='lrelu', conv_clamp=self.conv_clamp,
                    conv_impl=self.conv_impl, name='conv')(x)
    # (flattened NHWC: the weight's rows are the official (C, H, W) columns permuted)
    x = FullyConnected(c, 'lrelu', name='fc')(x.reshape(x.shape[0], -1))
    x = FullyConnected(self.cmap_dim or 1, name='out')(x)
    if self.cmap_dim > 0:
      x = jnp.sum(x * cmap, axis=1, keepdims=True) * (1 / np.sqrt(self.cmap_dim))
    return x


class DiscriminatorNetwork(nn.Module):
  """images [B, R, R, C] and labels -> scores [B, 1] (module doc)."""
  img_resolution: int
  c_dim: int = 0
  architecture: str = 'resnet'
  channel_base: int = 32768
  channel_max: int = 512
  conv_clamp: Optional[float] = None
  cmap_dim: Optional[int] = None            # None: the 4x4 channels
  mbstd_group_size: Optional[int] = 4
  mbstd_num_channels: int = 1
  mapping_layers: int = 8                   # the official D's mapping keeps its default
  conv_impl: str = 'xla'                    # as SynthesisNetwork's

  @nn.compact
  def __call__(self, img, labels=None):
    ch = lambda res: channels(res, self.channel_base, self.channel_max)
    x = None
    for res in resolutions(self.img_resolution)[:0:-1]:   # R, R/2, ..., 8
      cin = 0 if res == self.img_resolution else ch(res)
      x = DiscriminatorBlock(cin, ch(res), ch(res // 2), self.architecture, self.conv_clamp,
                             self.conv_impl, name=f'b{res}')(x, img)
    cmap_dim = (self.cmap_dim or ch(4)) if self.c_dim > 0 else 0
    cmap = None
    if cmap_dim:
      cmap = MappingNetwork(0, self.c_dim, cmap_dim, None, self.mapping_layers,
                            w_avg_beta=None, name='mapping')(None, labels)
    return DiscriminatorEpilogue(cmap_dim, self.mbstd_group_size, self.mbstd_num_channels,
                                 self.conv_clamp, self.conv_impl, name='b4')(x, cmap)


class GeneratorNetwork(nn.Module):
  """The official Generator: mapping then synthesis; z [B, z_dim], labels -> [B, R, R, C].
  `map` and `synthesize` are its two halves (`apply(..., method='map')`), for the losses that
  need ws: style mixing, the path length penalty."""
  img_resolution: int
  img_channels: int = 3
  c_dim: int = 0
  z_dim: int = 512
  w_dim: int = 512
  mapping_layers: int = 8
  channel_base: int = 32768
  channel_max: int = 512
  conv_clamp: Optional[float] = None
  w_avg_beta: Optional[float] = 0.995
  axis_name: Optional[str] = None  # pmap's device axis (the mapping's w_avg)
  conv_impl: str = 'xla'           # SynthesisNetwork's

  @property
  def num_ws(self) -> int:
    return generator_num_ws(self.img_resolution)

  def setup(self):
    self.mapping = MappingNetwork(self.z_dim, self.c_dim, self.w_dim, self.num_ws,
                                  self.mapping_layers, w_avg_beta=self.w_avg_beta,
                                  axis_name=self.axis_name)
    self.synthesis = SynthesisNetwork(self.img_resolution, self.img_channels, self.channel_base,
                                      self.channel_max, self.conv_clamp,
                                      conv_impl=self.conv_impl)

  def __call__(self, z, labels=None, train: bool = False, truncation_psi: float = 1.0,
               truncation_cutoff: Optional[int] = None, noise_mode: str = 'random',
               fused_modconv: Optional[bool] = None):
    ws = self.map(z, labels, train, truncation_psi, truncation_cutoff)
    return self.synthesize(ws, train, noise_mode, fused_modconv)

  def map(self, z, labels=None, train: bool = False, truncation_psi: float = 1.0,
          truncation_cutoff: Optional[int] = None, skip_w_avg_update: bool = False):
    """ws [B, num_ws, w_dim] of z and labels (MappingNetwork)."""
    return self.mapping(z, labels, train, truncation_psi, truncation_cutoff, skip_w_avg_update)

  def synthesize(self, ws, train: bool = False, noise_mode: str = 'random',
                 fused_modconv: Optional[bool] = None):
    """Images of ws. fused_modconv None: fused in evaluation, not in training (the official
    default), but for conv_impl other than 'xla' (a CPU's): unfused there too, the same
    function (float32 rounding apart) and 9 times faster on XLA:CPU, where the fused form's
    grouped convolution is slow (docs/stylegan2.md, 'The modulated convolution's two forms')."""
    if fused_modconv is None:
      fused_modconv = not train and self.conv_impl == 'xla'
    return self.synthesis(ws, noise_mode, fused_modconv)
