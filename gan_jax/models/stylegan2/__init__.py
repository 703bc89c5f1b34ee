"""The StyleGAN2 family (model.arch 'stylegan2'; Karras et al. 2020, as stylegan2-ada-pytorch
builds it): its operations (ops.py), networks (networks.py) and the registry's pair, here.

`StyleGAN2Generator` wraps networks.GeneratorNetwork (mapping then 'skip' synthesis) and
`StyleGAN2Critic` networks.DiscriminatorNetwork ('resnet' or 'orig', minibatch std) behind the
registry's contract: G (z, labels, train) -> images [B, R, R, C], D (x, labels, train) ->
(scores [B], None). Their parameters keep the official names (mapping/fc0/weight,
b32/conv0/weight) at the top of each player's tree.

Channels at resolution r are min(model.channel_base / r, model.channel_max) in G and D alike;
model.latent_dim is z_dim. Conditional runs take conditioning 'projection': G embeds the one-hot
label in its mapping network, D projects its output onto the label's mapping (cmap).

Beside the parameters, G's 'batch_stats' hold the mapping's w_avg and the synthesis layers'
fixed noise constants. model.noise_mode 'random' draws each layer's noise from the 'noise' PRNG
stream: the trainer and the sampler give G one (`Family.noise`). The images are not squashed
(the official generator's are not either): samples are clipped to [-1, 1] where they are saved.
"""

from typing import Optional, Tuple

import flax.linen as nn
import jax.numpy as jnp

from gan_jax.models.family import Player, check_square, in_scope_of
from gan_jax.models.stylegan2.networks import (NOISE_MODES, DiscriminatorNetwork,
                                               GeneratorNetwork, generator_num_ws)

SIDES = (32, 64, 128, 256)
CRITIC_ARCHITECTURES = ('resnet', 'orig')


def check_size(h: int, w: int) -> None:
  """Raises ValueError unless the images are square of a side the family builds."""
  check_square('stylegan2', SIDES, h, w)


def check_config(m, latent_dim: int, image_shape) -> None:
  """Raises ValueError for a model config the family cannot build for `image_shape`."""
  del latent_dim  # any z_dim
  check_size(*image_shape[:2])
  if m.gen_label_input:
    raise ValueError("model.arch='stylegan2': labels enter the generator through its mapping "
                     "network's embedding: leave model.gen_label_input ''")
  if m.spectral_norm or m.gen_spectral_norm:
    raise ValueError("model.arch='stylegan2' has equalised learning rates, not spectral norm: "
                     "set model.spectral_norm and model.gen_spectral_norm False")
  if m.gen_norm != 'none' or m.critic_norm != 'none':
    raise ValueError("model.arch='stylegan2' has no normalisation layers (G demodulates): "
                     "leave model.gen_norm and model.critic_norm 'none'")


def _clamp(conv_clamp: float) -> Optional[float]:
  return conv_clamp or None   # model.conv_clamp 0: no clamp


class StyleGAN2Generator(Player):
  """The official Generator behind the registry's (z, labels, train) (module docstring), and
  its halves `map` (z, labels -> ws [B, num_ws, w_dim]) and `synthesize` (ws -> images), which
  style mixing and the path length penalty take (`apply(..., method='map')`)."""
  image_shape: Tuple[int, int, int]
  channel_base: int = 32768
  channel_max: int = 512
  w_dim: int = 512
  mapping_layers: int = 8
  conv_clamp: float = 256.0        # 0: none
  noise_mode: str = 'random'
  conv_impl: str = 'xla'           # the convolutions' form (layers.resolve: 'hybrid' on a CPU)

  @property
  def num_ws(self) -> int:
    return generator_num_ws(self.image_shape[0])

  @nn.compact
  def _network(self, z_dim: int) -> GeneratorNetwork:
    """The network, its layers in this module's scope. `z_dim` > 0 says the mapping takes z
    (its first layer's size comes from z itself): `synthesize`, which has no z, passes 1."""
    return in_scope_of(self, GeneratorNetwork(
        self.image_shape[0], self.image_shape[2], self.num_classes, z_dim, self.w_dim,
        self.mapping_layers, self.channel_base, self.channel_max, _clamp(self.conv_clamp),
        axis_name=self.axis_name, conv_impl=self.conv_impl))

  def _labels(self, labels):
    if self.num_classes > 0 and labels is None:
      raise ValueError('a conditional generator needs labels')
    return labels if self.num_classes else None

  def __call__(self, z, labels=None, train: bool = True, truncation_psi: float = 1.0):
    """Images of z and labels; `truncation_psi` < 1 pulls every w toward w_avg."""
    images = self._network(z.shape[-1])(z, self._labels(labels), train, truncation_psi,
                                        noise_mode=self.noise_mode)
    return images.astype(jnp.float32)

  def map(self, z, labels=None, train: bool = True, skip_w_avg_update: bool = False):
    """ws [B, num_ws, w_dim] of z and labels (in training w_avg moves, unless
    `skip_w_avg_update`)."""
    return self._network(z.shape[-1]).map(z, self._labels(labels), train,
                                          skip_w_avg_update=skip_w_avg_update)

  def synthesize(self, ws, train: bool = True):
    """Images [B, R, R, C] of ws [B, num_ws, w_dim]."""
    return self._network(1).synthesize(ws, train, self.noise_mode).astype(jnp.float32)


class StyleGAN2Critic(Player):
  """The official Discriminator behind the registry's (x, labels, train) -> (scores [B], None);
  conditional (conditioning 'projection') through cmap."""
  channel_base: int = 32768
  channel_max: int = 512
  conv_clamp: float = 256.0        # 0: none
  mbstd_group_size: int = 4        # 0: the whole batch
  architecture: str = 'resnet'
  conv_impl: str = 'xla'           # as the generator's

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    del train  # no batch statistics
    c_dim = self.num_classes if self.conditioning == 'projection' else 0
    if c_dim and labels is None:
      raise ValueError('a projection critic needs labels')
    net = in_scope_of(self, DiscriminatorNetwork(
        x.shape[1], c_dim, self.architecture, self.channel_base, self.channel_max,
        _clamp(self.conv_clamp), mbstd_group_size=self.mbstd_group_size or None,
        conv_impl=self.conv_impl))
    scores = net(x.astype(jnp.float32), labels if c_dim else None)
    return scores[:, 0], None


def build(m, image_shape, common, conv_impl):
  """(StyleGAN2Generator, StyleGAN2Critic) of model config `m`; `common`: the fields both
  take. A conditional pair needs conditioning 'projection'."""
  if common['num_classes'] > 0 and common['conditioning'] != 'projection':
    raise ValueError(f"model.arch='stylegan2' is conditioned by projection (the mapping's "
                     f"embedding in G, cmap in D): set model.conditional='projection' or "
                     f"'none', got {common['conditioning']!r}")
  shared = dict(channel_base=m.channel_base, channel_max=m.channel_max,
                conv_clamp=m.conv_clamp, conv_impl=conv_impl, **common)
  return (StyleGAN2Generator(image_shape, w_dim=m.w_dim, mapping_layers=m.mapping_layers,
                             noise_mode=m.noise_mode, **shared),
          StyleGAN2Critic(mbstd_group_size=m.mbstd_group_size,
                          architecture=m.critic_architecture, **shared))


__all__ = ['CRITIC_ARCHITECTURES', 'NOISE_MODES', 'SIDES', 'StyleGAN2Critic',
           'StyleGAN2Generator', 'build', 'check_config', 'check_size']
