"""gan_jax/platforms.py: the backend line, the CPU-fallback warning, TensorFlow kept off the
accelerators, and the compilation cache's directory."""

import os

import jax
from absl import logging
import pytest

from gan_jax import platforms


def test_cpu_fallback_with_a_plugin_installed_warns(monkeypatch):
  messages = []
  monkeypatch.setattr(logging, 'warning', lambda msg, *a: messages.append(msg % a))
  monkeypatch.setattr(logging, 'info', lambda *a: None)
  monkeypatch.delenv('JAX_PLATFORMS', raising=False)
  monkeypatch.setattr(platforms, 'installed_plugins', lambda: ['jax-cuda12-plugin 0.10.2'])
  platforms.log_backend()
  assert len(messages) == 1 and 'jax-cuda12-plugin 0.10.2' in messages[0]
  messages.clear()
  monkeypatch.setattr(platforms, 'installed_plugins', lambda: [])
  platforms.log_backend()
  assert not messages
  assert platforms.describe() == f'cpu: {jax.device_count()} x cpu (process 0 of 1)'


def test_tensorflow_sees_no_accelerator(monkeypatch):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  hidden = []
  monkeypatch.setattr(tf.config, 'set_visible_devices', lambda devices, kind: hidden.append(
      (list(devices), kind)))
  platforms.keep_tf_off_accelerators()
  assert hidden == [([], 'GPU'), ([], 'TPU')]


def test_compilation_cache_directory():
  assert platforms.compilation_cache_dir('', '/w') is None           # CPU: off by default
  assert platforms.compilation_cache_dir('none', '/w') is None
  assert platforms.compilation_cache_dir('/cache', '/w') == '/cache'
  assert platforms.compilation_cache_dir('gs://b/cache', '/w') == 'gs://b/cache'


@pytest.mark.slow   # several processes (main.py runs)
def test_a_second_run_reads_compiled_programs_from_the_cache(tmp_path):
  from conftest import run_main  # pylint: disable=g-import-not-at-top
  cache = tmp_path / 'cache'
  for name in ('a', 'b'):
    proc = run_main('--config=configs/dcgan.py:digits,runlocal,mlp', f'--workdir={tmp_path / name}',
                    f'--config.compilation_cache={cache}', '--config.num_steps=1',
                    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    written = {e: os.stat(cache / e).st_mtime_ns for e in os.listdir(cache)}
    if name == 'a':
      first = written
      assert any('train_step' in e for e in first), first
  assert written == first  # the second run read every program and wrote (compiled) none


def test_conv_impl_advice_by_the_cpus_bfloat16_units():
  amx = {'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'}       # an Intel Xeon with AMX
  epyc = {'avx512f', 'avx512_bf16'}                               # an AMD EPYC Zen 4 or 5
  avx2 = {'avx2', 'fma'}
  kind, line = platforms.conv_impl_advice('mkl', epyc)
  assert kind == 'warning' and "'bf16'" in line and 'AMX' in line
  assert "'auto' (float32)" in platforms.conv_impl_advice('mkl', avx2)[1]
  assert platforms.conv_impl_advice('mkl', amx) is None
  kind, line = platforms.conv_impl_advice('auto', amx)
  assert kind == 'info' and 'conv_impl=mkl' in line
  kind, line = platforms.conv_impl_advice('auto', epyc)
  assert kind == 'info' and 'conv_impl=bf16' in line
  for impl in ('auto', 'hybrid', 'bf16'):
    assert platforms.conv_impl_advice(impl, avx2) is None
  assert platforms.conv_impl_advice('hybrid', epyc) is None    # a choice made is not second-guessed


def test_advice_is_logged_on_a_cpu_run(monkeypatch):
  lines = []
  monkeypatch.setattr(logging, 'warning', lambda msg, *a: lines.append(('warning', msg % a)))
  monkeypatch.setattr(platforms, 'cpu_flags', lambda: frozenset({'avx512_bf16'}))
  platforms.advise_conv_impl('mkl')
  assert len(lines) == 1 and 'lacks' in lines[0][1]


def test_cpu_flags_are_read_from_proc_cpuinfo():
  if not os.path.exists('/proc/cpuinfo'):
    assert platforms.cpu_flags() == frozenset()
    return
  with open('/proc/cpuinfo') as f:
    line = next(l for l in f if l.startswith('flags'))
  assert platforms.cpu_flags() == frozenset(line.split(':', 1)[1].split()) != frozenset()
