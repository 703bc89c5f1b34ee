"""ADA: the adaptive augmentation of StyleGAN2-ADA (Karras et al. 2020, "Training Generative
Adversarial Networks with Limited Data"), as the official code computes it
(github.com/NVlabs/stylegan2-ada-pytorch, training/augment.py and training/training_loop.py).

The critic sees real and generated images through the same random, differentiable transforms,
each applied to an example with probability p (times its multiplier); p adapts during training
(`adjust_p`) so the critic's real-image logits keep a target sign statistic. Pipeline 'bgc', on
images [B, H, W, C] in [-1, 1] (C is 1 or 3):

  * pixel blitting: x-flip, 90-degree rotations, integer translation (through the same
    resampling as the rest, as in the official PyTorch code: a reversed axis comes out shifted by
    0.098 pixels, the sym6 filter being asymmetric; translations are exact);
  * general geometry: isotropic scaling, pre-rotation, anisotropic scaling, post-rotation,
    fractional translation; all the geometric transforms compose into one inverse 3x3 matrix per
    example (output pixel -> input pixel), applied once: reflect padding sized from the
    transformed corners, 2x upsampling with the sym6 wavelet filter, a bilinear affine grid
    sample (align_corners=False, zeros outside), filtered 2x downsampling;
  * color: brightness, contrast, luma flip, hue rotation, saturation, composed into one 4x4
    color matrix (luma axis (1, 1, 1) / sqrt 3); one channel uses the mean of its RGB rows.

`draw` makes the random parameters of a batch and `apply` puts given parameters on the images, so
a reference can be fed the same draws (tests/ada_torch.py); `augment` is the two together.
Matrices compose in the official order, so the same draws give the official images.

Three choices differ from the official code (each documented where it acts):
  * the padding is sized from each example's own corners (the official pads the whole batch by
    its largest margin), so an example's result does not depend on its batch-mates, its shard or
    the batch size; the two differ only through the filters' tails at the padding's edge (about
    1e-4 at most on random images in [-1, 1]; tests/test_ada.py bounds it);
  * an example no geometric (color) transform touched is returned as it is (the official
    resamples it too, which gives it back within float rounding), so p = 0 is exactly the
    identity;
  * `adjust_p` keeps p within [0, 1] (the official bounds it below only; above 1 it acts as 1).
"""

import dataclasses
from typing import Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.models.stylegan2 import ops

Draws = Dict[str, jax.Array]

# The sym6 wavelet's low-pass decomposition filter (PyWavelets' dec_lo for 'sym6'), normalised to
# sum 1 as the official setup_filter does: an orthogonal filter, so upsampling then downsampling
# with it is (within rounding) the identity.
_SYM6 = np.array([
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148])
SYM6 = (_SYM6 / _SYM6.sum()).astype(np.float32)
FILTER_PAD = len(SYM6) // 4  # 3: extra output pixels each side, for the downsampling filter

# The luma axis of the color transforms (the official's, computed in float64 then cast).
LUMA = (np.array([1, 1, 1, 0]) / np.sqrt(3)).astype(np.float32)

GEOMETRIC = ('xflip', 'rotate90', 'xint', 'scale', 'rotate', 'aniso', 'xfrac')
COLOR = ('brightness', 'contrast', 'lumaflip', 'hue', 'saturation')


@dataclasses.dataclass(frozen=True)
class Spec:
  """Which transforms run (probability multipliers) and how strong (the official defaults).

  Hashable, so it can be a static argument of jit. `PIPELINES` holds the official presets.
  """
  xflip: float = 0.0  # multiplier for x-flip
  rotate90: float = 0.0  # multiplier for 90-degree rotations
  xint: float = 0.0  # multiplier for integer translation
  xint_max: float = 0.125  # range of integer translation, a fraction of the side
  scale: float = 0.0  # multiplier for isotropic scaling
  rotate: float = 0.0  # multiplier for arbitrary rotation (P(pre or post) = rotate * p)
  aniso: float = 0.0  # multiplier for anisotropic scaling
  xfrac: float = 0.0  # multiplier for fractional translation
  scale_std: float = 0.2  # log2 standard deviation of isotropic scaling
  rotate_max: float = 1.0  # range of arbitrary rotation, 1 = the full circle
  aniso_std: float = 0.2  # log2 standard deviation of anisotropic scaling
  xfrac_std: float = 0.125  # standard deviation of fractional translation, a fraction of the side
  brightness: float = 0.0  # multiplier for brightness
  contrast: float = 0.0  # multiplier for contrast
  lumaflip: float = 0.0  # multiplier for luma flip
  hue: float = 0.0  # multiplier for hue rotation
  saturation: float = 0.0  # multiplier for saturation
  brightness_std: float = 0.2  # standard deviation of brightness
  contrast_std: float = 0.5  # log2 standard deviation of contrast
  hue_max: float = 1.0  # range of hue rotation, 1 = the full circle
  saturation_std: float = 1.0  # log2 standard deviation of saturation

  @property
  def geometric(self) -> bool:
    return any(getattr(self, name) > 0 for name in GEOMETRIC)

  @property
  def color(self) -> bool:
    return any(getattr(self, name) > 0 for name in COLOR)


_BLIT = dict(xflip=1, rotate90=1, xint=1)
_GEOM = dict(scale=1, rotate=1, aniso=1, xfrac=1)
_COLOR = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
PIPELINES = {
    'blit': Spec(**_BLIT), 'geom': Spec(**_GEOM), 'color': Spec(**_COLOR),
    'bg': Spec(**_BLIT, **_GEOM), 'bgc': Spec(**_BLIT, **_GEOM, **_COLOR),
}


# ------------------------------------------------------------------------------------------------
# Draws.

# The names of the draws, in the order of their gates' columns (see `draw`).
DRAWS = ('xflip', 'rotate90', 'xint', 'scale', 'rotate_pre', 'aniso', 'rotate_post', 'xfrac',
         'brightness', 'contrast', 'lumaflip', 'hue', 'saturation')
# Columns of the uniform and normal blocks each value takes (after the gates' columns).
_UNIFORM = {'xflip': 1, 'rotate90': 1, 'xint': 2, 'rotate_pre': 1, 'rotate_post': 1,
            'lumaflip': 1, 'hue': 1}
_NORMAL = {'scale': 1, 'aniso': 1, 'xfrac': 2, 'brightness': 1, 'contrast': 1, 'saturation': 1}


def _columns(block, widths: Dict[str, int], start: int) -> Draws:
  """{name: block[:, i:i + width]} (a width of 1: [B]) for consecutive columns from `start`."""
  out = {}
  for name, width in widths.items():
    out[name] = block[:, start] if width == 1 else block[:, start:start + width]
    start += width
  return out


def draw(key, p, spec: Spec, batch_size: int) -> Draws:
  """The random parameters of a batch, each [B] (translations [B, 2]) float32.

  Each transform fires per example with probability multiplier * p (either rotation with
  probability rotate * p: pre and post each with 1 - sqrt(1 - rotate * p)); where it does not,
  its value is the identity (0 for flips, rotations, translations and brightness, 1 for scales,
  contrast and saturation). A transform whose multiplier is 0 always takes its identity. The
  values are those of the official code: xflip in {0, 1} and rotate90 in {0, 1, 2, 3} uniform
  (so a flip shows with probability p / 2); xint uniform on +-xint_max (a fraction of the side,
  rounded to pixels in `apply`); scales 2^N(0, std^2); rotations uniform on +-pi * rotate_max;
  xfrac N(0, xfrac_std^2) (a fraction of the side); brightness N(0, brightness_std^2); contrast
  and saturation 2^N(0, std^2); lumaflip in {0, 1}; hue uniform on +-pi * hue_max.

  Everything comes from one [B, 21] uniform block (a gate per draw, then the uniform values)
  and one [B, 7] normal block, each name in fixed columns: a transform's draws do not depend on
  which others the spec enables, and two random calls compile far faster than 26.

  Args:
    key: a PRNG key.
    p: the augmentation probability, a float scalar (traced or not) in [0, 1].
    spec: the transforms' multipliers and strengths.
    batch_size: B.

  Returns:
    {name: [B] or [B, 2]} for every name of DRAWS.
  """
  p = jnp.asarray(p, jnp.float32)
  b = batch_size
  u_key, n_key = jax.random.split(key)
  uniform = jax.random.uniform(u_key, (b, len(DRAWS) + sum(_UNIFORM.values())), jnp.float32)
  normal = jax.random.normal(n_key, (b, sum(_NORMAL.values())), jnp.float32)
  gates = dict(zip(DRAWS, uniform.T))
  u = _columns(uniform, _UNIFORM, len(DRAWS))
  n = _columns(normal, _NORMAL, 0)
  p_rot = 1.0 - jnp.sqrt(jnp.clip(1.0 - spec.rotate * p, 0.0, 1.0))  # P(pre or post) = rotate p

  def gated(name, multiplier, value, identity, prob=None):
    """`value` where the transform fires (probability multiplier * p, or `prob`), else identity."""
    if multiplier <= 0:
      return jnp.full(value.shape, identity, jnp.float32)
    fire = gates[name] < (multiplier * p if prob is None else prob)
    return jnp.where(fire.reshape((b,) + (1,) * (value.ndim - 1)), value, identity)

  rotation = lambda name: (u[name] * 2 - 1) * np.pi * spec.rotate_max
  return {
      'xflip': gated('xflip', spec.xflip, jnp.floor(u['xflip'] * 2), 0.0),
      'rotate90': gated('rotate90', spec.rotate90, jnp.floor(u['rotate90'] * 4), 0.0),
      'xint': gated('xint', spec.xint, (u['xint'] * 2 - 1) * spec.xint_max, 0.0),
      'scale': gated('scale', spec.scale, jnp.exp2(n['scale'] * spec.scale_std), 1.0),
      'rotate_pre': gated('rotate_pre', spec.rotate, rotation('rotate_pre'), 0.0, p_rot),
      'aniso': gated('aniso', spec.aniso, jnp.exp2(n['aniso'] * spec.aniso_std), 1.0),
      'rotate_post': gated('rotate_post', spec.rotate, rotation('rotate_post'), 0.0, p_rot),
      'xfrac': gated('xfrac', spec.xfrac, n['xfrac'] * spec.xfrac_std, 0.0),
      'brightness': gated('brightness', spec.brightness, n['brightness'] * spec.brightness_std,
                          0.0),
      'contrast': gated('contrast', spec.contrast, jnp.exp2(n['contrast'] * spec.contrast_std),
                        1.0),
      'lumaflip': gated('lumaflip', spec.lumaflip, jnp.floor(u['lumaflip'] * 2), 0.0),
      'hue': gated('hue', spec.hue, (u['hue'] * 2 - 1) * np.pi * spec.hue_max, 0.0),
      'saturation': gated('saturation', spec.saturation,
                          jnp.exp2(n['saturation'] * spec.saturation_std), 1.0),
  }


# ------------------------------------------------------------------------------------------------
# Matrices, [B, n, n] from per-example values [B] (or Python scalars).

def _mm(a, b) -> jax.Array:
  """a @ b for stacks of small matrices, as elementwise products and sums: full float32 on every
  backend (a TPU's default matrix product rounds float32 inputs to bfloat16, which would move
  the sample positions by a tenth of a pixel)."""
  return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


def _matrix(rows, batch_size: int) -> jax.Array:
  """Nested rows of scalars or [B] arrays -> [B, len(rows), len(rows[0])] float32."""
  entry = lambda e: jnp.broadcast_to(jnp.asarray(e, jnp.float32), (batch_size,))
  return jnp.stack([jnp.stack([entry(e) for e in row], -1) for row in rows], -2)


def translate2d(tx, ty, b):
  return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], b)


def scale2d(sx, sy, b):
  return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], b)


def rotate2d(theta, b):
  c, s = jnp.cos(theta), jnp.sin(theta)
  return _matrix([[c, jnp.sin(-theta), 0], [s, c, 0], [0, 0, 1]], b)


def translate3d(tx, ty, tz, b):
  return _matrix([[1, 0, 0, tx], [0, 1, 0, ty], [0, 0, 1, tz], [0, 0, 0, 1]], b)


def scale3d(sx, sy, sz, b):
  return _matrix([[sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1]], b)


def rotate3d(axis, theta, b):
  """Rotation by `theta` [B] about the unit `axis` (3 floats): Rodrigues' formula."""
  vx, vy, vz = (float(a) for a in axis[:3])
  vx, vy, vz = (jnp.float32(a) for a in (vx, vy, vz))
  s, c = jnp.sin(theta), jnp.cos(theta)
  cc = 1 - c
  return _matrix([[vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
                  [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
                  [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
                  [0, 0, 0, 1]], b)


def geometric_matrix(draws: Draws, height: int, width: int) -> jax.Array:
  """[B, 3, 3] inverse transform (output pixel -> input pixel, centred coordinates), composed
  right to left in the official order: x-flip, rotate90, xint, scale, pre-rotation, aniso,
  post-rotation, xfrac. Each inverse is written as the official writes it (1 / (1 / s) for the
  anisotropic scale's y), so the float32 matrices agree with it."""
  b = draws['xflip'].shape[0]
  size = jnp.array([width, height], jnp.float32)
  xint = jnp.round(draws['xint'] * size)  # whole pixels, half to even as torch.round
  xfrac = draws['xfrac'] * size
  inverses = [
      scale2d(1 / (1 - 2 * draws['xflip']), 1.0, b),
      rotate2d(-(-np.pi / 2 * draws['rotate90']), b),
      translate2d(-xint[:, 0], -xint[:, 1], b),
      scale2d(1 / draws['scale'], 1 / draws['scale'], b),
      rotate2d(-(-draws['rotate_pre']), b),
      scale2d(1 / draws['aniso'], 1 / (1 / draws['aniso']), b),
      rotate2d(-(-draws['rotate_post']), b),
      translate2d(-xfrac[:, 0], -xfrac[:, 1], b),
  ]
  g_inv = jnp.broadcast_to(jnp.eye(3, dtype=jnp.float32), (b, 3, 3))
  for inverse in inverses:
    g_inv = _mm(g_inv, inverse)
  return g_inv


def color_matrix(draws: Draws) -> jax.Array:
  """[B, 4, 4] color transform (homogeneous RGB), composed left to right in the official order:
  brightness, contrast, luma flip (a Householder reflection about the luma axis), hue (a rotation
  about it), saturation (scaling away from it)."""
  b = draws['brightness'].shape[0]
  eye = jnp.eye(4, dtype=jnp.float32)
  luma = jnp.asarray(LUMA)
  vv = jnp.outer(luma, luma)
  bright, contrast = draws['brightness'], draws['contrast']
  transforms = [
      translate3d(bright, bright, bright, b),
      scale3d(contrast, contrast, contrast, b),
      eye - 2 * vv * draws['lumaflip'][:, None, None],
      rotate3d(LUMA, draws['hue'], b),
      vv + (eye - vv) * draws['saturation'][:, None, None],
  ]
  c = jnp.broadcast_to(eye, (b, 4, 4))
  for transform in transforms:
    c = _mm(transform, c)
  return c


# ------------------------------------------------------------------------------------------------
# Resampling.

def upsample(x, axis: int) -> jax.Array:
  """2x along `axis` as the official upsample2d: zeros after each sample, zero padding (6, 5),
  convolution with 2 * SYM6 (gain 4 over the two axes). n samples -> 2n.

  In polyphase form: output 2m takes the even taps of f (SYM6 reversed, so SYM6's odd taps) and
  output 2m + 1 its odd taps, each over six input samples (the input zero-padded by 3 each side),
  so the zero-stuffed signal is never built. The same sums without their zero terms; on XLA:CPU
  the gradient of the zero-stuffed form made ADA's forward and gradient 3-4 times slower
  (docs/stylegan2.md, 'On a CPU')."""
  n = x.shape[axis]
  f = 2 * SYM6[::-1]  # convolution: the filter reversed under a correlation
  pad = len(SYM6) // 4  # 3: output 2m reads inputs m - 3 .. m + 2, output 2m + 1 m - 2 .. m + 3
  widths = [(0, 0)] * x.ndim
  widths[axis] = (pad, pad)
  xp = jnp.pad(x, widths)  # n + 6
  even = ops.fir_1d(jax.lax.slice_in_dim(xp, 0, n + 2 * pad - 1, axis=axis), f[0::2], axis, 1)
  odd = ops.fir_1d(jax.lax.slice_in_dim(xp, 1, n + 2 * pad, axis=axis), f[1::2], axis, 1)
  out = jnp.stack([even, odd], axis=axis + 1)  # [..., n, 2, ...]
  return out.reshape(x.shape[:axis] + (2 * n,) + x.shape[axis + 1:])


def downsample(x, axis: int) -> jax.Array:
  """2x down along `axis` as the official downsample2d with padding -2 * FILTER_PAD and
  flip_filter: crop 1 each side, correlate with SYM6, keep every other sample. n -> (n - 12) / 2
  for the even n of the grid sample's output ((side + 6) * 2 -> side)."""
  taps = len(SYM6)
  n = x.shape[axis]
  crop = 2 * FILTER_PAD - (taps - 2 + 1) // 2  # the official's padding -6 + 5 = -1, a crop
  x = jax.lax.slice_in_dim(x, crop, n - crop, axis=axis)
  return ops.fir_1d(x, SYM6, axis, 2)


def _margins(g_inv, height: int, width: int) -> jax.Array:
  """[B, 4] int32 reflect padding (x0, y0, x1, y1): how far the transformed output corners reach
  outside the image, plus 2 * FILTER_PAD for the filters, within [0, side - 1] (the most a
  reflection can give), rounded up; each example's own (the official takes the batch's
  largest)."""
  cx, cy = (width - 1) / 2, (height - 1) / 2
  corners = jnp.array([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], jnp.float32)
  xy = _mm(g_inv, corners.T)[:, :2, :]  # [B, xy, corner]
  margin = jnp.concatenate([-xy, xy], axis=1).max(axis=2)  # [B, (x0, y0, x1, y1)]
  margin = margin + jnp.array([2 * FILTER_PAD - cx, 2 * FILTER_PAD - cy] * 2, jnp.float32)
  margin = jnp.minimum(jnp.maximum(margin, 0.0),
                       jnp.array([width - 1, height - 1] * 2, jnp.float32))
  return jnp.ceil(margin).astype(jnp.int32)


def _bilinear(image, ix, iy, valid_size, offset):
  """grid_sample's bilinear interpolation with zeros outside, for one example.

  Args:
    image: [Hb, Wb, C], holding the official padded upsampled image at rows/columns
      offset + [0, valid_size).
    ix, iy: [Ho, Wo] sample positions in that image's pixels (centres at integers).
    valid_size: (width, height) int of that image; corners outside it read 0.
    offset: (x, y) int, where its pixel (0, 0) sits in `image`.

  Returns:
    [Ho, Wo, C].
  """
  x0, y0 = jnp.floor(ix), jnp.floor(iy)
  x1, y1 = x0 + 1, y0 + 1
  # the four weights as grid_sample forms them
  weights = {(0, 0): (x1 - ix) * (y1 - iy), (1, 0): (ix - x0) * (y1 - iy),
             (0, 1): (x1 - ix) * (iy - y0), (1, 1): (ix - x0) * (iy - y0)}
  out = 0.0
  for (dx, dy), weight in weights.items():
    xi, yi = (x0 + dx).astype(jnp.int32), (y0 + dy).astype(jnp.int32)
    inside = (xi >= 0) & (xi < valid_size[0]) & (yi >= 0) & (yi < valid_size[1])
    xb = jnp.clip(xi + offset[0], 0, image.shape[1] - 1)
    yb = jnp.clip(yi + offset[1], 0, image.shape[0] - 1)
    out = out + image[yb, xb] * jnp.where(inside, weight, 0.0)[..., None]
  return out


def geometric(images, g_inv) -> jax.Array:
  """The official execution of inverse transforms `g_inv` [B, 3, 3] on images [B, H, W, C].

  The official pads by a margin known only at run time; here every example is reflect-padded by
  the most it can need (side - 1), the pixels beyond its own margin are zeroed (what the official
  image holds there: nothing, read as zeros by the filter), and the grid sample reads the
  official padded image's window of the result (corners outside it read 0), so the output is
  the official's for that margin while every shape stays static. The cost is the official's
  largest padding for every batch: an upsampled image of 2 (3 side - 2) pixels a side.
  """
  b, h, w, _ = images.shape
  pad_x, pad_y = w - 1, h - 1
  margin = _margins(g_inv, h, w)
  mx0, my0, mx1, my1 = (margin[:, i] for i in range(4))  # [B] each

  padded = jnp.pad(images, ((0, 0), (pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode='reflect')
  rows = jnp.arange(h + 2 * pad_y)[None, :]
  cols = jnp.arange(w + 2 * pad_x)[None, :]
  keep_rows = (rows >= pad_y - my0[:, None]) & (rows < pad_y + h + my1[:, None])  # [B, Hp]
  keep_cols = (cols >= pad_x - mx0[:, None]) & (cols < pad_x + w + mx1[:, None])  # [B, Wp]
  keep = keep_rows[:, :, None, None] & keep_cols[:, None, :, None]
  padded = jnp.where(keep, padded, 0.0)
  up = upsample(upsample(padded, 2), 1)  # [B, 2 Hp, 2 Wp, C]

  # The official's chain of coordinate changes, in its order: origin of the padded image,
  # upsampled pixels, grid_sample's normalised coordinates of input and output.
  g = _mm(translate2d((mx0 - mx1) / 2, (my0 - my1) / 2, b), g_inv)
  g = _mm(_mm(scale2d(2.0, 2.0, b), g), scale2d(0.5, 0.5, b))
  g = _mm(_mm(translate2d(-0.5, -0.5, b), g), translate2d(0.5, 0.5, b))
  in_w, in_h = 2 * (w + mx0 + mx1), 2 * (h + my0 + my1)  # [B] the official upsampled image
  out_h, out_w = (h + 2 * FILTER_PAD) * 2, (w + 2 * FILTER_PAD) * 2
  g = _mm(_mm(scale2d(2 / in_w.astype(jnp.float32), 2 / in_h.astype(jnp.float32), b), g),
          scale2d(1 / (2 / out_w), 1 / (2 / out_h), b))
  theta = g[:, :2, :]  # [B, 2, 3]

  # affine_grid (align_corners=False): pixel centres of the output in [-1, 1].
  base_x = jnp.linspace(-1.0, 1.0, out_w, dtype=jnp.float32) * (out_w - 1) / out_w
  base_y = jnp.linspace(-1.0, 1.0, out_h, dtype=jnp.float32) * (out_h - 1) / out_h
  gx = (base_x[None, None, :] * theta[:, 0, 0, None, None]
        + base_y[None, :, None] * theta[:, 0, 1, None, None] + theta[:, 0, 2, None, None])
  gy = (base_x[None, None, :] * theta[:, 1, 0, None, None]
        + base_y[None, :, None] * theta[:, 1, 1, None, None] + theta[:, 1, 2, None, None])
  # grid_sample (align_corners=False): back to pixels of the official upsampled image.
  in_wf = in_w.astype(jnp.float32)[:, None, None]
  in_hf = in_h.astype(jnp.float32)[:, None, None]
  ix, iy = ((gx + 1) * in_wf - 1) / 2, ((gy + 1) * in_hf - 1) / 2  # [B, Ho, Wo]
  offsets = (2 * (pad_x - mx0), 2 * (pad_y - my0))
  sampled = jax.vmap(_bilinear)(up, ix, iy, (in_w, in_h), offsets)
  return downsample(downsample(sampled, 2), 1)


def color(images, c) -> jax.Array:
  """Color matrices `c` [B, 4, 4] on images [B, H, W, C]: RGB, out = C[:3, :3] x + C[:3, 3];
  one channel (the official's rule), out = x * sum(m[:3]) + m[3] with m the mean of C's RGB
  rows."""
  channels = images.shape[-1]
  if channels == 3:
    rgb = c[:, None, None, :3, :3]  # [B, 1, 1, out, in]; products and sums in full float32
    return jnp.sum(images[..., None, :] * rgb, axis=-1) + c[:, None, None, :3, 3]
  if channels == 1:
    m = c[:, :3, :].mean(axis=1)  # [B, 4]
    return images * m[:, None, None, None, :3].sum(-1) + m[:, None, None, None, 3]
  raise ValueError(f'ADA color transforms need 1 or 3 channels, not {channels}')


def apply(images, draws: Draws, spec: Spec) -> jax.Array:
  """The spec's transforms with given draws (from `draw`, or rows of it): geometry, then color.

  Args:
    images: [B, H, W, C] float in [-1, 1]; C is 1 or 3 where the spec has color transforms.
    draws: `draw(key, p, spec, B)` or this batch's rows of a larger batch's draws.
    spec: the transforms' multipliers (which groups run) and strengths.

  Returns:
    [B, H, W, C] in the images' dtype; an example no transform of a group touched (its matrix
    exactly the identity) keeps its pixels through that group.
  """
  dtype = images.dtype
  x = images.astype(jnp.float32)
  b, h, w, _ = x.shape
  per_example = lambda mask: mask[:, None, None, None]
  if spec.geometric:
    g_inv = geometric_matrix(draws, h, w)
    moved = ~jnp.all(g_inv == jnp.eye(3, dtype=jnp.float32), axis=(1, 2))
    x = jnp.where(per_example(moved), geometric(x, g_inv), x)
  if spec.color:
    if x.shape[-1] == 1:  # hue and saturation leave one channel as it is; the official skips them
      draws = {**draws, 'hue': jnp.zeros((b,)), 'saturation': jnp.ones((b,))}
    c = color_matrix(draws)
    recolored = ~jnp.all(c == jnp.eye(4, dtype=jnp.float32), axis=(1, 2))
    x = jnp.where(per_example(recolored), color(x, c), x)
  return x.astype(dtype)


def augment(key, images, p, spec: Spec) -> jax.Array:
  """ADA: the spec's transforms, each per example with probability multiplier * p.

  Pure, jit-able (spec static, p traced or not) and differentiable with respect to `images`;
  every draw is per example, from `key` alone, so a batch sharded under jit is augmented as the
  whole batch would be. Under pmap, draw for the global batch and `apply` this device's rows.

  Args:
    key: a PRNG key.
    images: [B, H, W, C] float in [-1, 1].
    p: the augmentation probability, a scalar in [0, 1]; 0 returns `images` exactly.
    spec: a Spec, e.g. PIPELINES['bgc'].

  Returns:
    [B, H, W, C] in the images' dtype.
  """
  return apply(images, draw(key, p, spec, images.shape[0]), spec)


# ------------------------------------------------------------------------------------------------
# The adaptive p.

@dataclasses.dataclass(frozen=True)
class Tuning:
  """How p adapts (the official defaults); target None keeps p fixed at its initial value."""
  target: Optional[float] = 0.6  # the wanted E[sign(D(real))]; None: a fixed p
  interval: int = 4  # critic updates between adjustments
  kimg: float = 500.0  # thousands of real images for p to move by 1


def adjust_p(p, real_sign_mean, images_seen, tuning: Tuning) -> jax.Array:
  """p after one adjustment: p + sign(r_t - target) * images_seen / (kimg * 1000), in [0, 1].

  Args:
    p: the current probability (a scalar).
    real_sign_mean: r_t, the mean of sign(D(real)) over the interval's real logits.
    images_seen: real images in the interval: batch size * tuning.interval.
    tuning: the target and speed; target None returns p unchanged.

  Returns:
    The new p, float32. The official bounds p below by 0 only; p = 1 already fires every
    transform, so the bound above changes only how soon p comes down from there.
  """
  p = jnp.asarray(p, jnp.float32)
  if tuning.target is None:
    return p
  step = jnp.sign(jnp.asarray(real_sign_mean, jnp.float32) - tuning.target)
  return jnp.clip(p + step * (images_seen / (tuning.kimg * 1000)), 0.0, 1.0)
