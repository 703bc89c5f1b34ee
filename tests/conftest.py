"""Shared fixtures: the repository on sys.path, quiet TensorFlow, tiny configs."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# XLA:CPU's LLVM code generation at -O0 for every program the tests compile, here and in the
# processes they start (subprocess_env, simulated_devices): their programs are tiny models run
# for a few steps, so compiling is most of their time. tests/multidevice_check.py on StyleGAN2's
# runlocal config ('jit': two compiles of its training call) took 141 s at XLA's default and
# 83 s at -O0 on an AMD EPYC (Zen 4). What the tests compare is computed under the same flags on
# both sides; the optimised code differs from it by float32 rounding.
TEST_XLA_FLAGS = '--xla_backend_optimization_level=0'
if TEST_XLA_FLAGS not in os.environ.get('XLA_FLAGS', ''):   # pytest-xdist's workers inherit it
  os.environ['XLA_FLAGS'] = ' '.join(filter(None, [os.environ.get('XLA_FLAGS'), TEST_XLA_FLAGS]))

import atexit  # pylint: disable=g-import-not-at-top,wrong-import-order
import shutil  # pylint: disable=g-import-not-at-top,wrong-import-order
import tempfile  # pylint: disable=g-import-not-at-top,wrong-import-order

import jax  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

# The tests train the same tiny configs again and again (a separate run per seed, a resumed run
# beside a straight one, in several test files): JAX's persistent cache lets the suite compile
# each program once. The same program gives the same bits, loaded or compiled. One directory
# for a whole pytest-xdist run, made by the controller, shared by its workers, removed at its exit
# (JAX writes an entry in place, so a worker may meet one half written: it fails to decompress,
# JAX warns and compiles the program itself); without xdist, one per process.
_SHARED = 'GAN_JAX_TESTS_COMPILED'  # set by the first process (the controller); workers inherit it
_COMPILED = os.environ.get(_SHARED)
if not _COMPILED:
  _COMPILED = os.environ[_SHARED] = tempfile.mkdtemp(prefix='gan_jax_tests_compiled_')
  atexit.register(shutil.rmtree, _COMPILED, ignore_errors=True)
jax.config.update('jax_compilation_cache_dir', _COMPILED)
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
# The same for the one-process subprocesses the tests start (main.py runs; the simulated
# devices' check): subprocess_env passes it on (main.py's own --config.compilation_cache wins).
COMPILED_ENV = {'JAX_COMPILATION_CACHE_DIR': _COMPILED,
                'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0'}


def load_config(spec: str, **overrides):
  """'wgan_gp.py:digits,runlocal' -> its ConfigDict, with dotted-key overrides."""
  import importlib  # pylint: disable=g-import-not-at-top
  module, arg = spec.split(':', 1)
  config = importlib.import_module(f'configs.{module[:-3]}').get_config(arg)
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split('__')
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def model_config(arch: str, **overrides):
  """A config.model of tiny models for module tests (width 8, depth 2, kernel 5, batch norm in
  G, layer norm in D), every other field at its default (gan_jax/fields.py)."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  from gan_jax import fields  # pylint: disable=g-import-not-at-top
  c = fields.defaults(gan='', dataset__name='', dataset__image_size=0)['model']
  c.update(arch=arch, width=8, depth=2, kernel_size=5, gen_norm='batch', critic_norm='layer')
  c.update(overrides)
  return ml_collections.ConfigDict(c)


def simulated_devices(count: int) -> str:
  """XLA_FLAGS for `count` simulated CPU devices. XLA:CPU aborts a collective whose devices
  (threads) have not all arrived within 40 s, which 8 of them on 2 busy cores can miss (the slow
  tests, run two at a time, did in CI): they wait 10 minutes here."""
  return (f'--xla_force_host_platform_device_count={count} '
          f'--xla_cpu_collective_call_terminate_timeout_seconds=600 {TEST_XLA_FLAGS}')


def subprocess_env(env=None):
  """os.environ with quiet TensorFlow and `env` (a value None removes the variable)."""
  full_env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3', **COMPILED_ENV, **(env or {})}
  return {k: v for k, v in full_env.items() if v is not None}


def timing_env():
  """os.environ with quiet TensorFlow and XLA's own optimisation (no TEST_XLA_FLAGS), for a
  script whose time is running, not compiling: test_modconv_bench_times_both_forms_... (a
  grouped convolution, timed) took 189 s at -O0 and 10 s without, on an AMD EPYC (Zen 4)."""
  flags = os.environ.get('XLA_FLAGS', '').replace(TEST_XLA_FLAGS, '').strip()
  return subprocess_env({'XLA_FLAGS': flags or None})


def run_main(*args, timeout=300, env=None, cwd=ROOT):
  """Runs main.py in a subprocess (in `cwd`, with subprocess_env(env)); returns the
  CompletedProcess (text)."""
  return subprocess.run([sys.executable, os.path.join(ROOT, 'main.py'), *args], cwd=cwd,
                        capture_output=True, text=True, timeout=timeout,
                        env=subprocess_env(env))


def run_tool(name: str, *args, timeout=300, env=None, cwd=ROOT):
  """Runs `python -m gan_jax.tools.NAME` in a subprocess (in `cwd`, with the repository on
  PYTHONPATH and subprocess_env(env)); returns the CompletedProcess (text)."""
  path = os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)
  return subprocess.run([sys.executable, '-m', f'gan_jax.tools.{name}', *args], cwd=cwd,
                        capture_output=True, text=True, timeout=timeout,
                        env=subprocess_env({'PYTHONPATH': path, **(env or {})}))


def restore_state(workdir, spec: str, step=None):
  """The TrainState saved in `workdir` at `step` (default: latest) by a run of config `spec`."""
  from gan_jax import checkpoints, input_pipeline  # pylint: disable=g-import-not-at-top
  from gan_jax.stepper import Stepper  # pylint: disable=g-import-not-at-top
  config = load_config(spec)
  data_spec = input_pipeline.spec(config.dataset)
  stepper = Stepper(config, data_spec.image_shape, data_spec.num_classes)
  return checkpoints.restore_for_use(str(workdir), stepper.abstract_state(), step)


@pytest.fixture
def config_factory():
  return load_config


def require_mkl():
  """model.conv_impl='mkl''s kernel (gan_jax/mkl_gemm.py), built and registered; the test skips
  without the mkl wheel or a compiler, except under CI (.ci/run installs
  requirements-mkl.txt), where it fails."""
  from gan_jax import mkl_gemm  # pylint: disable=g-import-not-at-top
  from gan_jax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  try:
    mkl_gemm.register()
  except ConfigError as e:
    if os.environ.get('CI'):
      pytest.fail(f'{e} (.ci/run installs requirements-mkl.txt)')
    pytest.skip(str(e))


def reference_import(name: str, requirements: str = 'requirements-reference.txt'):
  """Module `name` of the PyTorch references the cross-checks compare with (torch,
  transformers: requirements-reference.txt; torchvision and pytorch-fid:
  requirements-inception-test.txt). The test skips where it is missing, except under CI, which
  installs both files, where it fails."""
  import importlib  # pylint: disable=g-import-not-at-top
  try:
    if name == 'torchvision':
      return import_torchvision()
    return importlib.import_module(name)
  except (ImportError, OSError, RuntimeError) as e:  # missing, or a build for another torch
    if os.environ.get('CI'):
      pytest.fail(f'{name} does not import ({e}): .ci/run installs {requirements}')
    pytest.skip(f'needs {name} ({e}): pip install -r {requirements}',
                allow_module_level=True)
  return None


# The two detection operators whose fake kernels torchvision 0.28 registers on import whether or
# not its C++ library loaded (torchvision/_meta_registrations.py), with their schemas.
_TORCHVISION_SCHEMAS = {
    'nms': '(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
    'qnms': '(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
}


INCEPTION_VENV_PYTHON = os.path.join(ROOT, '.venv-inception', 'bin', 'python')


def pytorch_fid_python():
  """A Python with pytorch-fid (requirements-inception-test.txt) for tests/test_inception.py's
  comparison: this one if it has it, else GAN_JAX_INCEPTION_PYTHON, else the repository's
  .venv-inception (.ci/run makes it: there PyPI's torchvision is kept out of the main
  environment, where its failing import would also break transformers'). None where none."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  if importlib.util.find_spec('pytorch_fid') is not None:
    return sys.executable
  return _python_importing('pytorch_fid', os.environ.get('GAN_JAX_INCEPTION_PYTHON'),
                           INCEPTION_VENV_PYTHON)


def _python_importing(module: str, *pythons):
  """The first of `pythons` (paths or None) that exists and imports `module`; None if none."""
  for python in pythons:
    if python and os.path.exists(python) and subprocess.run(
        [python, '-c', f'import {module}'], capture_output=True).returncode == 0:
      return python
  return None


def import_torchvision():
  """torchvision, also PyPI's CUDA build over torch's CPU build (requirements-inception-test.txt):
  there its C++ operators do not load (libc10_cuda.so is missing) and the import fails with
  "operator torchvision::nms does not exist"; the two schemas it registers are then declared
  and it is imported again. Its models (pytorch-fid's network) use none of these operators;
  calling one raises as without them."""
  import importlib  # pylint: disable=g-import-not-at-top
  try:
    return importlib.import_module('torchvision')
  except RuntimeError as e:
    if 'torchvision::nms' not in str(e):
      raise
  import torch  # pylint: disable=g-import-not-at-top
  for module in [m for m in sys.modules if m == 'torchvision' or m.startswith('torchvision.')]:
    del sys.modules[module]
  for op, schema in _TORCHVISION_SCHEMAS.items():
    if not hasattr(torch.ops.torchvision, op):
      torch.library.define(f'torchvision::{op}', schema)
  return importlib.import_module('torchvision')


TPU_VENV_PYTHON = os.path.join(ROOT, '.venv-tpu', 'bin', 'python')


def tpu_python():
  """A Python with libtpu (requirements-tpu.txt) for the TPU compile tests: GAN_JAX_TPU_PYTHON,
  else the repository's .venv-tpu (.ci/run makes it), else this one if it has libtpu. None
  where there is none: the tests skip, except under CI, where they fail."""
  python = _python_importing('libtpu', os.environ.get('GAN_JAX_TPU_PYTHON'), TPU_VENV_PYTHON,
                             sys.executable)
  if python:
    return python
  if os.environ.get('CI'):
    pytest.fail('libtpu is missing: .ci/run installs requirements-tpu.txt in .venv-tpu')
  pytest.skip('needs libtpu: python3 -m venv --system-site-packages .venv-tpu && '
              '.venv-tpu/bin/pip install -r requirements-tpu.txt')
  return None


@pytest.fixture(scope='session')
def conditional_run(tmp_path_factory):
  """(workdir, spec) of a conditional run trained 2 steps: ACGAN's MLP on digits with Flax's
  default init (its N(0, 0.02) init makes images that hardly vary with z), no sample grids."""
  spec = 'acgan.py:digits,runlocal,mlp'
  workdir = tmp_path_factory.mktemp('conditional_run') / 'run'
  proc = run_main(f'--config=configs/{spec}', f'--workdir={workdir}', '--config.num_steps=2',
                  '--config.sample_every=0', '--config.model.init_std=0.0')
  assert proc.returncode == 0, proc.stderr[-2000:]
  return workdir, spec
