"""main.py as a user runs it: train, TensorBoard events, sample, and one-line errors."""

import glob
import json
import os
import struct

import jax

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator

from conftest import restore_state, run_main, run_tool, simulated_devices


def _events(workdir):
  acc = event_accumulator.EventAccumulator(str(workdir), size_guidance={'images': 0, 'tensors': 0})
  acc.Reload()
  return acc.Tags()


@pytest.mark.slow   # several processes, over a minute on 2 cores
def test_train_then_sample_acgan(tmp_path):
  workdir = tmp_path / 'run'
  result = run_main('--config=configs/acgan.py:digits,runlocal', f'--workdir={workdir}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'train/critic_loss' in result.stderr  # the console shows the losses
  # ... and neither TensorFlow's start-up notices nor a progress rate of dispatched calls
  assert 'oneDNN' not in result.stderr and 'InitializeLog' not in result.stderr, result.stderr
  assert 'step 4 of 4 (100.0%)' in result.stderr and 'Trained to step 4' in result.stderr
  assert (workdir / 'config.json').exists()
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['2', '4']
  tags = _events(workdir)
  scalar_tags = set(tags['scalars']) | set(tags['tensors'])
  for tag in ('train/critic_loss', 'train/gen_loss', 'train/aux_acc_real', 'train/d_real',
              'train/images_per_sec', 'train/data_seconds_per_step', 'train/gen_learning_rate',
              'train/critic_learning_rate', 'train/skipped', 'steps_per_sec'):
    assert tag in scalar_tags, (tag, scalar_tags)
  assert any('samples' in t for t in tags['images'] + tags['tensors']), tags

  # The fixed-z grids as an animated GIF, one frame per logged step.
  gif = run_tool('make_gif', f'--workdir={workdir}', timeout=120)
  assert gif.returncode == 0, gif.stderr[-2000:]
  assert json.loads(gif.stdout.splitlines()[-1])['steps'] == [2, 4]
  with Image.open(workdir / 'samples.gif') as image:
    assert image.n_frames == 2

  out = tmp_path / 'out' / 's.npz'
  result = run_main('--config=configs/acgan.py:digits,runlocal', f'--workdir={workdir}',
                    '--mode=sample', '--num_samples=30', f'--out={out}', '--step=2')
  assert result.returncode == 0, result.stderr[-3000:]
  assert '"step": 2' in result.stdout
  with np.load(out) as f:
    images, labels = f['images'], f['labels']
  assert images.shape == (30, 28, 28, 1) and images.dtype == np.float32
  assert 0 <= images.min() and images.max() <= 1
  assert np.bincount(labels).tolist() == [3] * 10  # balanced over the classes
  assert (tmp_path / 'out' / 's.png').stat().st_size > 100


@pytest.mark.slow   # several processes, over a minute on 2 cores
def test_wgan_gp_trains_and_resumes_from_the_command_line(tmp_path):
  args = ['--config=configs/wgan_gp.py:digits,runlocal', f'--workdir={tmp_path}',
          '--config.num_steps=2']
  assert run_main(*args).returncode == 0
  result = run_main(*args[:2], '--config.num_steps=4')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Resumed from step 2' in result.stderr
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['2', '4']
  # Only --workdir: sampling uses the run's own config.json.
  result = run_main(f'--workdir={tmp_path}', '--mode=sample', '--num_samples=5')
  assert result.returncode == 0, result.stderr[-3000:]
  with np.load(tmp_path / 'samples.npz') as f:
    assert f['images'].shape == (5, 28, 28, 1) and 'labels' not in f
  for bad in ('0', '-3'):  # refused before anything is restored or written
    result = run_main(f'--workdir={tmp_path}', '--mode=sample', f'--num_samples={bad}',
                      f'--out={tmp_path}/none.npz')
    _assert_one_line_error(result, f'--num_samples={bad}')
    assert 'positive integer' in result.stderr and not (tmp_path / 'none.npz').exists()

  # Resuming with another GAN or shapes: one line naming the fields, nothing changed.
  before = {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()}
  result = run_main('--config=configs/dcgan.py:digits,runlocal', f'--workdir={tmp_path}')
  assert result.returncode == 2
  errors = [l for l in result.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1 and "gan ('wgan_gp' -> 'dcgan')" in errors[0], result.stderr[-2000:]
  result = run_main(*args[:2], '--config.model.width=4')
  assert result.returncode == 2 and 'model.width (8 -> 4)' in result.stderr
  after = {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()}
  assert after == before

  # A corrupt checkpoint: one line naming it and the step to fall back to; nothing changed.
  for path in (tmp_path / 'checkpoints' / '4' / 'state').rglob('*'):
    if path.is_file() and path.parent.name == 'd':
      path.write_bytes(b'garbage')
  before = {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()}
  result = run_main(*args[:2], '--config.num_steps=6')
  _assert_one_line_error(result, 'checkpoints/4 cannot be restored')
  assert 'resume from step 2' in result.stderr
  assert {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()} == before


def _bad_files(tmp):
  """A truncated IDX file and an npz of the wrong shape, as a user might pass them."""
  idx = tmp / 'idx'
  idx.mkdir()
  header = struct.pack('>I', 0x0803) + struct.pack('>III', 100, 28, 28)
  (idx / 'train-images-idx3-ubyte').write_bytes(header + bytes(28 * 28 * 10))  # 10 of 100
  np.savez(tmp / 'flat.npz', images=np.zeros((10, 784), np.uint8))
  (tmp / 'a_file').write_text('not a directory')
  (tmp / 'no_images').mkdir()
  (tmp / 'no_images' / 'readme.txt').write_text('no images here')


GAN = '--config=configs/wgan_gp.py:digits,runlocal'


@pytest.mark.parametrize('args,message', [
    (['--config=configs/wgan_gp.py:imagenet'], "unknown dataset 'imagenet'"),
    ([GAN, '--config.gan=wgan_xl'], "unknown gan 'wgan_xl'"),
    ([GAN, '--config.batch_size=0'], 'batch_size must be >= 1'),
    ([GAN, '--config.n_critic=0'], 'n_critic must be >= 1'),
    ([GAN, '--config.dataset.path=/no/such/dir'], 'does not exist'),
    ([GAN, '--config.dataset.path={tmp}/idx'], 'truncated'),
    ([GAN, '--config.dataset.path={tmp}/flat.npz'], 'N x H x W'),
    ([GAN, '--config.dataset.path={tmp}/no_images'], 'no IDX files and no images'),
    ([GAN, '--config.dataset.path={tmp}/a_file'], 'is a file but not an .npz'),
    ([GAN, '--config.dataset.channels=2'], 'dataset.channels must be one of 0, 1, 3, got 2'),
    (['--config=configs/dcgan.py:celeba'], "did you mean 'celeb_a'"),
    (['--config=configs/wgan_gp.py:digits,resnet'], 'multiple of 8'),
    (['--config=configs/wgan_gp.py:digits,runlocal,resnet', '--config.dataset.image_size=48'],
     '64, 128, 256... (a power of two'),
    ([GAN, '--config.batch_sizee=3'], 'Did you mean "batch_size"'),
    (['--config=configs/nothere.py'], 'No such file'),
    (['--config=configs/wgan_gp.py:cifar10,runlocal', '--config.dataset.download=False',
      '--config.dataset.data_dir=/tmp/gan_jax_no_tfds'], "TFDS dataset 'cifar10'"),
    ([GAN, '--workdir={tmp}/a_file/run'], 'is a file, not a directory'),
])
def test_bad_input_is_one_line_exit_2_and_no_workdir(tmp_path, args, message):
  _bad_files(tmp_path)
  workdir = tmp_path / 'w'
  args = [a.format(tmp=tmp_path) for a in args]
  if not any(a.startswith('--workdir') for a in args):
    args.append(f'--workdir={workdir}')
  result = run_main(*args)
  _assert_one_line_error(result, message)
  assert not workdir.exists() and not (tmp_path / 'a_file' / 'run').exists()


def _assert_one_line_error(result, message, status=2):
  assert result.returncode == status, result.stderr[-2000:]
  errors = [l for l in result.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
  assert 'Traceback' not in result.stderr


def test_batch_not_divisible_by_the_devices(tmp_path):
  result = run_main(GAN, '--config.batch_size=12', f'--workdir={tmp_path}/w',
                    env={'XLA_FLAGS': simulated_devices(8)})
  _assert_one_line_error(result, 'batch_size 12 is not divisible by the 8 devices')
  assert not (tmp_path / 'w').exists()


@pytest.mark.slow   # several processes, over a minute on 2 cores
def test_nonfinite_stops_naming_step_and_metric_or_is_skipped(tmp_path):
  spec = 'wgan_gp.py:digits,runlocal,mlp'  # the MLP compiles in a second
  args = [f'--config=configs/{spec}', f'--workdir={tmp_path}', '--config.checkpoint_every=1', '--config.log_every=1']
  assert run_main(*args, '--config.num_steps=2').returncode == 0
  before = {p: p.read_bytes() for p in (tmp_path / 'checkpoints').rglob('*') if p.is_file()}
  # A learning rate of 1e4 overflows in the first iteration after the resume.
  result = run_main(*args, '--config.num_steps=5', '--config.critic_optimizer.learning_rate=1e4')
  _assert_one_line_error(result, 'step 3: non-finite train/critic_loss', status=1)
  assert 'the last checkpoint (step 2) is intact' in result.stderr
  after = {p: p.read_bytes() for p in (tmp_path / 'checkpoints').rglob('*') if p.is_file()}
  assert after == before  # no non-finite state was saved

  # skip_nonfinite: the same iterations are skipped and counted; the state stays at step 2's.
  result = run_main(*args, '--config.num_steps=4', '--config.critic_optimizer.learning_rate=1e4',
                    '--config.skip_nonfinite=True')
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'step 3: skipped an iteration with non-finite' in result.stderr
  assert 'train/skipped=2' in result.stderr
  state = restore_state(tmp_path, spec, 4)
  old = restore_state(tmp_path, spec, 2)
  assert int(state.step) == 4 and int(state.skipped) == 2
  for x, y in zip(jax.tree.leaves(state.gen.params), jax.tree.leaves(old.gen.params)):
    np.testing.assert_array_equal(x, y)


def test_sample_without_checkpoint_is_a_clear_error(tmp_path):
  result = run_main('--config=configs/dcgan.py:digits,runlocal', f'--workdir={tmp_path}',
                    '--mode=sample')
  assert result.returncode == 2 and 'no checkpoint' in result.stderr
  assert not glob.glob(str(tmp_path / '*'))
  # Without --config, sampling needs the workdir's config.json: one line, no module prefix.
  result = run_main(f'--workdir={tmp_path}', '--mode=sample')
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      f'error: {tmp_path} has no config.json: give --config, or train there first')


@pytest.mark.slow   # several processes (main.py runs)
def test_a_folder_of_classes_trains_and_its_samples_are_named(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  data = tmp_path / 'data'
  for c, name in enumerate(('apple', 'pear')):
    (data / name).mkdir(parents=True)
    for i in range(8):
      Image.new('RGB', (20 + i, 12), (100 * c, 50, 10 * i)).save(data / name / f'{i}.png')
  workdir = tmp_path / 'run'
  args = ['--config=configs/acgan.py:digits,runlocal,mlp', f'--config.dataset.path={data}',
          '--config.dataset.image_size=8', '--config.dataset.channels=3', f'--workdir={workdir}']
  result = run_main(*args, '--config.num_steps=2')
  assert result.returncode == 0, result.stderr[-3000:]
  assert '2 classes: 0 apple (8), 1 pear (8)' in result.stderr
  from gan_jax import images  # pylint: disable=g-import-not-at-top
  (_, frame), = images.read_grids(str(workdir))  # 10 per class, rows named: a margin on the left
  assert frame.shape[:2] == (2 * 9 + 1, 10 * 9 + 1 + 6 * len('apple') + 6)
  spec = json.loads((workdir / 'data_spec.json').read_text())
  assert spec == {'image_shape': [8, 8, 3], 'num_classes': 2, 'class_names': ['apple', 'pear']}
  out = tmp_path / 's.npz'
  result = run_main(f'--workdir={workdir}', '--mode=sample', '--num_samples=4', f'--out={out}')
  assert result.returncode == 0, result.stderr[-3000:]
  with np.load(out) as f:
    assert f['images'].shape == (4, 8, 8, 3) and f['class_names'].tolist() == ['apple', 'pear']
  with Image.open(tmp_path / 's.png') as grid:  # names in a margin left of the 2 x 2 grid
    assert grid.width > grid.height == 2 * (2 * 9 + 1)


def test_compile_without_libtpu_names_the_install_line():
  import importlib.util  # pylint: disable=g-import-not-at-top
  if importlib.util.find_spec('libtpu') is not None:
    pytest.skip('libtpu is installed here (tests/test_tpu_compile.py compiles with it)')
  result = run_main('--mode=compile', '--config=configs/dcgan.py:cifar10', '--target=v5e-8')
  assert result.returncode == 2, result.stderr[-2000:]
  assert result.stderr.strip().splitlines()[-1] == (
      'error: --mode=compile needs libtpu, which is not installed: '
      'pip install "jax[tpu]==0.10.2"')
  assert result.stdout == ''


def test_long_sampling_and_evaluation_log_their_progress():
  """sampling.logged: a line once `every` seconds have passed (never before), with the count,
  the share and the time left; a closing line for work that took longer than that."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from gan_jax import sampling  # pylint: disable=g-import-not-at-top
  ticks = iter([0.0, 4.0, 11.0, 15.0, 30.0, 30.0])  # start, after each of 4 parts, the end
  parts = [(np.zeros((25, 2)), None)] * 4
  from unittest import mock  # pylint: disable=g-import-not-at-top
  with mock.patch.object(sampling.logging, 'info') as info:
    out = list(sampling.logged(iter(parts), 100, 'Sampling', every=10.0,
                               clock=lambda: next(ticks)))
  assert len(out) == 4
  lines = [call.args[0] % call.args[1:] for call in info.call_args_list]
  assert lines == ['Sampling: 50/100 samples (50%), 11s, about 11s left.',
                   'Sampling: 100 samples in 30s.']
