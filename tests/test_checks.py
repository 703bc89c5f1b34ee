"""gan_jax/checks.py: every numeric field with a range and every choice is refused in one line
naming the field, the value and what is allowed; the GAN grid's combinations."""

import pytest

from conftest import load_config
from gan_jax import checks, evaluator, fields, gans
from gan_jax.errors import ConfigError

SPEC = 'wgan_gp.py:digits,runlocal'


def _get(config, field: str):
  node = config
  for p in field.split('.'):
    node = node[p]
  return node


def _set(config, field: str, value):
  *parents, leaf = field.split('.')
  node = config
  for p in parents:
    node = node[p]
  node[leaf] = value


def _bad_values(field):
  lo, hi, low_open, high_open = fields.BY_NAME[field].limits
  default = _get(load_config(SPEC), field)
  is_int = isinstance(default, int) and not isinstance(default, bool)
  bad = [lo - 1] if is_int else [lo - 0.5, float('nan')]
  if low_open:
    bad.append(lo)
  if hi != fields.INF:
    bad.append(hi if high_open else hi + 1)
  return [int(v) if is_int else float(v) for v in bad]


def _check(config):
  """The checks that read fields.py's table: check_config, and the evaluator's for eval.*."""
  checks.check_config(config, 1)
  evaluator.check(config)


@pytest.mark.parametrize('field', sorted(f.name for f in fields.FIELDS if f.interval))
def test_each_range_is_checked(field):
  for value in _bad_values(field):
    config = load_config(SPEC)
    config.eval.classifier = 'a_classifier'  # the evaluator's checks start with an extractor
    _set(config, field, value)
    with pytest.raises(ConfigError) as error:
      _check(config)
    assert str(error.value).startswith(f'{field} must be '), str(error.value)
    assert str(error.value).endswith(f'got {value!r}'), str(error.value)


def test_the_presets_and_their_options_pass():
  for spec in ('wgan.py:mnist', 'wgan.py:cifar10,mlp', 'wgan_gp.py:cifar10', 'dcgan.py:cifar10',
               'acgan.py:mnist,wasserstein_gp', 'acgan.py:mnist,wasserstein_clip',
               'wgan_gp.py:digits,demo'):
    checks.check_config(load_config(spec), 1)


@pytest.mark.parametrize('field,value', [('parallelism', 'shard'), ('dtype', 'float16'),
                                         ('model.arch', 'vit'), ('model.gen_norm', 'group'),
                                         ('gen_optimizer.name', 'sgd'),
                                         ('critic_optimizer.schedule', 'cosine')])
def test_choices_are_checked(field, value):
  config = load_config(SPEC)
  _set(config, field, value)
  with pytest.raises(ConfigError, match=rf'^{field} must be one of .*got {value!r}'):
    checks.check_config(config, 1)


def test_any_grid_point_trains_an_unknown_one_is_refused():
  config = load_config('dcgan.py:digits,runlocal')
  config.loss.lipschitz = 'gp'           # DCGAN's loss with the gradient penalty ...
  with pytest.raises(ConfigError, match='batch norm'):
    checks.check_config(config, 1)       # ... needs a critic without batch norm
  config.model.critic_norm = 'layer'
  checks.check_config(config, 1)
  assert gans.resolve(config) == gans.GanSpec('nonsaturating', 'gp', 'none')
  config.loss.lipschitz = 'spectral'
  with pytest.raises(ConfigError, match="loss.lipschitz 'spectral' is unknown"):
    checks.check_config(config, 1)


def test_presets_and_the_old_acgan_field():
  assert gans.resolve(load_config('wgan.py:mnist')) == gans.GanSpec('wasserstein', 'clip', 'none')
  acgan = load_config('acgan.py:mnist,wasserstein_gp')
  assert gans.resolve(acgan) == gans.GanSpec('wasserstein', 'gp', 'acgan')
  # An old config (no grid fields) with acgan_adversarial, and the same as a flag.
  assert gans.resolve_fields('acgan', acgan_adversarial='wasserstein_clip') == gans.GanSpec(
      'wasserstein', 'clip', 'acgan')
  # Only ACGAN reads it: old configs of the other GANs carry 'nonsaturating' there.
  assert gans.resolve_fields('wgan_gp', acgan_adversarial='nonsaturating').lipschitz == 'gp'
  # The acgan_adversarial override on an ACGAN config whose option already set loss.*: it decides.
  for option in ('', ',wasserstein_gp'):
    config = load_config(f'acgan.py:digits{option}', acgan_adversarial='wasserstein_clip')
    assert gans.resolve(config) == gans.GanSpec('wasserstein', 'clip', 'acgan')
  with pytest.raises(ConfigError, match="unknown gan 'stylegan': not a preset"):
    gans.resolve_fields('stylegan')


def test_batch_not_divisible_by_devices():
  with pytest.raises(ConfigError, match='not divisible by the 3 devices'):
    checks.check_config(load_config(SPEC), 3)


def test_critic_pool_is_the_small_resnet_critics():
  sngan = load_config('sngan.py:cifar10')
  assert (sngan.model.arch, sngan.model.critic_pool) == ('resnet', 'sum')
  checks.check_config(sngan, 1)
  checks.check_data(sngan, (32, 32, 3), 10)
  with pytest.raises(ConfigError, match=r"^model.critic_pool 'sum': .* at 64x64 it flattens"):
    checks.check_data(sngan, (64, 64, 3), 10)   # the 64x64 ResNet has no global pool
  sngan.model.arch = 'conv'
  with pytest.raises(ConfigError, match=r"^model.critic_pool 'sum' is the ResNet critic's"):
    checks.check_config(sngan, 1)
