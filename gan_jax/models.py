"""Generators and critics (discriminators) for the four GANs.

Three architecture families, chosen by `config.model.arch`:
  * 'conv':   DCGAN-style transposed-conv generator and strided-conv critic: 3 stride-2 layers
              up to 32x32, one more per doubling above (`conv_levels`), channels doubling
              toward the coarse end. With width 64 and kernel 5 on 28x28 images it is the
              WGAN-GP paper's MNIST model; with width 128 and kernel 4 on 32x32 images the
              DCGAN CIFAR-10 model, on 64x64 images the DCGAN paper's model (4x4x1024 ->
              8x8x512 -> 16x16x256 -> 32x32x128 -> 64x64x3).
  * 'resnet': up to 32x32, the WGAN-GP paper's CIFAR-10 ResNet (3 up-blocks in G, 4 blocks in D,
              constant width); from 64x64 (powers of two), its 64x64 ResNet (gan_64x64.py: G
              from 4x4 at 8 * width through up-blocks halving the channels to width, D an input
              conv and down-blocks doubling them back), one more 8 * width block per doubling.
  * 'mlp':    fully connected G and D (the original GAN / WGAN MLP setting).

Every generator takes `(z, labels, train)`, every critic `(x, labels, train)` and returns
`(adv_logits [B], class_logits [B, K] or None)`. A model with num_classes > 0 is conditioned as
its `conditioning` field says:
  * 'acgan':      the generator multiplies z by a learned label embedding (Hadamard product, as in
                  ACGAN); the critic has a class head beside the adversarial one (labels unused).
  * 'projection': Miyato & Koyama 2018, "cGANs with Projection Discriminator". The critic's
                  adv_logits are linear(phi(x)) + <embed(y), phi(x)>, phi(x) the features its
                  heads see (flattened or globally pooled), and it has no class head. The
                  generator's batch norms are conditional (`ConditionalBatchNorm`, SNGAN's and
                  BigGAN's generators) and z goes in as is; a generator without batch norm (gen
                  norm 'none' or 'layer') has nothing to make conditional, so it takes ACGAN's z
                  times a label embedding instead, to stay conditioned.
num_classes = 0 is unconditional (labels unused). Images are NHWC in [-1, 1].
"""

import functools
import math
from typing import Any, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax import layers

def _kernel_init(init_std: float):
  """N(0, init_std) when init_std > 0 (WGAN, DCGAN); Flax's default otherwise."""
  if init_std > 0:
    return nn.initializers.normal(init_std)
  return nn.linear.default_kernel_init


def _embed_init(init_std: float):
  """N(0, init_std) when init_std > 0; otherwise LeCun normal over the feature axis (Flax's
  Embed default has variance 1): a class's row of the projection embedding is then drawn like the
  adversarial head's kernel, so <embed(y), phi> starts at the scale of linear(phi)."""
  if init_std > 0:
    return nn.initializers.normal(init_std)
  return nn.initializers.variance_scaling(1.0, 'fan_in', 'truncated_normal', in_axis=-1,
                                          out_axis=-2)


CONDITIONINGS = ('acgan', 'projection')


def check_conditioning(conditioning: str) -> None:
  """Raises ValueError unless `conditioning` is one of CONDITIONINGS."""
  if conditioning not in CONDITIONINGS:
    raise ValueError(f'unknown conditioning {conditioning!r}; use one of '
                     f'{", ".join(map(repr, CONDITIONINGS))}')


def _conditioning(m) -> str:
  """How module `m` uses labels: 'none' (num_classes 0), 'acgan' or 'projection'."""
  check_conditioning(m.conditioning)
  return m.conditioning if m.num_classes > 0 else 'none'


# The batch norm of every model, plain or conditional.
_BATCH_NORM = dict(momentum=0.9, epsilon=1e-5)


class ConditionalBatchNorm(nn.Module):
  """Batch norm with a scale and a shift per class (de Vries et al. 2017; the generators of
  SNGAN's projection cGAN and of BigGAN): BatchNorm without a scale and bias of its own, then
  x * scale[y] + bias[y]. The scales start at 1 and the shifts at 0, so at initialisation it is
  BatchNorm(use_scale=False, use_bias=False), and plain BatchNorm's init too."""
  num_classes: int
  use_running_average: bool = False
  axis_name: Optional[str] = None  # pmap's device axis: statistics of the global batch
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, labels):
    """x [B, ..., C], labels [B] (int) -> [B, ..., C]."""
    x = nn.BatchNorm(use_running_average=self.use_running_average, use_scale=False,
                     use_bias=False, axis_name=self.axis_name, dtype=self.dtype,
                     **_BATCH_NORM)(x)
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)  # broadcast over H, W
    embed = lambda init, name: nn.Embed(self.num_classes, x.shape[-1], dtype=self.dtype,
                                        embedding_init=init, name=name)(labels).reshape(shape)
    scale = embed(nn.initializers.ones, 'scale_embed')  # [B, 1, 1, C] for images
    shift = embed(nn.initializers.zeros, 'bias_embed')
    return x * scale + shift


def _norm(kind: str, train: bool, spatial: bool, axis_name: Optional[str] = None,
          dtype: Any = jnp.float32, labels=None, num_classes: int = 0):
  """Returns a normalisation layer: 'batch', 'layer' or 'none'.

  `axis_name`: under pmap, batch statistics are averaged over that device axis (synced batch
  norm), so they are those of the global batch, as with jit over a mesh. `labels` (given only
  with kind 'batch'): conditional batch norm over `num_classes` classes, a function of x.
  """
  if kind == 'batch' and labels is not None:
    cbn = ConditionalBatchNorm(num_classes, not train, axis_name if train else None, dtype)
    return lambda x: cbn(x, labels)
  if kind == 'batch':
    return nn.BatchNorm(use_running_average=not train, axis_name=axis_name if train else None,
                        dtype=dtype, **_BATCH_NORM)
  if kind == 'layer':
    # WGAN-GP's layer norm normalises each example over all of (H, W, C).
    return nn.LayerNorm(reduction_axes=(-3, -2, -1) if spatial else -1, dtype=dtype)
  if kind == 'none':
    return lambda x: x
  raise ValueError(f"unknown norm {kind!r}; use 'batch', 'layer' or 'none'")


def _condition(z, labels, num_classes: int, dtype: Any = jnp.float32):
  """ACGAN conditioning: z times a learned embedding of the label."""
  if num_classes <= 0:
    return z
  if labels is None:
    raise ValueError('a conditional generator needs labels')
  return z * nn.Embed(num_classes, z.shape[-1], dtype=dtype, name='label_embed')(labels)


def _gen_input(m, z, labels):
  """(first layer's input, labels for conditional batch norm or None) of generator `m`.

  'projection' with gen norm 'batch': (z, labels), the batch norms carry the condition.
  Otherwise (z, None), z times a label embedding when conditional: 'acgan', and 'projection'
  without batch norm, which has no norm to condition.
  """
  if _conditioning(m) == 'projection' and m.norm == 'batch':
    if labels is None:
      raise ValueError('a conditional generator needs labels')
    return z, labels
  return _condition(z, labels, m.num_classes, m.dtype), None


def pyramid(size: int, levels: int = 3) -> list:
  """Spatial sizes from coarse to fine, e.g. 28 -> [4, 7, 14, 28], 32 -> [4, 8, 16, 32]."""
  sizes = [size]
  for _ in range(levels):
    sizes.append(math.ceil(sizes[-1] / 2))
  return sizes[::-1]


def conv_levels(size: int) -> int:
  """Stride-2 layers of the conv models for images of side `size`: 3 up to 32 (28 -> [4, 7,
  14, 28], 32 -> [4, 8, 16, 32]), then as many as bring the side to 4 or less (64 -> 4 layers,
  [4, 8, 16, 32, 64]; 128 -> 5): the generator starts at 4x4 at most, as in the DCGAN paper."""
  levels = 3
  while pyramid(size, levels)[0] > 4:
    levels += 1
  return levels


def conv_channels(size: int, width: int) -> list:
  """Channels of the conv generator's layers from coarse to fine, the critic's reversed: 4w, 2w,
  w up to 32x32 (`conv_levels`); each further level doubles the coarse end (64x64: 8w ... w)."""
  levels = conv_levels(size)
  return [2 ** (levels - 1 - i) * width for i in range(levels)]


def resnet_channels(size: int, width: int) -> list:
  """Output channels of the 64x64-and-up ResNet generator's up-blocks, coarse to fine (64x64:
  8w, 4w, 2w, w, as in gan_64x64.py; each doubling adds an 8w block at the coarse end). The
  critic's down-blocks give them in reverse, shifted by one: 2w, 4w, 8w, 8w at 64x64."""
  blocks = int(math.log2(size // 4))
  return [width * min(8, 2 ** (blocks - 1 - i)) for i in range(blocks)]


def is_cifar_resnet(side: int) -> bool:
  """Whether model.arch 'resnet' at this image side is the CIFAR-10 ResNet (up to 32x32: a
  global pool in the critic), not the 64x64 one (a flattened 4x4 map)."""
  return side <= 32


def _resnet_sizes_ok(side: int) -> bool:
  """8, 16, 24, 32 (the CIFAR-10 ResNet) or a power of two from 64 (the 64x64 ResNet)."""
  return (side % 8 == 0 and 8 <= side and is_cifar_resnet(side)) or (
      side >= 64 and side & (side - 1) == 0)


def check_image_shape(arch: str, image_shape: Sequence[int]) -> None:
  """Raises ValueError naming the supported sizes when `arch` cannot take `image_shape`."""
  if arch not in ARCHS:
    raise ValueError(f'unknown model.arch {arch!r}; choose one of {", ".join(ARCHS)}')
  if len(image_shape) != 3:
    raise ValueError(f'images must be H x W x C, got shape {tuple(image_shape)}')
  h, w, c = image_shape
  if c not in (1, 3):
    raise ValueError(f'images must have 1 or 3 channels, got {c}')
  if arch == 'conv' and not (h == w and h >= 8):
    raise ValueError(f"model.arch='conv' takes square images of side >= 8 (3 stride-2 layers up "
                     f"to 32x32, e.g. 28x28, 32x32; one more per doubling: 64x64, 128x128), "
                     f"got {h}x{w}; resize the data or use model.arch='mlp'")
  if arch == 'resnet' and not (h == w and _resnet_sizes_ok(h)):
    raise ValueError(f"model.arch='resnet' takes square images of side 8, 16, 24 or 32 (a "
                     f"multiple of 8 up to 32: the CIFAR-10 ResNet) or 64, 128, 256... (a power "
                     f"of two: the 64x64 ResNet, one block more per doubling), got {h}x{w}; "
                     f"resize the data or use model.arch='conv' or 'mlp'")


class ConvGenerator(nn.Module):
  """Dense -> reshape -> `conv_levels` stride-2 transposed convs, cropping to the pyramid sizes."""
  image_shape: Tuple[int, int, int]
  width: int = 64
  kernel_size: int = 5
  norm: str = 'none'
  init_std: float = 0.0
  num_classes: int = 0
  conditioning: str = 'acgan'      # how num_classes > 0 is used: 'acgan' or 'projection'
  axis_name: Optional[str] = None  # pmap's device axis, for synced batch norm
  dtype: Any = jnp.float32         # computation dtype (parameters stay float32)
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    side = self.image_shape[0]
    sizes = pyramid(side, conv_levels(side))     # e.g. [4, 7, 14, 28], [4, 8, 16, 32, 64]
    channels = conv_channels(side, self.width)  # e.g. [4w, 2w, w], [8w, 4w, 2w, w]
    init = _kernel_init(self.init_std)
    bias = self.norm != 'batch'  # batch norm cancels a bias (and Adam would amplify its noise)
    up = lambda f, b: layers.ConvTranspose(f, self.kernel_size, self.conv_impl, init, b,
                                           self.dtype)
    x, norm_labels = _gen_input(self, z, labels)
    norm = lambda: _norm(self.norm, train, True, self.axis_name, self.dtype, norm_labels,
                         self.num_classes)
    x = nn.Dense(sizes[0] * sizes[0] * channels[0], kernel_init=init, use_bias=bias,
                 dtype=self.dtype)(x)
    x = x.reshape(x.shape[0], sizes[0], sizes[0], channels[0])
    x = nn.relu(norm()(x))
    for size, features in zip(sizes[1:-1], channels[1:]):
      x = up(features, bias)(x)
      x = x[:, :size, :size]  # e.g. 8x8 -> 7x7 for 28x28 images, as in the WGAN-GP code
      x = nn.relu(norm()(x))
    x = up(self.image_shape[2], True)(x)
    return jnp.tanh(x[:, :sizes[-1], :sizes[-1]]).astype(jnp.float32)


class ConvCritic(nn.Module):
  """`conv_levels` stride-2 convs (w, 2w, 4w...) with leaky ReLU (no norm after the first), then
  linear heads."""
  width: int = 64
  kernel_size: int = 5
  norm: str = 'none'
  init_std: float = 0.0
  num_classes: int = 0
  conditioning: str = 'acgan'      # how num_classes > 0 is used: 'acgan' or 'projection'
  axis_name: Optional[str] = None  # pmap's device axis, for synced batch norm
  dtype: Any = jnp.float32         # computation dtype (parameters stay float32)
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    init = _kernel_init(self.init_std)
    for i, features in enumerate(conv_channels(x.shape[1], self.width)[::-1]):
      bias = i == 0 or self.norm != 'batch'
      x = layers.Conv(features, self.kernel_size, self.conv_impl, init, bias, self.dtype)(x)
      if i > 0:
        x = _norm(self.norm, train, True, self.axis_name, self.dtype)(x)
      x = nn.leaky_relu(x, 0.2)
    x = x.reshape(x.shape[0], -1)
    return _heads(x, labels, self)


def _heads(features, labels, m):
  """(adv_logits [B], class_logits [B, K] or None) of critic `m` on its features phi [B, D],
  float32 whatever the compute dtype (called in a compact method of `m`).

  'acgan': a class head beside the adversarial one. 'projection': adv_logits are
  linear(phi) + <embed(y), phi> and there is no class head.
  """
  init = _kernel_init(m.init_std)
  dense = lambda n, name: nn.Dense(n, kernel_init=init, dtype=m.dtype, name=name)(features)
  adv = dense(1, 'adv_head')[:, 0].astype(jnp.float32)
  conditioning = _conditioning(m)
  if conditioning == 'projection':
    if labels is None:
      raise ValueError('a projection critic needs labels')
    embed = nn.Embed(m.num_classes, features.shape[-1], embedding_init=_embed_init(m.init_std),
                     dtype=m.dtype, name='projection_embed')(labels)  # [B, D]
    # Summed in float32: D runs to thousands (4 * 4 * 8w at 64x64), too many for bfloat16.
    return adv + jnp.sum(embed.astype(jnp.float32) * features.astype(jnp.float32), -1), None
  cls = dense(m.num_classes, 'class_head').astype(jnp.float32) if conditioning == 'acgan' else None
  return adv, cls


def _mlp_trunk(x, m, init, train: bool, norm_labels=None):
  """`m.depth` hidden layers of `m.width` units: Dense -> norm -> ReLU (called in a compact
  method of `m`, so the layers belong to it); `norm_labels`: conditional batch norm."""
  for _ in range(m.depth):
    x = nn.Dense(m.width, kernel_init=init, use_bias=m.norm != 'batch', dtype=m.dtype)(x)
    x = nn.relu(_norm(m.norm, train, False, m.axis_name, m.dtype, norm_labels,
                      m.num_classes)(x))
  return x


class MLPGenerator(nn.Module):
  image_shape: Tuple[int, int, int]
  width: int = 512
  depth: int = 3
  norm: str = 'none'
  init_std: float = 0.0
  num_classes: int = 0
  conditioning: str = 'acgan'      # how num_classes > 0 is used: 'acgan' or 'projection'
  axis_name: Optional[str] = None  # pmap's device axis, for synced batch norm
  dtype: Any = jnp.float32         # computation dtype (parameters stay float32)

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    init = _kernel_init(self.init_std)
    x, norm_labels = _gen_input(self, z, labels)
    x = _mlp_trunk(x, self, init, train, norm_labels)
    x = nn.Dense(math.prod(self.image_shape), kernel_init=init, dtype=self.dtype)(x)
    return jnp.tanh(x).astype(jnp.float32).reshape(x.shape[0], *self.image_shape)


class MLPCritic(nn.Module):
  width: int = 512
  depth: int = 3
  norm: str = 'none'
  init_std: float = 0.0
  num_classes: int = 0
  conditioning: str = 'acgan'      # how num_classes > 0 is used: 'acgan' or 'projection'
  axis_name: Optional[str] = None  # pmap's device axis, for synced batch norm
  dtype: Any = jnp.float32         # computation dtype (parameters stay float32)

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    x = _mlp_trunk(x.reshape(x.shape[0], -1), self, _kernel_init(self.init_std), train)
    return _heads(x, labels, self)


def _upsample(x):
  b, h, w, c = x.shape
  return jax.image.resize(x, (b, 2 * h, 2 * w, c), 'nearest')


def _mean_pool(x):
  return nn.avg_pool(x, (2, 2), strides=(2, 2))


class ResBlock(nn.Module):
  """Residual block of the WGAN-GP ResNets; resample in None | 'up' | 'down'.

  `features` output channels. As in the paper's code, an 'up' block's first conv already gives
  `features`, a 'down' block's keeps the input's channels (but the critic's first block's). The
  1x1 shortcut conv and the mean pool commute; the block pools after the conv (the CIFAR-10
  code's order) where gan_64x64.py pools first.
  """
  features: int
  resample: Optional[str] = None
  norm: str = 'none'
  first: bool = False  # the critic's first block: no pre-activation, pool before the 1x1 shortcut
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  conv_impl: str = 'auto'
  init_std: float = 0.0
  num_classes: int = 0  # classes of the conditional batch norms, when called with norm_labels

  @nn.compact
  def __call__(self, x, train: bool = True, norm_labels=None):
    norm = lambda: _norm(self.norm, train, True, self.axis_name, self.dtype, norm_labels,
                         self.num_classes)
    # == nn.Conv(f, (k, k), padding='SAME'), in forms whose derivatives are fast on CPU
    conv = lambda f, k: layers.Conv(f, k, self.conv_impl, _kernel_init(self.init_std),
                                    dtype=self.dtype, stride=1)
    shortcut = x
    if self.resample == 'up':
      shortcut = _upsample(shortcut)
    if self.first:
      shortcut = _mean_pool(shortcut)
    if self.resample is not None or shortcut.shape[-1] != self.features:
      shortcut = conv(self.features, 1)(shortcut)
    if self.resample == 'down' and not self.first:
      shortcut = _mean_pool(shortcut)

    h = x
    if not self.first:
      h = nn.relu(norm()(h))
    if self.resample == 'up':
      h = _upsample(h)
    h = conv(x.shape[-1] if self.resample == 'down' and not self.first else self.features, 3)(h)
    h = nn.relu(norm()(h))
    h = conv(self.features, 3)(h)
    if self.resample == 'down':
      h = _mean_pool(h)
    return shortcut + h


class ResNetGenerator(nn.Module):
  """Up to 32x32: Dense -> (side / 8)^2 x width -> 3 up-blocks at width. From 64x64: Dense ->
  4x4 x 8 width -> up-blocks of `resnet_channels`. Then norm, ReLU, 3x3 conv to the image."""
  image_shape: Tuple[int, int, int]
  width: int = 128
  norm: str = 'batch'
  init_std: float = 0.0
  num_classes: int = 0
  conditioning: str = 'acgan'      # how num_classes > 0 is used: 'acgan' or 'projection'
  axis_name: Optional[str] = None  # pmap's device axis, for synced batch norm
  dtype: Any = jnp.float32         # computation dtype (parameters stay float32)
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    side = self.image_shape[0]
    if is_cifar_resnet(side):
      base, channels = side // 8, [self.width] * 3
    else:           # the 64x64 ResNet: 4x4 x 8w -> 8w, 4w, 2w, w (64x64)
      base, channels = 4, resnet_channels(side, self.width)
    init = _kernel_init(self.init_std)
    x, norm_labels = _gen_input(self, z, labels)
    x = nn.Dense(base * base * channels[0], kernel_init=init, dtype=self.dtype)(x)
    x = x.reshape(x.shape[0], base, base, channels[0])
    for features in channels:
      x = ResBlock(features, 'up', self.norm, axis_name=self.axis_name, dtype=self.dtype,
                   conv_impl=self.conv_impl, init_std=self.init_std,
                   num_classes=self.num_classes)(x, train, norm_labels)
    x = nn.relu(_norm(self.norm, train, True, self.axis_name, self.dtype, norm_labels,
                      self.num_classes)(x))
    x = layers.Conv(self.image_shape[2], 3, self.conv_impl, init, dtype=self.dtype,
                    stride=1)(x)
    return jnp.tanh(x).astype(jnp.float32)


class ResNetCritic(nn.Module):
  """Up to 32x32: 2 down-blocks and 2 plain ones at width, ReLU, global mean pool (SNGAN's
  sum with pool 'sum'). From 64x64: 3x3 conv to width, down-blocks to 4x4 (64x64: 2w, 4w, 8w,
  8w), flattened. Then linear heads."""
  width: int = 128
  norm: str = 'none'
  pool: str = 'mean'               # up to 32x32: the global pool, 'mean' | 'sum'
  init_std: float = 0.0
  num_classes: int = 0
  conditioning: str = 'acgan'      # how num_classes > 0 is used: 'acgan' or 'projection'
  axis_name: Optional[str] = None  # pmap's device axis, for synced batch norm
  dtype: Any = jnp.float32         # computation dtype (parameters stay float32)
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    block = functools.partial(ResBlock, norm=self.norm, axis_name=self.axis_name,
                              dtype=self.dtype, conv_impl=self.conv_impl,
                              init_std=self.init_std)
    init = _kernel_init(self.init_std)
    if is_cifar_resnet(x.shape[1]):
      x = block(self.width, 'down', first=True)(x, train)
      x = block(self.width, 'down')(x, train)
      x = block(self.width, None)(x, train)
      x = block(self.width, None)(x, train)
      x = (jnp.sum if self.pool == 'sum' else jnp.mean)(nn.relu(x), axis=(1, 2))
    else:                 # the 64x64 ResNet (gan_64x64.py's GoodDiscriminator)
      x = layers.Conv(self.width, 3, self.conv_impl, init, dtype=self.dtype, stride=1)(x)
      for i in range(len(resnet_channels(x.shape[1], self.width))):
        x = block(self.width * min(8, 2 ** (i + 1)), 'down')(x, train)
      x = x.reshape(x.shape[0], -1)  # [B, 4 * 4 * 8w]
    return _heads(x, labels, self)


def _critic_width(m) -> int:
  """The critic's width: model.critic_width, or model.width (0)."""
  return m.critic_width or m.width


def _conv(m, image_shape, common, conv_impl):
  conv = dict(kernel_size=m.kernel_size, conv_impl=conv_impl)
  return (ConvGenerator(image_shape, width=m.width, norm=m.gen_norm, **conv, **common),
          ConvCritic(width=_critic_width(m), norm=m.critic_norm, **conv, **common))


def _resnet(m, image_shape, common, conv_impl):
  return (ResNetGenerator(image_shape, width=m.width, norm=m.gen_norm, conv_impl=conv_impl,
                          **common),
          ResNetCritic(width=_critic_width(m), norm=m.critic_norm, pool=m.critic_pool,
                       conv_impl=conv_impl, **common))


def _mlp(m, image_shape, common, _):
  return (MLPGenerator(image_shape, width=m.width, depth=m.depth, norm=m.gen_norm, **common),
          MLPCritic(width=_critic_width(m), depth=m.depth, norm=m.critic_norm, **common))


# model.arch -> (model config, image shape, shared fields, conv layers' impl) -> (generator, critic)
ARCHITECTURES = {'conv': _conv, 'resnet': _resnet, 'mlp': _mlp}
ARCHS = tuple(ARCHITECTURES)


def build(model_config, image_shape, num_classes: int, axis_name: Optional[str] = None,
          dtype: Any = jnp.float32, conditioning: str = 'acgan', platform: Optional[str] = None):
  """Returns (generator, critic) modules for `model_config` and the data's image shape
  (`axis_name`: pmap's device axis, for synced batch norm; `dtype`: computation dtype;
  `conditioning`: how num_classes > 0 is used, 'acgan' or 'projection'; `platform`: where
  they will run, which picks conv_impl 'auto''s layers, default this host's backend)."""
  check_image_shape(model_config.arch, image_shape)
  check_conditioning(conditioning)
  conv_impl = layers.resolve(model_config.conv_impl, platform)
  common = dict(init_std=model_config.init_std, num_classes=num_classes,
                conditioning=conditioning, axis_name=axis_name, dtype=dtype)
  image_shape = tuple(int(s) for s in image_shape)
  return ARCHITECTURES[model_config.arch](model_config, image_shape, common, conv_impl)
