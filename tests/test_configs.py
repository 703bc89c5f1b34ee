"""Config files: ACGAN's adversarial options by name."""

import pytest

from configs import acgan


def test_acgan_adversarial_options_are_named():
  assert acgan.ADVERSARIAL == ('nonsaturating', 'wasserstein_clip', 'wasserstein_gp')
  assert set(acgan.OPTIONS) == {*acgan.ADVERSARIAL, 'mlp'}
  assert acgan.get_config('digits').acgan_adversarial == 'nonsaturating'
  for name in acgan.ADVERSARIAL:
    config = acgan.get_config(f'digits,mlp,{name}')  # 'mlp' is not an adversarial option
    assert config.acgan_adversarial == name and config.model.arch == 'mlp'
  assert acgan.get_config('digits,wasserstein_gp').model.critic_norm == 'layer'
  assert acgan.get_config('digits,wasserstein_clip').n_critic == 5
  with pytest.raises(ValueError, match='choose one adversarial loss'):
    acgan.get_config('digits,wasserstein_clip,wasserstein_gp')
