"""bfloat16 matrix products with float32 accumulation on the CPU through oneMKL (AMX where the
CPU has it): what `model.conv_impl='mkl'` multiplies with.

XLA's CPU backend (the pinned jaxlib) converts bfloat16 operands of a dot with a bfloat16
result to float32 and runs the float32 product: on an Intel Xeon with AMX (4th generation on)
that leaves the bfloat16 units idle, 0.25 TFLOP/s against MKL's 1.6 on two cores
(docs/speed.md). (A dot with a float32 result is a YNNPACK fusion, fast on an AMD EPYC's
AVX512-BF16: model.conv_impl='bf16', gan_jax/layers.py. On AMD CPUs oneMKL's bfloat16 product
ran at 0.2 TFLOP/s, without their bfloat16 units.) `matmul` calls
MKL's `cblas_gemm_bf16bf16f32` instead, as an XLA FFI custom call (gan_jax/mkl_gemm.cc, built
here on first use with the system's C++ compiler against jaxlib's FFI headers and the `mkl`
wheel's libmkl_rt; `pip install -r requirements-mkl.txt`). The build is cached under
$GAN_JAX_CACHE (default ~/.cache/gan_jax), keyed by the source, jaxlib and the library.

The custom call has no derivative and no sharding rule: the convolutions that use it
(gan_jax/layers.py) define their derivatives themselves (F, D and W of each other), and it runs
on one CPU device (jit over one device, or pmap: each device's program is its own).
"""

import ctypes
import functools
import hashlib
import importlib.metadata
import os
import subprocess
import tempfile
from typing import Optional

import jax
import jax.numpy as jnp
import jaxlib

from gan_jax.errors import ConfigError

TARGET = 'gan_bf16_gemm'
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'mkl_gemm.cc')
LIBRARY = 'libmkl_rt.so.3'
INSTALL = 'pip install -r requirements-mkl.txt'


def library_dir() -> Optional[str]:
  """The directory of the installed `mkl` wheel's libmkl_rt, or None."""
  try:
    files = importlib.metadata.files('mkl') or []
  except importlib.metadata.PackageNotFoundError:
    return None
  for f in files:
    if f.name == LIBRARY:
      return os.path.dirname(os.path.abspath(f.locate()))
  return None


def cache_dir() -> str:
  return os.path.join(os.environ.get('GAN_JAX_CACHE') or
                      os.path.join(os.path.expanduser('~'), '.cache', 'gan_jax'), 'kernels')


def build(out_dir: Optional[str] = None) -> str:
  """Compiles mkl_gemm.cc once (cached) and returns the shared library's path."""
  lib_dir = library_dir()
  if lib_dir is None:
    raise ConfigError(f"model.conv_impl='mkl' needs oneMKL: {INSTALL}")
  with open(SOURCE, 'rb') as f:
    source = f.read()
  key = hashlib.sha256(source + jaxlib.__version__.encode() + lib_dir.encode()).hexdigest()[:16]
  out_dir = out_dir or cache_dir()
  path = os.path.join(out_dir, f'mkl_gemm_{key}.so')
  if os.path.exists(path):
    return path
  os.makedirs(out_dir, exist_ok=True)
  compiler = os.environ.get('CXX', 'g++')
  with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
    tmp_path = os.path.join(tmp, 'mkl_gemm.so')
    cmd = [compiler, '-O2', '-std=c++17', '-shared', '-fPIC', '-I', jax.ffi.include_dir(), SOURCE,
           '-o', tmp_path, f'-L{lib_dir}', f'-l:{LIBRARY}', f'-Wl,-rpath,{lib_dir}']
    try:
      proc = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
      raise ConfigError(f"model.conv_impl='mkl' builds a small C++ kernel: no C++ compiler "
                        f"{compiler!r} found (install g++, or set CXX)") from None
    if proc.returncode != 0:
      first = (proc.stderr.strip().splitlines() or ['no output'])[0]
      raise ConfigError(f"model.conv_impl='mkl': building {SOURCE} failed: {first}")
    os.replace(tmp_path, path)   # atomic: concurrent builders leave one complete file
  return path


@functools.lru_cache(maxsize=None)
def register() -> str:
  """Builds (once) and registers the custom call with XLA's CPU backend; returns its name."""
  lib = ctypes.CDLL(build())
  jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.GanBf16Gemm), platform='cpu')
  return TARGET


def available() -> bool:
  """Whether `matmul` can run here (the mkl wheel and a compiler; builds if needed)."""
  try:
    register()
  except ConfigError:
    return False
  return True


def matmul(a, b, trans_a: bool = False, trans_b: bool = False):
  """op(a) @ op(b) over the last two axes (op: transpose if asked), the operands rounded to
  bfloat16, the products summed in float32; float32 result. Leading axes are batch axes, equal
  in a and b (under vmap too)."""
  register()
  a = jnp.asarray(a, jnp.bfloat16)
  b = jnp.asarray(b, jnp.bfloat16)
  if a.ndim < 2 or a.ndim != b.ndim or a.shape[:-2] != b.shape[:-2]:
    raise ValueError(f'mkl_gemm.matmul: shapes {a.shape} and {b.shape}')
  m, k = a.shape[-2:][::-1] if trans_a else a.shape[-2:]
  kb, n = b.shape[-2:][::-1] if trans_b else b.shape[-2:]
  if k != kb:
    raise ValueError(f'mkl_gemm.matmul: {a.shape} (trans {trans_a}) and {b.shape} '
                     f'(trans {trans_b}) do not multiply')
  out = jax.ShapeDtypeStruct(a.shape[:-2] + (m, n), jnp.float32)
  return jax.ffi.ffi_call(TARGET, out, vmap_method='broadcast_all')(
      a, b, trans_a=bool(trans_a), trans_b=bool(trans_b))
