"""Config files: ACGAN's adversarial options by name, as points of the GAN grid."""

import pytest

from configs import acgan
from gan_jax import gans


def test_acgan_adversarial_options_are_named():
  assert tuple(acgan.ADVERSARIAL_OPTIONS) == ('nonsaturating', 'wasserstein_clip',
                                              'wasserstein_gp')
  assert set(acgan.OPTIONS) == {*acgan.ADVERSARIAL_OPTIONS, 'mlp'}
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


def test_size_options_set_the_image_size_of_any_named_dataset():
  from conftest import load_config  # pylint: disable=g-import-not-at-top
  assert load_config('dcgan.py:mnist,size64').dataset.image_size == 64
  assert load_config('dcgan.py:celeb_a').dataset.image_size == 64
  config = load_config('wgan_gp.py:cifar10,size128')
  assert config.dataset.image_size == 128 and config.model.arch == 'resnet'
