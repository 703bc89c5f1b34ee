"""Resume checks on a workdir's config.json, and the writability probe."""

import json

import pytest

from conftest import load_config
from gan_jax import workdir
from gan_jax.errors import ConfigError


def _write(tmp_path, config):
  (tmp_path / 'config.json').write_text(config.to_json_best_effort())


def test_resumable_fields_may_change_others_are_named(tmp_path):
  config = load_config('wgan_gp.py:digits,runlocal')
  _write(tmp_path, config)
  workdir.check_resume_config(load_config('wgan_gp.py:digits,runlocal', num_steps=9,
                                          critic_optimizer__learning_rate=1e-5), str(tmp_path))
  with pytest.raises(ConfigError, match=r'n_critic \(5 -> 3\), seed \(0 -> 1\)'):
    workdir.check_resume_config(load_config('wgan_gp.py:digits,runlocal', n_critic=3, seed=1),
                                str(tmp_path))


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
