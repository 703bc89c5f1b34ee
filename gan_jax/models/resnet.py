"""The ResNet family (model.arch 'resnet'): up to 32x32, the WGAN-GP paper's CIFAR-10 ResNet (3
up-blocks in G, 4 blocks in D, constant width); from 64x64 (powers of two), its 64x64 ResNet
(gan_64x64.py: G from 4x4 at 8 * width through up-blocks halving the channels to width, D an
input conv and down-blocks doubling them back), one more 8 * width block per doubling.
"""

import functools
import math
from typing import Any, Callable, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax import layers
from gan_jax.models import init
from gan_jax.models.conditioning import CriticHeads, GeneratorInput, norm_layer
from gan_jax.models.family import ConvPlayer, critic_width, in_scope_of


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


def _sizes_ok(side: int) -> bool:
  """8, 16, 24, 32 (the CIFAR-10 ResNet) or a power of two from 64 (the 64x64 ResNet)."""
  return (side % 8 == 0 and 8 <= side and is_cifar_resnet(side)) or (
      side >= 64 and side & (side - 1) == 0)


def check_size(h: int, w: int) -> None:
  """Raises ValueError unless the images are square of a side one of the ResNets takes."""
  if not (h == w and _sizes_ok(h)):
    raise ValueError(f"model.arch='resnet' takes square images of side 8, 16, 24 or 32 (a "
                     f"multiple of 8 up to 32: the CIFAR-10 ResNet) or 64, 128, 256... (a power "
                     f"of two: the 64x64 ResNet, one block more per doubling), got {h}x{w}; "
                     f"resize the data or use model.arch='conv' or 'mlp'")


def _upsample(x):
  b, h, w, c = x.shape
  return jax.image.resize(x, (b, 2 * h, 2 * w, c), 'nearest')


def _mean_pool(x):
  return nn.avg_pool(x, (2, 2), strides=(2, 2))


class ResBlock(nn.Module):
  """Residual block of the WGAN-GP ResNets; resample in None | 'up' | 'down'.

  `features` output channels. As in the paper's code, an 'up' block's first conv already gives
  `features`, a 'down' block's keeps the input's channels (but the critic's first block's;
  `wide`: every block's gives `features`, BigGAN's wide D). The 1x1 shortcut conv and the mean
  pool commute; the block pools after the conv (the CIFAR-10 code's order) where gan_64x64.py
  pools first. With `norm_labels`, batch norms are conditional: on the class labels [B], or
  (`condition` 'vector') on BigGAN's vectors c [B, D] (conditioning.ConditionalBatchNorm).
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
  wide: bool = False    # a 'down' block's first conv gives `features` (BigGAN's D)
  kernel_init: Optional[Callable] = None  # None: init.kernel_init(init_std)
  condition: str = 'class'  # what norm_labels are: 'class' labels | 'vector' (BigGAN's ccbn)

  @nn.compact
  def __call__(self, x, train: bool = True, norm_labels=None):
    kernel_init = self.kernel_init or init.kernel_init(self.init_std)
    norm = lambda: norm_layer(self.norm, train, True, self.axis_name, self.dtype, norm_labels,
                              self.num_classes, self.condition, self.kernel_init)
    # == nn.Conv(f, (k, k), padding='SAME'), in forms whose derivatives are fast on CPU
    conv = lambda f, k: layers.Conv(f, k, self.conv_impl, kernel_init, dtype=self.dtype,
                                    stride=1)
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
    keeps_channels = self.resample == 'down' and not (self.first or self.wide)
    h = conv(x.shape[-1] if keeps_channels else self.features, 3)(h)
    h = nn.relu(norm()(h))
    h = conv(self.features, 3)(h)
    if self.resample == 'down':
      h = _mean_pool(h)
    return shortcut + h


class ResNetGenerator(ConvPlayer):
  """Up to 32x32: Dense -> (side / 8)^2 x width -> 3 up-blocks at width. From 64x64: Dense ->
  4x4 x 8 width -> up-blocks of `resnet_channels`. Then norm, ReLU, 3x3 conv to the image."""
  image_shape: Tuple[int, int, int]
  width: int = 128
  norm: str = 'batch'
  label_input: str = ''  # how labels enter: model.gen_label_input ('' = the conditioning's)

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    side = self.image_shape[0]
    if is_cifar_resnet(side):
      base, channels = side // 8, [self.width] * 3
    else:           # the 64x64 ResNet: 4x4 x 8w -> 8w, 4w, 2w, w (64x64)
      base, channels = 4, resnet_channels(side, self.width)
    kernel_init = init.kernel_init(self.init_std)
    x, norm_labels = in_scope_of(self, GeneratorInput(self.num_classes, self.conditioning,
                                                      self.norm, self.dtype,
                                                      self.label_input))(z, labels)
    x = nn.Dense(base * base * channels[0], kernel_init=kernel_init, dtype=self.dtype)(x)
    x = x.reshape(x.shape[0], base, base, channels[0])
    for features in channels:
      x = ResBlock(features, 'up', self.norm, axis_name=self.axis_name, dtype=self.dtype,
                   conv_impl=self.conv_impl, init_std=self.init_std,
                   num_classes=self.num_classes)(x, train, norm_labels)
    x = nn.relu(norm_layer(self.norm, train, True, self.axis_name, self.dtype, norm_labels,
                           self.num_classes)(x))
    x = layers.Conv(self.image_shape[2], 3, self.conv_impl, kernel_init, dtype=self.dtype,
                    stride=1)(x)
    return jnp.tanh(x).astype(jnp.float32)


class ResNetCritic(ConvPlayer):
  """Up to 32x32: 2 down-blocks and 2 plain ones at width, ReLU, global mean pool (SNGAN's
  sum with pool 'sum'). From 64x64: 3x3 conv to width, down-blocks to 4x4 (64x64: 2w, 4w, 8w,
  8w), flattened. Then linear heads."""
  width: int = 128
  norm: str = 'none'
  pool: str = 'mean'               # up to 32x32: the global pool, 'mean' | 'sum'

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    block = functools.partial(ResBlock, norm=self.norm, axis_name=self.axis_name,
                              dtype=self.dtype, conv_impl=self.conv_impl,
                              init_std=self.init_std)
    kernel_init = init.kernel_init(self.init_std)
    if is_cifar_resnet(x.shape[1]):
      x = block(self.width, 'down', first=True)(x, train)
      x = block(self.width, 'down')(x, train)
      x = block(self.width, None)(x, train)
      x = block(self.width, None)(x, train)
      x = (jnp.sum if self.pool == 'sum' else jnp.mean)(nn.relu(x), axis=(1, 2))
    else:                 # the 64x64 ResNet (gan_64x64.py's GoodDiscriminator)
      x = layers.Conv(self.width, 3, self.conv_impl, kernel_init, dtype=self.dtype, stride=1)(x)
      for i in range(len(resnet_channels(x.shape[1], self.width))):
        x = block(self.width * min(8, 2 ** (i + 1)), 'down')(x, train)
      x = x.reshape(x.shape[0], -1)  # [B, 4 * 4 * 8w]
    return in_scope_of(self, CriticHeads(self.num_classes, self.conditioning, self.init_std,
                                         self.dtype, embed_dim=self.class_embed_dim))(x, labels)


def build(m, image_shape, common, conv_impl):
  """(ResNetGenerator, ResNetCritic) of model config `m`; `common`: the fields both take."""
  return (ResNetGenerator(image_shape, width=m.width, norm=m.gen_norm, conv_impl=conv_impl,
                          label_input=m.gen_label_input, **common),
          ResNetCritic(width=critic_width(m), norm=m.critic_norm, pool=m.critic_pool,
                       conv_impl=conv_impl, **common))
