"""DCGAN (Radford et al. 2015): non-saturating loss from logits, Adam(2e-4, b1 = 0.5), batch
norm in G and D, N(0, 0.02) init, one D and one G update per iteration, batch 128.

  python main.py --config=configs/dcgan.py:fashion_mnist \
      --config.dataset.path=/usr/share/datasets/fashion-mnist --workdir=/tmp/dcgan_fmnist
  # 2-core CPU, 10 min (2114 iterations): domain FID 15.6, classifier score 5.69 (docs/results.md)
  python main.py --config=configs/dcgan.py:cifar10 --workdir=/tmp/dcgan_cifar

cifar10: 4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x3 (kernel 4, width 128); 28x28 data: width 64.

Options:
  runlocal  seconds on a CPU (what the tests use)
  mlp       fully connected G and D, width 512
  size64    the paper's 64x64 model, 4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x128 -> 64x64
            (width 128); sets dataset.image_size, for a dataset that resizes:
            `python main.py --config=configs/dcgan.py:digits,size64 --workdir=/tmp/dcgan_64`
  size128   one stride-2 layer more, width 64 (4x4x1024 -> ... -> 64x64x64 -> 128x128)
  modern    the same models with what moves FID beyond the paper (StudioGAN's advice): spectral
            norm in place of the critic's batch norm, the hinge loss, DiffAugment (color,
            translation, cutout) and an EMA of the generator (decay 0.999 from step 1000), which
            samples and evaluations use (docs/toolkit.md scores it)
"""

from configs import common
from gan_jax import models

OPTIONS = ('mlp', 'modern', *common.SIZE_OPTIONS)


def get_config(arg=None):
  dataset, options = common.parse_arg(arg, OPTIONS)
  c = common.base_config('dcgan', dataset)
  c.batch_size = 128
  c.num_steps = 50_000
  c.n_critic = 1
  c.latent_dim = 100
  c.model.kernel_size = 4
  c.model.width = 128 if dataset == 'cifar10' else 64
  c.model.gen_norm = 'batch'
  c.model.critic_norm = 'batch'
  c.model.init_std = 0.02
  c.gen_optimizer = common.optimizer('adam', 2e-4, b1=0.5, b2=0.999)
  c.critic_optimizer = common.optimizer('adam', 2e-4, b1=0.5, b2=0.999)
  size = common.image_size_option(c, options)
  if size:  # 1024 channels at 4x4, as in the paper's 64x64 model
    c.model.width = 1024 // 2 ** (models.conv_levels(size) - 1)
  if 'mlp' in options:
    c.model.arch = 'mlp'
    c.model.width = 512
  if 'modern' in options:
    c.model.critic_norm = 'none'   # spectral norm takes the place of the critic's batch norm
    c.model.spectral_norm = True
    c.loss.adversarial = 'hinge'
    c.augment.policy = 'color,translation,cutout'
    c.ema.decay = 0.999
    c.ema.start_step = 1000
  if 'runlocal' in options:
    common.runlocal(c)
  return c
