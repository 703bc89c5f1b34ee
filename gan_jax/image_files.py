"""Folders of image files (local or gs://) as arrays, and the one crop-and-resize rule that
folders and TFDS datasets share.

A folder's images are found recursively (PNG, JPEG, BMP, WebP, GIF: the first frame). When they
sit in top-level subfolders, the sorted names of those subfolders are the classes (anything
deeper belongs to its top-level folder); images directly in the folder, with no subfolders, are
unlabelled. Every image is converted to the wanted channels (1: luma, 3: RGB) and `fit` to a
square side: its shorter side is resized to the side with an antialiasing (Lanczos) filter,
after a centre crop to a square.
"""

import collections
import concurrent.futures
import contextlib
import io
import os
from typing import List, Optional, Sequence, Tuple

from absl import logging
import numpy as np
from PIL import Image

from gan_jax import files, streaming
from gan_jax.errors import DataError

SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.webp', '.gif')
CHANNELS = (1, 3)  # dataset.channels: grayscale or RGB (0: the data's own)
_MODES = {1: 'L', 3: 'RGB'}
_GRAY_MODES = ('1', 'L', 'LA', 'La', 'I', 'I;16', 'I;16B', 'F')
PROBED = 64  # images a folder's channels are read from


def folder_channels(root: str) -> int:
  """A folder's own channels: 3 when any of PROBED images spread evenly over its listing is
  stored in colour (RGB, RGBA, palette, CMYK...), 1 when all of them are grayscale. Reads
  headers only."""
  paths, _, _ = list_folder(root)
  for i in sorted({round(k * (len(paths) - 1) / max(PROBED - 1, 1)) for k in range(PROBED)}):
    with files.path(paths[i]).open('rb') as f, Image.open(f) as image:
      if image.mode not in _GRAY_MODES:
        return 3
  return 1


def fit(image: Image.Image, size: int, channels: int) -> np.ndarray:
  """`image` (any size and mode) as uint8 [size, size, channels]: the centred square of its
  shorter side, resized to `size` with a Lanczos filter (antialiased when it shrinks)."""
  if image.mode in ('I', 'I;16', 'I;16B', 'F'):  # 16-bit or float grayscale: scaled to 8 bits
    values = np.asarray(image, np.float64)
    scale = 1.0 / 257 if image.mode != 'F' else (255.0 if values.max() <= 1 else 1.0)
    image = Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8), 'L')
  if image.mode not in _MODES.values():
    # Palette and alpha images through RGBA, so a palette's transparency is read as such
    # (the alpha is then dropped).
    image = image.convert('L' if image.mode in ('1', 'LA', 'La') else 'RGBA')
  image = image.convert(_MODES[channels])
  width, height = image.size
  if (width, height) != (size, size):
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    image = image.resize((size, size), Image.LANCZOS, box=(left, top, left + side, top + side))
  pixels = np.asarray(image, np.uint8)
  return pixels[..., None] if pixels.ndim == 2 else pixels


def fit_array(pixels: np.ndarray, size: int, channels: int) -> np.ndarray:
  """uint8 [H, W, C] (C in 1, 3, 4) as `fit` makes it; unchanged when it is the wanted shape
  already (so a dataset at its own size loads bit for bit)."""
  if pixels.shape == (size, size, channels):
    return pixels
  mode = {1: 'L', 3: 'RGB', 4: 'RGBA'}[pixels.shape[-1]]
  return fit(Image.fromarray(pixels[..., 0] if mode == 'L' else pixels, mode), size, channels)


def _workers() -> int:
  return min(32, (os.cpu_count() or 1) + 4)  # decoding waits on reads (gs://) as well


def _hidden(parts: Sequence[str]) -> bool:
  return any(p.startswith('.') for p in parts)  # .DS_Store, ._x.jpg (macOS), .git, ...


_listings: Optional[dict] = None  # root -> list_folder's result, inside `listings()`


@contextlib.contextmanager
def listings():
  """Within it, each folder is listed once (a run's data spec, evaluator and loader all list
  dataset.path; a bucket of a million files takes minutes to list)."""
  global _listings
  outer, _listings = _listings, ({} if _listings is None else _listings)
  try:
    yield
  finally:
    _listings = outer


def list_folder(root: str) -> Tuple[List[str], Optional[np.ndarray], Tuple[str, ...]]:
  """(image paths, labels [N] int32 or None, class names) of the folder `root`, in sorted
  order, without reading an image; a DataError when it holds none, or holds images both
  directly and in subfolders (which would leave the direct ones without a class)."""
  if _listings is None:
    return _list(root)
  if root not in _listings:
    _listings[root] = _list(root)
  paths, labels, class_names = _listings[root]
  return list(paths), labels, class_names


def _list(root: str) -> Tuple[List[str], Optional[np.ndarray], Tuple[str, ...]]:
  base = files.path(root)
  found = []
  for folder, _, names in base.walk():  # one listing per folder (epath has no rglob on gs://)
    inside = folder.relative_to(base).parts
    for name in names:
      parts = (*inside, name)
      if os.path.splitext(name)[1].lower() in SUFFIXES and not _hidden(parts):
        found.append(parts)
  if not found:
    raise DataError(f'dataset.path {root}: no IDX files and no images '
                    f'({", ".join(s[1:] for s in SUFFIXES)}) in this directory or below')
  found.sort()
  top = [p for p in found if len(p) == 1]
  if not top or len(top) == len(found):  # all direct (unlabelled), or all in class folders
    paths = [str(base.joinpath(*p)) for p in found]
    if top:
      return paths, None, ()
    class_names = tuple(sorted({p[0] for p in found}))
    index = {name: i for i, name in enumerate(class_names)}
    return paths, np.array([index[p[0]] for p in found], np.int32), class_names
  raise DataError(f'dataset.path {root}: {len(top)} images sit directly in it (e.g. {top[0][0]}) '
                  f'besides {len(found) - len(top)} in subfolders; put them in a class folder, '
                  f'or all of them directly in the folder for unlabelled data')


def fit_encoded(data: bytes, size: int, channels: int) -> np.ndarray:
  """`fit` of an encoded image (GIF: its first frame). JPEGs decode at 1/2, 1/4 or 1/8 scale
  where that stays >= size (PIL's draft: libjpeg scales while it decodes)."""
  with Image.open(io.BytesIO(data)) as image:
    image.seek(0)
    if image.format == 'JPEG':
      image.draft(_MODES[channels], (size, size))
    return fit(image, size, channels)


def fit_encoded_all(encoded: Sequence[bytes], size: int, channels: int) -> np.ndarray:
  """`fit_encoded` of each, on a thread pool: uint8 [N, size, size, channels]."""
  out = np.empty((len(encoded), size, size, channels), np.uint8)
  with concurrent.futures.ThreadPoolExecutor(_workers()) as pool:
    for i, pixels in enumerate(pool.map(lambda b: fit_encoded(b, size, channels), encoded)):
      out[i] = pixels
  return out


def _read(path: str, size: int, channels: int) -> Optional[np.ndarray]:
  """`fit_encoded` of the image file at `path`, or None when it is not an image it can decode;
  a DataError when the file cannot be read at all (a storage error is not a damaged image)."""
  try:
    data = files.path(path).read_bytes()
  except Exception as e:  # pylint: disable=broad-except  (local and gs:// errors differ)
    raise DataError(f'cannot read {path} ({type(e).__name__}: {e})') from None
  try:
    return fit_encoded(data, size, channels)
  except Exception:  # pylint: disable=broad-except  (PIL raises many types on damaged files)
    return None


def load_folder(root: str, size: int, channels: int, storage: str = 'memory'):
  """(images uint8 [N, size, size, channels], labels [N] or None, class names) of the folder
  `root`. In memory (dataset.storage, see streaming.choose): decoded now, unreadable files
  skipped with one warning, a DataError when none is left. Streamed: a streaming.OnDemand
  that decodes the images a batch reads (an unreadable one replaced by the next readable image
  of its class)."""
  paths, labels, class_names = list_folder(root)
  shape = (size, size, channels)
  if streaming.choose(storage, len(paths), shape, root) == 'stream':
    _log_classes(root, len(paths), labels, class_names)
    read = lambda rows: [_read(paths[i], size, channels) for i in rows]
    images = streaming.OnDemand(read, len(paths), shape, paths.__getitem__, groups=labels)
    return images, labels, class_names
  images = np.empty((len(paths), size, size, channels), np.uint8)
  ok = np.zeros(len(paths), bool)
  with concurrent.futures.ThreadPoolExecutor(_workers()) as pool:
    for i, pixels in enumerate(pool.map(lambda p: _read(p, size, channels), paths)):
      if pixels is not None:
        images[i], ok[i] = pixels, True
  bad = [p for p, good in zip(paths, ok) if not good]
  if len(bad) == len(paths):
    raise DataError(f'dataset.path {root}: none of its {len(paths)} image files could be read '
                    f'(first: {bad[0]})')
  if bad:
    logging.warning('dataset.path %s: skipped %d unreadable image file(s) (first: %s)', root,
                    len(bad), bad[0])
    images = images[ok]
    labels = None if labels is None else labels[ok]
  _log_classes(root, len(images), labels, class_names)
  return images, labels, class_names


def _log_classes(root: str, num_images: int, labels, class_names) -> None:
  if class_names:
    counts = collections.Counter(labels.tolist())
    logging.info('dataset.path %s: %d images in %d classes: %s', root, num_images,
                 len(class_names), ', '.join(f'{i} {name} ({counts[i]})'
                                             for i, name in enumerate(class_names)))
  else:
    logging.info('dataset.path %s: %d images, no classes (no subfolders)', root, num_images)
