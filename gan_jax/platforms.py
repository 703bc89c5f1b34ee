"""The machine a run gets: the JAX backend and its devices, accelerator plugins that did not
load, TensorFlow kept off the accelerators, and where compiled programs are cached."""

import contextlib
import importlib.metadata
import os
import sys
import tempfile
from typing import FrozenSet, Iterator, List, Optional, Tuple

from absl import logging
import jax

# Packages that give JAX an accelerator backend (pip's names).
ACCELERATOR_PLUGINS = ('jax-cuda12-plugin', 'jax-cuda13-plugin', 'jax-cuda12-pjrt',
                       'jax-cuda13-pjrt', 'libtpu', 'libtpu-nightly', 'jax-rocm7-plugin',
                       'jax-rocm60-plugin')


def installed_plugins() -> List[str]:
  """The accelerator plugins installed in this environment, as 'name version'."""
  found = []
  for name in ACCELERATOR_PLUGINS:
    try:
      found.append(f'{name} {importlib.metadata.version(name)}')
    except importlib.metadata.PackageNotFoundError:
      pass
  return found


def describe() -> str:
  """'gpu: 8 x NVIDIA H100 80GB HBM3 (process 0 of 2)' for the devices JAX sees."""
  devices = jax.devices()
  kinds = sorted({d.device_kind for d in devices})
  return (f'{jax.default_backend()}: {len(devices)} x {", ".join(kinds)} '
          f'(process {jax.process_index()} of {jax.process_count()})')


def log_backend() -> None:
  """Logs the backend and devices; warns when JAX fell back to the CPU although an accelerator
  plugin is installed (a CUDA or libtpu mismatch, or devices held by another process)."""
  logging.info('JAX %s, %s', jax.__version__, describe())
  plugins = installed_plugins()
  if jax.default_backend() == 'cpu' and plugins and not os.environ.get('JAX_PLATFORMS'):
    logging.warning('running on the CPU although %s is installed: the accelerator did not load '
                    '(see the JAX messages above; JAX_PLATFORMS=cpu silences this)',
                    ', '.join(plugins))


def cpu_flags() -> FrozenSet[str]:
  """The instruction-set flags of this machine's CPU (Linux's /proc/cpuinfo; none elsewhere)."""
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('flags'):
          return frozenset(line.split(':', 1)[1].split())
  except OSError:
    pass
  return frozenset()


def conv_impl_advice(conv_impl: str, flags) -> Optional[Tuple[str, str]]:
  """('warning' or 'info', one line) on model.conv_impl for a CPU with these `flags`, or None:
  which bfloat16 products pay on it (docs/speed.md). 'auto' stays float32 (the presets'
  numbers), so the faster choice is only named."""
  amx, avx512_bf16 = 'amx_bf16' in flags, 'avx512_bf16' in flags
  if conv_impl == 'mkl' and not amx:
    faster = "'bf16' (XLA's bfloat16 products)" if avx512_bf16 else "'auto' (float32)"
    return 'warning', (f"model.conv_impl='mkl': oneMKL's bfloat16 products are fast with Intel "
                       f"AMX, which this CPU lacks; {faster} is faster here (docs/speed.md)")
  if conv_impl == 'auto' and amx:
    return 'info', ("this CPU has Intel AMX: --config.model.conv_impl=mkl (pip install -r "
                    "requirements-mkl.txt) multiplies the convolutions in bfloat16, in well "
                    "under half of float32's time on a Xeon (docs/speed.md)")
  if conv_impl == 'auto' and avx512_bf16:
    return 'info', ("this CPU multiplies bfloat16 (AVX512-BF16): --config.model.conv_impl=bf16 "
                    "runs the convolutions' products in bfloat16, faster than float32 on an "
                    "AMD EPYC (docs/speed.md)")
  return None


def advise_conv_impl(conv_impl: str) -> None:
  """Logs conv_impl_advice for this CPU when the run is on the CPU."""
  advice = jax.default_backend() == 'cpu' and conv_impl_advice(conv_impl, cpu_flags())
  if advice:
    getattr(logging, advice[0])('%s', advice[1])


# Whether native libraries' start-up lines (TensorFlow's oneDNN and absl notices, libtpu's
# missing TPU metadata) go to the log instead of the console: main.py turns it on unless
# --verbose (cli.quiet_console).
QUIET_NATIVE_LOGS = False


@contextlib.contextmanager
def native_logs_to_log() -> Iterator[None]:
  """With QUIET_NATIVE_LOGS, what C++ code writes to the standard error inside the block goes
  to the log at debug level (it bypasses Python, so file descriptor 2 itself is redirected)."""
  if not QUIET_NATIVE_LOGS:
    yield
    return
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode='w+b') as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      text = captured.read().decode(errors='replace').strip()
      if text:
        logging.debug('native libraries said:\n%s', text)


def keep_tf_off_accelerators() -> None:
  """Imports TensorFlow (for TFDS and CLU's writers: call it before importing them), its
  start-up notices kept off the console, and hides every GPU and TPU from it, so that it never
  takes the memory JAX needs."""
  with native_logs_to_log():
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for kind in ('GPU', 'TPU'):
    try:
      tf.config.set_visible_devices([], kind)
    except (RuntimeError, ValueError) as e:  # already initialised, or no such device type
      logging.log_first_n(logging.DEBUG, 'TensorFlow keeps its %s devices: %s', 1, kind, e)


def compilation_cache_dir(setting: str, workdir: str) -> Optional[str]:
  """Where compiled programs are cached (config.compilation_cache): '' means the workdir's
  compilation_cache/ on a GPU or TPU and no cache on the CPU; 'none' never; else that path."""
  if setting == 'none' or (not setting and jax.default_backend() == 'cpu'):
    return None
  return setting or os.path.join(workdir, 'compilation_cache')


def use_compilation_cache(directory: Optional[str]) -> None:
  """Turns on JAX's persistent cache of compiled programs in `directory` (None: off), so that a
  restarted run (a preempted pod) does not compile again. Entry points (main.py, benchmarks)
  call it once, before the first compile."""
  if directory:
    jax.config.update('jax_compilation_cache_dir', directory)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
    logging.info('Compiled programs are cached in %s', directory)
