"""DiffAugment: numpy references for the drawn values, exact gradients, per-example draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import augment

# H != W, and W's cutout extent (5) is odd while H's (8) is even: a swapped axis or a wrong
# rounding shows. max_shift: 2 along H, 1 along W.
B, H, W, C = 8, 16, 10, 3
KEY = jax.random.PRNGKey(0)
SINGLES = [(name,) for name in augment.POLICIES]
ALL = ('color', 'translation', 'cutout')


def _images(key=jax.random.PRNGKey(1), shape=(B, H, W, C)):
  """Distinct values in [-1, 1] (a moved pixel can be told apart from any other)."""
  values = jnp.linspace(-1.0, 1.0, np.prod(shape), dtype=jnp.float32)
  return jax.random.permutation(key, values).reshape(shape)


def _np_translate(x, offsets):
  """out[b, y, x] = x[b, y + dy, x + dx], 0 outside, by explicit loops."""
  out = np.zeros_like(x)
  for b, (dy, dx) in enumerate(offsets):
    for i in range(x.shape[1]):
      for j in range(x.shape[2]):
        if 0 <= i + dy < x.shape[1] and 0 <= j + dx < x.shape[2]:
          out[b, i, j] = x[b, i + dy, j + dx]
  return out


def _np_cutout_mask(centres, h, w):
  """The official code's mask: the extent's grid, offset by centre - extent // 2, clipped."""
  ey, ex = augment.cutout_side(h), augment.cutout_side(w)
  mask = np.ones((len(centres), h, w, 1), np.float32)
  for b, (cy, cx) in enumerate(centres):
    rows = np.clip(np.arange(ey) + cy - ey // 2, 0, h - 1)
    cols = np.clip(np.arange(ex) + cx - ex // 2, 0, w - 1)
    mask[b, rows[:, None], cols[None, :]] = 0
  return mask


def test_parse_policy():
  assert augment.parse_policy('color,translation') == ('color', 'translation')
  assert augment.parse_policy(' cutout , color ') == ('cutout', 'color')
  assert augment.parse_policy('') == () and augment.parse_policy('  ') == ()
  for bad, named in [('color,flip', "'flip'"), ('color,,cutout', "''"), ('Color', "'Color'"),
                     ('color, translation,color', "'color' is given twice")]:
    with pytest.raises(ValueError) as err:
      augment.parse_policy(bad)
    message = str(err.value)
    assert named in message and 'color, translation, cutout' in message
    assert '\n' not in message


def test_augment_refuses_a_string_and_unknown_names():
  x = _images()
  with pytest.raises(TypeError, match='parse_policy'):
    augment.augment(KEY, x, 'color')
  with pytest.raises(ValueError, match="'flip'"):
    augment.augment(KEY, x, ('flip',))


def test_sizes_follow_the_official_rounding():
  # int(n * ratio + 0.5): 20 / 8 = 2.5 shifts by 3 (round() would give 2).
  assert [augment.max_shift(n) for n in (8, 10, 16, 20, 28, 32, 64)] == [1, 1, 2, 3, 4, 4, 8]
  assert [augment.cutout_side(n) for n in (10, 16, 28, 32, 33)] == [5, 8, 14, 16, 17]


def test_empty_policy_returns_the_images():
  x = _images()
  np.testing.assert_array_equal(augment.augment(KEY, x, ()), x)


@pytest.mark.parametrize('policy', SINGLES + [ALL, ('cutout', 'color')])
def test_shape_dtype_and_per_example_draws(policy):
  x = jnp.broadcast_to(_images(shape=(1, H, W, C)), (B, H, W, C))  # B copies of one image
  out = augment.augment(KEY, x, policy)
  assert out.shape == x.shape and out.dtype == jnp.float32
  assert np.all(np.isfinite(out))
  # Identical inputs, different outputs: every example draws its own transform.
  assert len({np.asarray(o).tobytes() for o in out}) >= B // 2
  np.testing.assert_array_equal(augment.augment(KEY, x, policy), out)
  assert not np.array_equal(augment.augment(jax.random.PRNGKey(7), x, policy), out)


@pytest.mark.parametrize('policy', [('translation',), ('cutout',), ('translation', 'cutout')])
def test_translation_and_cutout_give_input_pixels_or_zero(policy):
  x = _images()
  out = np.asarray(augment.augment(KEY, x, policy))
  assert np.isin(out, np.append(np.asarray(x), 0.0)).all()
  assert np.abs(out).max() <= 1.0
  assert (out == 0).any() and (out != 0).mean() > 0.4  # something zeroed, not everything


def test_translation_matches_numpy_shift():
  x = _images()
  offsets = augment.draw(KEY, ('translation',), B, H, W)['translation']
  assert offsets.shape == (B, 2) and offsets.dtype == jnp.int32
  np.testing.assert_array_equal(augment.augment(KEY, x, ('translation',)),
                                _np_translate(np.asarray(x), np.asarray(offsets)))
  # Every shift in [-s, s] is drawn, none beyond: s = 2 along H, 1 along W.
  many = np.asarray(augment.translation_offsets(KEY, 400, H, W))
  assert set(many[:, 0]) == set(range(-2, 3)) and set(many[:, 1]) == {-1, 0, 1}


def test_cutout_matches_the_official_mask():
  x = _images()
  corners = np.asarray(augment.draw(KEY, ('cutout',), B, H, W)['cutout'])
  centres = corners + np.array([8 // 2, 5 // 2])
  np.testing.assert_array_equal(augment.augment(KEY, x, ('cutout',)),
                                np.asarray(x) * _np_cutout_mask(centres, H, W))
  # Centres uniform on [0, H + 1 - 8 % 2) = [0, 16] and [0, W + 1 - 5 % 2) = [0, 9].
  many = augment.cutout_corners(KEY, 600, H, W)
  centres = np.asarray(many) + np.array([4, 2])
  assert set(centres[:, 0]) == set(range(17)) and set(centres[:, 1]) == set(range(10))
  np.testing.assert_array_equal(augment.cutout_mask(many, H, W), _np_cutout_mask(centres, H, W))


def test_color_matches_the_formula():
  x = _images()
  d = {k: np.asarray(v)[:, None, None, None]
       for k, v in augment.draw(KEY, ('color',), B, H, W).items()}
  # Each factor uniform on its range: over many draws, near both ends and never beyond.
  for name, (lo, hi) in {'brightness': (-0.5, 0.5), 'saturation': (0, 2),
                         'contrast': (0.5, 1.5)}.items():
    many = np.asarray(augment.draw(KEY, ('color',), 1000, H, W)[name])
    assert lo <= many.min() < lo + 0.02 and hi - 0.02 < many.max() < hi, name
  y = np.asarray(x, np.float64) + d['brightness']
  m = y.mean(-1, keepdims=True)
  y = (y - m) * d['saturation'] + m
  m = y.mean((1, 2, 3), keepdims=True)
  expected = (y - m) * d['contrast'] + m
  np.testing.assert_allclose(augment.augment(KEY, x, ('color',)), expected, atol=1e-5)


@pytest.mark.parametrize('channels', [1, 3])
def test_color_bound_holds_and_is_nearly_reached(channels):
  bound = augment.color_bound(channels)
  # The extreme: one pixel bright in one channel, everything else at -1, largest factors.
  worst = -np.ones((1, H, W, channels), np.float32)
  worst[0, 0, 0, 0] = 1.0
  top = augment.color(jnp.asarray(worst), *[jnp.array([v]) for v in (0.5, 2.0, 1.5)])
  assert bound - 0.05 < float(jnp.max(jnp.abs(top))) < bound
  # Random factors on random and extreme images stay inside.
  x = jnp.concatenate([_images(shape=(B, H, W, channels)), jnp.asarray(worst),
                       -jnp.asarray(worst)])
  for seed in range(4):
    out = augment.augment(jax.random.PRNGKey(seed), x, ('color',))
    assert float(jnp.max(jnp.abs(out))) < bound


def _grad(policy, x, w):
  return jax.grad(lambda x: jnp.sum(augment.augment(KEY, x, policy) * w))(x)


def test_gradient_of_translation_is_the_transposed_shift():
  x, w = _images(), _images(jax.random.PRNGKey(2))
  offsets = np.asarray(augment.draw(KEY, ('translation',), B, H, W)['translation'])
  # The pixel at (y, x) moved to (y - dy, x - dx): its gradient is the weight there, or 0.
  expected = _np_translate(np.asarray(w), -offsets)
  np.testing.assert_array_equal(_grad(('translation',), x, w), expected)


def test_gradient_of_cutout_is_the_mask():
  x, w = _images(), _images(jax.random.PRNGKey(2))
  corners = np.asarray(augment.draw(KEY, ('cutout',), B, H, W)['cutout'])
  mask = _np_cutout_mask(corners + np.array([4, 2]), H, W)
  np.testing.assert_array_equal(_grad(('cutout',), x, w), np.asarray(w) * mask)


def test_gradient_of_full_policy_matches_a_finite_difference():
  # Given the draws every transform is affine in the images, so f(x + t) - f(x) is exactly the
  # directional derivative (up to float32 rounding).
  x, w = _images(), _images(jax.random.PRNGKey(2))
  t = jax.random.normal(jax.random.PRNGKey(3), x.shape) * 0.1
  grad = _grad(ALL, x, w)
  assert np.all(np.isfinite(grad)) and float(jnp.max(jnp.abs(grad))) > 0
  f = lambda x: jnp.sum(augment.augment(KEY, x, ALL) * w)
  np.testing.assert_allclose(float(jnp.sum(grad * t)), float(f(x + t) - f(x)), rtol=1e-3,
                             atol=1e-3)


def test_jit_vmap_and_rows_of_a_larger_draw_agree():
  x = _images()
  eager = augment.augment(KEY, x, ALL)
  jitted = jax.jit(augment.augment, static_argnums=2)(KEY, x, ALL)
  np.testing.assert_allclose(jitted, eager, atol=1e-6)
  # Members: a key and a batch each, as under the seeds' vmap.
  keys = jax.random.split(KEY, 2)
  members = jnp.stack([x, -x])
  vmapped = jax.jit(jax.vmap(lambda k, x: augment.augment(k, x, ALL)))(keys, members)
  for m in range(2):
    np.testing.assert_allclose(vmapped[m], augment.augment(keys[m], members[m], ALL), atol=1e-6)
  # Each example depends only on itself and its draws: a device's rows of the global batch's
  # draws (the pmap pattern) give that device's rows of the global result.
  draws = augment.draw(KEY, ALL, B, H, W)
  half = augment.apply(x[B // 2:], {k: v[B // 2:] for k, v in draws.items()}, ALL)
  np.testing.assert_allclose(half, eager[B // 2:], atol=1e-6)


def test_draws_of_a_transform_do_not_depend_on_the_others():
  alone = augment.draw(KEY, ('translation',), B, H, W)['translation']
  mixed = augment.draw(KEY, ('cutout', 'color', 'translation'), B, H, W)['translation']
  np.testing.assert_array_equal(alone, mixed)
