"""Interpolation videos (--mode=interpolate): slerp's known values, a walk through the keyframes
that loops, and a GIF and an MP4 of the expected frames, size and images on 8 devices."""

import json
import math

import imageio.v2 as imageio
import numpy as np
import pytest

from conftest import load_config, restore_state, run_main, simulated_devices
from gan_jax import input_pipeline, interpolation
from gan_jax.stepper import Stepper


def test_slerp_endpoints_known_midpoint_and_constant_norm():
  z0, z1 = np.array([2.0, 0.0, 0.0]), 2.0 * np.array([math.cos(1.2), math.sin(1.2), 0.0])
  np.testing.assert_allclose(interpolation.slerp(z0, z1, 0.0), z0, atol=1e-12)
  np.testing.assert_allclose(interpolation.slerp(z0, z1, 1.0), z1, atol=1e-12)
  # On the great circle: at t, the angle t * 1.2 from z0, and the norm 2 all the way.
  t = np.linspace(0, 1, 11)
  path = interpolation.slerp(z0[None], z1[None], t)
  np.testing.assert_allclose(np.linalg.norm(path, axis=-1), 2.0, rtol=1e-12)
  np.testing.assert_allclose(path, 2.0 * np.stack([np.cos(1.2 * t), np.sin(1.2 * t),
                                                   0 * t], axis=-1), atol=1e-12)
  # A straight line would not keep the norm: its midpoint is shorter.
  assert np.linalg.norm((z0 + z1) / 2) < 1.7
  # High-dimensional latents of one norm, batched; parallel vectors fall back to a line.
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(2, 4, 128))
  b *= (np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1))[:, None]
  path = interpolation.slerp(a[None], b[None], t[:, None])
  np.testing.assert_allclose(np.linalg.norm(path, axis=-1),
                             np.broadcast_to(np.linalg.norm(a, axis=-1), (11, 4)), rtol=1e-12)
  np.testing.assert_allclose(interpolation.slerp(z0, 3 * z0, 0.5), 2 * z0, atol=1e-12)
  assert np.all(np.isfinite(interpolation.slerp(z0, z0, 0.3)))


def test_a_walk_passes_through_every_keyframe_and_loops_back():
  keyframes = np.random.default_rng(1).normal(size=(3, 2, 16)).astype(np.float32)
  latents = interpolation.walk(keyframes, 4)
  assert latents.shape == (12, 2, 16) and latents.dtype == np.float32
  for s in range(3):
    np.testing.assert_allclose(latents[4 * s], keyframes[s], atol=1e-5)
  # The last frame is a quarter of the arc from the last keyframe back to the first.
  np.testing.assert_allclose(latents[11], interpolation.slerp(keyframes[2], keyframes[0], 0.75),
                             atol=1e-5)
  assert interpolation.layout(0, 10) == (10, 4)     # 10 walks, 4 columns
  assert interpolation.layout(10, 25) == (2, 2)     # 2 walks per class row


@pytest.mark.filterwarnings(r'ignore:os\.fork\(\) was called')   # imageio starts ffmpeg to read
def test_interpolate_writes_a_gif_and_an_mp4_on_8_devices(conditional_run, tmp_path):
  workdir, spec = conditional_run
  proc = run_main(f'--workdir={workdir}', '--mode=interpolate', '--num_samples=20',
                  '--keyframes=3', '--frames_between=4', '--fps=10', f'--out={tmp_path}/walk',
                  env={'XLA_FLAGS': simulated_devices(8)})
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'cpu: 8 x cpu' in proc.stderr and 'os.fork' not in proc.stderr
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  # Digits at 28 x 28: 10 class rows of 2 walks, 1-pixel gaps, upscaled twice.
  size = [2 * (2 * 29 + 1), 2 * (10 * 29 + 1)]
  assert result['frames'] == 12 and result['walks'] == 2 and result['size'] == size
  assert result['gif'] == f'{tmp_path}/walk.gif' and result['mp4'] == f'{tmp_path}/walk.mp4'
  gif = imageio.mimread(result['gif'])
  with imageio.get_reader(result['mp4']) as reader:
    mp4 = [frame for frame in reader]
    assert reader.get_meta_data()['fps'] == 10
  assert len(gif) == len(mp4) == 12
  assert [f.shape[:2] for f in gif + mp4] == [(size[1], size[0])] * 24

  # Frame 0 is keyframe 0 as one device makes it: every row the same z, its own class.
  config = load_config(spec)
  data = input_pipeline.spec(config.dataset)
  stepper = Stepper(config, data.image_shape, data.num_classes)
  state = restore_state(workdir, spec)
  z = interpolation.keyframe_noise(stepper, config.seed, 3, 2)
  frame, = interpolation.render(stepper, state, z[:1], ncol=2)
  np.testing.assert_allclose(gif[0][..., 0], frame[..., 0], atol=2)   # the GIF's palette
  assert np.abs(mp4[0].astype(int) - frame).mean() < 4                 # H.264 is lossy
  assert min(np.abs(gif[i].astype(int) - gif[i + 1]).max() for i in range(11)) > 0


@pytest.mark.parametrize('flags, message', [
    (['--keyframes=1'], '--keyframes must be >= 2'),
    (['--fps=0'], '--fps must be > 0'),
])
def test_bad_values_are_one_line_errors(conditional_run, tmp_path, flags, message):
  workdir, _ = conditional_run
  proc = run_main(f'--workdir={workdir}', '--mode=interpolate', f'--out={tmp_path}/v', *flags)
  errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
  assert proc.returncode == 2 and len(errors) == 1 and message in errors[0], proc.stderr[-2000:]
  assert not list(tmp_path.iterdir())


def test_a_workdir_without_checkpoints_is_refused(tmp_path):
  proc = run_main('--config=configs/dcgan.py:digits,runlocal,mlp', f'--workdir={tmp_path}/w',
                  '--mode=interpolate', '--frames_between=2')
  errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
  assert proc.returncode == 2 and len(errors) == 1 and 'no checkpoint' in errors[0], proc.stderr
  assert not (tmp_path / 'w').exists()
  proc = run_main('--config=configs/dcgan.py:digits,runlocal,mlp', f'--workdir={tmp_path}/w',
                  '--mode=train', '--keyframes=3')
  assert proc.returncode == 2 and '--keyframes is for --mode=interpolate' in proc.stderr
