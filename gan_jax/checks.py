"""Everything that can refuse a run, before anything is written: one ConfigError line naming
the field, its value and what is allowed (each field's allowed values: gan_jax/fields.py).

`check_config` needs the config alone; `check_data` the data spec (image shape, classes) too.
Evaluation settings, the extractors' files, the reference data and the statistics cache are
checked when the evaluator is built (gan_jax/evaluator.py), which the modes do before they load
the training data or write (gan_jax/modes.py).
"""

from typing import Optional, Sequence

import jax

from gan_jax import augment, fields, gans, mkl_gemm, models
from gan_jax.errors import ConfigError


def check_config(config, num_devices: int, num_processes: Optional[int] = None) -> None:
  """Every check of the config alone (the eval settings: evaluator.Evaluator) for a run on
  `num_devices` devices of `num_processes` hosts (default: this run's); raises ConfigError."""
  num_processes = jax.process_count() if num_processes is None else num_processes
  refusal = fields.refusal(config, exclude='eval.')  # eval.*: evaluator.check
  if refusal:
    raise ConfigError(refusal)
  last_seed = int(fields.BY_NAME['seed'].limits[1])
  if config.seed + config.num_seeds - 1 > last_seed:
    raise ConfigError(f'seed + num_seeds - 1 must be <= {last_seed} (the last '
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
  if config.model.conv_impl == 'mkl':
    mkl_gemm.register()   # its kernel built and loaded now, or one line on what is missing
  if config.batch_size % num_devices:
    raise ConfigError(f'batch_size {config.batch_size} is not divisible by the {num_devices} '
                      f'devices; use a multiple of {num_devices}')
  group = config.model.mbstd_group_size
  if config.model.arch == 'stylegan2' and group:
    # the critic's minibatch std groups the rows it sees at once: the global batch under jit,
    # a device's under pmap
    rows = config.batch_size // (num_devices if config.parallelism == 'pmap' else 1)
    if rows % min(group, rows):
      raise ConfigError(f'model.mbstd_group_size {group} must divide the critic\'s batch of '
                        f'{rows} images (or exceed it); 0 takes the whole batch')
  if config.dataset.subset < 1 and config.dataset.storage == 'stream':
    raise ConfigError("dataset.subset keeps part of a dataset held in memory: set "
                      "dataset.storage to 'memory'")
  if config.model.critic_pool != 'mean' and config.model.arch != 'resnet':
    raise ConfigError(f"model.critic_pool {config.model.critic_pool!r} is the ResNet critic's "
                      f"global pool; model.arch {config.model.arch!r} has none: leave it 'mean'")
  if not models.ARCHITECTURES[config.model.arch].styles:
    for name, value in (('model.style_mixing', config.model.style_mixing),
                        ('loss.pl_weight', config.loss.pl_weight)):
      if value > 0:
        raise ConfigError(f"{name} {value} works on the ws of StyleGAN2's generator: model.arch "
                          f"{config.model.arch!r} has none (set it 0)")
  spec = gans.resolve(config)
  if spec.gradient_penalty and config.model.critic_norm == 'batch':
    raise ConfigError("the gradient penalty is per example, so the critic cannot use batch norm: "
                      "set model.critic_norm to 'layer' or 'none' (as in WGAN-GP)")
  if spec.r1 and config.model.critic_norm == 'batch':
    raise ConfigError("R1 is per example, so the critic cannot use batch norm: set "
                      "model.critic_norm to 'layer' or 'none'")
  conditionings = models.ARCHITECTURES[config.model.arch].conditionings
  if spec.is_conditional and conditionings and spec.conditional not in conditionings:
    raise ConfigError(f"model.arch {config.model.arch!r} is conditioned by "
                      f"{' or '.join(map(repr, conditionings))}: set model.conditional to it or "
                      f"'none', got {spec.conditional!r}")
  if spec.is_conditional:
    try:
      models.label_input_of(spec.conditional, config.model.gen_norm,
                            config.model.gen_label_input)
    except ValueError as e:
      raise ConfigError(str(e)) from None
  try:
    augment.parse_policy(config.augment.policy)
  except ValueError as e:
    raise ConfigError(f'augment.policy: {e}') from None
  if config.augment.policy and config.augment.ada:
    raise ConfigError(f'augment.policy {config.augment.policy!r} and augment.ada '
                      f'{config.augment.ada!r}: choose one augmentation (DiffAugment or ADA)')
  if spec.weight_clipping and config.loss.clip_value <= 0:
    raise ConfigError(f'loss.clip_value must be > 0 for weight clipping, '
                      f'got {config.loss.clip_value}')


def check_data(config, image_shape: Sequence[int], num_classes: int) -> None:
  """The checks that need the data spec: the architecture takes the images, a conditional GAN
  has labels."""
  try:
    models.check_model(config.model, config.latent_dim, image_shape)
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
