"""Resume checks on a workdir's config.json, and the writability probe."""

import json

import pytest

from conftest import load_config
from configs import workdir as workdir_config
from gan_jax import input_pipeline as ip, rundir as workdir
from gan_jax.errors import ConfigError


def _write(tmp_path, config):
  (tmp_path / 'config.json').write_text(config.to_json_best_effort())


def test_resumable_fields_may_change_others_are_named(tmp_path):
  config = load_config('wgan_gp.py:digits,runlocal')
  _write(tmp_path, config)
  workdir.check_resume_config(load_config('wgan_gp.py:digits,runlocal', num_steps=9,
                                          critic_optimizer__learning_rate=1e-5), str(tmp_path))
  with pytest.raises(ConfigError, match=r'n_critic \(5 -> 3\), seed \(0 -> 1\)\. .*own '
                     r'settings: --config\.n_critic=5 --config\.seed=0$'):
    workdir.check_resume_config(load_config('wgan_gp.py:digits,runlocal', n_critic=3, seed=1),
                                str(tmp_path))


def test_another_gan_is_named_in_the_users_fields(tmp_path):
  _write(tmp_path, load_config('wgan_gp.py:digits,runlocal'))
  with pytest.raises(ConfigError) as refused:
    workdir.check_resume_config(load_config('wgan_gp.py:digits,runlocal',
                                            loss__lipschitz='r1'), str(tmp_path))
  assert "the GAN (loss.lipschitz '' -> 'r1')" in str(refused.value)
  assert str(refused.value).endswith("own settings: --config.loss.lipschitz=''")
  assert 'GanSpec' not in str(refused.value)


def test_a_field_newer_than_the_run_is_not_a_difference(tmp_path):
  config = load_config('wgan_gp.py:digits,runlocal')
  old = json.loads(config.to_json_best_effort())
  del old['dtype']  # written before gan_jax had this field
  (tmp_path / 'config.json').write_text(json.dumps(old))
  workdir.check_resume_config(config, str(tmp_path))


def test_writable_probe_creates_nothing(tmp_path):
  workdir.check_writable(str(tmp_path / 'new' / 'run'))
  assert not (tmp_path / 'new').exists()
  (tmp_path / 'file').write_text('x')
  with pytest.raises(ConfigError, match='is a file'):
    workdir.check_writable(str(tmp_path / 'file' / 'run'))


def _saved(tmp_path, **changes):
  """A workdir whose config.json is wgan_gp's digits config with `changes` (None: removed)."""
  saved = json.loads(load_config('wgan_gp.py:digits,runlocal', seed=7).to_json_best_effort())
  for key, value in changes.items():
    *parents, leaf = key.split('__')
    node = saved
    for p in parents:
      node = node[p]
    if value is None:
      del node[leaf]
    else:
      node[leaf] = value
  (tmp_path / 'config.json').write_text(json.dumps(saved))
  return str(tmp_path)


def test_workdir_config_fills_fields_newer_than_the_run(tmp_path):
  config = workdir_config.get_config(_saved(tmp_path, dtype=None, loss__gp_weight=None,
                                            dataset__float_range=None))
  assert config.dtype == 'float32' and config.loss.gp_weight == 10.0  # the defaults
  assert config.dataset.float_range == 'unit'
  assert config.seed == 7 and config.model.width == 8  # the run's own values


@pytest.mark.parametrize('changes,message', [
    (dict(gan='wgan_xl'), "has gan 'wgan_xl'"),
    (dict(gan='common'), "has gan 'common'"),  # a configs module, but not a GAN's
    (dict(gan=None), 'has gan None'),
    (dict(dataset__name='imagenet'), "has dataset.name 'imagenet'"),
])
def test_workdir_config_with_an_unknown_gan_or_dataset_is_a_clear_error(tmp_path, changes,
                                                                       message):
  path = _saved(tmp_path, **changes)
  with pytest.raises(ConfigError, match=f'the run in {path} {message}') as err:
    workdir_config.get_config(path)
  assert '\n' not in str(err.value)


def test_sampling_needs_no_training_data(tmp_path):
  """A run on local files samples after the files are gone: the shape is in data_spec.json."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from conftest import load_config  # pylint: disable=g-import-not-at-top
  from gan_jax import modes  # pylint: disable=g-import-not-at-top
  data = tmp_path / 'data.npz'
  rng = np.random.default_rng(0)
  np.savez(data, images=rng.integers(0, 256, (40, 12, 12, 3), dtype=np.uint8))
  config = load_config('dcgan.py:digits,runlocal,mlp', num_steps=1)
  config.dataset.path = str(data)
  modes.train(config, str(tmp_path / 'run'))
  assert workdir.read_spec(str(tmp_path / 'run')) == ip.DataSpec((12, 12, 3), 0)
  data.unlink()
  out = modes.sample(config, str(tmp_path / 'run'), 5, str(tmp_path / 's.npz'))
  with np.load(out['out']) as f:
    assert f['images'].shape == (5, 12, 12, 3)


def test_gs_paths_stay_gs_paths(tmp_path, monkeypatch):
  """No path of a run becomes local (os.path.abspath('gs://b/run') is './gs:/b/run')."""
  import os  # pylint: disable=g-import-not-at-top
  from gan_jax import checkpoints, files  # pylint: disable=g-import-not-at-top
  monkeypatch.chdir(tmp_path)
  assert checkpoints.directory('gs://b/run') == 'gs://b/run/checkpoints'
  assert checkpoints.directory('run', checkpoints.BEST) == str(tmp_path / 'run' / 'best_checkpoint')
  assert workdir.config_path('gs://b/run') == 'gs://b/run/config.json'
  assert workdir.spec_path('gs://b/run/') == 'gs://b/run/data_spec.json'
  assert files.absolute('gs://b/run') == 'gs://b/run' and files.root('gs://b/run/x') == 'gs://b'
  assert str(files.path('gs://b/run/samples.npz').with_suffix('.png')) == 'gs://b/run/samples.png'
  assert not os.listdir(tmp_path)
