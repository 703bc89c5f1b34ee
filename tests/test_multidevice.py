"""Data parallelism on 8 simulated CPU devices (jit over a mesh, pmap, several iterations per
call) gives what one device gives."""

import os
import subprocess
import sys

import pytest

from conftest import require_mkl, simulated_devices, subprocess_env

HERE = os.path.dirname(os.path.abspath(__file__))


def _run_check(runs):
  """multidevice_check.py on 8 simulated devices: [(spec, mode, max_diff, scale, relative)]."""
  env = subprocess_env({'XLA_FLAGS': simulated_devices(8),
                        'JAX_PLATFORMS': 'cpu'})
  result = subprocess.run([sys.executable, os.path.join(HERE, 'multidevice_check.py'),
                           *[f'{spec}@{modes}' for spec, modes in runs.items()]],
                          capture_output=True, text=True, timeout=900, env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  # Result lines start with the spec; other output (blank lines included) is skipped.
  lines = [words for words in map(str.split, result.stdout.splitlines())
           if words and words[0] in runs]
  assert [(l[0], l[1]) for l in lines] == [(spec, mode) for spec, modes in runs.items()
                                          for mode in modes.split(',')]
  return lines


@pytest.mark.slow
def test_64_and_128_px_models_train_on_one_and_eight_devices():
  """The DCGAN paper's 64x64 conv model (batch norm over the global batch) and the 64x64
  ResNet one block deeper at 128x128 (gradient penalty): the same parameters after 2
  iterations on 1 device and on 8."""
  runs = {'dcgan.py:digits,runlocal,size64': 'jit@tiny_lr',
          'wgan_gp.py:digits,runlocal,size128': 'jit@tiny_lr'}  # multidevice_check.BOTH
  # The 128 px run differs by up to 5.6e-4 of a leaf's scale between 1 and 8 devices. That is
  # float32 rounding: on ONE device, the same batch's critic gradient taken whole and as the
  # mean of 8 sub-batch means (the same sum; docs/scaling.md) differs by 3.6e-4
  # in a LayerNorm bias at 128 px, and at 64 px swapping the conv form alone ('hybrid' for
  # 'xla') moves a LayerNorm bias by 3.3e-4. With the presets' learning rates (no tiny_lr) the
  # 1- and 8-device runs differ by 6.2e-3, over its tolerance.
  tolerance = {'dcgan.py:digits,runlocal,size64': 1e-4,
               'wgan_gp.py:digits,runlocal,size128': 2e-3}
  for spec, mode, _, _, relative in _run_check(runs):
    assert float(relative) < tolerance[spec], (spec, mode, relative)
    print(spec, mode, relative)


@pytest.mark.slow
def test_one_vs_eight_devices_same_parameters_jit_pmap_and_steps_per_call():
  # wgan_gp: per-example noise and GP weights; dcgan: batch norm (global under jit, synced
  # under pmap); acgan: labels drawn per example. The conv models check the CPU-fast layers
  # under sharding; the MLP ones (quick to compile) the other paths.
  runs = {'wgan_gp.py:digits,runlocal': 'jit',
          'dcgan.py:digits,runlocal': 'jit',
          'wgan_gp.py:digits,runlocal,mlp': 'pmap,jit_steps_per_call_2',
          'dcgan.py:digits,runlocal,mlp': 'pmap',
          'acgan.py:digits,runlocal,mlp': 'pmap'}
  for spec, mode, max_diff, scale, _ in _run_check(runs):
    assert float(max_diff) < 1e-4 * max(1.0, float(scale)), (spec, mode, max_diff)


@pytest.mark.slow   # several processes, over a minute on 2 cores
def test_the_modern_toolkit_on_one_and_eight_devices_jit_and_pmap():
  """Projection conditioning, conditional batch norm, spectral norm of both players, the hinge
  loss, the generator's EMA, DiffAugment and LeCam (multidevice_check.BOTH['toolkit']); R1 every
  second critic update with the least-squares loss ('r1'); ADA with R1 ('ada'); ReACGAN's
  data-to-data cross-entropy, a loss of the global batch ('d2d'): the same
  parameters, EMA, power iteration vectors, LeCam anchors and ADA's p on 1 device and on 8."""
  runs = {'acgan.py:digits,runlocal,mlp': 'jit@toolkit,pmap@toolkit,jit@d2d,pmap@d2d',
          'wgan_gp.py:digits,runlocal,mlp': 'jit@r1,pmap@r1,jit@ada,pmap@ada'}
  for spec, mode, max_diff, scale, relative in _run_check(runs):
    assert float(relative) < 1e-4, (spec, mode, max_diff, scale, relative)


@pytest.mark.slow   # several processes, over a minute on 2 cores
@pytest.mark.parametrize('impl', ['mkl', 'bf16'])
def test_bfloat16_products_on_one_and_eight_devices_jit_and_pmap(impl):
  """model.conv_impl 'mkl' (gan_jax/mkl_gemm.py, a custom call without a sharding rule: jit
  over the mesh multiplies the gathered operands, pmap each device's rows) and 'bf16' (XLA's
  own bfloat16 dots, which the mesh shards): 8 devices equal 1 to a few bfloat16 units (2^-8 =
  3.9e-3) of a leaf's scale. The products' operands and cotangents are rounded to bfloat16,
  so float32 sums taken in another order (over a device's rows, then over devices; or the
  float32 rest of the step, 5e-7 apart on an AMD EPYC) land on other bfloat16 values in a few
  places: 8.9e-3 measured on an AMD EPYC, 1.5e-8 (jit, 'mkl') on an Intel Xeon."""
  if impl == 'mkl':
    require_mkl()
  runs = {'dcgan.py:digits,runlocal': f'jit@{impl},pmap@{impl}'}
  for spec, mode, _, _, relative in _run_check(runs):
    assert float(relative) < 2e-2, (spec, mode, relative)


@pytest.mark.slow   # several processes, over a minute on 2 cores
def test_many_seeds_on_eight_devices_equal_separate_one_device_runs():
  """num_seeds members on 8 devices: replicated (3 members: 3 does not divide 8) and split
  over a 'seeds' mesh axis (4 members: a 4 x 2 mesh; 8: one member per device) each equal the
  1-device run of its seed. Batch norm (dcgan) and the gradient penalty (wgan_gp)."""
  runs = {'dcgan.py:digits,runlocal,mlp': 'seeds_3,seeds_4',
          'wgan_gp.py:digits,runlocal,mlp': 'seeds_8'}
  for spec, mode, _, _, relative in _run_check(runs):
    assert float(relative) < 1e-4, (spec, mode, relative)


@pytest.mark.slow   # several minutes on 2 cores: BigGAN's compiles
def test_biggan_on_one_and_eight_devices_jit_pmap_and_seeds():
  """The BigGAN runlocal config (conditional batch norm of the global batch, self-attention,
  spectral norm of both players with 'uv', the EMA): the same state on 1 device and on 8 under
  jit and pmap (batch norm's statistics over the mesh, or pmean'd: the paper's cross-replica
  batch norm), and 3 members on 8 devices equal to 3 separate runs. From seed 1 (members 1-3),
  as under jit and pmap: seed 0 puts an input of one of G's ReLUs at its kink
  (multidevice_check.BOTH['tiny_lr_seed1']). Members 0-2 differed by 4.9e-3 of a leaf's scale
  on an AMD EPYC (Zen 4), against the tolerance of 1e-4."""
  runs = {'biggan.py:digits,runlocal':
          'jit@tiny_lr_seed1,pmap@tiny_lr_seed1,seeds_3@tiny_lr_seed1'}
  for spec, mode, max_diff, scale, relative in _run_check(runs):
    assert float(relative) < 1e-4, (spec, mode, max_diff, scale, relative)


@pytest.mark.slow   # several minutes on 2 cores: StyleGAN2's compiles
def test_stylegan2_on_one_and_eight_devices_jit_pmap_and_seeds():
  """The StyleGAN2 runlocal config (ADA, lazy R1, style mixing, the path length penalty, the
  mapping's w_avg, G's EMA with ramp-up): the same state on 1 device and on 8, under jit, and
  under pmap with G's noise inputs fixed and minibatch std over groups of 1
  (multidevice_check.BOTH['sg2_pmap']: under pmap each device draws its own noise and groups
  its own rows, as each GPU does in the official code); and 3 members on 8 devices equal to 3
  separate runs (each member's own ADA p, path length mean and noise)."""
  runs = {'stylegan2.py:digits,runlocal': 'jit,pmap@sg2_pmap,seeds_3'}
  for spec, mode, max_diff, scale, relative in _run_check(runs):
    assert float(relative) < 1e-4, (spec, mode, max_diff, scale, relative)


@pytest.mark.slow
def test_eight_devices_split_the_calls_work():
  """jit over 8 devices: each device computes an eighth of the call's FLOPs (XLA's cost
  analysis of the compiled call, per device, against the 1-device call). Left to XLA's
  sharding propagation, the generator's passes ran on the whole batch on every device (a
  device did 40-82 % of the 1-device work); the rows a step draws are now constrained to the
  batch's split (updates._draw). Only the parameters' own work (optimizer, power iterations)
  is every device's."""
  specs = ['wgan.py:digits,runlocal@64', 'wgan_gp.py:digits,runlocal@64',
           'dcgan.py:digits,runlocal@64', 'sngan.py:cifar10,runlocal@64',
           'biggan.py:digits,runlocal@64', 'stylegan2.py:digits,runlocal@64',
           # two members on every device, one after the other ('loop' on a CPU)
           'wgan_gp.py:digits,runlocal@64@num_seeds=2,seed_shards=1']
  env = subprocess_env({'XLA_FLAGS': simulated_devices(8), 'JAX_PLATFORMS': 'cpu'})
  result = subprocess.run([sys.executable, os.path.join(HERE, 'split_check.py'), *specs],
                          capture_output=True, text=True, timeout=900, env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = [line.split() for line in result.stdout.splitlines() if line.strip()]
  assert [l[0] for l in lines] == [s.split('@')[0] for s in specs], result.stdout
  for spec, one, eight in lines:
    share = float(eight) / float(one)
    print(spec, f'{share:.4f}')
    assert 0.1 < share < 0.125 * 1.05, (spec, share)
