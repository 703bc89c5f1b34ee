"""The FLOPs of a traced program: its matrix products and convolutions (2 per multiply-add, the
work a TPU's MXU or a GPU's tensor cores do), every scan counted as often as it runs.

XLA's cost analysis counts a loop's body once (a scan of 25 matrix products reports the FLOPs
of one, on XLA:CPU and XLA:TPU alike), and a training call is two nested scans (iterations, then
critic updates): so the FLOPs come from the call's jaxpr instead. Elementwise work (activations,
normalisation, the optimizers) is left out (the custom call of gan_jax/mkl_gemm.py is a
matrix product and counts as one), as in the usual model-FLOPs utilisation; a `cond`
counts its costlier branch (lazy R1: as if every critic update took the penalty); a `while`
loop of unknown length counts its body once.
"""

import math

import jax.extend as jex

from gan_jax import mkl_gemm


def _size(shape) -> int:
  return math.prod(int(d) for d in shape)


def _dot(eqn) -> float:
  lhs, rhs = (v.aval.shape for v in eqn.invars[:2])
  (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = eqn.params['dimension_numbers']
  contract = _size(lhs[d] for d in lhs_contract)
  batch = _size(lhs[d] for d in lhs_batch)
  lhs_free = _size(n for d, n in enumerate(lhs) if d not in (*lhs_contract, *lhs_batch))
  rhs_free = _size(n for d, n in enumerate(rhs) if d not in (*rhs_contract, *rhs_batch))
  return 2.0 * batch * lhs_free * rhs_free * contract


def _conv(eqn) -> float:
  """Each output element sums the kernel window over the input features of its group; an input
  dilated by d (a transposed convolution, an input gradient) has a non-zero in d of its taps."""
  rhs = eqn.invars[1].aval.shape
  rhs_spec = eqn.params['dimension_numbers'].rhs_spec  # (out features, in features, spatial...)
  window = _size(rhs[d] for d in rhs_spec[2:]) * rhs[rhs_spec[1]]
  dilation = _size(eqn.params['lhs_dilation'] or ())
  return 2.0 * _size(eqn.outvars[0].aval.shape) * window / dilation


def _gemm(eqn) -> float:
  """gan_jax/mkl_gemm.py's product: [..., M, N] from a contraction of K (a's last axis, or its
  second last if transposed)."""
  a = eqn.invars[0].aval.shape
  k = a[-2] if dict(eqn.params['attributes'])['trans_a'] else a[-1]
  return 2.0 * _size(eqn.outvars[0].aval.shape) * k


def count(jaxpr) -> float:
  """FLOPs of one run of `jaxpr` (a Jaxpr or ClosedJaxpr), nested programs included."""
  jaxpr = getattr(jaxpr, 'jaxpr', jaxpr)
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == 'dot_general':
      total += _dot(eqn)
    elif name == 'conv_general_dilated':
      total += _conv(eqn)
    elif name == 'ffi_call' and eqn.params['target_name'] == mkl_gemm.TARGET:
      total += _gemm(eqn)
    inner = [count(sub) for sub in jex.core.jaxprs_in_params(eqn.params)]
    if name == 'scan':
      total += eqn.params['length'] * sum(inner)
    elif name == 'shard_map':  # its body is one device's program: every device runs it
      total += eqn.params['mesh'].size * sum(inner)
    elif name == 'cond':
      total += max(inner, default=0.0)
    else:
      total += sum(inner)
  return total


def of_call(fn, *args) -> float:
  """FLOPs of one call of the jitted `fn` on `args` (arrays or ShapeDtypeStructs): the whole
  program's, over every device it runs on."""
  return count(fn.trace(*args).jaxpr)
