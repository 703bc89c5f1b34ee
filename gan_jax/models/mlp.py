"""The MLP family (model.arch 'mlp'): fully connected G and D (the original GAN / WGAN MLP
setting); any image shape."""

import math
from typing import Any, Optional, Tuple

import flax.linen as nn
import jax.numpy as jnp

from gan_jax.models import init
from gan_jax.models.conditioning import CriticHeads, GeneratorInput, norm_layer
from gan_jax.models.family import Player, critic_width, in_scope_of


def check_size(h: int, w: int) -> None:
  """Takes every size: the model flattens the image."""
  del h, w


class MLPTrunk(nn.Module):
  """`depth` hidden layers of `width` units: Dense -> norm -> ReLU.

  Made `in_scope_of` its model: its layers sit beside the model's own (Dense_0 ...
  Dense_{depth-1}, BatchNorm_0 ..., then the generator's output Dense_{depth}), the paths
  checkpoints hold.
  """
  width: int
  depth: int
  norm: str = 'none'
  init_std: float = 0.0
  num_classes: int = 0             # classes of the conditional batch norms, given norm_labels
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True, norm_labels=None):
    """x [B, D] -> [B, width]; `norm_labels` [B]: conditional batch norm."""
    kernel_init = init.kernel_init(self.init_std)
    for _ in range(self.depth):
      # batch norm cancels a bias
      x = nn.Dense(self.width, kernel_init=kernel_init, use_bias=self.norm != 'batch',
                   dtype=self.dtype)(x)
      x = nn.relu(norm_layer(self.norm, train, False, self.axis_name, self.dtype, norm_labels,
                             self.num_classes)(x))
    return x


def _trunk_of(m: Player) -> MLPTrunk:
  """The MLPTrunk of model `m` (its width, depth, norm and shared fields)."""
  return MLPTrunk(m.width, m.depth, m.norm, m.init_std, m.num_classes, m.axis_name, m.dtype)


class MLPGenerator(Player):
  image_shape: Tuple[int, int, int]
  width: int = 512
  depth: int = 3
  norm: str = 'none'
  label_input: str = ''  # how labels enter: model.gen_label_input ('' = the conditioning's)

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    x, norm_labels = in_scope_of(self, GeneratorInput(self.num_classes, self.conditioning,
                                                      self.norm, self.dtype,
                                                      self.label_input))(z, labels)
    x = in_scope_of(self, _trunk_of(self))(x, train, norm_labels)
    # named: the trunk counts its own Dense_0 ... Dense_{depth-1}, so this module's count
    # would start again at Dense_0, a name in use
    x = nn.Dense(math.prod(self.image_shape), kernel_init=init.kernel_init(self.init_std),
                 dtype=self.dtype, name=f'Dense_{self.depth}')(x)
    return jnp.tanh(x).astype(jnp.float32).reshape(x.shape[0], *self.image_shape)


class MLPCritic(Player):
  width: int = 512
  depth: int = 3
  norm: str = 'none'

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    x = in_scope_of(self, _trunk_of(self))(x.reshape(x.shape[0], -1), train)
    return in_scope_of(self, CriticHeads(self.num_classes, self.conditioning, self.init_std,
                                         self.dtype, embed_dim=self.class_embed_dim))(x, labels)


def build(m, image_shape, common, _):
  """(MLPGenerator, MLPCritic) of model config `m`; `common`: the fields both take (the MLPs
  have no conv layers, so no conv impl)."""
  return (MLPGenerator(image_shape, width=m.width, depth=m.depth, norm=m.gen_norm,
                       label_input=m.gen_label_input, **common),
          MLPCritic(width=critic_width(m), depth=m.depth, norm=m.critic_norm, **common))
