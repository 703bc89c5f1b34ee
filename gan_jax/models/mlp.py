"""The MLP family (model.arch 'mlp'): fully connected G and D (the original GAN / WGAN MLP
setting); any image shape."""

import math
from typing import Any, Optional, Tuple

import flax.linen as nn
import jax.numpy as jnp

from gan_jax.models import init
from gan_jax.models.conditioning import gen_input, heads, norm_layer
from gan_jax.models.family import critic_width


def check_size(h: int, w: int) -> None:
  """Takes every size: the model flattens the image."""
  del h, w


def _trunk(x, m, kernel_init, train: bool, norm_labels=None):
  """`m.depth` hidden layers of `m.width` units: Dense -> norm -> ReLU (called in a compact
  method of `m`, so the layers belong to it); `norm_labels`: conditional batch norm.

  A function, not a module: its layers sit beside the model's own (Dense_0 ... Dense_{depth-1},
  then the generator's output Dense_{depth}), the paths checkpoints hold.
  """
  for _ in range(m.depth):
    x = nn.Dense(m.width, kernel_init=kernel_init, use_bias=m.norm != 'batch', dtype=m.dtype)(x)
    x = nn.relu(norm_layer(m.norm, train, False, m.axis_name, m.dtype, norm_labels,
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
    kernel_init = init.kernel_init(self.init_std)
    x, norm_labels = gen_input(self, z, labels)
    x = _trunk(x, self, kernel_init, train, norm_labels)
    x = nn.Dense(math.prod(self.image_shape), kernel_init=kernel_init, dtype=self.dtype)(x)
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
    x = _trunk(x.reshape(x.shape[0], -1), self, init.kernel_init(self.init_std), train)
    return heads(x, labels, self)


def build(m, image_shape, common, _):
  """(MLPGenerator, MLPCritic) of model config `m`; `common`: the fields both take (the MLPs
  have no conv layers, so no conv impl)."""
  return (MLPGenerator(image_shape, width=m.width, depth=m.depth, norm=m.gen_norm, **common),
          MLPCritic(width=critic_width(m), depth=m.depth, norm=m.critic_norm, **common))
