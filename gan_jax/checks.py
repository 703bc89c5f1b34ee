"""Everything that can refuse a run, before anything is written: one ConfigError line naming
the field, its value and what is allowed.

`check_config` needs the config alone; `check_data` the data spec (image shape, classes) too.
Evaluation settings, the extractors' files, the reference data and the statistics cache are
checked when the evaluator is built (gan_jax/evaluator.py), which the modes do before they load
the training data or write (gan_jax/modes.py).
"""

import math
from typing import Optional, Sequence

import jax

from gan_jax import (augment, gans, image_files, input_pipeline, layers, models, optimizers, seeds,
                     steps)
from gan_jax.errors import ConfigError

INF = math.inf

# field -> (lowest, highest, what the bound means); every numeric field with a valid range.
RANGES = {
    'seed': (0, 2**32 - 1, 'a PRNG seed'),
    'num_seeds': (1, INF, 'runs trained at once, with seeds seed, seed + 1, ...'),
    'seed_shards': (0, INF, 'devices along the seeds mesh axis; 0: auto'),
    'batch_size': (1, INF, 'images per iteration, over all devices'),
    'num_steps': (0, INF, 'generator updates'),
    'n_critic': (1, INF, 'critic updates per generator update'),
    'critic_boost.iters': (0, INF, '0 turns the boost off'),
    'critic_boost.first_steps': (0, INF, 'generator updates'),
    'critic_boost.every': (0, INF, '0: never'),
    'latent_dim': (1, INF, 'the size of z'),
    'steps_per_call': (0, INF, 'iterations per compiled call; 0: auto'),
    'max_steps_per_call': (1, INF, 'the most iterations per compiled call of auto'),
    'log_every': (0, INF, '0 turns it off'),
    'checkpoint_every': (0, INF, '0: only at the end'),
    'sample_every': (0, INF, '0 turns it off'),
    'eval_every': (0, INF, '0 turns it off'),
    'keep_checkpoints': (1, INF, 'checkpoints kept'),
    'num_grid': (1, INF, 'samples in the grid'),
    'model.width': (1, INF, 'channels or units'),
    'model.critic_width': (0, INF, 'channels or units; 0: model.width'),
    'model.depth': (1, INF, 'hidden layers'),
    'model.kernel_size': (1, INF, 'the kernel side'),
    'model.init_std': (0, INF, '0: Flax\'s default'),
    'loss.gp_weight': (0, INF, 'the penalty\'s lambda'),
    'loss.clip_value': (0, INF, 'the clipping bound c'),
    'loss.aux_weight': (0, INF, 'the class loss weight'),
    'loss.r1_weight': (0, INF, 'R1\'s gamma'),
    'loss.r1_every': (1, INF, 'critic updates between R1 penalties'),
    'ema.decay': (0, 1, 'the EMA\'s decay, below 1; 0: off'),
    'ema.start_step': (0, INF, 'generator updates before the EMA averages'),
    'dataset.image_size': (1, INF, 'pixels'),
    'dataset.subset': (0, 1, 'the fraction of the split trained on'),
}
for _player in ('gen', 'critic'):
  RANGES.update({
      f'{_player}_optimizer.learning_rate': (0, INF, 'a learning rate'),
      f'{_player}_optimizer.b1': (0, 1, 'an Adam beta, below 1'),
      f'{_player}_optimizer.b2': (0, 1, 'an Adam beta, below 1'),
      f'{_player}_optimizer.decay': (0, 1, 'RMSprop\'s decay, below 1'),
  })
OPEN_ABOVE = {'_optimizer.b1', '_optimizer.b2', '_optimizer.decay', 'ema.decay'}  # x < 1
POSITIVE = {'gen_optimizer.learning_rate', 'critic_optimizer.learning_rate',
            'dataset.subset'}  # x > 0

# field -> allowed values
CHOICES = {
    'parallelism': ('jit', 'pmap'),
    'grid_members': ('first', 'all'),
    'seed_mapping': seeds.MAPPINGS,
    'dtype': tuple(steps.DTYPES),
    'model.arch': models.ARCHS,
    'model.gen_norm': ('batch', 'layer', 'none'),
    'model.critic_norm': ('batch', 'layer', 'none'),
    'model.conv_impl': layers.IMPLS,
    'gen_optimizer.name': tuple(optimizers.OPTIMIZERS),
    'critic_optimizer.name': tuple(optimizers.OPTIMIZERS),
    'gen_optimizer.schedule': optimizers.SCHEDULES,
    'critic_optimizer.schedule': optimizers.SCHEDULES,
    'dataset.float_range': tuple(input_pipeline.FLOAT_RANGES),
    'dataset.channels': image_files.CHANNELS,
    'model.spectral_norm': (False, True),
    'model.critic_pool': ('mean', 'sum'),
    'model.gen_spectral_norm': (False, True),
}


def _get(config, field: str):
  node = config
  for part in field.split('.'):
    node = node[part]
  return node


def _open_above(field: str) -> bool:
  return any(field.endswith(s) for s in OPEN_ABOVE)


def _bounds_text(field: str, lo, hi) -> str:
  low = f'> {lo}' if field in POSITIVE else f'>= {lo}'
  if hi == INF:
    return low
  high = f'< {hi}' if _open_above(field) else f'<= {hi}'
  return f'{low} and {high}'


def _in_range(field: str, value, lo, hi) -> bool:
  number = isinstance(value, (int, float)) and not isinstance(value, bool)
  return (number and math.isfinite(value) and
          (value > lo if field in POSITIVE else value >= lo) and
          (value < hi if _open_above(field) else value <= hi))


def check_config(config, num_devices: int, num_processes: Optional[int] = None) -> None:
  """Every check of the config alone (the eval settings: evaluator.Evaluator) for a run on
  `num_devices` devices of `num_processes` hosts (default: this run's); raises ConfigError."""
  num_processes = jax.process_count() if num_processes is None else num_processes
  for field, (lo, hi, meaning) in RANGES.items():
    value = _get(config, field)
    if not _in_range(field, value, lo, hi):
      raise ConfigError(f'{field} must be {_bounds_text(field, lo, hi)} ({meaning}), '
                        f'got {value!r}')
  for field, choices in CHOICES.items():
    if _get(config, field) not in choices:
      raise ConfigError(f'{field} must be one of {", ".join(map(repr, choices))}, '
                        f'got {_get(config, field)!r}')
  if config.seed + config.num_seeds - 1 > RANGES['seed'][1]:
    raise ConfigError(f'seed + num_seeds - 1 must be <= {RANGES["seed"][1]} (the last '
                      f'member\'s PRNG seed), got {config.seed + config.num_seeds - 1}')
  if config.seed_mapping == 'loop' and config.seed_shards > 1:
    raise ConfigError("seed_mapping 'loop' runs every member on every device: with "
                      "seed_shards > 1 (members split over devices) use 'vmap' or 'auto'")
  if config.seed_shards > 1 and (config.num_seeds % config.seed_shards or
                                 num_devices % config.seed_shards):
    raise ConfigError(f'seed_shards {config.seed_shards} must divide num_seeds '
                      f'({config.num_seeds}) and the device count ({num_devices}); 0 chooses')
  if config.seed_shards > 1 and num_processes > 1:
    raise ConfigError('seed_shards > 1 runs on one host; on several, members are replicated '
                      '(seed_shards 0 or 1)')
  if config.parallelism == 'pmap' and config.num_seeds > 1:
    raise ConfigError("num_seeds > 1 trains on a mesh: use parallelism 'jit', the default")
  if config.batch_size % num_devices:
    raise ConfigError(f'batch_size {config.batch_size} is not divisible by the {num_devices} '
                      f'devices; use a multiple of {num_devices}')
  if config.dataset.subset < 1 and config.dataset.storage == 'stream':
    raise ConfigError("dataset.subset keeps part of a dataset held in memory: set "
                      "dataset.storage to 'memory'")
  if config.model.critic_pool != 'mean' and config.model.arch != 'resnet':
    raise ConfigError(f"model.critic_pool {config.model.critic_pool!r} is the ResNet critic's "
                      f"global pool; model.arch {config.model.arch!r} has none: leave it 'mean'")
  spec = gans.resolve(config)
  if spec.gradient_penalty and config.model.critic_norm == 'batch':
    raise ConfigError("the gradient penalty is per example, so the critic cannot use batch norm: "
                      "set model.critic_norm to 'layer' or 'none' (as in WGAN-GP)")
  if spec.r1 and config.model.critic_norm == 'batch':
    raise ConfigError("R1 is per example, so the critic cannot use batch norm: set "
                      "model.critic_norm to 'layer' or 'none'")
  try:
    augment.parse_policy(config.augment.policy)
  except ValueError as e:
    raise ConfigError(f'augment.policy: {e}') from None
  if spec.weight_clipping and config.loss.clip_value <= 0:
    raise ConfigError(f'loss.clip_value must be > 0 for weight clipping, '
                      f'got {config.loss.clip_value}')


def check_data(config, image_shape: Sequence[int], num_classes: int) -> None:
  """The checks that need the data spec: the architecture takes the images, a conditional GAN
  has labels."""
  try:
    models.check_image_shape(config.model.arch, image_shape)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  if config.model.critic_pool != 'mean' and not models.is_cifar_resnet(image_shape[0]):
    raise ConfigError(f"model.critic_pool {config.model.critic_pool!r}: the ResNet critic pools "
                      f"globally up to 32x32; at {image_shape[0]}x{image_shape[1]} it flattens "
                      f"(leave it 'mean')")
  spec = gans.resolve(config)
  if spec.is_conditional and num_classes < 2:
    raise ConfigError(f'model.conditional {spec.conditional!r} ({config.gan}) needs labels with '
                      f'>= 2 classes; the dataset has {num_classes}')
