"""Convolutions whose derivatives of every order stay fast on XLA's CPU backend.

`Conv` (stride 1 or 2, 'SAME') and `ConvTranspose` (stride 2, 'SAME') are the layers of every
model. A convolution y = conv(x, w) comes with two adjoint maps, and each of the three is the
other two's derivative:

  * F  conv(x, w)       -> y   the convolution itself;
  * D  conv_dx(g, w)    -> x   its input gradient (lhs-dilated convolution: a transposed conv);
  * W  conv_dw(x, g)    -> w   its weight gradient (rhs-dilated convolution).

d F = (D, W); d D(g, w) / (g, w) = (F, W); d W(x, g) / (x, g) = (D, F). Each is a `custom_vjp`
with those derivatives, so the gradient penalty's second-order terms (and any higher order) are
F, D and W again, and each of the three runs in the form XLA CPU is fast at. `ConvTranspose` is
D of its adjoint convolution. Two forms of each:

  * lax: `lax.conv_general_dilated` in canonical NHWC / HWIO form. XLA CPU runs the lax
    convolutions fast only in that form: the input and weight gradients that `jax.vjp` gives
    (permuted dimension numbers) fall on a slow path, 25-200x slower inside while loops (the
    critic's scan, steps_per_call). W is therefore written with explicit transposes: x as
    [C, H, W, B] convolved with g as [h, w, B, F] dilated by the stride.
  * matmul: im2col (strided slices of the padded input, concatenated) times the flattened
    kernel; D is the transpose of that (col2im: the slices added back, phase by phase).

impl 'hybrid' (the CPU default) takes the lax form except where the matmul form measured faster
(`python experiments/conv_microbench.py --kinds`), 'fast' takes the matmul form everywhere and
'xla' is plain `lax` with JAX's own derivatives (what GPUs and TPUs run natively). 'mkl' takes
the matmul form everywhere with its products in bfloat16, summed in float32, by oneMKL
(gan_jax/mkl_gemm.py: AMX on Intel Xeons that have it; one CPU device); 'bf16' the same with
XLA's own bfloat16 dot (`xla_bf16_matmul`: YNNPACK on AVX512-BF16, e.g. an AMD EPYC). All
keep the parameters of `nn.Conv` / `nn.ConvTranspose` (kernel [k, k, Cin, F], bias [F]) and
compute the same function and derivatives (tests/test_layers.py). `impl='auto'` is 'hybrid'
on CPU and 'xla' elsewhere.
"""

import dataclasses
import functools
from typing import Any, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax import mkl_gemm
from gan_jax.errors import ConfigError

DIMS = ('NHWC', 'HWIO', 'NHWC')


IMPLS = ('auto', 'hybrid', 'fast', 'xla', 'mkl', 'bf16')


def resolve(impl: str, platform: Optional[str] = None) -> str:
  """'auto' -> 'hybrid' on a CPU, 'xla' on anything else; the other names stand for themselves
  ('mkl' on a CPU only).

  `platform` is where the layer will run ('cpu', 'gpu', 'tpu'): the devices a program is
  compiled for, which need not be this host's (a TPU compiled for on a CPU machine). None: the
  host's default backend.
  """
  if impl not in IMPLS:
    raise ValueError(f"model.conv_impl must be one of {', '.join(map(repr, IMPLS))}, "
                     f"got {impl!r}")
  platform = platform or jax.default_backend()
  if impl == 'auto':
    return 'hybrid' if platform == 'cpu' else 'xla'
  if impl == 'mkl' and platform != 'cpu':
    raise ConfigError(f"model.conv_impl 'mkl' runs on a CPU (oneMKL), not on {platform}: "
                      "use 'auto'")
  return impl


Pads = Tuple[Tuple[int, int], Tuple[int, int]]


@dataclasses.dataclass(frozen=True)
class Geometry:
  """A convolution: input spatial size, kernel size, (lo, hi) padding per spatial dimension,
  'hybrid' or 'fast' (which forms to use), and the stride."""
  size: Tuple[int, int]
  k: int
  pads: Pads
  impl: str = 'hybrid'
  stride: int = 2

  @property
  def out_size(self) -> Tuple[int, int]:
    return tuple((n + lo + hi - self.k) // self.stride + 1
                 for n, (lo, hi) in zip(self.size, self.pads))

  @property
  def dx_pads(self) -> Pads:
    """Padding of the dilated output gradient in D (what `jax.vjp` of the conv uses)."""
    k, s = self.k, self.stride
    return tuple((k - 1 - lo, n + k - 1 - (s * (m - 1) + 1) - (k - 1 - lo))
                 for n, m, (lo, _) in zip(self.size, self.out_size, self.pads))

  @property
  def dw_pads(self) -> Pads:
    """Padding of the input in W such that the output is exactly k x k."""
    k, s = self.k, self.stride
    return tuple((lo, hi - (n + lo + hi - s * (m - 1) - k))
                 for n, m, (lo, hi) in zip(self.size, self.out_size, self.pads))


def _taps(x, kh: int, kw: int, stride: int, padding):
  """The kh * kw [B, oh, ow, C] slices of the padded input that each kernel tap (i, j) sees."""
  x = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  oh = (x.shape[1] - kh) // stride + 1
  ow = (x.shape[2] - kw) // stride + 1
  return [x[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
          for i in range(kh) for j in range(kw)]


def im2col(x, kh: int, kw: int, stride: int, padding):
  """[B, oh, ow, kh * kw * C] patches (order (i, j, c)) of a strided kh x kw window."""
  return jnp.concatenate(_taps(x, kh, kw, stride, padding), axis=-1)


def adjoint_kernel(w):
  """[k, k, Cin, F] -> [k, k, F, Cin], flipped: the kernel of a convolution's transpose."""
  return jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)


def _f_lax(x, w, geo, preferred=None):
  """(`preferred`, in the lax forms: lax's preferred_element_type, e.g. float32 sums of
  bfloat16 operands in experiments/conv_microbench.py --bf16.)"""
  return jax.lax.conv_general_dilated(x, w, (geo.stride,) * 2, geo.pads,
                                      dimension_numbers=DIMS, preferred_element_type=preferred)


def _f_matmul(x, w, geo):
  k, _, cin, f = w.shape
  patches = im2col(x, k, k, geo.stride, geo.pads)
  return jnp.einsum('bhwk,kf->bhwf', patches, w.reshape(k * k * cin, f))


def _d_lax(g, w, geo, preferred=None):
  return jax.lax.conv_general_dilated(g, adjoint_kernel(w), (1, 1), geo.dx_pads,
                                      lhs_dilation=(geo.stride,) * 2, dimension_numbers=DIMS,
                                      preferred_element_type=preferred)


def col2im(cols, k: int, size, pads, stride: int = 2):
  """The adjoint of `im2col(x, k, k, stride, pads)` for x of spatial `size`: [B, m, m',
  k * k * C] -> [B, H, W, C]. Each tap lands in one phase of the stride (x[s q + a, s r + b]),
  so each phase is a sum of shifted tap slices, and the phases are interleaved once. (Summing
  k * k full-size padded slices instead made the DCGAN training step 0.58 s against 0.43.)"""
  b, mh, mw, _ = cols.shape
  cols = cols.reshape(b, mh, mw, k, k, -1)
  part = [-(-n // stride) for n in size]
  zero = jnp.zeros((), cols.dtype)

  def phase(a, c):
    total = jnp.zeros((b, *part, cols.shape[-1]), cols.dtype)  # (a phase may get no tap)
    for ty in range(k):
      sy, ry = divmod(ty - pads[0][0] - a, stride)
      for tx in range(k):
        sx, rx = divmod(tx - pads[1][0] - c, stride)
        if ry == 0 and rx == 0:  # tap (ty, tx) of output (i, j) lands on (i + sy, j + sx)
          total += jax.lax.pad(cols[:, :, :, ty, tx], zero,
                               ((0, 0, 0), (sy, part[0] - mh - sy, 0),
                                (sx, part[1] - mw - sx, 0), (0, 0, 0)))
    return total

  phases = range(stride)
  x = jnp.stack([jnp.stack([phase(a, c) for c in phases], axis=3) for a in phases], axis=2)
  return x.reshape(b, stride * part[0], stride * part[1], -1)[:, :size[0], :size[1]]


def _d_matmul(g, w, geo):
  k, _, cin, f = w.shape
  return col2im(jnp.einsum('bhwf,kf->bhwk', g, w.reshape(k * k * cin, f)), k, geo.size,
                geo.pads, geo.stride)


def _w_lax(x, g, geo, preferred=None):
  out = jax.lax.conv_general_dilated(x.transpose(3, 1, 2, 0), g.transpose(1, 2, 0, 3), (1, 1),
                                     geo.dw_pads, rhs_dilation=(geo.stride,) * 2,
                                     dimension_numbers=DIMS, preferred_element_type=preferred)
  return out.transpose(1, 2, 0, 3)  # [C, k, k, F] -> [k, k, C, F]


def _w_matmul(x, g, geo):
  k = geo.k
  patches = im2col(x, k, k, geo.stride, geo.pads)
  return jnp.einsum('bhwk,bhwf->kf', patches, g).reshape(k, k, x.shape[-1], g.shape[-1])


def _w_taps(x, g, geo):
  """W as one [F, M] x [M, C] product per kernel tap, with g transposed once (no im2col)."""
  k, c, f = geo.k, x.shape[-1], g.shape[-1]
  gt = g.reshape(-1, f).T
  taps = [gt @ tap.reshape(-1, c) for tap in _taps(x, k, k, geo.stride, geo.pads)]
  return jnp.stack(taps).reshape(k, k, f, c).transpose(0, 1, 3, 2)


def xla_bf16_matmul(a, b, trans_a: bool = False, trans_b: bool = False):
  """mkl_gemm.matmul's contract by XLA's own dot: op(a) @ op(b) over the last two axes (op:
  transpose if asked; leading axes are batch axes), the operands rounded to bfloat16, the
  products summed in float32. XLA:CPU (jaxlib 0.10.2) runs such a dot as a YNNPACK fusion: on
  an AMD EPYC with AVX512-BF16 at twice its float32 product's rate (docs/speed.md)."""
  a, b = jnp.asarray(a, jnp.bfloat16), jnp.asarray(b, jnp.bfloat16)
  n = a.ndim
  if n < 2 or n != b.ndim:
    raise ValueError(f'xla_bf16_matmul: shapes {a.shape} and {b.shape}')
  batch = tuple(range(n - 2))
  dims = (((n - 2 if trans_a else n - 1,), (n - 1 if trans_b else n - 2,)), (batch, batch))
  return jax.lax.dot_general(a, b, dims, preferred_element_type=jnp.float32)


PRODUCTS = {'mkl': mkl_gemm.matmul, 'bf16': xla_bf16_matmul}   # the bfloat16 impls' products


def _rows(x):
  """[..., K] -> [rows, K]: a product's operand (the product rounds it to bfloat16)."""
  return x.reshape(-1, x.shape[-1])


def _bf16_im2col(x, k: int, stride: int, padding):
  """im2col of x rounded to bfloat16, moved as 16-bit integers: XLA's CPU backend slices and
  concatenates bfloat16 arrays by converting them to float32 and back (0x0000 is bfloat16's 0)."""
  bits = jax.lax.bitcast_convert_type(x.astype(jnp.bfloat16), jnp.uint16)
  return jax.lax.bitcast_convert_type(im2col(bits, k, k, stride, padding), jnp.bfloat16)


def _f_bf16(x, w, geo):
  k, _, cin, f = w.shape
  patches = _bf16_im2col(x, k, geo.stride, geo.pads)
  y = PRODUCTS[geo.impl](_rows(patches), _rows(w.reshape(k * k * cin, f)))
  return y.reshape(*patches.shape[:3], f).astype(jnp.result_type(x, w))


def _d_bf16(g, w, geo):
  k, _, cin, f = w.shape
  cols = PRODUCTS[geo.impl](_rows(g), _rows(w.reshape(k * k * cin, f)), trans_b=True)
  cols = cols.reshape(*g.shape[:3], k * k * cin)
  return col2im(cols, k, geo.size, geo.pads, geo.stride).astype(jnp.result_type(g, w))


def _bf16_im2col_t(x, k: int, stride: int, padding):
  """The transpose of `_rows(_bf16_im2col(x, ...))`, [k * k * C, rows], taken from x as [C, B,
  H, W] (one transpose of x, which is smaller than its patches)."""
  b, _, _, c = x.shape
  bits = jax.lax.bitcast_convert_type(x.astype(jnp.bfloat16), jnp.uint16)
  bits = bits.transpose(3, 0, 1, 2).reshape(c * b, *x.shape[1:3], 1)
  taps = [t.reshape(c, -1) for t in _taps(bits, k, k, stride, padding)]
  return jax.lax.bitcast_convert_type(jnp.concatenate(taps, axis=0), jnp.bfloat16)


def _w_bf16(x, g, geo):
  k, c, f = geo.k, x.shape[-1], g.shape[-1]
  if geo.impl == 'mkl':   # oneMKL takes the transposed operand as it is
    patches = _rows(_bf16_im2col(x, k, geo.stride, geo.pads))
    dw = mkl_gemm.matmul(patches, _rows(g), trans_a=True)
  else:  # XLA:CPU runs a dot that contracts its lhs's major axis in float32, not YNNPACK's
    dw = PRODUCTS[geo.impl](_bf16_im2col_t(x, k, geo.stride, geo.pads), _rows(g))
  return dw.reshape(k, k, c, f).astype(jnp.result_type(x, g))


# Which form 'hybrid' takes, from `python experiments/conv_microbench.py --kinds --in_loop` (batch
# 64, the convolutions of the DCGAN CIFAR-10, WGAN-GP MNIST and ResNet models, inside a while
# loop) and the training step (`experiments/benchmark.py`). One core, milliseconds:
#   * F: lax (16x16x128 -> 8x8x256: 26.8 against 44.4 for the matmul), but the matmul for 1x1
#     kernels (24 against 40);
#   * D: matmul for stride 2. The lax form there is Eigen's lhs-dilated convolution, which uses
#     the second core poorly (DCGAN 16x16x128 on 2 cores: 26.7 against 19.5) and takes 550-650
#     where the kernel is wider than the output gradient (WGAN-GP's 4x4 maps, 5x5 kernel); the
#     DCGAN CIFAR-10 step takes 0.43 s with matmul D, 0.49 s with lax D. Stride 1 has no
#     dilation: lax (3x3 32x32x128 -> 3: 12 against 168), except 1x1 kernels (24 against 40);
#   * W: lax for stride 2 (16x16x128 -> 8x8x256: 32.8 against 52.6); one product per tap for
#     stride 1 (3x3 32x32x128: 313 against 749 lax and 602 matmul; 1x1: 22 against 252 lax),
#     but lax for 1-3 output channels (32x32x128 -> 3: 49 against 149); the matmul on inputs
#     of 1-3 channels (32x32x3 -> 16x16x128: 3.6 against 5.6 lax).
def _f(x, w, geo):
  if geo.impl in PRODUCTS:
    return _f_bf16(x, w, geo)
  matmul = geo.impl == 'fast' or geo.k == 1
  return (_f_matmul if matmul else _f_lax)(x, w, geo)


def _d(g, w, geo):
  if geo.impl in PRODUCTS:
    return _d_bf16(g, w, geo)
  lax = geo.impl == 'hybrid' and geo.stride == 1 and geo.k > 1
  return (_d_lax if lax else _d_matmul)(g, w, geo)


def _w(x, g, geo):
  if geo.impl in PRODUCTS:
    return _w_bf16(x, g, geo)
  if geo.impl == 'fast' or x.shape[-1] < 4:
    return _w_matmul(x, g, geo)
  taps = geo.stride == 1 and g.shape[-1] >= 4
  return (_w_taps if taps else _w_lax)(x, g, geo)


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


def conv_same(x, kernel, stride: int = 2, impl: str = 'hybrid'):
  """== lax.conv_general_dilated(x, kernel, (stride, stride), 'SAME') in the F/D/W forms."""
  k = kernel.shape[0]
  pads = tuple(same_padding(n, k, stride) for n in x.shape[1:3])
  return conv(x, kernel, Geometry(tuple(x.shape[1:3]), k, pads, impl, stride))


def conv_transpose_s2_same(x, kernel, impl: str = 'hybrid'):
  """== lax.conv_transpose(x, kernel, (2, 2), 'SAME'): D of the adjoint stride-2 conv (input
  2H x 2W, padding k - 1 - that of the dilated input, kernel flipped with in/out swapped)."""
  k = kernel.shape[0]
  lo, hi = conv_transpose_padding(k)
  geo = Geometry(tuple(2 * n for n in x.shape[1:3]), k, ((k - 1 - lo, k - 1 - hi),) * 2, impl)
  return conv_dx(x, adjoint_kernel(kernel), geo)


def conv_general(x, kernel, stride: int = 1, padding: Pads = ((0, 0), (0, 0)),
                 lhs_dilation: int = 1, impl: str = 'hybrid'):
  """== lax.conv_general_dilated(x, kernel, (stride,) * 2, padding, lhs_dilation=(lhs_dilation,)
  * 2) (NHWC, HWIO, a square kernel, one group) in the F/D/W forms of `impl` ('xla': that lax
  call). A dilated input (a transposed convolution) is D of the stride-`lhs_dilation`
  convolution whose dx_pads are `padding`: its kernel is the adjoint, its pads k - 1 - each
  side's (each at most k - 1), its input the result's size."""
  padding = tuple(tuple(int(p) for p in side) for side in padding)
  if impl == 'xla':
    return jax.lax.conv_general_dilated(x, kernel, (stride,) * 2, padding,
                                        lhs_dilation=(lhs_dilation,) * 2,
                                        dimension_numbers=DIMS)
  k = kernel.shape[0]
  if kernel.shape[1] != k:
    raise ValueError(f'layers.conv_general: a square kernel, got {kernel.shape[:2]}')
  if lhs_dilation == 1:
    return conv(x, kernel, Geometry(tuple(x.shape[1:3]), k, padding, impl, stride))
  if stride != 1 or any(p > k - 1 for side in padding for p in side):
    raise ValueError(f'layers.conv_general: a dilated input takes stride 1 and padding of at '
                     f'most k - 1 = {k - 1}, got stride {stride}, padding {padding}')
  s = lhs_dilation
  size = tuple((n - 1) * s + lo + hi - k + 2 for n, (lo, hi) in zip(x.shape[1:3], padding))
  geo = Geometry(size, k, tuple((k - 1 - lo, k - 1 - hi) for lo, hi in padding), impl, s)
  return conv_dx(x, adjoint_kernel(kernel), geo)


def lax_conv_same(x, kernel, stride: int = 2):
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), 'SAME',
                                      dimension_numbers=DIMS)


def lax_conv_transpose_s2_same(x, kernel):
  return jax.lax.conv_transpose(x, kernel, (2, 2), 'SAME', dimension_numbers=DIMS)


FORMS = {
    'conv': {'xla': lax_conv_same,  # (x, kernel, stride=2)
             'fast': functools.partial(conv_same, impl='fast'),
             'hybrid': functools.partial(conv_same, impl='hybrid'),
             'mkl': functools.partial(conv_same, impl='mkl'),
             'bf16': functools.partial(conv_same, impl='bf16')},
    'conv_transpose': {'xla': lax_conv_transpose_s2_same,
                       'fast': functools.partial(conv_transpose_s2_same, impl='fast'),
                       'hybrid': functools.partial(conv_transpose_s2_same, impl='hybrid'),
                       'mkl': functools.partial(conv_transpose_s2_same, impl='mkl'),
                       'bf16': functools.partial(conv_transpose_s2_same, impl='bf16')},
}


class _ConvBase(nn.Module):
  """Shared parameters (kernel [k, k, Cin, F], bias [F]) of the two layers."""
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


class Conv(_ConvBase):
  """== nn.Conv(features, (k, k), strides=(s, s), padding='SAME'); CPU-fast forms on CPU."""
  stride: int = 2

  @nn.compact
  def __call__(self, x):
    kernel, bias = self._params(x.shape[-1])
    x, kernel, bias = self._cast(x, kernel, bias)
    return FORMS['conv'][resolve(self.impl)](x, kernel, self.stride) + bias


class ConvTranspose(_ConvBase):
  """== nn.ConvTranspose(features, (k, k), strides=(2, 2), padding='SAME'); CPU-fast on CPU."""

  @nn.compact
  def __call__(self, x):
    kernel, bias = self._params(x.shape[-1])
    x, kernel, bias = self._cast(x, kernel, bias)
    return FORMS['conv_transpose'][resolve(self.impl)](x, kernel) + bias

