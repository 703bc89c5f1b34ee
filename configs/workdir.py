"""The config a workdir's run was started with (its config.json), as a config file.

  python main.py --workdir=DIR --mode=eval --config.eval.num_samples=2000

main.py loads this for --mode=sample, interpolate and eval when no --config is given, so that
--config.* overrides (evaluation settings, above all) apply to the run's own config. A field
its config.json lacks (one declared after the run began) takes the default of its GAN's config
file for its dataset.
"""

import importlib
import os

from gan_jax import input_pipeline, migration, rundir as workdir
from gan_jax.errors import ConfigError

# The GANs with a config file here (configs/<gan>.py): every file but the shared ones.
GANS = tuple(sorted(name[:-3] for name in os.listdir(os.path.dirname(os.path.abspath(__file__)))
                    if name.endswith('.py') and name not in ('__init__.py', 'common.py',
                                                             'workdir.py')))


def _merge(base, saved):
  for key, value in saved.items():
    if key in base and hasattr(base[key], 'items') and hasattr(value, 'items'):
      _merge(base[key], value)
    else:
      base[key] = value


def get_config(path):
  """The run's config.json over the defaults of its GAN's config file for its dataset.

  Raises:
    ConfigError: no readable config.json, or one naming a GAN or dataset unknown here.
  """
  saved = workdir.load_config(path)
  gan, dataset = saved.get('gan'), saved.get('dataset', {}).get('name')
  if gan not in GANS:
    raise ConfigError(f'the run in {path} has gan {gan!r}, which has no config file here; '
                      f'known: {", ".join(GANS)}')
  if not input_pipeline.is_named(dataset):
    raise ConfigError(f'the run in {path} has dataset.name {dataset!r}, which is not one of '
                      f'{", ".join(input_pipeline.DATASETS)} or tfds:NAME; give its --config')
  config = importlib.import_module(f'configs.{gan}').get_config(dataset)
  with config.unlocked():
    _merge(config, saved)
  migration.upgrade_config(config, saved)
  return config
