"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

The critic sees real and generated images through the same random, differentiable transforms, so
it cannot memorise a small training set, and the generator's gradient flows back through them.
The three transforms of the official code (github.com/mit-han-lab/data-efficient-gans,
DiffAugment_pytorch.py), on images [B, H, W, C] in [-1, 1]:

  * color: brightness, saturation and contrast, each a random per-example affine map;
  * translation: an integer shift of up to 1/8 of each side, with zero fill;
  * cutout: a zeroed rectangle of half of each side.

Every draw is per example, shaped [B, ...], and comes from the key alone: `draw` makes the draws
of a policy for a batch, `apply` puts them on the images, and `augment` is the two together.
Keeping the two apart lets a pmapped step draw for the global batch and keep its own rows (as
updates._draw does with the noise), so jit and pmap augment alike.
"""

from typing import Dict, Sequence

import jax
import jax.numpy as jnp

POLICIES = ('color', 'translation', 'cutout')

TRANSLATION_RATIO = 0.125  # the largest shift, as a fraction of the side
CUTOUT_RATIO = 0.5  # the side of the zeroed rectangle, as a fraction of the image's side

Draws = Dict[str, jax.Array]


def parse_policy(policy: str) -> tuple:
  """'color,translation' -> ('color', 'translation'); '' (or only spaces) -> ().

  Args:
    policy: names from POLICIES, separated by commas; spaces around them are ignored.

  Returns:
    The names in the order given (the order the transforms run in).

  Raises:
    ValueError: (one line) on an unknown or repeated name, or an empty one between commas.
  """
  if not policy.strip():
    return ()
  names = tuple(name.strip() for name in policy.split(','))
  choices = ', '.join(POLICIES)
  for i, name in enumerate(names):
    if name not in POLICIES:
      raise ValueError(f'augment policy {policy!r}: unknown name {name!r}; choose from '
                       f'{choices}, separated by commas')
    if name in names[:i]:
      raise ValueError(f'augment policy {policy!r}: {name!r} is given twice; each of '
                       f'{choices} may appear once')
  return names


def _round_half_up(x: float) -> int:
  # The official code's int(x + 0.5); Python's round() takes 2.5 to 2 (H = 20 would shift by 2).
  return int(x + 0.5)


def max_shift(size: int) -> int:
  """The largest translation along a side of `size` pixels (4 for 28 and 32)."""
  return _round_half_up(size * TRANSLATION_RATIO)


def cutout_side(size: int) -> int:
  """The cutout's extent along a side of `size` pixels (14 for 28, 16 for 32)."""
  return _round_half_up(size * CUTOUT_RATIO)


def color_bound(channels: int) -> float:
  """A strict bound on |color(x)| for x in [-1, 1] with `channels` channels (4.5 for RGB).

  Brightness b < 0.5 gives y = x + b; saturation s < 2 keeps each pixel's channel mean m and
  reaches 2 y - m < b + 3 - 2 / C; contrast c < 1.5 keeps the image mean M = mean(x) + b >= b - 1,
  so c z - (c - 1) M < 4 c - 2 c / C + b - 1 < 5.5 - 3 / C, and the same below by symmetry. The
  bound is approached (one bright pixel in an otherwise dark image); outputs are not clipped,
  since clipping would zero the gradient wherever it acts.
  """
  return 5.5 - 3.0 / channels


def translation_offsets(key, batch_size: int, height: int, width: int) -> jax.Array:
  """[B, 2] int32 shifts (dy, dx), each uniform on [-max_shift(side), max_shift(side)]."""
  sy, sx = max_shift(height), max_shift(width)
  return jax.random.randint(key, (batch_size, 2), jnp.array([-sy, -sx]),
                            jnp.array([sy + 1, sx + 1]))


def cutout_corners(key, batch_size: int, height: int, width: int) -> jax.Array:
  """[B, 2] int32 (top, left) corners of the cutout, possibly negative (partly outside).

  As in the official code: the centre is uniform on [0, side + 1 - extent % 2) (so an even extent
  can hang half over either edge, an odd one by extent // 2 pixels), and the corner is the centre
  minus extent // 2. The rectangle always covers part of the image.
  """
  ey, ex = cutout_side(height), cutout_side(width)
  centres = jax.random.randint(key, (batch_size, 2), 0,
                               jnp.array([height + 1 - ey % 2, width + 1 - ex % 2]))
  return centres - jnp.array([ey // 2, ex // 2])


def _color_factors(key, batch_size: int) -> Draws:
  b_key, s_key, c_key = jax.random.split(key, 3)
  uniform = lambda k, lo, hi: jax.random.uniform(k, (batch_size,), jnp.float32, lo, hi)
  return {'brightness': uniform(b_key, -0.5, 0.5), 'saturation': uniform(s_key, 0.0, 2.0),
          'contrast': uniform(c_key, 0.5, 1.5)}


def draw(key, policy: Sequence[str], batch_size: int, height: int, width: int) -> Draws:
  """The policy's random draws for a batch: {name: [B, ...]}.

  Each transform draws from its own fold of `key` (by its index in POLICIES), so a transform's
  draws do not depend on which others the policy holds.

  Args:
    key: a PRNG key.
    policy: names from POLICIES (parse_policy's result).
    batch_size, height, width: the images' B, H and W.

  Returns:
    color: 'brightness', 'saturation', 'contrast' [B] float32; translation: 'translation'
    [B, 2] int32 (translation_offsets); cutout: 'cutout' [B, 2] int32 (cutout_corners).
  """
  _check(policy)
  draws = {}
  for name in policy:
    name_key = jax.random.fold_in(key, POLICIES.index(name))
    if name == 'color':
      draws.update(_color_factors(name_key, batch_size))
    elif name == 'translation':
      draws['translation'] = translation_offsets(name_key, batch_size, height, width)
    else:
      draws['cutout'] = cutout_corners(name_key, batch_size, height, width)
  return draws


def _per_example(values, like):
  """[B] -> [B, 1, 1, 1] in the dtype of `like`, to scale or shift whole images."""
  return values.astype(like.dtype).reshape((-1,) + (1,) * (like.ndim - 1))


def color(images, brightness, saturation, contrast) -> jax.Array:
  """Brightness, then saturation, then contrast, with per-example factors [B].

  x + brightness; then each pixel's channels spread about their mean by `saturation` (a no-op
  for one channel); then the whole image spread about its mean (over H, W and C) by `contrast`.
  The result is within +-color_bound(C) (not clipped: see there).
  """
  x = images + _per_example(brightness, images)
  mean = jnp.mean(x, axis=-1, keepdims=True)
  x = (x - mean) * _per_example(saturation, images) + mean
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return (x - mean) * _per_example(contrast, images) + mean


def translate(images, offsets) -> jax.Array:
  """out[b, y, x] = images[b, y + dy, x + dx] where that is inside the image, else 0.

  Pad by the largest shift, then one dynamic slice per example. On CPU (2 busy cores, jitted,
  milliseconds for [64, 32, 32, 3] / [128, 28, 28, 1]; forward, then jax.grad) this beat a gather
  with clipped indices (0.055 / 0.028, 0.25 / 0.12), products with one-hot shift matrices
  (0.35 / 0.20, 0.34 / 0.27) and a masked sum over the 2 s + 1 shifts per axis (0.47 / 0.45,
  2.4 / 0.78): 0.039 / 0.023 forward, 0.24 / 0.11 gradient.

  Args:
    images: [B, H, W, C].
    offsets: [B, 2] int (dy, dx), each within +-max_shift of its side (translation_offsets).

  Returns:
    [B, H, W, C]; each pixel is an input pixel or 0, so the map is linear and its gradient is
    the same 0/1 selection transposed.
  """
  _, h, w, c = images.shape
  sy, sx = max_shift(h), max_shift(w)
  padded = jnp.pad(images, ((0, 0), (sy, sy), (sx, sx), (0, 0)))
  window = lambda image, o: jax.lax.dynamic_slice(image, (sy + o[0], sx + o[1], 0), (h, w, c))
  return jax.vmap(window)(padded, offsets.astype(jnp.int32))


def cutout_mask(corners, height: int, width: int, dtype=jnp.float32) -> jax.Array:
  """[B, H, W, 1]: 0 inside each example's cutout_side rectangle at `corners`, 1 elsewhere."""
  def inside(corner, size):  # [B, size]: the rows (or columns) the rectangle spans
    pos = jnp.arange(size)[None, :]
    return (pos >= corner[:, None]) & (pos < corner[:, None] + cutout_side(size))
  rows, cols = inside(corners[:, 0], height), inside(corners[:, 1], width)
  return (~(rows[:, :, None] & cols[:, None, :]))[..., None].astype(dtype)


def cutout(images, corners) -> jax.Array:
  """Images with each example's cutout rectangle zeroed (a mask multiply: gradient 0 or 1)."""
  return images * cutout_mask(corners, images.shape[1], images.shape[2], images.dtype)


def apply(images, draws: Draws, policy: Sequence[str]) -> jax.Array:
  """The policy's transforms, in its order, with the given draws (from `draw`, or rows of it).

  Args:
    images: [B, H, W, C], in [-1, 1].
    draws: `draw(key, policy, B, H, W)`, or this batch's rows of a larger batch's draws.
    policy: names from POLICIES; the order they run in (a dict's keys would be sorted by jit).

  Returns:
    [B, H, W, C] in the images' dtype.
  """
  _check(policy)
  for name in policy:
    if name == 'color':
      images = color(images, draws['brightness'], draws['saturation'], draws['contrast'])
    elif name == 'translation':
      images = translate(images, draws['translation'])
    else:
      images = cutout(images, draws['cutout'])
  return images


def augment(key, images, policy: Sequence[str]) -> jax.Array:
  """DiffAugment: the policy's transforms, in the order given, random per example.

  Pure and jit-able; works under vmap (over members: a key and a batch each) and on a batch
  sharded under jit. Under pmap with the same key on every device, each device would draw the
  same rows: draw for the global batch and `apply` this device's rows instead.

  Args:
    key: a PRNG key; each transform draws from its own fold of it (see `draw`).
    images: [B, H, W, C] float, in [-1, 1].
    policy: names from POLICIES (parse_policy's result); () returns `images` unchanged.

  Returns:
    [B, H, W, C] in the images' dtype, differentiable with respect to `images`. translation
    and cutout give input pixels or 0 (so stay in [-1, 1]); color reaches +-color_bound(C).
  """
  b, h, w, _ = images.shape
  return apply(images, draw(key, policy, b, h, w), policy)


def _check(policy: Sequence[str]):
  """Refuses a string (its letters would be read as names) and names parse_policy refuses."""
  if isinstance(policy, str):
    raise TypeError(f'augment policy {policy!r} is a string: pass parse_policy({policy!r})')
  parse_policy(','.join(policy))
