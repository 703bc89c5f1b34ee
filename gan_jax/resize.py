"""How images reach a feature network's input size (eval.resize), jit-compiled on the devices.

  * 'legacy': bilinear with half-pixel centres and no antialiasing (`jax.image.resize`), as
    pytorch-fid's `F.interpolate(..., mode='bilinear', align_corners=False)`: the resize of the
    FID numbers most papers report.
  * 'clean': clean-fid's (Parmar et al. 2022, "On Aliased Resizing and Surprising Subtleties in
    GAN Evaluation"): PIL's bicubic filter (a = -0.5) with antialiasing (its support widened by
    the scale when shrinking), each channel a float32 image (PIL mode 'F'), then clipped to the
    images' range. PIL's separable weights are computed here (`pil_weights`, Pillow's
    `precompute_coeffs`) and applied as two matrix products, width first as PIL does: the same
    result as PIL on the host up to float32 round-off, without a host round trip.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

METHODS = ('legacy', 'clean')


def _bicubic(x: np.ndarray) -> np.ndarray:
  """Pillow's bicubic kernel, a = -0.5 (support 2)."""
  a, x = -0.5, np.abs(x)
  return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                  np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))


@functools.lru_cache()
def pil_weights(in_size: int, out_size: int) -> np.ndarray:
  """[out_size, in_size] float64: output pixel i = sum_j w[i, j] input pixel j, as Pillow's
  bicubic resampling (ImagingResample's precompute_coeffs) of a whole row or column."""
  scale = in_size / out_size
  filter_scale = max(scale, 1.0)        # shrinking widens the filter: the antialiasing
  support = 2.0 * filter_scale
  weights = np.zeros((out_size, in_size), np.float64)
  for i in range(out_size):
    center = (i + 0.5) * scale
    low = max(int(center - support + 0.5), 0)     # C's (int): toward zero, then clamped
    high = min(int(center + support + 0.5), in_size)
    taps = _bicubic((np.arange(low, high) - center + 0.5) / filter_scale)
    total = taps.sum()
    weights[i, low:high] = taps / total if total != 0 else taps
  return weights


def resize(images: jax.Array, size: int, method: str = 'legacy') -> jax.Array:
  """images [N, H, W, C] (float, in [-1, 1]) -> [N, size, size, C] float32 by `method`."""
  n, height, width, channels = images.shape
  images = images.astype(jnp.float32)
  if method == 'legacy':
    return jax.image.resize(images, (n, size, size, channels), 'bilinear', antialias=False)
  if method != 'clean':
    raise ValueError(f'resize method {method!r} is not one of {", ".join(METHODS)}')
  rows = jnp.asarray(pil_weights(height, size), jnp.float32)    # [size, H]
  cols = jnp.asarray(pil_weights(width, size), jnp.float32)     # [size, W]
  highest = jax.lax.Precision.HIGHEST   # float32 products (not TPU bf16 / GPU TF32 passes)
  x = jnp.einsum('nhwc,vw->nhvc', images, cols, precision=highest)   # width first, as PIL
  x = jnp.einsum('nhvc,uh->nuvc', x, rows, precision=highest)
  return jnp.clip(x, -1.0, 1.0)   # clean-fid clips to the [0, 255] it resizes in
