"""Stride-2 convolutions whose first and second derivatives stay fast on XLA's CPU backend.

On CPU, XLA runs some passes of some convolutions on a slow generic path: the input gradient
of a stride-2 conv for some shapes, the weight gradient of every stride-2 transposed conv, and
the gradient penalty's second-order term (the weight gradient of a conv's input gradient) in
every lax form tried. See `python experiments/conv_microbench.py [--model=dcgan_cifar10]`.
Three forms per layer:

  * 'fast': matmuls only. `Conv` (stride 2, 'SAME') is strided slices of the padded input,
    concatenated, times the flattened kernel (im2col); `ConvTranspose` is the same product for
    a stride-1 conv whose 4 x F output channels are the four sub-pixel phases, then
    depth-to-space. Their derivatives of any order are slices, pads and matmuls.
  * 'xla': the lax convolutions (what GPUs and TPUs run natively).
  * 'hybrid' (CPU default): the lax forward pass, which XLA CPU runs fast, with the 'fast'
    form's derivatives (a `custom_vjp`; see FORMS for the measurements).

All keep the parameters of `nn.Conv` / `nn.ConvTranspose` (kernel [k, k, Cin, F], bias [F])
and compute the same function and derivatives (tests/test_layers.py). `impl='auto'` is
'hybrid' on CPU and 'xla' elsewhere.
"""

from typing import Any, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

DIMS = ('NHWC', 'HWIO', 'NHWC')


IMPLS = ('auto', 'hybrid', 'fast', 'xla')


def resolve(impl: str) -> str:
  """'auto' -> 'hybrid' on CPU, 'xla' elsewhere; the other names stand for themselves."""
  if impl not in IMPLS:
    raise ValueError(f"model.conv_impl must be one of {', '.join(map(repr, IMPLS))}, "
                     f"got {impl!r}")
  if impl == 'auto':
    return 'hybrid' if jax.default_backend() == 'cpu' else 'xla'
  return impl


def depth_to_space(x):
  """[B, H, W, 4F] (phase-major channels) -> [B, 2H, 2W, F]."""
  b, h, w, c = x.shape
  x = x.reshape(b, h, w, 2, 2, c // 4).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c // 4)


def im2col(x, kh: int, kw: int, stride: int, padding):
  """[B, oh, ow, kh * kw * C] patches (order (i, j, c)) of a strided kh x kw window."""
  x = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  oh = (x.shape[1] - kh) // stride + 1
  ow = (x.shape[2] - kw) // stride + 1
  cols = [x[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
          for i in range(kh) for j in range(kw)]
  return jnp.concatenate(cols, axis=-1)


def conv_im2col(x, kernel, stride: int, padding):
  """lax.conv_general_dilated(x, kernel, (stride, stride), padding) as patches @ kernel."""
  kh, kw, cin, f = kernel.shape
  patches = im2col(x, kh, kw, stride, padding)
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


def conv_transpose_padding(k: int) -> Tuple[int, int]:
  """(lo, hi) padding of the dilated input in lax.conv_transpose(..., (2, 2), 'SAME')."""
  lo = k - 1 if 2 > k - 1 else -(-k // 2)
  return lo, k - lo


def _subpixel_indices(k: int) -> Tuple[np.ndarray, np.ndarray, int, int]:
  """Taps of a stride-2 'SAME' transposed conv, per output phase, as a stride-1 kernel.

  lax.conv_transpose(x, w, (2, 2), 'SAME') gives y[2i + a] = sum_j x[i + j] w[2j - a + p]
  with p = ceil((k + 2 - 2) / 2) (or k - 1 when k < 3). Returns the tap index r[j, a] into
  w, a validity mask, and the j range [j_lo, j_hi].
  """
  p = conv_transpose_padding(k)[0]
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


def conv_transpose_s2_same_vjp(x, kernel, g):
  """(dx, dw) of conv_transpose_s2_same at (x, kernel) for the output cotangent g, with the
  multiplies of the transposed conv only: both are products with the stride-2 im2col patches
  of g (the input gradient is the stride-2 conv of g with the flipped kernel)."""
  k, _, cin, f = kernel.shape
  lo, hi = conv_transpose_padding(k)
  patches = im2col(g, k, k, 2, ((k - 1 - lo, k - 1 - hi),) * 2)  # [B, H, W, k*k*F]
  flipped = kernel[::-1, ::-1]
  dx = jnp.einsum('bhwk,ck->bhwc', patches, flipped.transpose(2, 0, 1, 3).reshape(cin, -1))
  dw = jnp.einsum('bhwc,bhwk->ck', x, patches).reshape(cin, k, k, f).transpose(1, 2, 0, 3)
  return dx, dw[::-1, ::-1]


def lax_conv_s2_same(x, kernel):
  return jax.lax.conv_general_dilated(x, kernel, (2, 2), 'SAME', dimension_numbers=DIMS)


def lax_conv_transpose_s2_same(x, kernel):
  return jax.lax.conv_transpose(x, kernel, (2, 2), 'SAME', dimension_numbers=DIMS)


def _hybrid(plain, fast, vjp):
  """plain(x, w) forward (fast(x, w) where the kernel is wider than the input: XLA CPU's lax
  transposed conv of a 4x4 input with a 5x5 kernel took 300-3100 ms against 14-46), with the
  derivatives vjp(x, w, g) -> (dx, dw) (a `custom_vjp`). The backward rule is ordinary JAX, so
  differentiating it (the gradient penalty's second-order term) goes through matmul-form
  derivatives too."""
  def forward(x, w):
    return (fast if w.shape[0] > min(x.shape[1:3]) else plain)(x, w)

  @jax.custom_vjp
  def op(x, w):
    return forward(x, w)

  def fwd(x, w):
    return forward(x, w), (x, w)

  def bwd(res, g):
    return vjp(*res, g)

  op.defvjp(fwd, bwd)
  return op


def _vjp_of(fn):
  return lambda x, w, g: jax.vjp(fn, x, w)[1](g)


# Measured per pass (`python experiments/conv_microbench.py --model=dcgan_cifar10 [--in_loop]`,
# and the WGAN-GP MNIST shapes; batch 64, 2-core CPU): the lax forward passes are as fast as the
# matmul forms or faster (conv 16x16x128 -> 8x8x256: 15 ms against 34). Their gradients are
# not: inside a while loop (the critic's lax.scan, steps_per_call) the lax weight gradients take
# 270-7200 ms against 5-100 for the matmul forms, and the input gradients 2-7x as long; outside
# loops the conv's input gradient is slow for some shapes (7x7 -> 4x4: 526 ms against 13), the
# transposed conv's weight gradient for all (535-2660 ms against 90-160), and the gradient
# penalty's second-order term for every lax conv (509-3000 ms against 70-210).
FORMS = {
    'conv': {'xla': lax_conv_s2_same, 'fast': conv_s2_same,
             'hybrid': _hybrid(lax_conv_s2_same, conv_s2_same, _vjp_of(conv_s2_same))},
    'conv_transpose': {'xla': lax_conv_transpose_s2_same, 'fast': conv_transpose_s2_same,
                       'hybrid': _hybrid(lax_conv_transpose_s2_same, conv_transpose_s2_same,
                                         conv_transpose_s2_same_vjp)},
}


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
  """== nn.Conv(features, (k, k), strides=(2, 2), padding='SAME'); CPU-fast forms on CPU."""

  @nn.compact
  def __call__(self, x):
    kernel, bias = self._params(x.shape[-1])
    x, kernel, bias = self._cast(x, kernel, bias)
    return FORMS['conv'][resolve(self.impl)](x, kernel) + bias


class ConvTranspose(_Stride2):
  """== nn.ConvTranspose(features, (k, k), strides=(2, 2), padding='SAME'); CPU-fast on CPU."""

  @nn.compact
  def __call__(self, x):
    kernel, bias = self._params(x.shape[-1])
    x, kernel, bias = self._cast(x, kernel, bias)
    return FORMS['conv_transpose'][resolve(self.impl)](x, kernel) + bias

