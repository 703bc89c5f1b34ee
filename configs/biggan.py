"""BigGAN (Brock et al. 2019): model.arch 'biggan' (self-attention, hierarchical z, a shared
class embedding into conditional batch norms, the projection discriminator), hinge loss,
spectral norm in G and D with Miyato et al.'s estimate (BigGAN-PyTorch's), orthogonal
initialisation, an EMA of G. docs/biggan.md has the architectures and the reference checks.

  python main.py --config=configs/biggan.py:cifar10 --workdir=/tmp/biggan_cifar
  # not run here; StudioGAN's BigGAN with these settings: FID 8.03 in its benchmark (its log,
  # logs/CIFAR10/BigGAN-train-2021_01_15_14_48_48.log, reaches 8.05 at step 90k)
  python main.py --config=configs/biggan.py:imagenet_resized/64x64 --workdir=/tmp/biggan_64
  python main.py --config=configs/biggan.py:imagenet_resized/64x64,size128 \
      --config.dataset.path=/data/imagenet/train --workdir=/tmp/biggan_128   # a folder
  # not run here; BigGAN-PyTorch's 128 px run (8 V100s, 15 days): FID 9.77, IS 87.4 at 130k
  # iterations (its logs/BigGAN_ch96_bs256x8.jsonl)

Settings by image side:
  32 (cifar10; fashion_mnist, mnist and digits are resized to 32): StudioGAN's CIFAR-10 BigGAN
     (src/configs/CIFAR10/BigGAN.yaml and its defaults): G ch 96 (384 channels), D 192 channels
     (critic_width 48), z 80 in 4 chunks, shared embedding 128, self-attention at 16x16 in G and
     D, Adam(2e-4, b1 0.5, b2 0.999) for both, n_critic 5, batch 64, 100k generator updates,
     EMA 0.9999 from update 1000, no orthogonal regularisation. (BigGAN-PyTorch's own default
     attention, 64, has none at 32 px: --config.model.attention_resolution=0.)
  64, 128 (imagenet_resized/64x64, `size128`, folders, tfds:imagenet2012): the paper's ImageNet
     settings: ch 96 in G and D, z 120 in chunks, shared embedding 128, self-attention at 64x64,
     Adam(5e-5 G, 2e-4 D, b1 0, b2 0.999), n_critic 2, batch 2048, orthogonal regularisation
     1e-4, EMA 0.9999 from update 20k (BigGAN-PyTorch's launch script), 150k generator updates
     (BigGAN-PyTorch's run).
Labels are the dataset's: unlabelled data trains with --config.model.conditional=none.

Options:
  small      a CPU-sized 32 px model: the StudioGAN settings above with G ch 16 (64 channels)
             and D critic_width 8 (32 channels): 185 GFLOP per iteration (gan_jax/flops.py)
             against 6,530 at the full widths, 1.71-1.83 s an iteration on a 2-core Intel
             Xeon (benchmark.py). experiments/stylegan2_table.py's wallclock grid uses it
             beside DCGAN, SNGAN and StyleGAN2's 'small'
  runlocal   seconds on a CPU (what the tests use)
  size64     dataset.image_size 64 (the ImageNet settings)
  size128    dataset.image_size 128
"""

import math

from configs import common

OPTIONS = ('small', *common.SIZE_OPTIONS)


def get_config(arg=None):
  dataset, options = common.parse_arg(arg, OPTIONS)
  c = common.base_config('biggan', dataset)
  if not common.image_size_option(c, options) and c.dataset.image_size < 32:
    c.dataset.image_size = 32      # fashion_mnist, mnist, digits: BigGAN's smallest model
  c.model.arch = 'biggan'
  c.model.gen_norm = 'batch'
  c.model.critic_norm = 'none'
  c.model.spectral_norm = True
  c.model.gen_spectral_norm = True
  c.model.spectral_estimate = 'uv'
  c.model.hierarchical = True
  c.model.shared_dim = 128
  c.model.init_std = 0.0           # orthogonal
  c.ema.decay = 0.9999
  if c.dataset.image_size <= 32:   # StudioGAN's CIFAR-10 BigGAN
    c.model.width = 96
    c.model.critic_width = 48
    c.model.attention_resolution = 16
    c.latent_dim = 80
    c.batch_size = 64
    c.n_critic = 5
    c.num_steps = 100_000
    c.ema.start_step = 1000
    c.gen_optimizer = common.optimizer('adam', 2e-4, b1=0.5, b2=0.999)
    c.critic_optimizer = common.optimizer('adam', 2e-4, b1=0.5, b2=0.999)
  else:                            # the paper's ImageNet settings
    c.model.width = 96
    c.model.critic_width = 0       # model.width
    c.model.attention_resolution = 64
    c.latent_dim = 120
    c.batch_size = 2048
    c.n_critic = 2
    c.num_steps = 150_000
    c.ema.start_step = 20_000
    c.loss.ortho_weight = 1e-4
    c.gen_optimizer = common.optimizer('adam', 5e-5, b1=0.0, b2=0.999)
    c.critic_optimizer = common.optimizer('adam', 2e-4, b1=0.0, b2=0.999)
  if 'small' in options:
    if c.dataset.image_size != 32:
      raise ValueError(f"'small' is a 32 px model; this dataset is {c.dataset.image_size} px")
    c.model.width = 16             # G: 64 channels
    c.model.critic_width = 8       # D: 32 channels
  if 'runlocal' in options:
    common.runlocal(c)
    c.model.width = 2              # G: 8 channels at 32 px (4 ch), 32 at the 4x4 map of 64+
    c.model.critic_width = 2
    c.model.shared_dim = 8
    c.latent_dim = 4 * (int(math.log2(c.dataset.image_size // 4)) + 1)  # 4 per chunk
  return c
