"""Preemption and crashes, with real subprocesses and signals: SIGTERM / SIGINT checkpoint at
the current step and exit 0; kill -9, also during a save, leaves a workdir that restores; the
resumed run equals an uninterrupted one (bitwise, same device count)."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import ROOT, restore_state
from gan_jax import checkpoints

TMP_SUFFIX = '.orbax-checkpoint-tmp'
SPEC = 'wgan_gp.py:digits,runlocal,mlp'  # the MLP compiles in a second


def _start(workdir, *extra):
  args = [sys.executable, os.path.join(ROOT, 'main.py'),
          f'--config=configs/{SPEC}', f'--workdir={workdir}',
          '--config.log_every=1', '--config.sample_every=0', '--config.checkpoint_every=0',
          *extra]
  return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'})


def _wait_for_training(proc, min_step=0):
  """Reads the run's output until it logs a step > min_step; returns the lines read."""
  output = []
  for line in proc.stdout:
    output.append(line)
    if '] train/' in line and int(line.split('] train/')[0].rsplit('[', 1)[1]) > min_step:
      return output
  raise AssertionError('the run ended before training: ' + ''.join(output)[-3000:])


def _restore(workdir, step=None):
  return restore_state(workdir, SPEC, step)


def _interrupt(workdir, sig):
  """Starts a long run, sends `sig` once it is training; returns the checkpointed step."""
  proc = _start(workdir, '--config.num_steps=1000000')
  output = _wait_for_training(proc, min_step=2)
  sent = time.time()
  proc.send_signal(sig)
  rest, _ = proc.communicate(timeout=120)
  output.append(rest)
  assert proc.returncode == 0, ''.join(output)[-3000:]
  assert time.time() - sent < 30
  steps = checkpoints.manager(str(workdir), 3, read_only=True).all_steps()
  assert len(steps) == 1 and steps[0] >= 3, steps
  assert f'stopped at step {steps[0]}' in ''.join(output)
  return steps[0]


def _kill_during_saves(workdir, delay):
  """A run saving every step, killed with SIGKILL `delay` s after it logs a new step.

  Returns whether a save was in flight (an unfinished Orbax tmp directory is left).
  """
  before = checkpoints.manager(str(workdir), 3, read_only=True).latest_step() or 0
  proc = _start(workdir, '--config.num_steps=1000000', '--config.checkpoint_every=1',
                '--config.keep_checkpoints=2')
  _wait_for_training(proc, min_step=before)
  time.sleep(delay)
  proc.kill()
  proc.communicate(timeout=60)
  names = os.listdir(checkpoints.directory(str(workdir)))
  return any(n.endswith(TMP_SUFFIX) for n in names)


def test_sigint_checkpoints_and_exits_0(tmp_path):
  _interrupt(tmp_path, signal.SIGINT)


@pytest.mark.slow   # several processes, over a minute on 2 cores
def test_sigterm_and_kill9_then_resume_equal_an_uninterrupted_run(tmp_path):
  interrupted = tmp_path / 'interrupted'
  stopped_at = _interrupt(interrupted, signal.SIGTERM)
  in_flight = []
  for delay in (0.0, 0.05):
    in_flight.append(_kill_during_saves(interrupted, delay))
    latest = checkpoints.manager(str(interrupted), 3, read_only=True).latest_step()
    state = _restore(interrupted)  # the last complete checkpoint, never a half-written one
    assert int(state.step) == latest >= stopped_at
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(state.gen.params))
  # SIGKILL came while Orbax was writing at least once (its tmp directory was left behind).
  assert any(in_flight), in_flight

  target = latest + 3
  proc = _start(interrupted, f'--config.num_steps={target}')
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out[-3000:]
  assert not any(n.endswith(TMP_SUFFIX) for n in os.listdir(checkpoints.directory(
      str(interrupted))))
  straight = tmp_path / 'straight'
  proc = _start(straight, f'--config.num_steps={target}')
  assert proc.wait(timeout=300) == 0
  a, b = _restore(interrupted, target), _restore(straight, target)
  assert int(a.step) == target
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
