"""Images: the one place where ranges are converted, and grids, PNG and GIF files.

Ranges: the models work in [-1, 1] (`to_signed` takes uint8 [0, 255] data there); grids and files
are [0, 1] (`to_unit`).
"""

import io
import math
from typing import List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw

from gan_jax import files


def to_signed(images):
  """uint8 [0, 255] -> float32 [-1, 1]; float data (already in [-1, 1]) -> float32. Works on
  jax and numpy arrays alike (on the device inside a step, on the host for files)."""
  xp = jnp if isinstance(images, jax.Array) else np
  if images.dtype == np.uint8:
    return images.astype(xp.float32) / 127.5 - 1.0
  return images.astype(xp.float32)


def from_unit(images):
  """[0, 1] -> [-1, 1] (float data declared dataset.float_range='unit')."""
  return images * 2.0 - 1.0


def to_unit(images):
  """[-1, 1] -> float32 [0, 1] (clipped); a jax array stays on its device."""
  xp = jnp if isinstance(images, jax.Array) else np
  return xp.clip((images.astype(xp.float32) + 1.0) / 2.0, 0.0, 1.0)


def make_grid(images: np.ndarray, ncol: Optional[int] = None, pad: int = 1) -> np.ndarray:
  """Tiles [N, H, W, C] images in [0, 1] into one [rows*(H+pad)+pad, ..., C] image."""
  n, h, w, c = images.shape
  ncol = ncol or math.ceil(math.sqrt(n))
  nrow = math.ceil(n / ncol)
  grid = np.ones((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), np.float32)
  for i, image in enumerate(images):
    r, col = divmod(i, ncol)
    top, left = pad + r * (h + pad), pad + col * (w + pad)
    grid[top:top + h, left:left + w] = image
  return grid


def save_png(grid: np.ndarray, path: str, scale: int = 1,
             row_labels: Sequence[str] = ()) -> None:
  """Writes a [H, W, C] grid in [0, 1] as a PNG, optionally upscaled (nearest); `row_labels`
  (one per row of a make_grid grid) are written in a white margin on its left."""
  pixels = (np.clip(grid, 0, 1) * 255).round().astype(np.uint8)
  if pixels.shape[-1] == 1:
    pixels = pixels[..., 0]
  image = Image.fromarray(pixels)
  if scale > 1:
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
  if row_labels:
    image = _with_row_labels(image, row_labels)
  data = io.BytesIO()
  image.save(data, format='PNG')
  files.write_bytes(path, data.getvalue())


def _with_row_labels(image: Image.Image, labels: Sequence[str]) -> Image.Image:
  """`image` with each of `labels` left of its row (rows of equal height), in PIL's own font."""
  labels = [str(l)[:24] for l in labels]
  margin = 6 * max(len(l) for l in labels) + 6  # the default font: ~6 pixels a character
  canvas = Image.new(image.mode, (image.width + margin, image.height), 'white')
  canvas.paste(image, (margin, 0))
  draw, row = ImageDraw.Draw(canvas), image.height / len(labels)
  for i, label in enumerate(labels):
    draw.text((2, int(row * (i + 0.5)) - 5), label, fill='black')
  return canvas


def label_rows(grid: np.ndarray, labels: Sequence[str]) -> np.ndarray:
  """A [H, W, C] grid in [0, 1] with `labels` (one per row) in a white margin on its left."""
  pixels = (np.clip(grid, 0, 1) * 255).round().astype(np.uint8)
  image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
  labelled = np.asarray(_with_row_labels(image, labels), np.float32) / 255.0
  return labelled.reshape(labelled.shape[:2] + (grid.shape[-1],))


def read_grids(workdir: str, tag: str = 'samples') -> List[Tuple[int, np.ndarray]]:
  """The image summaries `tag` of a run's event files: [(step, uint8 [H, W, C])] by step.

  A step logged twice (a run resumed from a checkpoint before it) keeps its latest image.
  """
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  acc = event_accumulator.EventAccumulator(workdir, size_guidance={'images': 0, 'tensors': 0})
  acc.Reload()
  tags = acc.Tags()
  by_step = {}
  if tag in tags['tensors']:  # TF2 summaries: [width, height, png, ...]
    for event in sorted(acc.Tensors(tag), key=lambda e: e.wall_time):
      by_step[event.step] = event.tensor_proto.string_val[2]
  elif tag in tags['images']:
    for event in sorted(acc.Images(tag), key=lambda e: e.wall_time):
      by_step[event.step] = event.encoded_image_string
  else:
    raise ValueError(f'no image summaries {tag!r} in {workdir} (found: '
                     f'{", ".join(tags["images"] + tags["tensors"]) or "none"})')
  return [(step, np.array(Image.open(io.BytesIO(png)))) for step, png in sorted(by_step.items())]


def save_gif(frames: Sequence[np.ndarray], path: str, seconds_per_frame: float = 0.2,
             scale: int = 1, captions: Optional[Sequence[str]] = None) -> None:
  """Writes uint8 frames ([H, W] or [H, W, C]) as an animated GIF that loops."""
  images = []
  for i, frame in enumerate(frames):
    image = Image.fromarray(frame[..., 0] if frame.ndim == 3 and frame.shape[-1] == 1 else frame)
    image = image.convert('RGB')
    if scale > 1:
      image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    if captions:
      canvas = Image.new('RGB', (image.width, image.height + 12), 'white')
      canvas.paste(image, (0, 12))
      ImageDraw.Draw(canvas).text((2, 0), captions[i], fill='black')
      image = canvas
    images.append(image)
  if not images:
    raise ValueError('no frames to write')
  data = io.BytesIO()
  images[0].save(data, format='GIF', save_all=True, append_images=images[1:], loop=0,
                 duration=int(seconds_per_frame * 1000))
  files.write_bytes(path, data.getvalue())
