"""Several hosts, simulated: 2 processes x 2 CPU devices joined by jax.distributed on localhost.

A SIGTERM that reaches one process stops both at the same step with one checkpoint (JAX's
preemption sync), and the resumed run equals an uninterrupted one; 2 processes train what one
process with the same 4 devices trains (StyleGAN2 too); 2 processes sample and score a
conditional GAN (every metric of the domain classifier and a small DINOv2, intra-FID, density
and coverage included) as one process does, the statistics caches written once.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import ROOT, restore_state, simulated_devices

pytestmark = pytest.mark.slow
SPEC = 'wgan_gp.py:digits,runlocal,mlp'
COMMON = ('--config.log_every=1', '--config.sample_every=0', '--config.checkpoint_every=0',
          '--config.batch_size=16')


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _env(devices: int):
  return {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3', 'JAX_PLATFORMS': 'cpu',
          'XLA_FLAGS': simulated_devices(devices)}


def _launch(workdir, *extra, processes=2, spec=SPEC):
  """Starts the run in `processes` processes (2 devices each, or 4 in one process)."""
  port = _free_port()
  procs = []
  for i in range(processes):
    args = [sys.executable, os.path.join(ROOT, 'main.py'), f'--config=configs/{spec}',
            f'--workdir={workdir}', *COMMON, *extra]
    if processes > 1:
      args += ['--distributed', f'--num_processes={processes}', f'--process_id={i}']
    env = {**_env(4 // processes), 'JAX_COORDINATOR_ADDRESS': f'127.0.0.1:{port}'}
    procs.append(subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env=env))
  return procs


def _finish(procs, timeout=300):
  outputs = [p.communicate(timeout=timeout)[0] for p in procs]
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
  return outputs


def _steps(workdir):
  return sorted(int(n) for n in os.listdir(workdir / 'checkpoints') if n.isdigit())


def _assert_same(a, b, exact=True):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    if exact:
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    else:
      np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)


def test_sigterm_to_one_process_stops_both_at_one_step_and_resumes_exactly(tmp_path):
  interrupted = tmp_path / 'interrupted'
  procs = _launch(interrupted, '--config.num_steps=100000')
  lines = []
  for line in procs[0].stdout:   # wait until process 0 trains
    lines.append(line)
    if '] train/' in line and int(line.split('] train/')[0].rsplit('[', 1)[1]) > 3:
      break
  else:
    raise AssertionError(''.join(lines)[-3000:])
  sent = time.time()
  procs[1].send_signal(signal.SIGTERM)
  outputs = _finish(procs, timeout=120)
  assert time.time() - sent < 60
  (stop,) = _steps(interrupted)
  for out in outputs:
    assert f'stopped at step {stop} with a checkpoint' in out, out[-2000:]
  print(f'SIGTERM to process 1: both processes stopped at step {stop}, exit 0, in '
        f'{time.time() - sent:.1f} s; checkpoints: {_steps(interrupted)}')

  end = stop + 3
  _finish(_launch(interrupted, f'--config.num_steps={end}'))
  uninterrupted = tmp_path / 'uninterrupted'
  _finish(_launch(uninterrupted, f'--config.num_steps={end}'))
  assert _steps(interrupted)[-1] == _steps(uninterrupted)[-1] == end
  _assert_same(restore_state(interrupted, SPEC), restore_state(uninterrupted, SPEC))

  one = tmp_path / 'one_process'
  _finish(_launch(one, f'--config.num_steps={end}', processes=1))
  _assert_same(restore_state(one, SPEC), restore_state(uninterrupted, SPEC), exact=False)


def test_pmap_on_two_processes_trains_what_one_process_trains(tmp_path):
  """parallelism 'pmap' (shard_map over every device of every host, batch norm synced over
  all of them) on 2 processes x 2 devices against 1 process x 4 devices."""
  pmap = ('--config.parallelism=pmap', '--config.num_steps=3')
  _finish(_launch(tmp_path / 'two', *pmap))
  _finish(_launch(tmp_path / 'one', *pmap, processes=1))
  _assert_same(restore_state(tmp_path / 'two', SPEC), restore_state(tmp_path / 'one', SPEC),
               exact=False)


def test_stylegan2_on_two_processes_trains_what_one_process_trains(tmp_path):
  """StyleGAN2's runlocal config (ADA's p and sign sums, lazy R1, style mixing, the path length
  penalty and its mean, G's noise inputs, the EMA) under jit over 2 processes x 2 devices
  against 1 process x 4 devices: the same state, p and the path length mean included."""
  spec = 'stylegan2.py:digits,runlocal'
  _finish(_launch(tmp_path / 'two', '--config.num_steps=4', spec=spec))
  _finish(_launch(tmp_path / 'one', '--config.num_steps=4', processes=1, spec=spec))
  two, one = restore_state(tmp_path / 'two', spec), restore_state(tmp_path / 'one', spec)
  assert int(two.step) == 4 and set(two.ada) == {'p', 'signs', 'count'}
  assert float(two.path_length['mean']) > 0
  _assert_same(two, one, exact=False)


def _report(outputs):
  """The JSON line of process 0, which reports alone."""
  lines = [[l for l in out.splitlines() if l.startswith('{')] for out in outputs]
  assert len(lines[0]) == 1 and not any(lines[1:]), lines
  return json.loads(lines[0][0])


def test_two_processes_sample_and_evaluate_into_one_set_of_files(tmp_path):
  """A conditional GAN (ACGAN's MLP, 10 classes) sampled and scored by 2 processes x 2
  devices: the domain classifier's and a small random DINOv2's metrics (FID, KID, precision,
  recall, density, coverage, intra-FID), those of 1 process x 4 devices on the same samples, and
  the statistics caches (each extractor's and its per-class one) written once."""
  from test_dinov2 import _random_variables  # pylint: disable=g-import-not-at-top
  from test_scoring import _random_classifier  # pylint: disable=g-import-not-at-top
  from gan_jax import dinov2  # pylint: disable=g-import-not-at-top
  spec = 'acgan.py:digits,runlocal,mlp'
  workdir = tmp_path / 'run'
  # Flax's default init: ACGAN's N(0, 0.02) makes images that hardly vary (conftest's run).
  _finish(_launch(workdir, '--config.num_steps=2', '--config.model.init_std=0.0', processes=1,
                  spec=spec))
  _random_classifier(tmp_path / 'clf')
  arch = dict(width=32, depth=1, heads=2, patch=14, grid=2, mlp_dim=64, eps=1e-6)
  variables = jax.tree.map(lambda x: x + 0.1 * np.random.default_rng(0).normal(size=x.shape),
                           _random_variables(arch))
  dinov2.save(str(tmp_path / 'dinov2.npz'), variables, arch)
  stats = tmp_path / 'stats'
  evaluate = ['--mode=eval', f'--config.eval.classifier={tmp_path / "clf"}',
              f'--config.eval.dinov2_weights={tmp_path / "dinov2.npz"}',
              '--config.eval.num_samples=30', '--config.eval.reference_samples=300',
              '--config.eval.kid_subsets=2', '--config.eval.kid_subset_size=5',
              '--config.eval.pr_samples=10', f'--config.eval.stats_dir={stats}']
  modes = {
      'sample': ['--mode=sample', '--num_samples=10', f'--out={tmp_path / "s" / "x.npz"}'],
      'eval': evaluate,
  }
  results = {mode: _report(_finish(_launch(workdir, *args, spec=spec)))
             for mode, args in modes.items()}
  assert sorted(os.listdir(tmp_path / 's')) == ['x.npz', 'x.png']
  with np.load(tmp_path / 's' / 'x.npz') as f:
    assert f['images'].shape == (10, 28, 28, 1)
  # The samples of 2 processes x 2 devices are those of one process with one device.
  single = tmp_path / 'single.npz'
  subprocess.run([sys.executable, os.path.join(ROOT, 'main.py'), f'--workdir={workdir}',
                  '--mode=sample', '--num_samples=10', f'--out={single}'], cwd=ROOT,
                 env=_env(1), check=True, capture_output=True)
  with np.load(tmp_path / 's' / 'x.npz') as two, np.load(single) as one:
    np.testing.assert_allclose(two['images'], one['images'], atol=1e-5)
  # Each extractor's statistics and per-class statistics, one file each, written by process 0.
  assert len(os.listdir(stats)) == 4, os.listdir(stats)
  scores = results['eval']
  assert scores['domain_fid'] > 0 and scores['fd_dinov2'] > 0
  for kind in ('domain', 'dinov2'):
    info = scores['extractors'][kind]
    assert os.path.exists(info['stats']) and os.path.exists(info['per_class_stats'])
  for prefix in ('domain_', 'dinov2_'):
    assert scores[f'{prefix}intra_fid'] > 0 and scores[f'{prefix}intra_fid_class_9'] > 0
    assert scores[f'{prefix}density'] >= 0 and 0 <= scores[f'{prefix}coverage'] <= 1
  # 1 process x 4 devices scores the same samples (the caches now read) alike: equal to the
  # last bit here; asserted within 1e-4 (the samples may differ by round-off, as above). After
  # 2 steps the samples are far from the digits: precision, recall, density and coverage are 0
  # for both extractors, so only their plumbing is checked here (tests/test_scoring.py checks
  # the values).
  one = _report(_finish(_launch(workdir, *evaluate, processes=1, spec=spec)))
  assert sorted(one) == sorted(scores)
  assert scores['domain_kid_std'] > 0 and scores['dinov2_kid_std'] > 0
  for key, value in scores.items():
    if isinstance(value, float):
      assert one[key] == pytest.approx(value, rel=1e-4, abs=1e-7), key
    else:
      assert one[key] == value, key


def _tfds_processes(data_dir, markers, download: bool):
  port = _free_port()
  env = {**_env(1), 'JAX_COORDINATOR_ADDRESS': f'127.0.0.1:{port}',
         'TINY_IMAGES_MARKERS': str(markers),
         'PYTHONPATH': os.pathsep.join([ROOT, os.path.join(ROOT, 'tests')])}
  procs = [subprocess.Popen(
      [sys.executable, os.path.join(ROOT, 'tests', 'tfds_prepare_check.py'), '2', str(i),
       str(data_dir), '1' if download else '0'],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
           for i in range(2)]
  outputs = [p.communicate(timeout=300)[0] for p in procs]
  assert all(p.returncode == 0 for p in procs), outputs
  return [[l for l in out.splitlines() if l.startswith(('images', 'DataError'))][-1]
          for out in outputs]


def test_a_shared_tfds_data_dir_is_prepared_by_one_process(tmp_path):
  """A TFDS dataset made on this machine, in a data_dir both processes share: one process
  prepares it, both read the same images; with download off both fail in one line (no hang)."""
  markers = tmp_path / 'markers'
  markers.mkdir()
  refused = _tfds_processes(tmp_path / 'tfds', markers, download=False)
  assert refused[0].startswith("DataError TFDS dataset 'tiny_images' is not prepared"), refused
  assert refused[1] == ("DataError preparing TFDS dataset 'tiny_images' failed on process 0 "
                        '(its log says why)')
  lines = _tfds_processes(tmp_path / 'tfds', markers, download=True)
  assert lines[0] == lines[1] and lines[0].startswith('images (24, 8, 8, 1)'), lines
  assert len(os.listdir(markers)) == 1  # prepared once
