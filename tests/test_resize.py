"""eval.resize: 'legacy' is the bilinear resize every earlier score used, 'clean' is clean-fid's
PIL bicubic (checked against PIL itself)."""

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from gan_jax import resize


def _clean_fid(images: np.ndarray, size: int) -> np.ndarray:
  """clean-fid's resize of [-1, 1] images: each channel a PIL 'F' image in [0, 255], bicubic,
  clipped to [0, 255]; back to [-1, 1]."""
  unit = (images.astype(np.float32) + 1) * 127.5
  out = [[np.asarray(Image.fromarray(image[:, :, c]).resize((size, size), Image.BICUBIC))
          for c in range(image.shape[-1])] for image in unit]
  return np.clip(np.array(out).transpose(0, 2, 3, 1), 0, 255) / 127.5 - 1


@pytest.mark.parametrize('shape,size', [((32, 32, 3), 299), ((28, 28, 1), 299),
                                        ((400, 400, 3), 299), ((64, 48, 3), 224)])
def test_clean_is_pil_bicubic_per_channel(shape, size):
  images = np.random.default_rng(0).uniform(-1, 1, (2, *shape)).astype(np.float32)
  got = np.asarray(jax.jit(lambda x: resize.resize(x, size, 'clean'))(images))
  assert got.shape == (2, size, size, shape[-1])
  np.testing.assert_allclose(got, _clean_fid(images, size), atol=2e-6)


def test_pil_weights():
  up, down = resize.pil_weights(32, 299), resize.pil_weights(400, 299)
  np.testing.assert_allclose(up.sum(1), 1, rtol=1e-12)
  np.testing.assert_allclose(down.sum(1), 1, rtol=1e-12)
  assert (up != 0).sum(1).max() == 4                # bicubic: 4 taps when enlarging ...
  assert (down != 0).sum(1).max() > 4               # ... more when shrinking (antialiasing)
  np.testing.assert_array_equal(resize.pil_weights(5, 5), np.eye(5))


def test_legacy_is_bilinear_without_antialiasing_bit_for_bit():
  images = jax.random.uniform(jax.random.PRNGKey(0), (2, 32, 32, 3), jnp.float32, -1, 1)
  want = jax.image.resize(images, (2, 299, 299, 3), 'bilinear', antialias=False)
  np.testing.assert_array_equal(np.asarray(resize.resize(images, 299)), np.asarray(want))
  np.testing.assert_array_equal(np.asarray(resize.resize(images, 299, 'legacy')),
                                np.asarray(want))


def test_clean_does_not_alias_where_legacy_does():
  """A one-pixel checkerboard shrunk 400 -> 299: bilinear samples it (strong stripes remain),
  the antialiased bicubic averages it to its mean, 0."""
  board = (np.indices((400, 400)).sum(0) % 2 * 2 - 1).astype(np.float32)[None, :, :, None]
  legacy = np.asarray(resize.resize(board, 299, 'legacy'))
  clean = np.asarray(resize.resize(board, 299, 'clean'))
  assert legacy.std() > 0.25 and clean.std() < 0.1
  with pytest.raises(ValueError, match="'bicubic' is not one of legacy, clean"):
    resize.resize(board, 299, 'bicubic')
