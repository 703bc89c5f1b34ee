"""Workdirs of the earlier checkpoint formats (gan_jax/migration.py) sample, evaluate and resume
as fresh runs of their config do: format 1 (one flat train-state record, ACGAN's
`acgan_adversarial` in its config.json), format 2 (per-player state without EMA or spectral
norm vectors, a config.json without the toolkit's fields) and format 3 (EMA and spectral norm
vectors, no LeCam anchors, a config.json without the LeCam and truncation fields) and format 4
(LeCam's anchors, no ADA state, a config.json without the ADA fields)."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from conftest import ROOT, load_config, restore_state, run_main

FORMAT1 = os.path.join(ROOT, 'tests', 'data', 'workdir_format1')
# What its run was started with: the ACGAN preset's class loss was the paper's ('paper' now).
FORMAT1_SPEC = 'acgan.py:digits,runlocal,mlp,wasserstein_gp,paper'


def _format1_workdir(tmp_path):
  workdir = tmp_path / 'old'
  shutil.copytree(os.path.join(FORMAT1, 'acgan_wgp_mlp'), workdir)
  return workdir


@pytest.mark.slow   # several processes (main.py runs)
def test_format1_workdir_samples_without_config_as_a_fresh_run(tmp_path):
  """Sampling a format-1 workdir (its own config.json) gives the samples of the same run trained
  fresh: its checkpoint restores into the same parameters. (acgan_wgp_mlp_samples.npz, the
  samples stored beside it, come from the seed + 2 noise stream, not sampling's named stream:
  the same labels, other images.)"""
  outs = []
  for name, args in (('old', []),
                     ('new', [f'--config=configs/{FORMAT1_SPEC}', '--config.num_steps=2'])):
    workdir = _format1_workdir(tmp_path) if name == 'old' else tmp_path / name
    if args:
      assert run_main(*args, f'--workdir={workdir}').returncode == 0
    outs.append(tmp_path / f'{name}.npz')
    proc = run_main(f'--workdir={workdir}', '--mode=sample', '--num_samples=20',
                    f'--out={outs[-1]}')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])['step'] == 2
  with np.load(outs[0]) as old, np.load(outs[1]) as new, np.load(
      os.path.join(FORMAT1, 'acgan_wgp_mlp_samples.npz')) as written:
    np.testing.assert_array_equal(old['labels'], written['labels'])
    # Bitwise on the CPU that wrote the checkpoint; float round-off on another CPU.
    np.testing.assert_allclose(old['images'], new['images'], atol=1e-5)
    assert not np.allclose(old['images'], written['images'], atol=1e-3)  # another noise stream


def _resumes_as_a_fresh_run_trains(old, spec: str, tmp_path):
  """Resumes the run in `old` (an earlier format, at step 2) to step 4 and checks it against a
  fresh run of `spec`; returns the resumed state."""
  fresh = tmp_path / 'fresh'
  for workdir in (old, fresh):
    proc = run_main(f'--config=configs/{spec}', f'--workdir={workdir}',
                    '--config.num_steps=4')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert ('Resumed from step 2' in proc.stderr) == (workdir == old)
  resumed, uninterrupted = restore_state(old, spec), restore_state(fresh, spec)
  assert int(resumed.step) == 4
  for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(uninterrupted), strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
  return resumed


def test_format1_workdir_resumes_and_matches_a_fresh_run(tmp_path):
  _resumes_as_a_fresh_run_trains(_format1_workdir(tmp_path), FORMAT1_SPEC, tmp_path)


def test_format1_workdir_evaluates_without_config(tmp_path):
  from test_scoring import _random_classifier  # pylint: disable=g-import-not-at-top
  workdir = _format1_workdir(tmp_path)
  _random_classifier(tmp_path / 'clf')
  proc = run_main(f'--workdir={workdir}', '--mode=eval',
                  f'--config.eval.classifier={tmp_path / "clf"}', '--config.eval.num_samples=50',
                  '--config.eval.kid_subsets=2', '--config.eval.kid_subset_size=20',
                  '--config.eval.pr_samples=20', f'--config.eval.stats_dir={tmp_path / "stats"}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result['step'] == 2 and result['num_samples'] == 50
  assert result['domain_fid'] > 0 and 0 <= result['acgan_label_accuracy'] <= 1


def _samples_as_stored(fixture: str, name: str, tmp_path):
  """Copies the old workdir `fixture`/`name`, samples it without a config and checks the
  samples against those stored beside it (`name`_samples.npz): bitwise on the CPU that wrote
  them, round-off on another. Returns (the copy's path, the sample mode's JSON line)."""
  old = tmp_path / 'old'
  shutil.copytree(os.path.join(fixture, name), old)
  out = tmp_path / 'old.npz'
  proc = run_main(f'--workdir={old}', '--mode=sample', '--num_samples=20', f'--out={out}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  with np.load(out) as now, np.load(os.path.join(fixture, f'{name}_samples.npz')) as then:
    np.testing.assert_allclose(now['images'], then['images'], atol=1e-5)
  return old, json.loads(proc.stdout.strip().splitlines()[-1])


def _refused_on_resume(old, spec: str, flags, message: str):
  """Resuming `old` with `flags` is a change of config, refused in one line naming `message`."""
  proc = run_main(f'--config=configs/{spec}', f'--workdir={old}', '--config.num_steps=6', *flags)
  assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]


FORMAT2 = os.path.join(ROOT, 'tests', 'data', 'workdir_format2')
FORMAT2_SPEC = 'dcgan.py:digits,runlocal,mlp'   # batch norm in G and D: statistics too


@pytest.mark.slow   # several processes (main.py runs)
def test_format2_workdir_samples_and_resumes(tmp_path):
  old, result = _samples_as_stored(FORMAT2, 'dcgan_mlp', tmp_path)
  assert result['step'] == 2 and 'generator' not in result   # no EMA: nothing to say
  resumed = _resumes_as_a_fresh_run_trains(old, FORMAT2_SPEC, tmp_path)
  assert not resumed.ema and not resumed.critic.spectral
  _refused_on_resume(old, FORMAT2_SPEC, ['--config.ema.decay=0.9'], 'ema.decay (0.0 -> 0.9)')


FORMAT3 = os.path.join(ROOT, 'tests', 'data', 'workdir_format3')
FORMAT3_SPEC = 'dcgan.py:digits,runlocal,mlp,modern'   # EMA, spectral norm, DiffAugment


@pytest.mark.slow   # several processes (main.py runs)
def test_format3_workdir_samples_and_resumes(tmp_path):
  old, result = _samples_as_stored(FORMAT3, 'dcgan_modern_mlp', tmp_path)
  assert result['step'] == 2 and result['generator'] == 'ema' and 'truncation' not in result
  resumed = _resumes_as_a_fresh_run_trains(old, FORMAT3_SPEC, tmp_path)
  assert resumed.ema and resumed.critic.spectral and resumed.lecam == {}
  # Its checkpoints are now of today's format; LeCam on it is a change of config, refused.
  _refused_on_resume(old, FORMAT3_SPEC, ['--config.loss.lecam_weight=0.3'],
                     'loss.lecam_weight (0.0 -> 0.3)')


FORMAT4 = os.path.join(ROOT, 'tests', 'data', 'workdir_format4')
FORMAT4_SPEC = FORMAT3_SPEC   # written by main at 25f8ac7, the last to write format 4


def test_format4_layout_is_todays_without_ada_and_holds_only_runs_without_it():
  from gan_jax import input_pipeline, migration  # pylint: disable=g-import-not-at-top
  from gan_jax.stepper import Stepper  # pylint: disable=g-import-not-at-top
  targets = {}
  for name, overrides in (('plain', {}), ('ada', {'augment__ada': 'bgc',
                                                   'augment__policy': ''})):
    config = load_config(FORMAT4_SPEC, **overrides)
    data = input_pipeline.spec(config.dataset)
    targets[name] = Stepper(config, data.image_shape, data.num_classes).abstract_state()
  assert migration.FORMAT == 5 and migration.can_hold(targets['plain'], 4)
  assert not migration.can_hold(targets['ada'], 4) and migration.can_hold(targets['ada'], 5)
  # ... nor pl_mean (loss.pl_weight > 0, stylegan2), which format 5 holds too
  with_pl = targets['plain'].replace(path_length={'mean': jax.ShapeDtypeStruct((), np.float32)})
  assert not migration.can_hold(with_pl, 4) and migration.can_hold(with_pl, 5)
  layout = migration.layout(targets['plain'], 4)
  assert set(layout) == {'step', 'key', 'gen', 'critic', 'skipped', 'ema', 'lecam'}
  assert migration.upgrade(layout, 4).ada == {} and migration.upgrade(layout, 4).path_length == {}


@pytest.mark.slow   # several processes (main.py runs)
def test_format4_workdir_samples_and_resumes(tmp_path):
  old, result = _samples_as_stored(FORMAT4, 'dcgan_modern_mlp', tmp_path)
  assert result['step'] == 2 and result['generator'] == 'ema'
  resumed = _resumes_as_a_fresh_run_trains(old, FORMAT4_SPEC, tmp_path)
  assert resumed.ema and resumed.critic.spectral and resumed.ada == {}
  _refused_on_resume(old, FORMAT4_SPEC, ['--config.augment.policy=', '--config.augment.ada=bgc'],
                     "augment.ada ('' -> 'bgc')")
