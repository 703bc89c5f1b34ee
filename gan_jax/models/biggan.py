"""The BigGAN family (model.arch 'biggan'): Brock et al. 2019's generator and discriminator, as
BigGAN-PyTorch (the authors' code, BigGAN.py's G_arch / D_arch) builds them at 32, 64, 128 and
256 px, with width ch (model.width for G, model.critic_width for D):

  G: z -> linear -> 4x4 x ins[0], up-blocks of `generator_channels` (BN-ReLU-upsample-conv3x3-
     BN-ReLU-conv3x3, plus the upsampled input through a 1x1 conv), self-attention after the
     block whose output side is model.attention_resolution, then BN-ReLU-conv3x3-tanh.
     Every block's batch norms are conditional (BigGAN's ccbn, conditioning.ConditionalBatchNorm
     'vector'): scale 1 + linear(c), shift linear(c) of c = [shared class embedding, z chunk].
     With model.hierarchical, z is split into len(blocks) + 1 chunks, the first into the
     linear layer, one per block (latent_dim must divide evenly); without, z goes whole into
     the linear layer and c is the embedding alone.
  D: down-blocks of `critic_channels` (resnet.ResBlock, wide: each block's first conv gives its
     output channels; the first block without pre-activation, pooling before its 1x1
     shortcut), self-attention after every block whose output side is the attention
     resolution, ReLU, global sum pool, then the heads (conditioning.CriticHeads: linear plus
     the projection <embed(y), phi> for 'projection').

Initialisation: orthogonal kernels and embeddings (BigGAN's 'ortho') when model.init_std is 0,
N(0, init_std) otherwise (BigGAN-PyTorch's CIFAR 'N02': 0.02). Spectral norm (model.spectral_norm
and gen_spectral_norm, gan_jax/spectral.py) divides every kernel and the projection embedding,
and leaves G's shared embedding alone (`SHARED_EMBED`), as BigGAN-PyTorch does.

Unconditional (num_classes 0): no shared embedding; c is the z chunk (hierarchical) or the
batch norms are plain (not). D's blocks take model.critic_norm (BigGAN: 'none').
"""

import functools
from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax import layers
from gan_jax.models.conditioning import CriticHeads, norm_layer
from gan_jax.models.family import ConvPlayer, check_square, critic_width, in_scope_of
from gan_jax.models.resnet import ResBlock

# G's class embedding: spectral norm leaves it alone (spectral.UNNORMALISED_EMBEDDINGS), as the
# orthogonal penalty does every embedding (losses.orthogonal_penalty)
SHARED_EMBED = 'shared_embed'

# BigGAN-PyTorch's G_arch: side -> (in, out) channels of the up-blocks, in units of ch
_GEN = {32: ([4, 4, 4], [4, 4, 4]),
        64: ([16, 16, 8, 4], [16, 8, 4, 2]),
        128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1]),
        256: ([16, 16, 8, 8, 4, 2], [16, 8, 8, 4, 2, 1])}
# ... and D_arch: side -> (out channels in units of ch, downsamples) of the blocks
_CRITIC = {32: ([4, 4, 4, 4], [True, True, False, False]),
           64: ([1, 2, 4, 8, 16], [True] * 4 + [False]),
           128: ([1, 2, 4, 8, 16, 16], [True] * 5 + [False]),
           256: ([1, 2, 4, 8, 8, 16, 16], [True] * 6 + [False])}
SIDES = tuple(_GEN)
BOTTOM = 4  # G's first map is 4x4


def generator_channels(side: int, ch: int):
  """([in], [out]) channels of G's up-blocks at `side` px."""
  ins, outs = _GEN[side]
  return [ch * c for c in ins], [ch * c for c in outs]


def critic_channels(side: int, ch: int):
  """[(out channels, downsamples)] of D's blocks at `side` px."""
  outs, down = _CRITIC[side]
  return [(ch * c, d) for c, d in zip(outs, down)]


def latent_chunk(side: int, latent_dim: int, hierarchical: bool) -> int:
  """The size of each z chunk (hierarchical: latent_dim / (blocks + 1)); 0 without. Raises
  ValueError unless the chunks are whole and not empty."""
  if not hierarchical:
    return 0
  slots = len(_GEN[side][0]) + 1
  if latent_dim % slots:
    raise ValueError(f"model.hierarchical splits z into {slots} chunks at {side}x{side} (one "
                     f"for the linear layer, one per block), but latent_dim {latent_dim} is "
                     f"not a multiple of {slots}: use e.g. {slots * max(1, latent_dim // slots)}"
                     f" (BigGAN: 120 at 128 px, StudioGAN's CIFAR-10: 80)")
  return latent_dim // slots


def check_size(h: int, w: int) -> None:
  """Raises ValueError unless the images are square of a side BigGAN has an architecture for."""
  check_square('biggan', SIDES, h, w, " (BigGAN-PyTorch's architectures)")


def check_config(m, latent_dim: int, image_shape) -> None:
  """Raises ValueError for a model config the family cannot build for `image_shape`."""
  check_size(*image_shape[:2])
  latent_chunk(image_shape[0], latent_dim, m.hierarchical)
  side = m.attention_resolution
  if side and (side < 8 or side & (side - 1)):
    raise ValueError(f'model.attention_resolution must be 0 (none) or a power of two >= 8 (the '
                     f'side of the blocks\' outputs it follows), got {side}')
  if m.gen_norm != 'batch':
    raise ValueError(f"model.arch='biggan': the generator's batch norms are its conditioning "
                     f"(ccbn): leave model.gen_norm 'batch', got {m.gen_norm!r}")
  if m.gen_label_input:
    raise ValueError("model.arch='biggan': labels enter the generator through its shared "
                     "embedding and conditional batch norms: leave model.gen_label_input ''")


def kernel_init(init_std: float):
  """N(0, init_std) when init_std > 0; BigGAN's orthogonal initialisation otherwise."""
  return nn.initializers.normal(init_std) if init_std > 0 else nn.initializers.orthogonal()


def _max_pool(x):
  return nn.max_pool(x, (2, 2), strides=(2, 2))


class SelfAttention(nn.Module):
  """SAGAN's non-local block as BigGAN-PyTorch's layers.Attention computes it: 1x1 convs (no
  bias) theta and phi to C/8 channels and g to C/2, phi and g max-pooled 2x2, attention
  softmax(theta^T phi) over the pooled positions, o (1x1 conv back to C) of the attended g,
  and x + gamma * o with gamma (params/gamma, a scalar) from 0."""
  kernel_init: nn.initializers.Initializer = nn.initializers.orthogonal()
  conv_impl: str = 'auto'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    """x [B, H, W, C] (H, W even, C a multiple of 8) -> [B, H, W, C]."""
    b, h, w, c = x.shape
    conv = lambda f, name: layers.Conv(f, 1, self.conv_impl, self.kernel_init, use_bias=False,
                                       dtype=self.dtype, stride=1, name=name)
    theta = conv(c // 8, 'theta')(x).reshape(b, h * w, c // 8)
    phi = _max_pool(conv(c // 8, 'phi')(x)).reshape(b, h * w // 4, c // 8)
    g = _max_pool(conv(c // 2, 'g')(x)).reshape(b, h * w // 4, c // 2)
    logits = jnp.einsum('bqc,bkc->bqk', theta, phi).astype(jnp.float32)
    beta = jax.nn.softmax(logits, axis=-1).astype(x.dtype)  # [B, HW, HW / 4]
    o = conv(c, 'o')(jnp.einsum('bqk,bkc->bqc', beta, g).reshape(b, h, w, c // 2))
    gamma = self.param('gamma', nn.initializers.zeros, ())
    return x + gamma.astype(x.dtype) * o


class BigGANGenerator(ConvPlayer):
  """BigGAN's G (module docstring). `width` is ch."""
  image_shape: Tuple[int, int, int]
  width: int = 64
  attention_resolution: int = 64  # 0: none
  hierarchical: bool = True
  shared_dim: int = 128           # the class embedding's size; 0: latent_dim

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    side = self.image_shape[0]
    ins, outs = generator_channels(side, self.width)
    init = kernel_init(self.init_std)
    chunk = latent_chunk(side, z.shape[-1], self.hierarchical)
    if chunk:
      z, *z_blocks = jnp.split(z, len(outs) + 1, axis=-1)
    else:
      z_blocks = [None] * len(outs)
    shared = None
    if self.num_classes > 0:
      if labels is None:
        raise ValueError('a conditional generator needs labels')
      shared = nn.Embed(self.num_classes, self.shared_dim or z.shape[-1], embedding_init=init,
                        dtype=self.dtype, name=SHARED_EMBED)(labels)
    x = nn.Dense(BOTTOM * BOTTOM * ins[0], kernel_init=init, dtype=self.dtype)(z)
    x = x.reshape(x.shape[0], BOTTOM, BOTTOM, ins[0])
    block = functools.partial(ResBlock, resample='up', norm='batch', axis_name=self.axis_name,
                              dtype=self.dtype, conv_impl=self.conv_impl, kernel_init=init,
                              condition='vector')
    for i, (features, z_block) in enumerate(zip(outs, z_blocks)):
      parts = [p for p in (shared, z_block) if p is not None]  # BigGAN: [y, z chunk]
      c = jnp.concatenate(parts, axis=-1) if parts else None
      x = block(features)(x, train, c)
      if BOTTOM * 2 ** (i + 1) == self.attention_resolution:
        x = SelfAttention(init, self.conv_impl, self.dtype)(x)
    x = nn.relu(norm_layer('batch', train, True, self.axis_name, self.dtype)(x))
    x = layers.Conv(self.image_shape[2], 3, self.conv_impl, init, dtype=self.dtype, stride=1)(x)
    return jnp.tanh(x).astype(jnp.float32)


class BigGANCritic(ConvPlayer):
  """BigGAN's D (module docstring). `width` is ch."""
  width: int = 64
  attention_resolution: int = 64  # 0: none
  norm: str = 'none'

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    init = kernel_init(self.init_std)
    for i, (features, down) in enumerate(critic_channels(x.shape[1], self.width)):
      x = ResBlock(features, 'down' if down else None, self.norm, first=i == 0, wide=True,
                   axis_name=self.axis_name, dtype=self.dtype, conv_impl=self.conv_impl,
                   kernel_init=init)(x, train)
      if x.shape[1] == self.attention_resolution:
        x = SelfAttention(init, self.conv_impl, self.dtype)(x)
    x = jnp.sum(nn.relu(x), axis=(1, 2))  # [B, C]
    return in_scope_of(self, CriticHeads(self.num_classes, self.conditioning, self.init_std,
                                         self.dtype, kernel_init=init, embedding_init=init,
                                         embed_dim=self.class_embed_dim))(x, labels)


def build(m, image_shape, common, conv_impl):
  """(BigGANGenerator, BigGANCritic) of model config `m`; `common`: the fields both take."""
  return (BigGANGenerator(image_shape, width=m.width, attention_resolution=m.attention_resolution,
                          hierarchical=m.hierarchical, shared_dim=m.shared_dim,
                          conv_impl=conv_impl, **common),
          BigGANCritic(width=critic_width(m), attention_resolution=m.attention_resolution,
                       norm=m.critic_norm, conv_impl=conv_impl, **common))
