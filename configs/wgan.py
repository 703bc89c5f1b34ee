"""WGAN (Arjovsky et al. 2017): weight clipping c = 0.01, RMSprop(5e-5), n_critic 5, and 100
critic updates for the first 25 and every 500th generator update; N(0, 0.02) init.

  python main.py --config=configs/wgan.py:fashion_mnist \
      --config.dataset.path=/usr/share/datasets/fashion-mnist --workdir=/tmp/wgan_fmnist
  # 2-core CPU, 10 min (1017 iterations): domain FID 123.4, classifier score 2.65 (docs/results.md)
  python main.py --config=configs/wgan.py:mnist --workdir=/tmp/wgan_mnist
  python main.py --config=configs/wgan.py:cifar10 --workdir=/tmp/wgan_cifar

The DCGAN architecture with batch norm in G and critic, as in the paper's reference code
(kernel 4, width 64).

Options:
  runlocal  seconds on a CPU (what the tests use)
  mlp       the paper's MLP experiment: 4 x 512 ReLU layers, no batch norm
"""

from configs import common

OPTIONS = ('mlp',)


def get_config(arg=None):
  dataset, options = common.parse_arg(arg, OPTIONS)
  c = common.base_config('wgan', dataset)
  c.num_steps = 100_000
  c.n_critic = 5
  c.critic_boost.iters = 100
  c.critic_boost.first_steps = 25
  c.critic_boost.every = 500
  c.loss.clip_value = 0.01
  c.model.kernel_size = 4
  c.model.gen_norm = 'batch'
  c.model.critic_norm = 'batch'
  c.model.init_std = 0.02
  c.gen_optimizer = common.optimizer('rmsprop', 5e-5, decay=0.99)
  c.critic_optimizer = common.optimizer('rmsprop', 5e-5, decay=0.99)
  if 'mlp' in options:
    c.model.arch = 'mlp'
    c.model.width = 512
    c.model.gen_norm = c.model.critic_norm = 'none'
  if 'runlocal' in options:
    common.runlocal(c)
  return c
