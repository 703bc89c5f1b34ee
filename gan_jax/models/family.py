"""What every family of models shares: its entry in the arch registry and the config fields
its builder reads alike."""

from typing import Callable, NamedTuple


class Family(NamedTuple):
  """A model.arch: how to build its pair of modules and which image shapes it takes."""
  # (model config, image shape, shared fields, conv layers' impl) -> (generator, critic)
  build: Callable
  # (height, width) -> None; raises ValueError naming the sizes the family takes
  check_size: Callable


def critic_width(m) -> int:
  """The critic's width: model.critic_width, or model.width (0)."""
  return m.critic_width or m.width
