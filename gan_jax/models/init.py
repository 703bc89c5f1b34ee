"""The initialisers of the models' weights: the paper's N(0, std) or Flax's defaults."""

import flax.linen as nn


def kernel_init(init_std: float):
  """N(0, init_std) when init_std > 0 (WGAN, DCGAN); Flax's default otherwise."""
  if init_std > 0:
    return nn.initializers.normal(init_std)
  return nn.linear.default_kernel_init


def embed_init(init_std: float):
  """N(0, init_std) when init_std > 0; otherwise LeCun normal over the feature axis (Flax's
  Embed default has variance 1): a class's row of the projection embedding is then drawn like the
  adversarial head's kernel, so <embed(y), phi> starts at the scale of linear(phi)."""
  if init_std > 0:
    return nn.initializers.normal(init_std)
  return nn.initializers.variance_scaling(1.0, 'fan_in', 'truncated_normal', in_axis=-1,
                                          out_axis=-2)
