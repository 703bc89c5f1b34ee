"""The conv family (model.arch 'conv'): DCGAN-style transposed-conv generator and strided-conv
critic: 3 stride-2 layers up to 32x32, one more per doubling above (`conv_levels`), channels
doubling toward the coarse end. With width 64 and kernel 5 on 28x28 images it is the WGAN-GP
paper's MNIST model; with width 128 and kernel 4 on 32x32 images the DCGAN CIFAR-10 model, on
64x64 images the DCGAN paper's model (4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x128 -> 64x64x3).
"""

import math
from typing import Tuple

import flax.linen as nn
import jax.numpy as jnp

from gan_jax import layers
from gan_jax.models import init
from gan_jax.models.conditioning import CriticHeads, GeneratorInput, norm_layer
from gan_jax.models.family import ConvPlayer, critic_width, in_scope_of


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


def check_size(h: int, w: int) -> None:
  """Raises ValueError unless the images are square of side >= 8."""
  if not (h == w and h >= 8):
    raise ValueError(f"model.arch='conv' takes square images of side >= 8 (3 stride-2 layers up "
                     f"to 32x32, e.g. 28x28, 32x32; one more per doubling: 64x64, 128x128), "
                     f"got {h}x{w}; resize the data or use model.arch='mlp'")


class ConvGenerator(ConvPlayer):
  """Dense -> reshape -> `conv_levels` stride-2 transposed convs, cropping to the pyramid sizes."""
  image_shape: Tuple[int, int, int]
  width: int = 64
  kernel_size: int = 5
  norm: str = 'none'
  label_input: str = ''  # how labels enter: model.gen_label_input ('' = the conditioning's)

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    side = self.image_shape[0]
    sizes = pyramid(side, conv_levels(side))     # e.g. [4, 7, 14, 28], [4, 8, 16, 32, 64]
    channels = conv_channels(side, self.width)  # e.g. [4w, 2w, w], [8w, 4w, 2w, w]
    kernel_init = init.kernel_init(self.init_std)
    bias = self.norm != 'batch'  # batch norm cancels a bias (and Adam would amplify its noise)
    up = lambda f, b: layers.ConvTranspose(f, self.kernel_size, self.conv_impl, kernel_init, b,
                                           self.dtype)
    x, norm_labels = in_scope_of(self, GeneratorInput(self.num_classes, self.conditioning,
                                                      self.norm, self.dtype,
                                                      self.label_input))(z, labels)
    norm = lambda: norm_layer(self.norm, train, True, self.axis_name, self.dtype, norm_labels,
                              self.num_classes)
    x = nn.Dense(sizes[0] * sizes[0] * channels[0], kernel_init=kernel_init, use_bias=bias,
                 dtype=self.dtype)(x)
    x = x.reshape(x.shape[0], sizes[0], sizes[0], channels[0])
    x = nn.relu(norm()(x))
    for size, features in zip(sizes[1:-1], channels[1:]):
      x = up(features, bias)(x)
      x = x[:, :size, :size]  # e.g. 8x8 -> 7x7 for 28x28 images, as in the WGAN-GP code
      x = nn.relu(norm()(x))
    x = up(self.image_shape[2], True)(x)
    return jnp.tanh(x[:, :sizes[-1], :sizes[-1]]).astype(jnp.float32)


class ConvCritic(ConvPlayer):
  """`conv_levels` stride-2 convs (w, 2w, 4w...) with leaky ReLU (no norm after the first), then
  linear heads."""
  width: int = 64
  kernel_size: int = 5
  norm: str = 'none'

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    kernel_init = init.kernel_init(self.init_std)
    for i, features in enumerate(conv_channels(x.shape[1], self.width)[::-1]):
      bias = i == 0 or self.norm != 'batch'
      x = layers.Conv(features, self.kernel_size, self.conv_impl, kernel_init, bias, self.dtype)(x)
      if i > 0:
        x = norm_layer(self.norm, train, True, self.axis_name, self.dtype)(x)
      x = nn.leaky_relu(x, 0.2)
    x = x.reshape(x.shape[0], -1)
    return in_scope_of(self, CriticHeads(self.num_classes, self.conditioning, self.init_std,
                                         self.dtype, embed_dim=self.class_embed_dim))(x, labels)


def build(m, image_shape, common, conv_impl):
  """(ConvGenerator, ConvCritic) of model config `m`; `common`: the fields both take."""
  conv = dict(kernel_size=m.kernel_size, conv_impl=conv_impl)
  return (ConvGenerator(image_shape, width=m.width, norm=m.gen_norm,
                        label_input=m.gen_label_input, **conv, **common),
          ConvCritic(width=critic_width(m), norm=m.critic_norm, **conv, **common))
