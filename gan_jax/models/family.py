"""What every family of models shares: its entry in the arch registry, the fields its
generator and critic declare alike (`Player`, `ConvPlayer`), and the sub-modules that make their
layers in the model's own scope (`in_scope_of`)."""

from typing import Any, Callable, NamedTuple, Optional, Tuple

import flax.linen as nn
import jax.numpy as jnp


class Family(NamedTuple):
  """A model.arch: how to build its pair of modules and which image shapes it takes."""
  # (model config, image shape, shared fields, conv layers' impl) -> (generator, critic)
  build: Callable
  # (height, width) -> None; raises ValueError naming the sizes the family takes
  check_size: Callable
  # (model config, latent_dim, image shape) -> None; raises ValueError for a combination of
  # its own fields the family cannot build (None: every one it takes the size of)
  check_config: Optional[Callable] = None
  # the generator draws from a 'noise' PRNG stream (StyleGAN2's noise inputs): the trainer and
  # the sampler give it one
  noise: bool = False
  # the model.conditional values a conditional pair takes (): any)
  conditionings: Tuple[str, ...] = ()
  # the generator maps z to ws [B, num_ws, w_dim] and synthesises images from them (its
  # methods `map` and `synthesize`, StyleGAN2's): style mixing and the path length penalty
  # work on them, and sampling's truncation is psi toward w_avg (G's truncation_psi), not a
  # threshold on z
  styles: bool = False


class Player(nn.Module, kw_only=True):
  """The fields of every generator and critic, the `common` of each family's `build`.

  Keyword-only, so a generator's own fields (`image_shape` first, without a default) follow
  them in its dataclass and `ConvGenerator(image_shape, width=...)` still reads as it does.
  """
  init_std: float = 0.0            # N(0, init_std) kernels; 0: Flax's defaults (init.py)
  num_classes: int = 0             # 0: unconditional (labels unused)
  conditioning: str = 'acgan'      # how num_classes > 0 is used (conditioning.CONDITIONINGS)
  class_embed_dim: int = 512       # conditioning 'd2d': the critic's class embedding size
  axis_name: Optional[str] = None  # pmap's device axis, for synced batch norm
  dtype: Any = jnp.float32         # computation dtype (parameters stay float32)


class ConvPlayer(Player, kw_only=True):
  """A Player with conv layers (the conv and resnet families)."""
  conv_impl: str = 'auto'          # layers.Conv's forms: 'hybrid' | 'fast' | 'xla'


def in_scope_of(parent: nn.Module, child: nn.Module) -> nn.Module:
  """`child`, made a part of `parent`: its layers are created in `parent`'s scope.

  A sub-module nests its layers under its own name (params/CriticHeads_0/adv_head); sharing the
  scope keeps them where checkpoints hold them (params/adv_head), and since Flax draws a layer's
  initial values from its path, keeps those values too. The child's own layers are auto-named
  by the child, so a layer `parent` makes after them of the same kind takes an explicit name.
  """
  nn.share_scope(parent, child)
  return child


def critic_width(m) -> int:
  """The critic's width: model.critic_width, or model.width (0)."""
  return m.critic_width or m.width


def check_square(arch: str, sides, h: int, w: int, source: str = '') -> None:
  """Raises ValueError unless the images are square of one of `sides` (a family that builds
  its architecture per side; `source`: where those architectures come from, said after them)."""
  if not (h == w and h in sides):
    raise ValueError(f"model.arch={arch!r} takes square images of side "
                     f"{', '.join(map(str, sides))}{source}, got {h}x{w}; resize the data "
                     f"(dataset.image_size) or use another model.arch")
