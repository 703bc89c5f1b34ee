"""WGAN-GP (Gulrajani et al. 2017): gradient penalty lambda = 10, n_critic 5, Adam(1e-4, 0, 0.9).

  python main.py --config=configs/wgan_gp.py:fashion_mnist \
      --config.dataset.path=/usr/share/datasets/fashion-mnist --workdir=/tmp/wgan_gp_fmnist
  # 2-core CPU, 10 min (672 iterations): domain FID 107.4, classifier score 3.33 (docs/results.md)
  python main.py --config=configs/wgan_gp.py:mnist --workdir=/tmp/wgan_gp_mnist
  python main.py --config=configs/wgan_gp.py:cifar10 --workdir=/tmp/wgan_gp_cifar   # ResNet
  python main.py --config=configs/wgan_gp.py:digits,demo --workdir=/tmp/demo       # README demo

28x28 data: the paper's MNIST model (DIM = 64, kernel 5, no normalisation in G or D, 200k
generator iterations). cifar10: the paper's ResNet (128 channels, batch norm in G only, no norm
in the critic, Adam(2e-4) decayed linearly to 0).

Options:
  runlocal   seconds on a CPU (what the tests use)
  demo       a small model that trains on a CPU in minutes
  conv       the DCGAN-like conv model where the ResNet is the default (`cifar10,conv`)
  resnet     the ResNet where the conv model is the default
  mlp        fully connected G and critic, width 512
  layernorm  layer norm in the critic
  size64     dataset.image_size 64, for a dataset that resizes: the paper's 64x64 ResNet
             (gan_64x64.py: DIM = 64, batch norm in G, layer norm in the critic, Adam(1e-4, 0,
             0.9), 200k iterations); with `conv`, the conv model one stride-2 layer more:
             `python main.py --config=configs/wgan_gp.py:digits,size64 --workdir=/tmp/wgan_gp_64`
  size128    the same at 128: one ResNet block (or conv layer) more
"""

from configs import common

OPTIONS = ('demo', 'conv', 'resnet', 'mlp', 'layernorm', *common.SIZE_OPTIONS)


def get_config(arg=None):
  dataset, options = common.parse_arg(arg, OPTIONS)
  c = common.base_config('wgan_gp', dataset)
  c.num_steps = 200_000          # ITERS in the paper's MNIST code
  c.gen_optimizer = common.optimizer('adam', 1e-4, b1=0.0, b2=0.9)
  c.critic_optimizer = common.optimizer('adam', 1e-4, b1=0.0, b2=0.9)
  size = common.image_size_option(c, options)
  if (dataset == 'cifar10' or size) and not options & {'conv', 'mlp'}:
    options.add('resnet')
  if 'resnet' in options:        # the paper's CIFAR-10 ResNet
    c.model.arch = 'resnet'
    c.model.width = 128
    c.model.gen_norm = 'batch'
    c.num_steps = 100_000
    # gan_cifar_resnet.py: Adam(2e-4, 0, 0.9), decayed linearly to 0 over the 100k iterations.
    c.gen_optimizer = common.optimizer('adam', 2e-4, b1=0.0, b2=0.9, schedule='linear')
    c.critic_optimizer = common.optimizer('adam', 2e-4, b1=0.0, b2=0.9, schedule='linear')
  if size and 'resnet' in options:  # gan_64x64.py's ResNet and settings
    c.model.width = 64
    c.model.critic_norm = 'layer'
    c.num_steps = 200_000
    c.gen_optimizer = common.optimizer('adam', 1e-4, b1=0.0, b2=0.9)
    c.critic_optimizer = common.optimizer('adam', 1e-4, b1=0.0, b2=0.9)
  if dataset == 'cifar10' and 'conv' in options:
    c.model.gen_norm = 'batch'   # the paper's CIFAR-10 DCGAN-like G keeps batch norm
  if 'mlp' in options:
    c.model.arch = 'mlp'
    c.model.width = 512
  if 'layernorm' in options:
    c.model.critic_norm = 'layer'
  if 'demo' in options:          # a few minutes on a 2-core CPU
    c.model.width = 16
    c.batch_size = 32
    c.num_steps = 3000
    c.log_every = 100
    c.sample_every = 500
    c.checkpoint_every = 1000
  if 'runlocal' in options:
    common.runlocal(c)
  return c
