"""Optimizers and learning-rate schedules by name (config.gen_optimizer, config.critic_optimizer).

inject_hyperparams keeps the learning rate in the optimizer state, where the train step sets it
from the schedule (per generator step, as the WGAN-GP code decays it).
"""

import jax.numpy as jnp
import optax

OPTIMIZERS = {
    'adam': lambda o: optax.inject_hyperparams(optax.adam)(o.learning_rate, b1=o.b1, b2=o.b2),
    # PyTorch's RMSprop defaults (alpha=0.99, eps=1e-8), as the WGAN reference code uses.
    'rmsprop': lambda o: optax.inject_hyperparams(optax.rmsprop)(o.learning_rate, decay=o.decay,
                                                                 eps=1e-8),
}
SCHEDULES = ('constant', 'linear')


def make_optimizer(opt_config) -> optax.GradientTransformation:
  """The optimizer a checked config names (gan_jax/checks.py refuses unknown names)."""
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
