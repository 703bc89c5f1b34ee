"""gan_jax/ada.py computes what the official StyleGAN2-ADA pipeline computes: tests/ada_torch.py
(plain torch, the official code's steps) fed the same draws, on the same images.

Checked: the geometric group, the color group and the whole 'bgc' pipeline on 16x16x3, 32x32x1
and 20x12x3 batches (a non-square side shows a swapped axis), against the reference run one
example at a time (gan_jax pads each example by its own margin), and within 3e-4 of the
reference run on the whole batch (the official pads a batch by its largest margin); the
gradient with respect to the images (a vjp against torch's autograd); integer translations and
a flip with a quarter turn against exact pixel moves, and a lone flip's sub-pixel shift (as the
official's); the polyphase 2x upsampling against the zero-stuffed filter as the official writes
it, with its gradient; p = 0 is the identity exactly and p = 1 changes every image; the draws'
frequencies and spreads on a batch of 20000; adjust_p's known answers.

Float32 throughout, the differences from the order of float sums: images agree within atol 5e-5
through the geometric group (values up to about 4 after the color transforms; the largest
difference seen 1.5e-5), 5e-6 through the color group alone (seen 1e-6); gradients within 2e-5
of the largest (seen 2.6e-6).

tests/ada_torch.py was compared once with the official AugmentPipe ('bgc', stylegan2-ada-pytorch
commit d72cc7d041b42ec8e806021a205ed9349f87c6a4, CPU reference ops, its recorded draws) on
16x16x3, 32x32x3, 32x32x1, 16x24x3 and 24x16x1 batches at p = 1 and 0.5: identical images and
gradients (after taking its normalising scale's inverse in float64, as the official does), and
gan_jax.ada.apply within 3.3e-5 of the official run one example at a time.
experiments/official_check.py makes that comparison again, from a checkout of the official code.

Skipped where torch is not installed (CI installs it).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import reference_import
from gan_jax import ada

torch = reference_import('torch')   # CI installs it: missing there, the run fails
import ada_torch  # pylint: disable=g-import-not-at-top,wrong-import-position

ATOL = 5e-5  # images through the geometric group (largest difference seen 1.5e-5)
COLOR_ATOL = 5e-6  # images through the color group alone (largest seen 1e-6)
GRAD_ATOL = 2e-5  # relative to the largest gradient (largest seen 2.6e-6)
SHAPES = [(6, 16, 16, 3), (5, 32, 32, 1), (4, 20, 12, 3)]


def _images(shape, seed=1):
  return jax.random.uniform(jax.random.PRNGKey(seed), shape, jnp.float32, -1.0, 1.0)




_apply = jax.jit(ada.apply, static_argnums=2)
_draw8 = jax.jit(ada.draw, static_argnums=(2, 3))


def _draw(seed, p, spec, batch_size):
  """The draws of a batch of 8 (one compiled program per spec), first `batch_size` rows."""
  draws = _draw8(jax.random.PRNGKey(seed), jnp.float32(p), spec, 8)
  return jax.tree.map(lambda v: v[:batch_size], draws)


def _torch_draws(draws):
  return {k: torch.from_numpy(np.array(v)) for k, v in draws.items()}


def _reference(images, draws, spec, whole_batch=False):
  """tests/ada_torch.py on NHWC images [B, H, W, C] (a numpy array, or a torch tensor that
  may require gradients), one example at a time (the official code at batch size 1: gan_jax's
  per-example padding) or the whole batch at once (the official batch-wide padding)."""
  x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.array(images))
  x = x.permute(0, 3, 1, 2)
  d = _torch_draws(draws)
  multipliers = dataclasses.asdict(spec)
  if whole_batch:
    out = ada_torch.augment(x, d, multipliers)
  else:
    out = torch.cat([ada_torch.augment(x[i:i + 1], {k: v[i:i + 1] for k, v in d.items()},
                                       multipliers) for i in range(x.shape[0])])
  return out.permute(0, 2, 3, 1)


def _check_against_reference(name, shape, p, seed):
  spec = ada.PIPELINES[name]
  x = _images(shape, seed)
  draws = _draw(seed + 100, p, spec, shape[0])
  ours = _apply(x, draws, spec)
  atol = ATOL if spec.geometric else COLOR_ATOL
  np.testing.assert_allclose(ours, _reference(x, draws, spec).numpy(), atol=atol, rtol=0)
  return np.abs(np.asarray(ours - x)).max(axis=(1, 2, 3))  # each image's largest change


@pytest.mark.parametrize('shape', SHAPES)
def test_geometric_matches_reference(shape):
  assert np.all(_check_against_reference('bg', shape, 1.0, seed=1) > 1e-2)  # every image moved


@pytest.mark.parametrize('channels', [1, 3])
def test_color_matches_reference(channels):
  assert np.all(_check_against_reference('color', (8, 16, 16, channels), 1.0, seed=2) > 1e-2)


@pytest.mark.parametrize('shape', SHAPES)
def test_bgc_matches_reference(shape):
  assert np.all(_check_against_reference('bgc', shape, 1.0, seed=3) > 1e-2)


def test_bgc_matches_reference_where_some_images_are_untouched():
  """At p = 0.2 some examples take no transform of a group: gan_jax keeps their pixels, the
  official resamples them (the same within rounding)."""
  changes = _check_against_reference('bgc', (8, 16, 16, 3), 0.2, seed=4)
  assert np.any(changes == 0) and np.any(changes > 1e-2)


def test_per_example_padding_is_the_batch_padding_within_filter_tails():
  """The official pads a whole batch by its largest margin, gan_jax each example by its own:
  the results differ only through the filters' tails at the padding's edge."""
  spec = ada.PIPELINES['bg']
  for p in (0.3, 1.0):
    x = _images((8, 16, 16, 3), 11)
    draws = _draw(111, p, spec, 8)
    theirs = _reference(x, draws, spec, whole_batch=True).numpy()
    np.testing.assert_allclose(_apply(x, draws, spec), theirs, atol=3e-4, rtol=0)


@pytest.mark.parametrize('shape', [(4, 16, 16, 3), (3, 20, 12, 1)])
def test_gradient_matches_torch_autograd(shape):
  """The vjp of a random cotangent through the whole pipeline equals torch's autograd."""
  spec = ada.PIPELINES['bgc']
  x = _images(shape, 5)
  draws = _draw(105, 1.0, spec, shape[0])
  cotangent = np.array(_images(shape, 6))
  @jax.jit
  def vjp(images, ct):
    return jax.vjp(lambda y: ada.apply(y, draws, spec), images)[1](ct)[0]
  ours = vjp(x, jnp.asarray(cotangent))

  tx = torch.from_numpy(np.array(x)).requires_grad_(True)
  _reference(tx, draws, spec).backward(torch.from_numpy(cotangent))
  theirs = tx.grad.numpy()
  scale = np.abs(theirs).max()
  assert scale > 0.1
  np.testing.assert_allclose(np.asarray(ours), theirs, atol=GRAD_ATOL * scale, rtol=0)


def _only(batch_size, **values):
  """Identity draws for a batch (0, or 1 for the scales, contrast and saturation), but `values`."""
  ones = ('scale', 'aniso', 'contrast', 'saturation')
  draws = {k: jnp.full((batch_size, 2) if k in ('xint', 'xfrac') else (batch_size,),
                       1.0 if k in ones else 0.0) for k in ada.DRAWS}
  draws.update({k: jnp.asarray(v, jnp.float32) for k, v in values.items()})
  return draws


def _upsample_matrix(n: int) -> np.ndarray:
  """[2n, n] float64: the official upsample2d along one axis as written (a zero after each sample,
  zero padding (6, 5), convolution with 2 * sym6), applied to each unit vector."""
  f = 2 * ada.SYM6.astype(np.float64)[::-1]
  out = np.zeros((2 * n, n))
  for i in range(n):
    z = np.zeros(2 * n)
    z[2 * i] = 1.0
    z = np.pad(z, (6, 5))
    out[:, i] = [np.dot(z[k:k + len(f)], f) for k in range(2 * n)]
  return out


@pytest.mark.parametrize('axis', [1, 2])
def test_upsample_is_the_zero_stuffed_filter_and_its_gradient_the_transpose(axis):
  """ada.upsample (polyphase: even and odd taps over the input) computes the official
  zero-stuffed upsampling, and its gradient is that map's transpose (float64 references)."""
  x = _images((2, 9, 11, 3), 11)
  n = x.shape[axis]
  a = _upsample_matrix(n)
  y, vjp = jax.vjp(lambda x: ada.upsample(x, axis), x)
  expected = np.moveaxis(np.tensordot(a, np.moveaxis(np.asarray(x, np.float64), axis, 0), 1), 0,
                         axis)
  np.testing.assert_allclose(y, expected, atol=1e-6)
  cotangent = _images(y.shape, 12)
  (grad,) = vjp(cotangent)
  expected = np.moveaxis(np.tensordot(a.T, np.moveaxis(np.asarray(cotangent, np.float64), axis,
                                                       0), 1), 0, axis)
  np.testing.assert_allclose(grad, expected, atol=1e-5)


def test_pixel_blitting():
  """Integer translations move pixels exactly (t * side pixels, rounded, right and down;
  reflected content fills in); an x-flip followed by a quarter turn is a transpose, exact. A
  reversal of one axis is not exact, in the official code as here: the sym6 filter is
  asymmetric, so the upsampling's delay and the downsampling's stop cancelling, and a flipped
  ramp comes out shifted by 0.098 pixels."""
  x = _images((4, 16, 16, 3), 7)
  spec = ada.PIPELINES['blit']
  # xint 3 / 16 -> 3 pixels right, -2 / 16 -> 2 pixels up
  shifted = _apply(x, _only(4, xint=[[3 / 16, -2 / 16]] * 4), spec)
  np.testing.assert_allclose(shifted[:, :-2, 3:], x[:, 2:, :-3], atol=1e-5)
  np.testing.assert_allclose(shifted[:, :-2, 2], x[:, 2:, 1], atol=1e-5)  # reflected, not 0
  transposed = _apply(x, _only(4, xflip=[1] * 4, rotate90=[1] * 4), spec)
  np.testing.assert_allclose(transposed, np.swapaxes(x, 1, 2), atol=1e-5)
  np.testing.assert_allclose(transposed[0], np.rot90(np.asarray(x[0])[:, ::-1]), atol=1e-5)

  ramp = np.linspace(-1, 1, 16, dtype=np.float32)  # a step of 2 / 15 per column
  ramp = jnp.asarray(np.broadcast_to(ramp[None, None, :, None], (4, 16, 16, 3)))
  flipped = _apply(ramp, _only(4, xflip=[1] * 4), spec)
  shift = (flipped - ramp[:, :, ::-1]) / (2 / 15)  # in columns
  np.testing.assert_allclose(shift[:, :, 5:11], -0.098, atol=1e-3)  # away from the edges


def test_p_zero_is_the_identity_and_p_one_changes_every_image():
  spec = ada.PIPELINES['bgc']
  x = _images((8, 16, 16, 3), 8)
  augment = jax.jit(ada.augment, static_argnums=3)
  np.testing.assert_array_equal(augment(jax.random.PRNGKey(0), x, 0.0, spec), x)
  changed = augment(jax.random.PRNGKey(0), x, 1.0, spec)
  assert np.all(np.abs(np.asarray(changed - x)).max(axis=(1, 2, 3)) > 1e-2)
  gray = _images((5, 32, 32, 1), 8)  # one channel: hue and saturation left out
  np.testing.assert_array_equal(_apply(gray, _draw(0, 0.0, spec, 5), spec), gray)
  changed = _apply(gray, _draw(0, 1.0, spec, 5), spec)
  assert np.all(np.abs(np.asarray(changed - gray)).max(axis=(1, 2, 3)) > 1e-2)


def test_draws_follow_the_official_distributions():
  """Frequencies within 5 binomial standard deviations of their probabilities, and the drawn
  values' spreads within 5 standard errors, on 20000 examples at p = 0.3."""
  n, p = 20000, 0.3
  d = jax.tree.map(np.asarray, ada.draw(jax.random.PRNGKey(9), p, ada.PIPELINES['bgc'], n))

  def frequency(fired, q):
    assert abs(fired.mean() - q) < 5 * np.sqrt(q * (1 - q) / n), (fired.mean(), q)

  p_rot = 1 - np.sqrt(1 - p)
  frequency(d['xflip'] == 1, p / 2)  # fires with p, then flips half the time
  frequency(d['rotate90'] != 0, p * 3 / 4)
  frequency(np.any(d['xint'] != 0, axis=1), p)
  frequency(d['scale'] != 1, p)
  frequency(d['rotate_pre'] != 0, p_rot)
  frequency(d['rotate_post'] != 0, p_rot)
  frequency((d['rotate_pre'] != 0) | (d['rotate_post'] != 0), p)
  frequency(d['aniso'] != 1, p)
  frequency(np.any(d['xfrac'] != 0, axis=1), p)
  frequency(d['brightness'] != 0, p)
  frequency(d['contrast'] != 1, p)
  frequency(d['lumaflip'] == 1, p / 2)
  frequency(d['hue'] != 0, p)
  frequency(d['saturation'] != 1, p)
  assert set(np.unique(d['rotate90'])) == {0, 1, 2, 3}

  def spread(values, std):
    values = values[values != 0]
    assert abs(values.std() - std) < 5 * std / np.sqrt(2 * len(values)), (values.std(), std)
    assert abs(values.mean()) < 5 * std / np.sqrt(len(values))

  spread(np.log2(d['scale']), 0.2)
  spread(np.log2(d['aniso']), 0.2)
  spread(np.log2(d['contrast']), 0.5)
  spread(np.log2(d['saturation']), 1.0)
  spread(d['brightness'], 0.2)
  spread(d['xfrac'].ravel(), 0.125)
  for name, bound in (('rotate_pre', np.pi), ('hue', np.pi), ('xint', 0.125)):
    spread(d[name].ravel(), bound / np.sqrt(3))  # uniform on +-bound
    assert np.abs(d[name]).max() <= bound


def test_draws_are_per_example():
  """An example's result depends on its own draws and pixels only: a batch's rows equal the
  rows augmented alone (what a sharded batch relies on)."""
  spec = ada.PIPELINES['bgc']
  x = _images((8, 16, 16, 3), 10)
  draws = _draw(110, 0.8, spec, 8)
  whole = _apply(x, draws, spec)
  part = _apply(x[2:6], jax.tree.map(lambda v: v[2:6], draws), spec)
  np.testing.assert_allclose(whole[2:6], part, atol=1e-6, rtol=0)


def test_adjust_p_known_answers():
  tuning = ada.Tuning()  # target 0.6, interval 4, kimg 500
  seen = 64 * tuning.interval  # 256 images: a step of 256 / 500000
  step = 256 / 500_000
  np.testing.assert_allclose(ada.adjust_p(0.5, 0.7, seen, tuning), 0.5 + step, rtol=1e-6)
  np.testing.assert_allclose(ada.adjust_p(0.5, 0.2, seen, tuning), 0.5 - step, rtol=1e-6)
  assert ada.adjust_p(0.5, 0.6, seen, tuning) == np.float32(0.5)  # at the target: sign 0
  assert ada.adjust_p(0.0001, -1.0, seen, tuning) == 0.0
  assert ada.adjust_p(0.9999, 1.0, seen, tuning) == 1.0
  fixed = ada.Tuning(target=None)
  assert ada.adjust_p(0.25, 1.0, seen, fixed) == np.float32(0.25)
  jitted = jax.jit(ada.adjust_p, static_argnums=(2, 3))
  np.testing.assert_allclose(jitted(jnp.float32(0.5), jnp.float32(0.9), seen, tuning),
                             0.5 + step, rtol=1e-6)
  # 500 kimg of a real-sign mean above target takes p from 0 to 1
  p = 0.0
  for _ in range(500_000 // seen + 1):
    p = ada.adjust_p(p, 0.9, seen, tuning)
  assert p == 1.0
