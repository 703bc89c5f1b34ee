"""Workdirs written by earlier versions still sample and resume with this one: gan_jax 38d564f
(one flat train-state record, ACGAN's `acgan_adversarial`) and 39feedf (the per-player state
before the modern toolkit: no EMA, no spectral norm vectors, no new config fields)."""

import json
import os
import shutil

import jax
import numpy as np

from conftest import ROOT, restore_state, run_main

OLD = os.path.join(ROOT, 'tests', 'data', 'workdir_38d564f')
SPEC = 'acgan.py:digits,runlocal,mlp,wasserstein_gp'  # what the old run was started with


def _old_workdir(tmp_path):
  workdir = tmp_path / 'old'
  shutil.copytree(os.path.join(OLD, 'acgan_wgp_mlp'), workdir)
  return workdir


def test_old_workdir_samples_without_config_as_this_version_trains(tmp_path):
  """Sampling an old workdir (its own config.json) gives the samples of the same run trained
  by this version: the old checkpoint restores into the same parameters. (The samples that old
  version wrote used the seed + 2 noise stream that sampling no longer uses.)"""
  outs = []
  for name, args in (('old', []), ('new', [f'--config=configs/{SPEC}', '--config.num_steps=2'])):
    workdir = _old_workdir(tmp_path) if name == 'old' else tmp_path / name
    if args:
      assert run_main(*args, f'--workdir={workdir}').returncode == 0
    outs.append(tmp_path / f'{name}.npz')
    proc = run_main(f'--workdir={workdir}', '--mode=sample', '--num_samples=20',
                    f'--out={outs[-1]}')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])['step'] == 2
  with np.load(outs[0]) as old, np.load(outs[1]) as new, np.load(
      os.path.join(OLD, 'acgan_wgp_mlp_samples.npz')) as written:
    np.testing.assert_array_equal(old['labels'], written['labels'])
    # Bitwise on the CPU that wrote the checkpoint; float round-off on another CPU.
    np.testing.assert_allclose(old['images'], new['images'], atol=1e-5)
    assert not np.allclose(old['images'], written['images'], atol=1e-3)  # the new noise


def _resumes_as_this_version_trains(old, spec: str, tmp_path):
  """Resumes the old run in `old` (at step 2) to step 4 and checks it against a fresh run of
  `spec` by this version; returns the resumed state."""
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


def test_old_workdir_resumes_and_matches_a_run_of_this_version(tmp_path):
  _resumes_as_this_version_trains(_old_workdir(tmp_path), SPEC, tmp_path)


def test_old_workdir_evaluates_without_config(tmp_path):
  from test_scoring import _random_classifier  # pylint: disable=g-import-not-at-top
  workdir = _old_workdir(tmp_path)
  _random_classifier(tmp_path / 'clf')
  proc = run_main(f'--workdir={workdir}', '--mode=eval',
                  f'--config.eval.classifier={tmp_path / "clf"}', '--config.eval.num_samples=50',
                  '--config.eval.kid_subsets=2', '--config.eval.kid_subset_size=20',
                  '--config.eval.pr_samples=20', f'--config.eval.stats_dir={tmp_path / "stats"}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result['step'] == 2 and result['num_samples'] == 50
  assert result['domain_fid'] > 0 and 0 <= result['acgan_label_accuracy'] <= 1


PRE_TOOLKIT = os.path.join(ROOT, 'tests', 'data', 'workdir_39feedf')
PRE_TOOLKIT_SPEC = 'dcgan.py:digits,runlocal,mlp'   # batch norm in G and D: statistics too


def test_a_workdir_from_before_the_toolkit_samples_and_resumes(tmp_path):
  old = tmp_path / 'old'
  shutil.copytree(os.path.join(PRE_TOOLKIT, 'dcgan_mlp'), old)
  out = tmp_path / 'old.npz'
  proc = run_main(f'--workdir={old}', '--mode=sample', '--num_samples=20', f'--out={out}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result['step'] == 2 and 'generator' not in result   # no EMA: nothing to say
  with np.load(out) as now, np.load(os.path.join(PRE_TOOLKIT, 'dcgan_mlp_samples.npz')) as then:
    # The samples 39feedf wrote: bitwise on the CPU that wrote them, round-off on another.
    np.testing.assert_allclose(now['images'], then['images'], atol=1e-5)
  resumed = _resumes_as_this_version_trains(old, PRE_TOOLKIT_SPEC, tmp_path)
  assert not resumed.ema and not resumed.critic.spectral
  # Resuming it with a toolkit option is a change of config, refused in one line.
  proc = run_main(f'--config=configs/{PRE_TOOLKIT_SPEC}', f'--workdir={old}',
                  '--config.num_steps=6', '--config.ema.decay=0.9')
  assert proc.returncode == 2 and 'ema.decay (0.0 -> 0.9)' in proc.stderr, proc.stderr[-2000:]
