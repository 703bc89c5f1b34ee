"""Data parallelism on 8 simulated CPU devices gives what one device gives."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_one_vs_eight_devices_same_parameters():
  specs = ['wgan_gp.py:digits,runlocal', 'dcgan.py:digits,runlocal']  # dcgan: global batch norm
  env = {**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=8',
         'JAX_PLATFORMS': 'cpu', 'TF_CPP_MIN_LOG_LEVEL': '3'}
  result = subprocess.run([sys.executable, os.path.join(HERE, 'multidevice_check.py'), *specs],
                          capture_output=True, text=True, timeout=600, env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = [l.split() for l in result.stdout.splitlines() if l.split()[:1][0] in specs]
  assert [l[0] for l in lines] == specs
  for spec, max_diff, scale in lines:
    assert float(max_diff) < 1e-4 * max(1.0, float(scale)), (spec, max_diff)
