"""main.py as a user runs it: train, TensorBoard events, sample, and one-line errors."""

import glob
import os

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from conftest import run_main


def _events(workdir):
  acc = event_accumulator.EventAccumulator(str(workdir), size_guidance={'images': 0, 'tensors': 0})
  acc.Reload()
  return acc.Tags()


def test_train_then_sample_acgan(tmp_path):
  workdir = tmp_path / 'run'
  result = run_main('--config=configs/acgan.py:digits,runlocal', f'--workdir={workdir}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'train/critic_loss' in result.stderr  # the console shows the losses
  assert (workdir / 'config.json').exists()
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['2', '4']
  tags = _events(workdir)
  scalar_tags = set(tags['scalars']) | set(tags['tensors'])
  for tag in ('train/critic_loss', 'train/gen_loss', 'train/aux_acc_real', 'train/d_real',
              'train/images_per_sec', 'steps_per_sec'):
    assert tag in scalar_tags, (tag, scalar_tags)
  assert any('samples' in t for t in tags['images'] + tags['tensors']), tags

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


@pytest.mark.parametrize('args,message', [
    (['--config=configs/wgan_gp.py:imagenet'], "unknown dataset 'imagenet'"),
    (['--config=configs/wgan_gp.py:digits,runlocal', '--config.batch_size=0'],
     'batch_size must be positive'),
    (['--config=configs/wgan_gp.py:digits,runlocal', '--config.dataset.path=/no/such/dir'],
     'does not exist'),
    (['--config=configs/wgan_gp.py:digits,runlocal', '--config.batch_sizee=3'],
     'Did you mean "batch_size"'),
    (['--config=configs/nothere.py'], 'No such file'),
    (['--config=configs/wgan_gp.py:cifar10,runlocal', '--config.dataset.download=False',
      '--config.dataset.data_dir=/tmp/gan_jax_no_tfds'], "TFDS dataset 'cifar10'"),
])
def test_bad_input_is_one_line_exit_2_and_no_workdir(tmp_path, args, message):
  workdir = tmp_path / 'w'
  result = run_main(*args, f'--workdir={workdir}')
  assert result.returncode == 2, result.stderr[-2000:]
  errors = [l for l in result.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  assert not workdir.exists()


def test_sample_without_checkpoint_is_a_clear_error(tmp_path):
  result = run_main('--config=configs/dcgan.py:digits,runlocal', f'--workdir={tmp_path}',
                    '--mode=sample')
  assert result.returncode == 2 and 'no checkpoint' in result.stderr
  assert not glob.glob(str(tmp_path / '*'))
