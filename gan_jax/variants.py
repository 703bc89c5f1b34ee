"""Registry of GAN variants: what each one's critic and generator updates do.

A variant names its adversarial loss, its Lipschitz device (weight clipping or gradient penalty),
and whether it is class-conditional. The trainer reads only these flags, so a new GAN is an
entry here (plus its losses), never a second trainer.
"""

import dataclasses

import jax.numpy as jnp
import optax


@dataclasses.dataclass(frozen=True)
class Variant:
  name: str
  adversarial: str         # key of losses.ADVERSARIAL
  gradient_penalty: bool   # WGAN-GP: lambda * (||grad D(x_hat)|| - 1)^2
  weight_clipping: bool    # WGAN: clip critic weights to [-c, c] after each critic update
  conditional: bool        # ACGAN: label-conditioned G, auxiliary class head on D


# ACGAN's adversarial part is an option: `configs/acgan.py:mnist,wasserstein_gp`.
ACGAN_ADVERSARIAL = {
    'nonsaturating': dict(adversarial='nonsaturating', gradient_penalty=False,
                          weight_clipping=False),
    'wasserstein_clip': dict(adversarial='wasserstein', gradient_penalty=False,
                             weight_clipping=True),
    'wasserstein_gp': dict(adversarial='wasserstein', gradient_penalty=True,
                           weight_clipping=False),
}

VARIANTS = {
    'wgan': Variant('wgan', 'wasserstein', gradient_penalty=False, weight_clipping=True,
                    conditional=False),
    'wgan_gp': Variant('wgan_gp', 'wasserstein', gradient_penalty=True, weight_clipping=False,
                       conditional=False),
    'dcgan': Variant('dcgan', 'nonsaturating', gradient_penalty=False, weight_clipping=False,
                     conditional=False),
}


def get_variant(config) -> Variant:
  """The Variant for `config.gan` (and `config.acgan_adversarial` for ACGAN)."""
  if config.gan == 'acgan':
    if config.acgan_adversarial not in ACGAN_ADVERSARIAL:
      raise ValueError(f'unknown acgan_adversarial {config.acgan_adversarial!r}; choose one of '
                       f'{", ".join(ACGAN_ADVERSARIAL)}')
    return Variant('acgan', conditional=True, **ACGAN_ADVERSARIAL[config.acgan_adversarial])
  if config.gan not in VARIANTS:
    raise ValueError(f'unknown gan {config.gan!r}; choose one of '
                     f'{", ".join(sorted([*VARIANTS, "acgan"]))}')
  return VARIANTS[config.gan]


# inject_hyperparams keeps the learning rate in the optimizer state, where the train step sets
# it from the schedule (per generator step, as the WGAN-GP code decays it).
OPTIMIZERS = {
    'adam': lambda o: optax.inject_hyperparams(optax.adam)(o.learning_rate, b1=o.b1, b2=o.b2),
    # PyTorch's RMSprop defaults (alpha=0.99, eps=1e-8), as the WGAN reference code uses.
    'rmsprop': lambda o: optax.inject_hyperparams(optax.rmsprop)(o.learning_rate, decay=o.decay,
                                                                 eps=1e-8),
}
SCHEDULES = ('constant', 'linear')


def make_optimizer(opt_config) -> optax.GradientTransformation:
  if opt_config.name not in OPTIMIZERS:
    raise ValueError(f'unknown optimizer {opt_config.name!r}; choose one of '
                     f'{", ".join(OPTIMIZERS)}')
  if opt_config.schedule not in SCHEDULES:
    raise ValueError(f'unknown learning-rate schedule {opt_config.schedule!r}; choose one of '
                     f'{", ".join(SCHEDULES)}')
  return OPTIMIZERS[opt_config.name](opt_config)


def lr_schedule(opt_config, num_steps: int):
  """step -> learning rate: constant, or linear from learning_rate at step 0 to 0 at num_steps
  (the WGAN-GP CIFAR-10 ResNet's decay)."""
  base, linear = float(opt_config.learning_rate), opt_config.schedule == 'linear'

  def schedule(step):
    if not linear:
      return jnp.asarray(base, jnp.float32)
    return base * jnp.maximum(0.0, 1.0 - step.astype(jnp.float32) / max(num_steps, 1))
  return schedule


def set_learning_rate(opt_state, learning_rate):
  """Sets the learning rate an inject_hyperparams optimizer state will use."""
  hyperparams = {**opt_state.hyperparams,
                 'learning_rate': jnp.asarray(learning_rate, jnp.float32)}
  return opt_state._replace(hyperparams=hyperparams)


def n_critic_at(step: int, config) -> int:
  """Critic updates before generator update `step` (0-based).

  WGAN's schedule: `critic_boost.iters` (100) updates for the first `critic_boost.first_steps`
  (25) generator updates and every `critic_boost.every`-th (500) one; `n_critic` otherwise.
  """
  boost = config.critic_boost
  if boost.iters > 0 and (step < boost.first_steps or
                          (boost.every > 0 and step % boost.every == 0)):
    return boost.iters
  return config.n_critic
