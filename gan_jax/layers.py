"""Stride-2 convolutions whose derivatives of every order stay fast on XLA's CPU backend.

A stride-2 convolution y = conv(x, w) comes with two adjoint maps, and each of the three is
the other two's derivative:

  * F  conv(x, w)       -> y   the convolution itself;
  * D  conv_dx(g, w)    -> x   its input gradient (lhs-dilated convolution, = a transposed conv);
  * W  conv_dw(x, g)    -> w   its weight gradient (rhs-dilated convolution).

d F = (D, W); d D(g, w) / (g, w) = (F, W); d W(x, g) / (x, g) = (D, F). Each is a `custom_vjp`
with those derivatives, so the gradient penalty's second-order terms (and any higher order) are
F, D and W again, and each of the three runs in the form XLA CPU is fast at. `ConvTranspose` is
D of its adjoint convolution. Two forms of each:

  * lax: `lax.conv_general_dilated` in canonical NHWC / HWIO form. XLA CPU runs the lax
    convolutions fast only in that form: the input and weight gradients that `jax.vjp` gives
    (permuted dimension numbers) fall on a slow path, 25-200x slower inside while loops (the
    critic's scan, steps_per_call). W is therefore written with explicit transposes: x as
    [C, H, W, B] convolved with g as [h, w, B, F] dilated by 2.
  * matmul: im2col (strided slices of the padded input, concatenated) times the flattened
    kernel; D is the transpose of that (slices added back).

impl 'hybrid' (the CPU default) takes the lax form except where the matmul form measured faster
(`python experiments/conv_microbench.py --kinds`), 'fast' takes the matmul form everywhere and
'xla' is plain `lax` with JAX's own derivatives (what GPUs and TPUs run natively). All keep the
parameters of `nn.Conv` / `nn.ConvTranspose` (kernel [k, k, Cin, F], bias [F]) and compute the
same function and derivatives (tests/test_layers.py). `impl='auto'` is 'hybrid' on CPU and
'xla' elsewhere.
"""

import dataclasses
import functools
from typing import Any, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

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


Pads = Tuple[Tuple[int, int], Tuple[int, int]]


@dataclasses.dataclass(frozen=True)
class Geometry:
  """A stride-2 convolution: input spatial size, kernel size, (lo, hi) padding per spatial
  dimension, and 'hybrid' or 'fast' (which forms to use)."""
  size: Tuple[int, int]
  k: int
  pads: Pads
  impl: str = 'hybrid'

  @property
  def out_size(self) -> Tuple[int, int]:
    return tuple((n + lo + hi - self.k) // 2 + 1 for n, (lo, hi) in zip(self.size, self.pads))

  @property
  def dx_pads(self) -> Pads:
    """Padding of the 2-dilated output gradient in D (what `jax.vjp` of the conv uses)."""
    k = self.k
    return tuple((k - 1 - lo, n + k - 1 - (2 * (m - 1) + 1) - (k - 1 - lo))
                 for n, m, (lo, _) in zip(self.size, self.out_size, self.pads))

  @property
  def dw_pads(self) -> Pads:
    """Padding of the input in W such that the output is exactly k x k."""
    k = self.k
    return tuple((lo, hi - (n + lo + hi - 2 * (m - 1) - k))
                 for n, m, (lo, hi) in zip(self.size, self.out_size, self.pads))


def im2col(x, kh: int, kw: int, stride: int, padding):
  """[B, oh, ow, kh * kw * C] patches (order (i, j, c)) of a strided kh x kw window."""
  x = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  oh = (x.shape[1] - kh) // stride + 1
  ow = (x.shape[2] - kw) // stride + 1
  cols = [x[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
          for i in range(kh) for j in range(kw)]
  return jnp.concatenate(cols, axis=-1)


def _f_lax(x, w, geo):
  return jax.lax.conv_general_dilated(x, w, (2, 2), geo.pads, dimension_numbers=DIMS)


def _f_matmul(x, w, geo):
  k, _, cin, f = w.shape
  patches = im2col(x, k, k, 2, geo.pads)
  return jnp.einsum('bhwk,kf->bhwf', patches, w.reshape(k * k * cin, f))


def _d_lax(g, w, geo):
  flipped = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
  return jax.lax.conv_general_dilated(g, flipped, (1, 1), geo.dx_pads, lhs_dilation=(2, 2),
                                      dimension_numbers=DIMS)


def col2im(cols, k: int, size, pads):
  """The adjoint of `im2col(x, k, k, 2, pads)` for x of spatial `size`: [B, m, m', k * k * C]
  -> [B, H, W, C]. Each tap lands in one of the four phases of the stride (x[2q + a, 2r + b]),
  so each phase is a sum of shifted tap slices and the phases are interleaved once (summing
  k * k full-size padded slices instead is 3-4x slower on XLA CPU in the training step)."""
  b, mh, mw, _ = cols.shape
  cols = cols.reshape(b, mh, mw, k, k, -1)
  half = [-(-n // 2) for n in size]
  zero = jnp.zeros((), cols.dtype)

  def phase(a, c):
    total = 0.0
    for ty in range(k):
      sy, ry = divmod(ty - pads[0][0] - a, 2)
      for tx in range(k):
        sx, rx = divmod(tx - pads[1][0] - c, 2)
        if ry == 0 and rx == 0:  # tap (ty, tx) of output (i, j) lands on (i + sy, j + sx)
          total += jax.lax.pad(cols[:, :, :, ty, tx], zero,
                               ((0, 0, 0), (sy, half[0] - mh - sy, 0),
                                (sx, half[1] - mw - sx, 0), (0, 0, 0)))
    return total

  x = jnp.stack([jnp.stack([phase(a, c) for c in (0, 1)], axis=3) for a in (0, 1)], axis=2)
  return x.reshape(b, 2 * half[0], 2 * half[1], -1)[:, :size[0], :size[1]]


def _d_matmul(g, w, geo):
  k, _, cin, f = w.shape
  return col2im(jnp.einsum('bhwf,kf->bhwk', g, w.reshape(k * k * cin, f)), k, geo.size,
                geo.pads)


def _w_lax(x, g, geo):
  out = jax.lax.conv_general_dilated(x.transpose(3, 1, 2, 0), g.transpose(1, 2, 0, 3), (1, 1),
                                     geo.dw_pads, rhs_dilation=(2, 2), dimension_numbers=DIMS)
  return out.transpose(1, 2, 0, 3)  # [C, k, k, F] -> [k, k, C, F]


def _w_matmul(x, g, geo):
  k = geo.k
  patches = im2col(x, k, k, 2, geo.pads)
  return jnp.einsum('bhwk,bhwf->kf', patches, g).reshape(k, k, x.shape[-1], g.shape[-1])


# Which form 'hybrid' takes, from `python experiments/conv_microbench.py --kinds --in_loop` (batch
# 64, the DCGAN CIFAR-10 and WGAN-GP MNIST convolutions, inside a while loop) and the training
# step (`experiments/benchmark.py`):
#   * F: lax (16x16x128 -> 8x8x256 on one core: 27.3 ms against 48.0 for the matmul);
#   * D: matmul. The lax form (Eigen's lhs-dilated convolution) uses the second core poorly
#     (33 -> 30 ms on 2 cores where the matmul goes 34 -> 20) and takes 550-650 ms where the
#     kernel is wider than the output gradient (WGAN-GP's 4x4 maps, 5x5 kernel). DCGAN CIFAR-10
#     step: 0.43 s with matmul D, 0.49 s with lax D;
#   * W: lax (32.4 ms against 56.0 on one core), except on inputs of 1-3 channels where the
#     transposes cost more than they save (32x32x3: 6.0 ms against 3.2).
def _f(x, w, geo):
  return (_f_matmul if geo.impl == 'fast' else _f_lax)(x, w, geo)


def _d(g, w, geo):
  return _d_matmul(g, w, geo)  # both impls (_d_lax is kept for the microbenchmark)


def _w(x, g, geo):
  matmul = geo.impl == 'fast' or x.shape[-1] < 4
  return (_w_matmul if matmul else _w_lax)(x, g, geo)


conv = jax.custom_vjp(_f, nondiff_argnums=(2,))
conv_dx = jax.custom_vjp(_d, nondiff_argnums=(2,))
conv_dw = jax.custom_vjp(_w, nondiff_argnums=(2,))
conv.defvjp(lambda x, w, geo: (conv(x, w, geo), (x, w)),
            lambda geo, res, g: (conv_dx(g, res[1], geo), conv_dw(res[0], g, geo)))
conv_dx.defvjp(lambda g, w, geo: (conv_dx(g, w, geo), (g, w)),
               lambda geo, res, h: (conv(h, res[1], geo), conv_dw(h, res[0], geo)))
conv_dw.defvjp(lambda x, g, geo: (conv_dw(x, g, geo), (x, g)),
               lambda geo, res, v: (conv_dx(res[1], v, geo), conv(res[0], v, geo)))


def same_padding(size: int, k: int, stride: int):
  """(lo, hi) padding of lax's 'SAME' for one spatial side."""
  out = -(-size // stride)
  total = max((out - 1) * stride + k - size, 0)
  return total // 2, total - total // 2


def conv_transpose_padding(k: int) -> Tuple[int, int]:
  """(lo, hi) padding of the dilated input in lax.conv_transpose(..., (2, 2), 'SAME')."""
  lo = k - 1 if 2 > k - 1 else -(-k // 2)
  return lo, k - lo


def conv_s2_same(x, kernel, impl: str = 'hybrid'):
  """== lax.conv_general_dilated(x, kernel, (2, 2), 'SAME') in the F/D/W forms."""
  k = kernel.shape[0]
  pads = tuple(same_padding(n, k, 2) for n in x.shape[1:3])
  return conv(x, kernel, Geometry(tuple(x.shape[1:3]), k, pads, impl))


def conv_transpose_s2_same(x, kernel, impl: str = 'hybrid'):
  """== lax.conv_transpose(x, kernel, (2, 2), 'SAME'): D of the adjoint stride-2 conv (input
  2H x 2W, padding k - 1 - that of the dilated input, kernel flipped with in/out swapped)."""
  k = kernel.shape[0]
  lo, hi = conv_transpose_padding(k)
  geo = Geometry(tuple(2 * n for n in x.shape[1:3]), k, ((k - 1 - lo, k - 1 - hi),) * 2, impl)
  return conv_dx(x, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2), geo)


def lax_conv_s2_same(x, kernel):
  return jax.lax.conv_general_dilated(x, kernel, (2, 2), 'SAME', dimension_numbers=DIMS)


def lax_conv_transpose_s2_same(x, kernel):
  return jax.lax.conv_transpose(x, kernel, (2, 2), 'SAME', dimension_numbers=DIMS)


FORMS = {
    'conv': {'xla': lax_conv_s2_same,
             'fast': functools.partial(conv_s2_same, impl='fast'),
             'hybrid': functools.partial(conv_s2_same, impl='hybrid')},
    'conv_transpose': {'xla': lax_conv_transpose_s2_same,
                       'fast': functools.partial(conv_transpose_s2_same, impl='fast'),
                       'hybrid': functools.partial(conv_transpose_s2_same, impl='hybrid')},
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

