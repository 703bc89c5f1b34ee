"""SIGTERM / SIGINT: checkpoint at the current step, exit 0, resume to what an uninterrupted
run gives (bitwise, same device count)."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from conftest import ROOT, load_config
from gan_jax import checkpoints, train


def _start(workdir, *extra):
  args = [sys.executable, os.path.join(ROOT, 'main.py'),
          '--config=configs/wgan_gp.py:digits,runlocal', f'--workdir={workdir}',
          '--config.log_every=1', '--config.sample_every=0', '--config.checkpoint_every=0',
          *extra]
  return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'})


def _params_at(workdir, step):
  config = load_config('wgan_gp.py:digits,runlocal')
  run = train.Run(config, str(workdir))
  state, _ = run.restore_or_init(checkpoints.manager(str(workdir), 3, read_only=True), step)
  return state


def _interrupt(workdir, sig):
  """Starts a long run, sends `sig` once it is training; returns the checkpointed step."""
  proc = _start(workdir, '--config.num_steps=1000000')
  output = []
  for line in proc.stdout:  # wait until training is under way
    output.append(line)
    if '] train/critic_loss' in line and '[3]' in line:
      break
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


def test_sigint_checkpoints_and_exits_0(tmp_path):
  _interrupt(tmp_path, signal.SIGINT)


def test_sigterm_then_resume_equals_an_uninterrupted_run(tmp_path):
  interrupted = tmp_path / 'interrupted'
  target = _interrupt(interrupted, signal.SIGTERM) + 2
  proc = _start(interrupted, f'--config.num_steps={target}')
  assert proc.wait(timeout=300) == 0
  straight = tmp_path / 'straight'
  proc = _start(straight, f'--config.num_steps={target}')
  assert proc.wait(timeout=300) == 0
  a, b = _params_at(interrupted, target), _params_at(straight, target)
  assert int(a.step) == target
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
