"""StyleGAN2-ADA (Karras et al. 2020) as its train.py configures it: model.arch 'stylegan2', the
non-saturating logistic loss, lazy R1 every 16 critic updates, for 'auto' style mixing (0.9)
and the lazy path length penalty (weight 2, every 4 generator updates), Adam(b1 0, b2 0.99,
eps 1e-8) with the lazy-regularisation adjustment, an EMA of G by half-life with ramp-up, and
ADA ('bgc', p from 0 toward E[sign(D(real))] = 0.6, moved every 4 minibatches by batch * 4 /
500k).
docs/stylegan2.md has what is checked against the official code.

  python main.py --config=configs/stylegan2.py:cifar10 --workdir=/tmp/sg2_cifar
  # not run here; the ADA paper's conditional CIFAR-10 ('cifar', 2 V100s): FID 2.42 with ADA
  python main.py --config=configs/stylegan2.py:fashion_mnist,runlocal --workdir=/tmp/sg2
  python main.py --config=configs/stylegan2.py:celeb_a --config.dataset.path=/data/faces \
      --workdir=/tmp/sg2_faces        # a folder, 'auto' settings at 64 px
  python experiments/stylegan2_table.py --grid=wallclock --out=/tmp/sg2_table  # 'small'
  # against DCGAN, SNGAN and BigGAN on Fashion-MNIST at 32 px, 600 s each (docs/results.md)

Settings (train.py's cfg_specs):
  cifar (cifar10, or the option on any 32 px data): ref_gpus 2, batch 64, minibatch-std groups of
     32 (the batch per GPU), fmaps 1 (channel_base 32768, channel_max 512: 512 channels at every
     resolution), lr 0.0025, gamma 0.01, EMA half-life 500k images, ramp-up 0.05, mapping 2
     layers, D 'orig', 100M images, no style mixing and no path length penalty (style_mixing 0,
     pl_weight 0); conditional (projection: the mapping's embedding, D's cmap).
  auto (every other dataset, 32 to 256 px), for 8 GPUs: batch max(min(8 min(4096 / res, 32),
     64), 8) = 64, groups min(batch / 8, 4) = 4, fmaps 0.5 (channel_base 16384), lr 0.0025,
     gamma 0.0002 res^2 / batch, EMA half-life batch 10 / 32 = 20k images, ramp-up 0.05,
     mapping 2 layers, D 'resnet', 25M images, style mixing 0.9 and the path length penalty
     (weight 2, on batch / 2, pl_mean's rate 0.01: StyleGAN2Loss's defaults); unconditional.
Both: z and w 512, conv_clamp 256, G and D in float32 (the official trains its 4 finest
resolutions in float16). Lazy regularisation: R1 every 16th critic update, weighted gamma / 2
times 16, and the path length penalty every 4th generator update, times 4; both optimizers'
lr and betas adjusted by mb_ratio = interval / (interval + 1), D's with 16, G's with 4 (as the
official, also for 'cifar' without the penalty). The official takes each regulariser in a
separate Adam step (17 steps per 16 minibatches, 5 per 4); here it joins its update's loss.

Options:
  cifar      the 'cifar' settings on any dataset
  auto       the 'auto' settings (cifar10 unconditional by them)
  small      a CPU-sized 'auto': the 'auto' settings for one GPU (batch 32, minibatch-std groups
             of 4, gamma 0.0002 res^2 / 32 = 0.0064 at 32 px, EMA half-life 10k images, lr
             0.0025, 781,250 steps) with channel_base 1024, channel_max 128 (128, 128, 64, 32
             channels at 4, 8, 16, 32 px) and z and w 128; mapping 2 layers, style mixing, the
             path length penalty and ADA as 'auto'. At 32x32x1: G 748,715 and D 871,521
             parameters, 61.1 GFLOP per iteration by gan_jax/flops.py (R1 and the penalty
             counted on every iteration; about 38 at their intervals); 0.29 s an iteration on
             a 2-core AMD EPYC (benchmark.py, docs/stylegan2.md "On a CPU").
             experiments/stylegan2_table.py uses it.
  paper256   the ADA paper's 256 px setting (train.py's 'paper256', its FFHQ/LSUN runs at 256x256,
             for 8 GPUs): batch 64, minibatch-std groups of 8, fmaps 0.5 (64 to 512 channels),
             lr 0.0025, gamma 1, mapping 8 layers, EMA half-life 20k images without ramp-up,
             25M images; style mixing, the path length penalty and ADA as 'auto'; 256 px
             unless a size option says otherwise
  size64     dataset.image_size 64
  size128    dataset.image_size 128
  size256    dataset.image_size 256
  noada      no augmentation (train.py's --aug=noaug)
  runlocal   seconds on a CPU (what the tests use): 32 px, 4-16 channels, R1 and the path
             length penalty every 2nd update, p moving every update by 0.1 (ada_kimg 0.16 at
             its batch of 16)
"""

from configs import common

SIZE_OPTIONS = {**common.SIZE_OPTIONS, 'size256': 256}   # the official configs' 32 to 256 px
SPECS = ('cifar', 'auto', 'small', 'paper256')
OPTIONS = (*SPECS, 'noada', *SIZE_OPTIONS)
R1_EVERY, GEN_REG_EVERY = 16, 4     # the official D_reg_interval and G_reg_interval
# train.py's cfg_specs: the fixed 'cifar' spec
CIFAR = dict(gpus=2, kimg=100_000, batch=64, mbstd=32, fmaps=1.0, lr=0.0025, gamma=0.01,
             ema_kimg=500, ramp=0.05, mapping=2, style_mixing=0.0, pl_weight=0.0)
# StyleGAN2Loss's defaults, which train.py keeps but for 'cifar'
STYLE_MIXING, PL_WEIGHT, PL_BATCH_SHRINK, PL_DECAY = 0.9, 2.0, 2, 0.01
# train.py's cfg_specs: 'paper256' (ramp None: no ramp-up)
PAPER256 = dict(gpus=8, kimg=25_000, batch=64, mbstd=8, fmaps=0.5, lr=0.0025, gamma=1.0,
                ema_kimg=20, ramp=0.0, mapping=8, style_mixing=STYLE_MIXING, pl_weight=PL_WEIGHT)
# 'small': 'auto' for one GPU with these widths (channels min(channel_base / res, channel_max))
SMALL = dict(gpus=1, channel_base=1024, channel_max=128, w_dim=128)


def auto_spec(res: int, gpus: int = 8) -> dict:
  """train.py's 'auto' spec at resolution `res` for `gpus` GPUs."""
  batch = max(min(gpus * min(4096 // res, 32), 64), gpus)
  return dict(gpus=gpus, kimg=25_000, batch=batch, mbstd=min(batch // gpus, 4),
              fmaps=1.0 if res >= 512 else 0.5, lr=0.002 if res >= 1024 else 0.0025,
              gamma=0.0002 * res ** 2 / batch, ema_kimg=batch * 10 / 32, ramp=0.05, mapping=2,
              style_mixing=STYLE_MIXING, pl_weight=PL_WEIGHT)


def lazy_adam(lr: float, interval: int, b1: float = 0.0, b2: float = 0.99):
  """Adam with the official lazy-regularisation adjustment: lr and betas ** mb_ratio."""
  ratio = interval / (interval + 1)
  return common.optimizer('adam', lr * ratio, b1=b1 ** ratio, b2=b2 ** ratio)


def get_config(arg=None):
  dataset, options = common.parse_arg(arg, OPTIONS)
  if len(set(SPECS) & options) > 1:
    raise ValueError("choose one of the options 'cifar', 'auto', 'small' and 'paper256'")
  c = common.base_config('stylegan2', dataset)
  if not common.image_size_option(c, options, SIZE_OPTIONS):
    if 'paper256' in options:
      c.dataset.image_size = 256
    elif c.dataset.image_size < 32:
      c.dataset.image_size = 32    # fashion_mnist, mnist, digits: the smallest networks
  small = 'small' in options
  cifar = 'cifar' in options or (dataset == 'cifar10' and not set(SPECS) & options)
  spec = (CIFAR if cifar else PAPER256 if 'paper256' in options else
          auto_spec(c.dataset.image_size, SMALL['gpus'] if small else 8))
  c.model.arch = 'stylegan2'
  c.model.conditional = 'projection' if cifar else 'none'
  c.model.channel_base = int(spec['fmaps'] * 32768)
  c.model.channel_max = 512
  c.model.w_dim = 512
  c.model.mapping_layers = spec['mapping']
  c.model.conv_clamp = 256.0
  c.model.mbstd_group_size = spec['mbstd']
  c.model.critic_architecture = 'orig' if cifar else 'resnet'
  c.model.noise_mode = 'random'
  c.model.style_mixing = spec['style_mixing']
  c.latent_dim = 512
  c.batch_size = spec['batch']
  c.n_critic = 1
  c.num_steps = int(spec['kimg'] * 1000 // spec['batch'])
  c.loss.r1_weight = spec['gamma']
  c.loss.r1_every = R1_EVERY
  c.loss.pl_weight = spec['pl_weight']
  c.loss.pl_every = GEN_REG_EVERY
  c.loss.pl_batch_shrink = PL_BATCH_SHRINK
  c.loss.pl_decay = PL_DECAY
  # EMA: beta = 0.5 ** (batch / half-life), the half-life at most ramp times the images seen
  c.ema.decay = 0.5 ** (spec['batch'] / (spec['ema_kimg'] * 1000))
  c.ema.start_step = 0
  c.ema.rampup = spec['ramp']
  c.gen_optimizer = lazy_adam(spec['lr'], GEN_REG_EVERY)
  c.critic_optimizer = lazy_adam(spec['lr'], R1_EVERY)
  if 'noada' not in options:  # train.py's defaults: --aug=ada --augpipe=bgc --target=0.6
    c.augment.ada = 'bgc'
    c.augment.ada_p = 0.0
    c.augment.ada_target = 0.6
    c.augment.ada_interval = 4
    c.augment.ada_kimg = 500.0
  if small:
    c.model.channel_base = SMALL['channel_base']
    c.model.channel_max = SMALL['channel_max']
    c.model.w_dim = SMALL['w_dim']
    c.latent_dim = SMALL['w_dim']
  if 'runlocal' in options:
    common.runlocal(c)
    c.dataset.image_size = 32
    c.model.channel_base = 128     # 16, 16, 8, 4 channels at 4, 8, 16, 32 px
    c.model.channel_max = 16
    c.model.w_dim = 16
    c.model.mbstd_group_size = 4
    c.loss.r1_every = 2            # both R1 branches in a few steps
    c.loss.pl_every = 2            # ... and both of the path length penalty's
    c.ema.rampup = 0.5
    c.augment.ada_interval = 1
    c.augment.ada_kimg = 0.16
  return c
