"""Stride-2 convolutions whose first and second derivatives stay fast on XLA's CPU backend.

On CPU, XLA runs some forms of convolution on a slow generic path. For the WGAN-GP MNIST model at
batch 64, the input gradient of the stride-2 conv 7x7 -> 4x4 and the weight gradient of the
stride-2 transposed conv 7 -> 14 took ~260 ms each, where the other passes took ~10 ms. The
gradient penalty's second-order term (the weight gradient of the input gradient) was slow in
every conv form tried. See `python experiments/conv_microbench.py`. So on CPU both stride-2
layers become matmuls:

  * `Conv` (stride 2, 'SAME'): strided slices of the padded input, concatenated, times the
    flattened kernel;
  * `ConvTranspose` (stride 2, 'SAME'): one matmul of every input pixel with every tap, then
    each sub-pixel phase of the output as a sum of shifted slices (GEMM + col2im).

Their derivatives of any order are then slices, pads, gathers and matmuls. Both keep the
parameters of `nn.Conv` / `nn.ConvTranspose` (kernel [k, k, Cin, F], bias [F]) and compute the
same function (tests/test_layers.py). `impl='auto'` uses these forms on CPU and the plain lax
convolutions elsewhere (GPU and TPU run those natively).
"""

from typing import Any, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

DIMS = ('NHWC', 'HWIO', 'NHWC')


def use_fast(impl: str) -> bool:
  if impl not in ('auto', 'fast', 'xla'):
    raise ValueError(f"model.conv_impl must be 'auto', 'fast' or 'xla', got {impl!r}")
  return impl == 'fast' or (impl == 'auto' and jax.default_backend() == 'cpu')


def conv_im2col(x, kernel, stride: int, padding):
  """lax.conv_general_dilated(x, kernel, (stride, stride), padding) as patches @ kernel."""
  kh, kw, cin, f = kernel.shape
  x = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  oh = (x.shape[1] - kh) // stride + 1
  ow = (x.shape[2] - kw) // stride + 1
  cols = [x[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
          for i in range(kh) for j in range(kw)]
  patches = jnp.concatenate(cols, axis=-1)  # [B, oh, ow, kh * kw * cin], order (i, j, c)
  return jnp.einsum('bhwk,kf->bhwf', patches, kernel.reshape(kh * kw * cin, f))


def same_padding(size: int, k: int, stride: int):
  """(lo, hi) padding of lax's 'SAME' for one spatial side."""
  out = -(-size // stride)
  total = max((out - 1) * stride + k - size, 0)
  return total // 2, total - total // 2


def conv_s2_same(x, kernel):
  """== lax.conv_general_dilated(x, kernel, (2, 2), 'SAME'), via im2col + matmul."""
  k = kernel.shape[0]
  pads = tuple(same_padding(size, k, 2) for size in x.shape[1:3])
  return conv_im2col(x, kernel, 2, pads)


def _subpixel_indices(k: int) -> Tuple[np.ndarray, np.ndarray, int, int]:
  """Taps of a stride-2 'SAME' transposed conv, per output phase, as a stride-1 kernel.

  lax.conv_transpose(x, w, (2, 2), 'SAME') gives y[2i + a] = sum_j x[i + j] w[2j - a + p]
  with p = ceil((k + 2 - 2) / 2) (or k - 1 when k < 3). Returns the tap index r[j, a] into
  w, a validity mask, and the j range [j_lo, j_hi].
  """
  pad_len = k  # k + stride - 2
  p = k - 1 if 2 > k - 1 else int(np.ceil(pad_len / 2))
  j_lo = min(int(np.ceil((a - p) / 2)) for a in (0, 1))
  j_hi = max((k - 1 + a - p) // 2 for a in (0, 1))
  js = np.arange(j_lo, j_hi + 1)
  r = 2 * js[:, None] - np.arange(2)[None, :] + p  # [L, 2]
  valid = (r >= 0) & (r < k)
  return np.clip(r, 0, k - 1), valid, j_lo, j_hi


def conv_transpose_s2_same(x, kernel):
  """== lax.conv_transpose(x, kernel, (2, 2), 'SAME'), as one matmul and shifted sums.

  Each input pixel times every tap is one matmul, x [B*H*W, Cin] @ [Cin, k*k*F] (the multiplies
  of the transposed conv, no more); output phase (a, b) (rows 2i + a, columns 2i' + b) is then
  the sum of the shifted [B, H, W, F] slices of the taps that reach it, and the phases are
  interleaved. Im2col of the sub-pixel conv instead would build [B, H, W, taps * Cin] patches
  (slow when F is small) and multiply by masked zeros (9/4 the multiplies for k = 4).
  """
  k, _, cin, f = kernel.shape
  r, valid, j_lo, j_hi = _subpixel_indices(k)
  b, h, w = x.shape[:3]
  z = jnp.einsum('bhwc,cf->bhwf', x, kernel.transpose(2, 0, 1, 3).reshape(cin, k * k * f))
  z = jnp.pad(z.reshape(b, h, w, k, k, f),
              ((0, 0), (-j_lo, j_hi), (-j_lo, j_hi), (0, 0), (0, 0), (0, 0)))
  taps = [np.flatnonzero(valid[:, a]) for a in (0, 1)]  # offsets j - j_lo reaching phase a
  phases = [sum(z[:, i:i + h, j:j + w, r[i, pa], r[j, pb]] for i in taps[pa] for j in taps[pb])
            for pa in (0, 1) for pb in (0, 1)]
  y = jnp.stack(phases, axis=3).reshape(b, h, w, 2, 2, f)   # (a, b) phase-major
  return y.transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, f)


class _Stride2(nn.Module):
  """Shared parameters (kernel [k, k, Cin, F], bias [F]) of the two stride-2 layers."""
  features: int
  kernel_size: int
  impl: str = 'auto'
  kernel_init: nn.initializers.Initializer = nn.linear.default_kernel_init
  use_bias: bool = True
  dtype: Any = jnp.float32  # computation dtype; the parameters stay float32

  def _params(self, cin):
    k = self.kernel_size
    kernel = self.param('kernel', self.kernel_init, (k, k, cin, self.features))
    if not self.use_bias:
      return kernel, 0.0
    return kernel, self.param('bias', nn.initializers.zeros, (self.features,))

  def _cast(self, *arrays):
    return [jnp.asarray(a, self.dtype) for a in arrays]


class Conv(_Stride2):
  """== nn.Conv(features, (k, k), strides=(2, 2), padding='SAME'); CPU-fast form on CPU."""

  @nn.compact
  def __call__(self, x):
    kernel, bias = self._params(x.shape[-1])
    x, kernel, bias = self._cast(x, kernel, bias)
    if use_fast(self.impl):
      return conv_s2_same(x, kernel) + bias
    return jax.lax.conv_general_dilated(x, kernel, (2, 2), 'SAME', dimension_numbers=DIMS) + bias


class ConvTranspose(_Stride2):
  """== nn.ConvTranspose(features, (k, k), strides=(2, 2), padding='SAME'); CPU-fast on CPU."""

  @nn.compact
  def __call__(self, x):
    kernel, bias = self._params(x.shape[-1])
    x, kernel, bias = self._cast(x, kernel, bias)
    if use_fast(self.impl):
      return conv_transpose_s2_same(x, kernel) + bias
    return jax.lax.conv_transpose(x, kernel, (2, 2), 'SAME', dimension_numbers=DIMS) + bias

