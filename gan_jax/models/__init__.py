"""Generators and critics (discriminators) for the four GANs, by family.

`build` makes the pair of `config.model.arch`'s family, each a module of its own:
  * 'conv':   DCGAN-style transposed-conv generator and strided-conv critic (conv.py), growing
              with the image size.
  * 'resnet': the WGAN-GP paper's CIFAR-10 ResNet up to 32x32, its 64x64 ResNet from 64x64
              (resnet.py).
  * 'mlp':    fully connected G and D (mlp.py).
  * 'biggan': BigGAN's ResNets with self-attention, hierarchical z and a shared class
              embedding into conditional batch norms, at 32 to 256 px (biggan.py).
  * 'stylegan2': StyleGAN2's mapping and 'skip' synthesis networks with noise inputs, its
              'resnet' / 'orig' discriminator, at 32 to 256 px (stylegan2/).
A new family is a module with a `build` and a `check_size`, and one entry in ARCHITECTURES.

Every generator takes `(z, labels, train)`, every critic `(x, labels, train)` and returns
`(adv_logits [B], class_logits [B, K] or None)`. A model with num_classes > 0 is conditioned as
its `conditioning` field says, 'acgan' or 'projection' (conditioning.py, which also holds the
generator's input, the critic's heads and the norm layers every family shares). num_classes = 0
is unconditional (labels unused). Images are NHWC in [-1, 1]. Every generator and critic is a
`family.Player`: the fields `build` gives both alike.
"""

from typing import Any, Optional, Sequence

import jax.numpy as jnp

from gan_jax import layers
from gan_jax.models import biggan, conv, mlp, resnet, stylegan2
from gan_jax.models.biggan import BigGANCritic, BigGANGenerator, SelfAttention
from gan_jax.models.conditioning import (CONDITIONINGS, LABEL_INPUTS, ConditionalBatchNorm,
                                         CriticHeads, GeneratorInput, check_conditioning,
                                         label_input_of)
from gan_jax.models.conv import ConvCritic, ConvGenerator, conv_channels, conv_levels, pyramid
from gan_jax.models.family import Family
from gan_jax.models.mlp import MLPCritic, MLPGenerator, MLPTrunk
from gan_jax.models.resnet import (ResBlock, ResNetCritic, ResNetGenerator, is_cifar_resnet,
                                   resnet_channels)

# model.arch -> its family: (model config, image shape, shared fields, conv layers' impl) ->
# (generator, critic), and the image sizes it takes
ARCHITECTURES = {
    'conv': Family(conv.build, conv.check_size),
    'resnet': Family(resnet.build, resnet.check_size),
    'mlp': Family(mlp.build, mlp.check_size),
    'biggan': Family(biggan.build, biggan.check_size, biggan.check_config),
    'stylegan2': Family(stylegan2.build, stylegan2.check_size, stylegan2.check_config,
                        noise=True, conditionings=('projection',), styles=True),
}
ARCHS = tuple(ARCHITECTURES)


def check_image_shape(arch: str, image_shape: Sequence[int]) -> None:
  """Raises ValueError naming the supported sizes when `arch` cannot take `image_shape`."""
  if arch not in ARCHS:
    raise ValueError(f'unknown model.arch {arch!r}; choose one of {", ".join(ARCHS)}')
  if len(image_shape) != 3:
    raise ValueError(f'images must be H x W x C, got shape {tuple(image_shape)}')
  h, w, c = image_shape
  if c not in (1, 3):
    raise ValueError(f'images must have 1 or 3 channels, got {c}')
  ARCHITECTURES[arch].check_size(h, w)


def check_model(model_config, latent_dim: int, image_shape: Sequence[int]) -> None:
  """Raises ValueError when `model_config.arch` cannot take `image_shape`, or its family cannot
  build the model its fields and latent_dim describe."""
  check_image_shape(model_config.arch, image_shape)
  family = ARCHITECTURES[model_config.arch]
  if family.check_config:
    family.check_config(model_config, latent_dim, tuple(image_shape))


def build(model_config, image_shape, num_classes: int, axis_name: Optional[str] = None,
          dtype: Any = jnp.float32, conditioning: str = 'acgan', platform: Optional[str] = None):
  """Returns (generator, critic) modules for `model_config` and the data's image shape
  (`axis_name`: pmap's device axis, for synced batch norm; `dtype`: computation dtype;
  `conditioning`: how num_classes > 0 is used (CONDITIONINGS); `platform`: where
  they will run, which picks conv_impl 'auto''s layers, default this host's backend)."""
  check_image_shape(model_config.arch, image_shape)
  check_conditioning(conditioning)
  conv_impl = layers.resolve(model_config.conv_impl, platform)
  common = dict(init_std=model_config.init_std, num_classes=num_classes,
                conditioning=conditioning, axis_name=axis_name, dtype=dtype,
                class_embed_dim=model_config.class_embed_dim)
  image_shape = tuple(int(s) for s in image_shape)
  return ARCHITECTURES[model_config.arch].build(model_config, image_shape, common, conv_impl)


# What callers reach as models.NAME.
__all__ = [
    'ARCHITECTURES', 'ARCHS', 'BigGANCritic', 'BigGANGenerator', 'CONDITIONINGS', 'LABEL_INPUTS',
    'ConditionalBatchNorm', 'ConvCritic', 'ConvGenerator', 'CriticHeads', 'Family',
    'GeneratorInput', 'MLPCritic', 'MLPGenerator', 'MLPTrunk', 'ResBlock', 'ResNetCritic',
    'ResNetGenerator', 'SelfAttention', 'build', 'check_conditioning', 'check_image_shape',
    'check_model', 'conv_channels', 'conv_levels', 'is_cifar_resnet', 'label_input_of',
    'pyramid', 'resnet_channels',
]
