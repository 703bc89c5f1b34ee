"""Datasets -> this host's share -> an endless, deterministic stream of iteration batches.

The GAN datasets are small (MNIST 47 MB, CIFAR-10 150 MB as uint8), so each loader returns the
whole split as a numpy array, kept as uint8 when the source is uint8 (converted to [-1, 1] on
the device, inside the train step). The stream's position is one integer, saved with the
checkpoint, so a resumed run sees exactly the batches an uninterrupted one would.
"""

import dataclasses
import gzip
import os
from typing import Callable, Dict, Optional

import jax
import numpy as np


class DataError(ValueError):
  """A dataset that cannot be read; its message says what to fix."""


@dataclasses.dataclass
class Dataset:
  images: np.ndarray            # [N, H, W, C], uint8 in [0, 255] or float32 in [-1, 1]
  labels: Optional[np.ndarray]  # [N] int32, or None
  num_classes: int              # 0 when there are no labels

  @property
  def image_shape(self):
    return self.images.shape[1:]


def _with_channels(images: np.ndarray) -> np.ndarray:
  return images[..., None] if images.ndim == 3 else images


def _as_dataset(images, labels, source: str) -> Dataset:
  """Checks shapes and ranges, normalises dtypes."""
  images = np.asarray(images)
  if images.ndim not in (3, 4) or images.shape[0] == 0:
    raise DataError(f'{source}: images must be an array N x H x W [x C] with N > 0, '
                    f'got shape {images.shape}')
  images = _with_channels(images)
  if images.dtype != np.uint8:
    if not np.issubdtype(images.dtype, np.floating):
      raise DataError(f'{source}: images must be uint8 or float, got {images.dtype}')
    if not np.isfinite(images).all():
      raise DataError(f'{source}: images contain NaN or infinite values')
    lo, hi = float(images.min()), float(images.max())
    if lo < -1 or hi > 1:
      raise DataError(f'{source}: float images must lie in [0, 1] or [-1, 1], '
                      f'got values in [{lo:.3g}, {hi:.3g}]')
    images = images.astype(np.float32)
    if lo >= 0:  # [0, 1] -> [-1, 1]
      images = images * 2.0 - 1.0
  num_classes = 0
  if labels is not None:
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != images.shape[0]:
      raise DataError(f'{source}: {labels.shape[0]} labels for {images.shape[0]} images')
    if labels.min() < 0:
      raise DataError(f'{source}: labels must be integers >= 0')
    labels = labels.astype(np.int32)
    num_classes = int(labels.max()) + 1
  return Dataset(images, labels, num_classes)


# ---------------------------------------------------------------- IDX (MNIST-style) files
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: '>i2', 0x0C: '>i4', 0x0D: '>f4', 0x0E: '>f8'}


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file (gzipped or not) as distributed with MNIST and Fashion-MNIST."""
  opener = gzip.open if path.endswith('.gz') else open
  try:
    with opener(path, 'rb') as f:
      raw = f.read()
  except (OSError, EOFError) as e:
    raise DataError(f'{path}: cannot read IDX file ({e})') from None
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
    raise DataError(f'{path}: not an IDX file (bad magic number)')
  ndim = raw[3]
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise DataError(f'{path}: truncated IDX header')
  shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
  dtype = np.dtype(_IDX_DTYPES[raw[2]])
  expected = int(np.prod(shape)) * dtype.itemsize
  if len(raw) - header != expected:
    raise DataError(f'{path}: IDX header says shape {shape} ({expected} bytes of data) but the '
                    f'file has {len(raw) - header}; the file is truncated or corrupt')
  return np.frombuffer(raw, dtype, offset=header).reshape(shape)


def _find(directory: str, stem: str) -> Optional[str]:
  for name in (stem, stem + '.gz'):
    if os.path.exists(os.path.join(directory, name)):
      return os.path.join(directory, name)
  return None


def load_idx_dir(directory: str, split: str) -> Dataset:
  """`train-images-idx3-ubyte[.gz]` (+ labels) for split 'train', `t10k-...` for 'test'."""
  prefix = {'train': 'train', 'test': 't10k'}.get(split)
  if prefix is None:
    raise DataError(f"dataset.split must be 'train' or 'test' for IDX files, got {split!r}")
  images_path = _find(directory, f'{prefix}-images-idx3-ubyte')
  if images_path is None:
    raise DataError(f'{directory}: no {prefix}-images-idx3-ubyte[.gz] there; dataset.path must '
                    f'be a directory with the IDX files or an .npz file')
  labels_path = _find(directory, f'{prefix}-labels-idx1-ubyte')
  images = read_idx(images_path)
  if images.ndim != 3:
    raise DataError(f'{images_path}: expected N x H x W images, got shape {images.shape}')
  labels = read_idx(labels_path) if labels_path else None
  return _as_dataset(images.astype(np.uint8), labels, images_path)


def load_npz(path: str) -> Dataset:
  """An .npz with `images` (N,H,W[,C], uint8 or float in [0,1] / [-1,1]) and optional `labels`."""
  try:
    with np.load(path) as f:
      if 'images' not in f:
        raise DataError(f'{path}: no array named "images" (found: {", ".join(f.files)})')
      images = f['images']
      labels = f['labels'] if 'labels' in f else None
  except DataError:
    raise
  except Exception as e:  # zipfile/pickle/OS errors of a damaged file
    raise DataError(f'{path}: cannot read .npz ({type(e).__name__}: {e})') from None
  return _as_dataset(images, labels, path)


def load_local(path: str, split: str) -> Dataset:
  if not os.path.exists(path):
    raise DataError(f'dataset.path {path!r} does not exist; give a directory with IDX files '
                    f'(train-images-idx3-ubyte[.gz], ...) or an .npz file')
  if os.path.isdir(path):
    return load_idx_dir(path, split)
  return load_npz(path)


# ---------------------------------------------------------------- built-in datasets
def load_digits(config) -> Dataset:
  """scikit-learn's bundled 8x8 digits (1797 images, no download), resized to image_size."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from sklearn import datasets as sk_datasets  # pylint: disable=g-import-not-at-top
  digits = sk_datasets.load_digits()
  small = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)  # values 0..16 -> 0..255
  size = config.image_size
  images = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR))
                     for im in small])
  return _as_dataset(images, digits.target, 'digits')


def load_tfds(config) -> Dataset:
  """A TFDS dataset, read whole into memory; a clear DataError when it cannot be had."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core.download import downloader  # pylint: disable=g-import-not-at-top
  hint = ('point --config.dataset.path at a directory with the IDX files or an .npz, or '
          '--config.dataset.data_dir at a prepared TFDS directory')
  try:
    builder = tfds.builder(config.name, data_dir=config.data_dir or None)
    if not builder.is_prepared():
      if not config.download:
        raise DataError(f'TFDS dataset {config.name!r} is not prepared in '
                        f'{builder.data_dir} and dataset.download is off: {hint}')
      # TFDS retries each file 10 times with back-off (minutes offline); fail fast instead.
      downloader.MAX_RETRIES = min(downloader.MAX_RETRIES, 1)
      builder.download_and_prepare()
    # Read in chunks: batch_size=-1 aborts inside TensorFlow 2.21 (std::length_error).
    chunks = list(tfds.as_numpy(builder.as_dataset(split=config.split, batch_size=4096)))
    data = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
  except DataError:
    raise
  except Exception as e:  # download/preparation errors come in many types
    reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
    raise DataError(f'cannot load TFDS dataset {config.name!r}: it is not prepared and could '
                    f'not be downloaded ({type(e).__name__}: {reason}); {hint}') from None
  return _as_dataset(data['image'], data.get('label'), f'tfds:{config.name}')


LOADERS: Dict[str, Callable] = {
    'digits': load_digits,
    'mnist': load_tfds,
    'fashion_mnist': load_tfds,
    'cifar10': load_tfds,
}


def check_split(config, split: str, field: str = 'dataset.split') -> None:
  """DataError unless the source `config` (the `dataset` ConfigDict) names has `split`: an .npz
  and digits hold one split ('train'), IDX directories 'train' and 'test'; TFDS checks its own
  split names when it loads."""
  if config.path:
    if not os.path.exists(config.path):
      return  # load_local says what is missing
    source, splits = (('IDX files', ('train', 'test')) if os.path.isdir(config.path) else
                      ('an .npz file', ('train',)))
  elif config.name == 'digits':
    source, splits = 'the digits dataset', ('train',)
  else:
    return
  if split not in splits:
    raise DataError(f'{field} must be {" or ".join(map(repr, splits))} for {source}, got '
                    f'{split!r}')


def load(config) -> Dataset:
  """Loads `config` (the `dataset` ConfigDict): local files when `path` is set, else by name."""
  check_split(config, config.split)
  if config.path:
    return load_local(config.path, config.split)
  if config.name not in LOADERS:
    raise DataError(f'unknown dataset {config.name!r}; choose one of {", ".join(LOADERS)}, or '
                    f'set dataset.path to local IDX files or an .npz')
  return LOADERS[config.name](config)


def host_share(data: Dataset) -> Dataset:
  """This process's share of the examples (every process_count-th one)."""
  i, n = jax.process_index(), jax.process_count()
  if n == 1:
    return data
  labels = None if data.labels is None else data.labels[i::n]
  return Dataset(data.images[i::n], labels, data.num_classes)


class BatchStream:
  """Endless shuffled stream over a dataset; `next(n)` gives one iteration's n batches.

  The stream is the concatenation of per-epoch permutations drawn from (seed, epoch), so its
  only state is `position` (examples consumed): restoring it restores the stream exactly.
  """

  def __init__(self, data: Dataset, batch_size: int, seed: int, position: int = 0):
    self.data = data
    self.batch_size = batch_size
    self.seed = seed
    self.position = position
    self._perm_epoch, self._perm = -1, None

  def _permutation(self, epoch: int) -> np.ndarray:
    if epoch != self._perm_epoch:
      rng = np.random.default_rng([self.seed, epoch])
      self._perm, self._perm_epoch = rng.permutation(len(self.data.images)), epoch
    return self._perm

  def _indices(self, count: int) -> np.ndarray:
    n, out = len(self.data.images), []
    while count > 0:
      epoch, offset = divmod(self.position, n)
      take = min(count, n - offset)
      out.append(self._permutation(epoch)[offset:offset + take])
      self.position += take
      count -= take
    return np.concatenate(out)

  def next(self, n: int) -> Dict[str, np.ndarray]:
    """Returns {'image': [n, B, H, W, C], 'label': [n, B]} (label only when there are labels)."""
    idx = self._indices(n * self.batch_size)
    batch = {'image': self.data.images[idx].reshape(n, self.batch_size, *self.data.image_shape)}
    if self.data.labels is not None:
      batch['label'] = self.data.labels[idx].reshape(n, self.batch_size)
    return batch
