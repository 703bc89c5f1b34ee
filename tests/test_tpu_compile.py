"""`main.py --mode=compile`: every paper preset's training call (SNGAN's, BigGAN's and
StyleGAN2's at runlocal widths) compiled by libtpu for a TPU slice on this CPU-only machine (no
TPU, no network, no metadata server), one preset for a slice of several hosts, and the variants
(num_seeds, bfloat16, pmap). Small batches: they compile as the full ones do, in a fraction of
the time (HBM grows with the batch, the program does not)."""

import json
import os
import subprocess

import pytest

from conftest import ROOT, load_config, subprocess_env, tpu_python
from gan_jax import input_pipeline
from gan_jax.stepper import Stepper

pytestmark = pytest.mark.slow

# The tests' shared compilation cache and XLA flags are for CPU programs; these compile for
# TPUs, as a user's --mode=compile does.
_ENV = {'JAX_COMPILATION_CACHE_DIR': None, 'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': None,
        'XLA_FLAGS': None}


def _compile(*args, workdir=None):
  command = [tpu_python(), os.path.join(ROOT, 'main.py'), '--mode=compile', *args]
  if workdir:
    command.append(f'--workdir={workdir}')
  return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900,
                        env=subprocess_env(_ENV))


def _report(result):
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.strip().splitlines()
  assert len(lines) == 1, result.stdout  # one JSON line
  return json.loads(lines[0])


# (preset, target): every paper preset at its CIFAR-10 (or 64 px) settings, a generation each.
PRESETS = [
    ('wgan.py:cifar10', 'v5e-4'),
    ('wgan_gp.py:cifar10', 'v4-8'),      # the paper's CIFAR-10 ResNet
    ('dcgan.py:cifar10', 'v5p-8'),
    ('acgan.py:cifar10', 'v6e-8'),
    ('dcgan.py:celeb_a', 'v5e-4'),       # the 64x64 DCGAN
    # At runlocal widths (width 8), the same blocks in seconds:
    # the SNGAN ResNet, spectral norm, hinge (the preset's widths compile too: XLA took 105 s
    # of the 107 s 'compile_seconds' of `main.py --mode=compile
    # --config=configs/sngan.py:cifar10 --target=v5e-4 --config.batch_size=16` on an AMD EPYC
    # (Zen 4), against 15 s for runlocal's)
    ('sngan.py:cifar10,runlocal', 'v5e-4'),
    # BigGAN: the same blocks, attention and shared embedding in a minute
    # (the full CIFAR-10 BigGAN compiles too, in 20 minutes here: docs/biggan.md)
    ('biggan.py:cifar10,runlocal', 'v5e-4'),
    ('stylegan2.py:cifar10,runlocal', 'v5e-4'),   # StyleGAN2 (modulated convs, noise, lazy R1)
]


@pytest.mark.parametrize('preset, target', PRESETS)
def test_every_preset_compiles_for_a_tpu(preset, target, tmp_path):
  result = _compile(f'--config=configs/{preset}', f'--target={target}',
                    '--config.batch_size=16', workdir=tmp_path / 'run')
  report = _report(result)
  devices = {'v5e-4': 4, 'v4-8': 4, 'v5p-8': 4, 'v6e-8': 8}[target]
  assert (report['target'], report['devices'], report['hosts']) == (target, devices, 1)
  assert report['device_kind'].startswith('TPU')
  assert report['fits'] is True
  assert 0 < report['hbm_bytes_per_device'] <= report['hbm_capacity_bytes_per_device']
  assert report['batch_per_device'] == 16 // devices
  assert report['flops_per_iteration'] > 0 and report['compile_seconds'] > 0
  assert report['roofline_seconds_per_iteration'] > 0
  # the report file holds the same report; nothing else was written
  assert os.listdir(tmp_path / 'run') == [f'compile_{target}.json']
  assert json.loads((tmp_path / 'run' / f'compile_{target}.json').read_text()) == {
      k: v for k, v in report.items() if k != 'report'}
  # libtpu's start-up lines stay off the console (only gan_jax's own INFO line)
  assert 'TPU_WORKER_HOSTNAMES' not in result.stderr and 'E0000' not in result.stderr


def test_flops_are_the_training_calls_and_convolutions_follow_the_target():
  """The report's FLOPs equal the same call's traced here with XLA's convolutions: 'auto'
  picked the TPU's layers, not this CPU's."""
  report = _report(_compile('--config=configs/dcgan.py:cifar10', '--target=v5e-4',
                            '--config.batch_size=8'))
  config = load_config('dcgan.py:cifar10', batch_size=8, model__conv_impl='xla')
  spec = input_pipeline.spec(config.dataset)
  stepper = Stepper(config, spec.image_shape, spec.num_classes)
  per_device = stepper.call_flops(report['call_iterations'], 1, 8, 'uint8', True)
  assert report['flops_per_iteration'] == pytest.approx(
      per_device * stepper.mesh.size / report['call_iterations'], rel=1e-9)
  hybrid = Stepper(load_config('dcgan.py:cifar10', batch_size=8), spec.image_shape,
                   spec.num_classes)
  assert hybrid.call_flops(1, 1, 8, 'uint8', True) != pytest.approx(
      stepper.call_flops(1, 1, 8, 'uint8', True), rel=1e-3)


@pytest.mark.parametrize('parallelism', ['jit', 'pmap'])
def test_several_hosts(parallelism):
  report = _report(_compile('--config=configs/wgan_gp.py:mnist', '--target=v4-16',
                            '--config.batch_size=16', f'--config.parallelism={parallelism}'))
  assert (report['devices'], report['hosts'], report['fits']) == (8, 2, True)
  assert report['parallelism'] == parallelism
  assert report['n_critic'] == 5


@pytest.mark.parametrize('override, check', [
    ('--config.num_seeds=3', ('num_seeds', 3)),
    ('--config.dtype=bfloat16', ('dtype', 'bfloat16')),
    ('--config.parallelism=pmap', ('parallelism', 'pmap')),
])
def test_variants_compile(override, check):
  report = _report(_compile('--config=configs/dcgan.py:cifar10', '--target=v5e-4',
                            '--config.batch_size=8', override))
  assert report[check[0]] == check[1] and report['fits'] is True


def test_seeds_and_bfloat16_change_what_is_needed():
  base = _report(_compile('--config=configs/wgan_gp.py:mnist', '--target=v5e-4',
                          '--config.batch_size=8'))
  seeds = _report(_compile('--config=configs/wgan_gp.py:mnist', '--target=v5e-4',
                           '--config.batch_size=8', '--config.num_seeds=3'))
  # three members' states and batches: about three times the arguments and the FLOPs
  assert seeds['memory_per_device']['arguments'] > 2.5 * base['memory_per_device']['arguments']
  assert seeds['flops_per_iteration'] == pytest.approx(3 * base['flops_per_iteration'],
                                                       rel=1e-6)


def test_a_call_that_does_not_fit_is_one_line():
  result = _compile('--config=configs/wgan_gp.py:mnist', '--target=v5e-4',
                    '--config.batch_size=1048576')
  assert result.returncode == 3, result.stderr[-2000:]
  report = json.loads(result.stdout)
  assert report['fits'] is False
  assert report['hbm_bytes_per_device'] > report['hbm_capacity_bytes_per_device']
  errors = [l for l in result.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1 and 'does not fit v5e-4' in errors[0] and 'GiB' in errors[0]


def test_refusals_are_one_line():
  for args, words in (
      (('--config=configs/dcgan.py:cifar10', '--target=v9-8'), '--target must be'),
      (('--config=configs/dcgan.py:cifar10',), 'needs --target'),
      (('--config=configs/dcgan.py:cifar10', '--target=v5e-4', '--config.batch_size=6'),
       'not divisible by the 4 devices'),
  ):
    result = _compile(*args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith('error:'), result.stderr
    assert words in result.stderr


def test_fit_batch_reports_a_batch_that_compiled_and_fits():
  """An MLP fits batches beyond the search's end: the answer says it is a lower bound."""
  report = _report(_compile('--config=configs/dcgan.py:digits,runlocal,mlp', '--target=v5e-4',
                            '--fit_batch'))
  assert report['largest_batch'] == 4 * report['largest_batch_per_device']
  assert report['largest_batch_per_device'] >= 2 ** 20
  assert report['largest_batch_is_a_lower_bound'] is True
  assert (report['batch_size'] < report['largest_batch'] and
          report['largest_batch_hbm_bytes_per_device'] <= report['hbm_capacity_bytes_per_device'])
