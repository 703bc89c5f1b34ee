"""Workdirs written by an earlier version (gan_jax 38d564f: one flat train-state record, ACGAN's
`acgan_adversarial`) still sample and resume with this one."""

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


def test_old_workdir_samples_without_config_as_it_did(tmp_path):
  workdir = _old_workdir(tmp_path)
  out = tmp_path / 'samples.npz'
  proc = run_main(f'--workdir={workdir}', '--mode=sample', '--num_samples=20', f'--out={out}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert json.loads(proc.stdout.strip().splitlines()[-1])['step'] == 2
  with np.load(out) as new, np.load(os.path.join(OLD, 'acgan_wgp_mlp_samples.npz')) as old:
    np.testing.assert_array_equal(new['labels'], old['labels'])
    # Bitwise on the CPU that wrote them; float round-off on another CPU.
    np.testing.assert_allclose(new['images'], old['images'], atol=1e-5)


def test_old_workdir_resumes_and_matches_a_run_of_this_version(tmp_path):
  old = _old_workdir(tmp_path)
  fresh = tmp_path / 'fresh'
  for workdir in (old, fresh):
    proc = run_main(f'--config=configs/{SPEC}', f'--workdir={workdir}',
                    '--config.num_steps=4')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert ('Resumed from step 2' in proc.stderr) == (workdir == old)
  resumed, uninterrupted = restore_state(old, SPEC), restore_state(fresh, SPEC)
  assert int(resumed.step) == 4
  for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(uninterrupted), strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
