r"""The matrix-product peaks of this CPU, in GFLOP/s, for every product the speed comparison
uses: XLA's float32 dot, XLA's bfloat16 dot summed in float32 (what model.conv_impl='bf16'
multiplies with), oneMKL's bfloat16 product (conv_impl='mkl'; needs requirements-mkl.txt),
and PyTorch's float32 and bfloat16 products (needs torch). Square products of each size, the
best of --repeats; one JSON line per size. Nothing else may run while it times.

  python experiments/gemm_peaks.py [--sizes=2048,3072,4096] [--repeats=5]
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gan_jax import layers, mkl_gemm  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
flags.DEFINE_list('sizes', ['2048', '3072', '4096'], 'Square sizes.')
flags.DEFINE_integer('repeats', 5, 'Timed products per size and kind; the best counts.')


def best_gflops(product, n: int, repeats: int) -> float:
  product()   # compiles, warms the caches
  best = 0.0
  for _ in range(repeats):
    t0 = time.perf_counter()
    product()
    best = max(best, 2 * n ** 3 / (time.perf_counter() - t0))
  return round(best / 1e9, 1)


def main(_):
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    torch = None
  for n in map(int, FLAGS.sizes):
    a = jax.device_put(np.random.default_rng(0).random((n, n), np.float32))
    kinds = {'xla_float32': (jax.jit(lambda a, b: a @ b), a),
             'xla_bfloat16': (jax.jit(layers.xla_bf16_matmul), a.astype(jnp.bfloat16))}
    if mkl_gemm.available():
      kinds['mkl_bfloat16'] = (jax.jit(mkl_gemm.matmul), a)
    row = {'n': n}
    for name, (fn, x) in kinds.items():
      row[name] = best_gflops(lambda: fn(x, x).block_until_ready(), n, FLAGS.repeats)
    if torch is not None:
      t = torch.from_numpy(np.asarray(a))
      for name, x in (('torch_float32', t), ('torch_bfloat16', t.bfloat16())):
        row[name] = best_gflops(lambda: x @ x, n, FLAGS.repeats)
      row['torch_threads'] = torch.get_num_threads()
    print(json.dumps(row), flush=True)


if __name__ == '__main__':
  app.run(main)
