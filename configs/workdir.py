"""The config a workdir's run was started with (its config.json), as a config file.

  python main.py --workdir=DIR --mode=eval --config.eval.num_samples=2000

main.py loads this for --mode=sample and --mode=eval when no --config is given, so that
--config.* overrides (evaluation settings, above all) apply to the run's own config. Fields
added to gan_jax after the run began (absent from its config.json) take the defaults of its
GAN's config file for its dataset.
"""

import importlib

from gan_jax import rundir as workdir


def _merge(base, saved):
  for key, value in saved.items():
    if key in base and hasattr(base[key], 'items') and hasattr(value, 'items'):
      _merge(base[key], value)
    else:
      base[key] = value


def get_config(path):
  saved = workdir.load_config(path)
  try:
    config = importlib.import_module(f'configs.{saved.gan}').get_config(saved.dataset.name)
  except (ImportError, AttributeError, ValueError, KeyError):
    return saved    # an unknown GAN or dataset: the saved fields alone
  with config.unlocked():
    _merge(config, saved)
  if 'adversarial' not in saved.loss:
    # A run from before the GAN grid: its GAN was `gan` (and ACGAN's acgan_adversarial) alone.
    config.loss.adversarial = config.loss.lipschitz = config.model.conditional = ''
  return config
