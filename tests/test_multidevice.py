"""Data parallelism on 8 simulated CPU devices (jit over a mesh, pmap, several iterations per
call) gives what one device gives."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_one_vs_eight_devices_same_parameters_jit_pmap_and_steps_per_call():
  # wgan_gp: per-example noise and GP weights; dcgan: batch norm (global under jit, synced
  # under pmap); acgan: labels drawn per example. The conv models check the CPU-fast layers
  # under sharding; the MLP ones (quick to compile) the other paths.
  runs = {'wgan_gp.py:digits,runlocal': 'jit',
          'dcgan.py:digits,runlocal': 'jit',
          'wgan_gp.py:digits,runlocal,mlp': 'pmap,jit_steps_per_call_2',
          'dcgan.py:digits,runlocal,mlp': 'pmap',
          'acgan.py:digits,runlocal,mlp': 'pmap'}
  env = {**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=8',
         'JAX_PLATFORMS': 'cpu', 'TF_CPP_MIN_LOG_LEVEL': '3'}
  result = subprocess.run([sys.executable, os.path.join(HERE, 'multidevice_check.py'),
                           *[f'{spec}@{modes}' for spec, modes in runs.items()]],
                          capture_output=True, text=True, timeout=600, env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  # Result lines start with the spec; other output (blank lines included) is skipped.
  lines = [words for words in map(str.split, result.stdout.splitlines())
           if words and words[0] in runs]
  assert [(l[0], l[1]) for l in lines] == [(spec, mode) for spec, modes in runs.items()
                                          for mode in modes.split(',')]
  for spec, mode, max_diff, scale in lines:
    assert float(max_diff) < 1e-4 * max(1.0, float(scale)), (spec, mode, max_diff)
