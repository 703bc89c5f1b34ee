"""Shared config defaults (the table of gan_jax/fields.py) and the `dataset[,option,...]`
argument every config file takes."""

import ml_collections

from gan_jax import fields as lib_fields
from gan_jax import input_pipeline  # DATASETS: name -> image shape, classes, loader


def optimizer(name: str = 'adam', learning_rate: float = 1e-4, **fields_):
  """An optimizer's fields (gan_jax/fields.py: name, learning_rate, schedule, b1, b2, decay):
  the table's defaults with these values."""
  values = {**lib_fields.OPTIMIZER, 'name': name, 'learning_rate': learning_rate}
  unknown = set(fields_) - set(values)
  if unknown:
    raise ValueError(f'unknown optimizer field(s) {", ".join(sorted(unknown))}')
  return ml_collections.ConfigDict({**values, **fields_})


def parse_arg(arg: str, known_options):
  """'cifar10,runlocal' -> ('cifar10', {'runlocal'}); the name is a DATASETS key or 'tfds:NAME'
  (any TFDS image dataset); unknown names fail with the nearest names and the choices."""
  name, *options = [a.strip() for a in (arg or 'mnist').split(',') if a.strip()]
  if not input_pipeline.is_named(name):
    raise ValueError(input_pipeline.unknown_dataset(name))
  options = set(options)
  unknown = options - set(known_options) - {'runlocal'}
  if unknown:
    raise ValueError(f'unknown option(s) {", ".join(sorted(unknown))}; choose from '
                     f'{", ".join(sorted(set(known_options) | {"runlocal"}))}')
  return name, options


SIZE_OPTIONS = {'size64': 64, 'size128': 128}  # option -> dataset.image_size


def image_size_option(c: ml_collections.ConfigDict, options, size_options=None) -> int:
  """Sets dataset.image_size from a `size64` / `size128` option (or one of a config's own
  `size_options`, default SIZE_OPTIONS); returns it (0: no option). Named datasets and folders
  are resized to it; IDX and .npz files keep their own size."""
  size_options = size_options or SIZE_OPTIONS
  chosen = sorted(options & set(size_options))
  if not chosen:
    return 0
  if len(chosen) > 1:
    raise ValueError(f'choose one image size, got {", ".join(chosen)}')
  c.dataset.image_size = size_options[chosen[0]]
  return c.dataset.image_size


def base_config(gan: str, dataset: str) -> ml_collections.ConfigDict:
  """Every field at its default (gan_jax/fields.py, where each is declared and documented),
  the image size of `dataset`; variant files override what their paper sets."""
  size = input_pipeline.default_shape(dataset)[0]
  return ml_collections.ConfigDict(lib_fields.defaults(gan=gan, dataset__name=dataset,
                                                       dataset__image_size=size))


def runlocal(c: ml_collections.ConfigDict) -> None:
  """Shrinks a config to seconds on a laptop CPU (what the tests use)."""
  c.batch_size = 16
  c.num_steps = 4
  c.model.width = 8
  c.latent_dim = 16
  c.log_every = 2
  c.checkpoint_every = 2
  c.sample_every = 2
  c.num_grid = 16
  if c.ema.start_step:
    c.ema.start_step = 1
  if c.critic_boost.iters:
    c.critic_boost.iters = 10
    c.critic_boost.first_steps = 1
    c.critic_boost.every = 3
