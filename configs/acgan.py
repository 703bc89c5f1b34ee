"""ACGAN (Odena et al. 2017): z times a label embedding into G; D with an adversarial head and
an auxiliary class head; D minimises adversarial + class cross-entropy on real images, G
adversarial + class cross-entropy on its samples. The paper's D also learns the classes of the
generated images (option `paper`): its samples then show the class asked for half the time on
Fashion-MNIST, against 0.97 with real images only (docs/conditional.md).

  python main.py --config=configs/acgan.py:fashion_mnist \
      --config.dataset.path=/usr/share/datasets/fashion-mnist --workdir=/tmp/acgan_fmnist
  # 1,200 iterations (~300 s, 2 cores): label accuracy 0.95, domain FID 10.1 (docs/conditional.md)
  python main.py --config=configs/acgan.py:mnist --workdir=/tmp/acgan_mnist
  python main.py --config=configs/acgan.py:fashion_mnist,wasserstein_gp \
      --config.dataset.path=/usr/share/datasets/fashion-mnist --workdir=/tmp/acgan_wgp_fmnist

Options (the adversarial part is one of the first three):
  nonsaturating     the default: Adam(2e-4, 0.5), batch norm in D
  wasserstein_clip  WGAN's clipping, RMSprop(5e-5), n_critic 5
  wasserstein_gp    WGAN-GP's penalty, Adam(1e-4, 0, 0.9), n_critic 5, layer norm in the critic
  runlocal          seconds on a CPU (what the tests use)
  mlp               fully connected G and D, width 512
  paper             the paper's class loss: D's class head learns from real and generated
                    images (loss.class_loss 'real_fake'; the default is 'real')
  reacgan           ReACGAN's class loss (Kang et al. 2021): D2D-CE on a class embedding and
                    class proxies in the critic, on real images only, in place of the
                    cross-entropy (loss.class_loss 'd2d'), weight 0.5, T 0.5, m_p 0.98, a
                    512-d embedding (StudioGAN's ReACGAN CIFAR-10 settings). With this
                    preset's batch-norm critic it follows the label 0.26 of the time at
                    1,200 iterations on Fashion-MNIST (3 seeds); with ReACGAN's critic
                    (hinge, spectral norm, no batch norm) 0.88 (docs/conditional.md)
  projection        a projection critic (Miyato & Koyama 2018) in place of the class head; G
                    takes the label through z times an embedding and conditional batch norm
                    (model.gen_label_input 'embed_cbn'): label accuracy 0.885, domain FID 7.0 at
                    1,200 iterations on Fashion-MNIST, 3 seeds (docs/conditional.md)
"""

from configs import common
from gan_jax import gans

# option -> (loss.adversarial, loss.lipschitz)
ADVERSARIAL_OPTIONS = gans.ACGAN_ADVERSARIAL
OPTIONS = (*ADVERSARIAL_OPTIONS, 'mlp', 'paper', 'projection', 'reacgan')


def get_config(arg=None):
  dataset, options = common.parse_arg(arg, OPTIONS)
  c = common.base_config('acgan', dataset)
  adversarial = [o for o in ADVERSARIAL_OPTIONS if o in options]
  if len(adversarial) > 1:
    raise ValueError(f'choose one adversarial loss, got {", ".join(adversarial)}')
  c.loss.adversarial, c.loss.lipschitz = ADVERSARIAL_OPTIONS[
      adversarial[0] if adversarial else 'nonsaturating']
  c.batch_size = 100
  c.num_steps = 50_000
  c.latent_dim = 110             # the ACGAN paper's z size
  c.model.kernel_size = 4
  c.model.gen_norm = 'batch'
  c.model.critic_norm = 'batch'
  c.model.init_std = 0.02
  # A class head that learns the generated images' classes too lets G draw marks the head
  # learns, not the class (label accuracy 0.45 against 0.97, docs/conditional.md).
  c.loss.class_loss = 'real_fake' if 'paper' in options else 'real'
  if c.loss.lipschitz == 'none':
    c.n_critic = 1
    c.gen_optimizer = common.optimizer('adam', 2e-4, b1=0.5, b2=0.999)
    c.critic_optimizer = common.optimizer('adam', 2e-4, b1=0.5, b2=0.999)
  elif c.loss.lipschitz == 'clip':
    c.gen_optimizer = common.optimizer('rmsprop', 5e-5, decay=0.99)
    c.critic_optimizer = common.optimizer('rmsprop', 5e-5, decay=0.99)
  else:
    c.model.critic_norm = 'layer'
    c.model.init_std = 0.0
    c.gen_optimizer = common.optimizer('adam', 1e-4, b1=0.0, b2=0.9)
    c.critic_optimizer = common.optimizer('adam', 1e-4, b1=0.0, b2=0.9)
  if 'reacgan' in options:
    if 'paper' in options or 'projection' in options:
      raise ValueError('option reacgan is the class head\'s loss: use it without paper and '
                       'projection')
    c.loss.class_loss = 'd2d'
    c.loss.aux_weight = 0.5       # StudioGAN's cond_lambda
    c.loss.d2d_temperature = 0.5
    c.loss.d2d_margin = 0.98
    c.model.class_embed_dim = 512
  if 'projection' in options:
    if 'paper' in options:
      raise ValueError('option paper is the class head\'s loss; projection has no class head')
    c.model.conditional = 'projection'
    c.model.gen_label_input = 'embed_cbn'
  if 'mlp' in options:
    c.model.arch = 'mlp'
    c.model.width = 512
    c.model.critic_norm = 'none' if c.loss.lipschitz == 'gp' else 'batch'
  if 'runlocal' in options:
    common.runlocal(c)
  return c
