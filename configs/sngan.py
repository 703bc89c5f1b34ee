"""SNGAN (Miyato et al. 2018): spectral normalisation of every critic weight (one power
iteration per update), the hinge loss, n_critic 5, Adam(2e-4, 0, 0.9) decayed linearly to 0,
batch 64, 50k generator updates.

  python experiments/toolkit_table.py --out=/tmp/toolkit --only=sngan/base/all   # fashion_mnist
  # 2-core CPU, 400 iterations, seeds 0-2: domain FID 196.2 +- 14.2, classifier score
  # 2.15 +- 0.19 (docs/toolkit.md)
  python main.py --config=configs/sngan.py:fashion_mnist \
      --config.dataset.path=/usr/share/datasets/fashion-mnist --workdir=/tmp/sngan_fmnist
  python main.py --config=configs/sngan.py:cifar10 --workdir=/tmp/sngan_cifar
  # not run here; the paper reports an Inception Score of 8.22 and FID 21.7 (unconditional)

cifar10 (and other sides of 8 to 32 that are multiples of 8): the paper's CIFAR-10 ResNet,
G at 256 channels with batch norm (3 up-blocks from 4x4), D at 128 channels with no
normalisation (4 blocks, ReLU, global sum pool), spectral norm on every D weight. Other sizes
(28x28) take the conv model with spectral norm in place of the critic's batch norm (the DCGAN-like
model of the other configs, not the paper's "standard CNN").

Options:
  runlocal     seconds on a CPU (what the tests use)
  conv         the conv model, also at the sides that take the ResNet by default
  resnet       the ResNet, also at other sides it takes
  conditional  the projection discriminator and conditional batch norm in G (Miyato & Koyama
               2018), for labelled data
"""

from configs import common

OPTIONS = ('conv', 'resnet', 'conditional')


def get_config(arg=None):
  dataset, options = common.parse_arg(arg, OPTIONS)
  c = common.base_config('sngan', dataset)
  c.batch_size = 64
  c.num_steps = 50_000
  c.n_critic = 5
  c.model.spectral_norm = True
  c.model.critic_norm = 'none'
  c.model.gen_norm = 'batch'
  c.gen_optimizer = common.optimizer('adam', 2e-4, b1=0.0, b2=0.9, schedule='linear')
  c.critic_optimizer = common.optimizer('adam', 2e-4, b1=0.0, b2=0.9, schedule='linear')
  side = c.dataset.image_size
  resnet = 'resnet' in options or (
      'conv' not in options and side % 8 == 0 and 8 <= side <= 32)
  if resnet:
    c.model.arch = 'resnet'
    c.model.width = 256          # G's channels
    c.model.critic_width = 128   # D's
    c.model.critic_pool = 'sum'
  else:
    c.model.arch = 'conv'
    c.model.kernel_size = 4
    c.model.width = 64
  if 'conditional' in options:
    c.model.conditional = 'projection'
  if 'runlocal' in options:
    common.runlocal(c)
    c.model.critic_width = 8 if resnet else 0
  return c
