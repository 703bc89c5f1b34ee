"""Config files: ACGAN's adversarial options by name, as points of the GAN grid."""

import pytest

from configs import acgan
from gan_jax import gans


def test_acgan_adversarial_options_are_named():
  assert tuple(acgan.ADVERSARIAL_OPTIONS) == ('nonsaturating', 'wasserstein_clip',
                                              'wasserstein_gp')
  assert set(acgan.OPTIONS) == {*acgan.ADVERSARIAL_OPTIONS, 'mlp', 'paper', 'projection',
                               'reacgan'}
  assert gans.resolve(acgan.get_config('digits')) == gans.GanSpec('nonsaturating', 'none',
                                                                  'acgan')
  for name, (adversarial, lipschitz) in acgan.ADVERSARIAL_OPTIONS.items():
    config = acgan.get_config(f'digits,mlp,{name}')  # 'mlp' is not an adversarial option
    assert gans.resolve(config) == gans.GanSpec(adversarial, lipschitz, 'acgan')
    assert config.model.arch == 'mlp'
  assert acgan.get_config('digits,wasserstein_gp').model.critic_norm == 'layer'
  assert acgan.get_config('digits,wasserstein_clip').n_critic == 5
  with pytest.raises(ValueError, match='choose one adversarial loss'):
    acgan.get_config('digits,wasserstein_clip,wasserstein_gp')


def test_acgan_class_head_learns_from_real_images_unless_paper():
  for adversarial in acgan.ADVERSARIAL_OPTIONS:
    assert acgan.get_config(f'digits,{adversarial}').loss.class_loss == 'real'
    assert acgan.get_config(f'digits,{adversarial},paper').loss.class_loss == 'real_fake'


def test_acgan_projection_option_conditions_g_by_embedding_and_batch_norm():
  from conftest import load_config  # pylint: disable=g-import-not-at-top
  from gan_jax import checks  # pylint: disable=g-import-not-at-top
  preset = load_config('acgan.py:fashion_mnist')
  config = load_config('acgan.py:fashion_mnist,projection')
  assert gans.resolve(config) == gans.GanSpec('nonsaturating', 'none', 'projection')
  assert (config.model.conditional, config.model.gen_label_input) == ('projection', 'embed_cbn')
  preset.model.conditional, preset.model.gen_label_input = 'projection', 'embed_cbn'
  assert config.to_dict() == preset.to_dict()   # the preset otherwise
  checks.check_config(config, 1)
  assert gans.resolve(acgan.get_config('digits,projection,wasserstein_gp')).lipschitz == 'gp'
  assert load_config('acgan.py:fashion_mnist').model.gen_label_input == ''
  with pytest.raises(ValueError, match='projection has no class head'):
    acgan.get_config('digits,projection,paper')


def test_size_options_set_the_image_size_of_any_named_dataset():
  from conftest import load_config  # pylint: disable=g-import-not-at-top
  assert load_config('dcgan.py:mnist,size64').dataset.image_size == 64
  assert load_config('dcgan.py:celeb_a').dataset.image_size == 64
  config = load_config('wgan_gp.py:cifar10,size128')
  assert config.dataset.image_size == 128 and config.model.arch == 'resnet'


def _leaves(tree, prefix=''):
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _leaves(value, f'{prefix}{key}.')
    else:
      yield f'{prefix}{key}'


def test_every_field_of_every_preset_is_declared_once_in_the_table():
  """A config holds exactly the fields of gan_jax/fields.py (presets override values, never
  add a field), and docs/config.md is the table's print-out."""
  import glob  # pylint: disable=g-import-not-at-top
  import importlib  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  from conftest import ROOT  # pylint: disable=g-import-not-at-top
  from gan_jax import fields  # pylint: disable=g-import-not-at-top
  declared = [f.name for f in fields.FIELDS]
  assert len(set(declared)) == len(declared)
  presets = [os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, 'configs', '*.py'))
             if os.path.basename(p) not in ('common.py', 'workdir.py', '__init__.py')]
  assert len(presets) >= 5
  for name in presets:
    module = importlib.import_module(f'configs.{name}')
    for option in ('', *getattr(module, 'OPTIONS', ())):
      if option in ('size128',):
        continue  # the same fields as size64
      config = module.get_config(f'digits,{option}' if option else 'digits')
      assert sorted(_leaves(config.to_dict())) == sorted(declared), (name, option)
  with open(os.path.join(ROOT, 'docs', 'config.md')) as f:
    assert f.read() == fields.markdown(), 'run: python -m gan_jax.fields > docs/config.md'
