"""Stride-2 convolutions whose first and second derivatives stay fast on XLA's CPU backend.

On CPU, XLA runs some forms of convolution on a slow generic path. For the WGAN-GP MNIST model at
batch 64, the input gradient of the stride-2 conv 7x7 -> 4x4 and the weight gradient of the
stride-2 transposed conv 7 -> 14 took ~260 ms each, where the other passes took ~10 ms. The
gradient penalty's second-order term (the weight gradient of the input gradient) was slow in
every conv form tried. See `python experiments/conv_microbench.py`. So on CPU both stride-2
layers become im2col + one matmul:

  * `Conv` (stride 2, 'SAME'): strided slices of the padded input, concatenated, times the
    flattened kernel;
  * `ConvTranspose` (stride 2, 'SAME'): the same im2col product for a stride-1 conv whose 4 x F
    output channels are the four sub-pixel phases, then depth-to-space.

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


def depth_to_space(x):
  """[B, H, W, 4F] (phase-major channels) -> [B, 2H, 2W, F]."""
  b, h, w, c = x.shape
  x = x.reshape(b, h, w, 2, 2, c // 4).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c // 4)


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
  """== lax.conv_transpose(x, kernel, (2, 2), 'SAME'), as a stride-1 conv + depth-to-space."""
  k, _, cin, f = kernel.shape
  r, valid, j_lo, j_hi = _subpixel_indices(k)
  # sub[jy, jx, c, (a, b), f] = kernel[r[jy, a], r[jx, b], c, f] where both taps are valid.
  sub = kernel[r[:, None, :, None], r[None, :, None, :]]  # [L, L, 2, 2, Cin, F]
  mask = (valid[:, None, :, None] & valid[None, :, None, :]).astype(kernel.dtype)
  sub = sub * mask[..., None, None]
  length = r.shape[0]
  sub = sub.transpose(0, 1, 4, 2, 3, 5).reshape(length, length, cin, 4 * f)
  pads = ((-j_lo, j_hi), (-j_lo, j_hi))
  return depth_to_space(conv_im2col(x, sub, 1, pads))


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

