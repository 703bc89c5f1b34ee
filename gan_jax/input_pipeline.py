"""Datasets -> this host's share -> an endless, deterministic stream of iteration batches.

The GAN datasets are small (MNIST 47 MB, CIFAR-10 150 MB as uint8), so each loader returns the
whole split as a numpy array, kept as uint8 when the source is uint8 (converted to [-1, 1] on
the device, inside the train step). The stream's position is one integer, saved with the
checkpoint, so a resumed run sees exactly the batches an uninterrupted one would.

DATASETS is the one registry of named datasets (image shape, classes, loader); any other TFDS
image dataset is named 'tfds:NAME' (gan_jax/tfds_data.py). `spec` gives a dataset's image shape
and classes without loading it (what sampling and evaluation need). dataset.path may instead be
a directory of IDX files, an .npz, or a folder of image files (gan_jax/image_files.py).
"""

import copy
import dataclasses
import difflib
import gzip
from typing import Any, Callable, Dict, Optional, Tuple

from absl import logging
import jax
import numpy as np

from gan_jax import (files, hosts, image_files, images as images_lib, platforms, streaming,
                     tfds_data)
from gan_jax.errors import ConfigError, DataError

# dataset.float_range: the declared range of float image data (uint8 data is always [0, 255]).
FLOAT_RANGES = {'unit': (0.0, 1.0), 'signed': (-1.0, 1.0)}


@dataclasses.dataclass
class Dataset:
  images: np.ndarray            # [N, H, W, C], uint8 in [0, 255] or float32 in [-1, 1]; or a
                                # streaming.OnDemand (uint8, decoded when indexed)
  labels: Optional[np.ndarray]  # [N] int32, or None
  num_classes: int              # 0 when there are no labels
  class_names: Tuple[str, ...] = ()  # the classes' names where the source has them (folders)

  @property
  def image_shape(self):
    return self.images.shape[1:]


def _with_channels(images: np.ndarray) -> np.ndarray:
  return images[..., None] if images.ndim == 3 else images


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """What the models need to know about a dataset."""
  image_shape: Tuple[int, int, int]  # [H, W, C]
  num_classes: int                   # max label + 1; 0 when there are no labels
  class_names: Tuple[str, ...] = ()  # the classes' names where the source has them (folders)
  image_dtype: str = 'uint8'         # of the batches training sends: 'uint8', or 'float32'


def _spec(shape, dtype, labels, source: str) -> DataSpec:
  """The spec of images of `shape` and `dtype` with `labels` (or None); a DataError for what
  load refuses without looking at the image values."""
  if len(shape) not in (3, 4) or shape[0] == 0:
    raise DataError(f'{source}: images must be an array N x H x W [x C] with N > 0, '
                    f'got shape {tuple(shape)}')
  if np.dtype(dtype) != np.uint8 and not np.issubdtype(dtype, np.floating):
    raise DataError(f'{source}: images must be uint8 or float, got {np.dtype(dtype)}')
  num_classes = 0
  if labels is not None:
    labels = np.asarray(labels).reshape(-1)
    whole = labels.dtype.kind in 'iub' or (labels.dtype.kind == 'f' and
                                           np.array_equal(labels, np.round(labels)))
    if not whole:
      bad = labels[labels != np.round(labels)][:3] if labels.dtype.kind == 'f' else labels[:3]
      raise DataError(f'{source}: labels must be whole numbers (class indices 0, 1, ...), got '
                      f'{", ".join(map(str, bad))} ({labels.dtype})')
    if labels.shape[0] != shape[0]:
      raise DataError(f'{source}: {labels.shape[0]} labels for {shape[0]} images')
    if labels.min() < 0:
      raise DataError(f'{source}: labels must be integers >= 0')
    num_classes = int(labels.max()) + 1
  image_shape = tuple(int(d) for d in shape[1:]) + ((1,) if len(shape) == 3 else ())
  image_dtype = 'uint8' if np.dtype(dtype) == np.uint8 else 'float32'  # as _as_dataset makes them
  return DataSpec(image_shape, num_classes, image_dtype=image_dtype)


def check_float_range(float_range: str) -> None:
  if float_range not in FLOAT_RANGES:
    raise ConfigError(f"dataset.float_range must be 'unit' or 'signed', got {float_range!r}")


def _as_dataset(images, labels, source: str, float_range: str = 'unit') -> Dataset:
  """Checks shapes and ranges, normalises dtypes: float images in the declared `float_range`
  ('unit': [0, 1], rescaled; 'signed': [-1, 1], as they are) become float32 in [-1, 1]."""
  check_float_range(float_range)
  images = np.asarray(images)
  num_classes = _spec(images.shape, images.dtype, labels, source).num_classes
  images = _with_channels(images)
  if images.dtype != np.uint8:
    if not np.isfinite(images).all():
      raise DataError(f'{source}: images contain NaN or infinite values')
    lo, hi = float(images.min()), float(images.max())
    low, high = FLOAT_RANGES[float_range]
    if lo < low or hi > high:
      hint = ("; for [-1, 1] data set dataset.float_range='signed'" if float_range == 'unit'
              and lo >= -1 and hi <= 1 else '')
      raise DataError(f'{source}: float images have values in [{lo:.3g}, {hi:.3g}], outside '
                      f'[{low:g}, {high:g}] (dataset.float_range={float_range!r}){hint}')
    images = images.astype(np.float32)
    if float_range == 'unit':  # [0, 1] -> [-1, 1]
      images = images_lib.from_unit(images)
  if labels is not None:
    labels = np.asarray(labels).reshape(-1).astype(np.int32)
  return Dataset(images, labels, num_classes)


# ---------------------------------------------------------------- IDX (MNIST-style) files
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: '>i2', 0x0C: '>i4', 0x0D: '>f4', 0x0E: '>f8'}


def _idx_header(f, path: str):
  """(dtype, shape) from the open IDX file `f`, which is left at the start of the data."""
  magic = f.read(4)
  if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES:
    raise DataError(f'{path}: not an IDX file (bad magic number)')
  ndim = magic[3]
  dims = f.read(4 * ndim)
  if len(dims) < 4 * ndim:
    raise DataError(f'{path}: truncated IDX header')
  shape = tuple(int.from_bytes(dims[4 * i:4 * i + 4], 'big') for i in range(ndim))
  return np.dtype(_IDX_DTYPES[magic[2]]), shape


def _read_idx_file(path: str, header_only: bool):
  try:
    with files.path(path).open('rb') as raw:
      f = gzip.GzipFile(fileobj=raw, mode='rb') if path.endswith('.gz') else raw
      dtype, shape = _idx_header(f, path)
      return dtype, shape, (None if header_only else f.read())
  except (OSError, EOFError) as e:
    raise DataError(f'{path}: cannot read IDX file ({e})') from None


def read_idx_header(path: str):
  """(dtype, shape) of an IDX file, from its first bytes only."""
  dtype, shape, _ = _read_idx_file(path, header_only=True)
  return dtype, shape


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file (gzipped or not) as distributed with MNIST and Fashion-MNIST."""
  dtype, shape, raw = _read_idx_file(path, header_only=False)
  expected = int(np.prod(shape)) * dtype.itemsize
  if len(raw) != expected:
    raise DataError(f'{path}: IDX header says shape {shape} ({expected} bytes of data) but the '
                    f'file has {len(raw)}; the file is truncated or corrupt')
  return np.frombuffer(raw, dtype).reshape(shape)


def _find(directory: str, stem: str) -> Optional[str]:
  for name in (stem, stem + '.gz'):
    path = files.path(directory) / name
    if path.exists():
      return str(path)
  return None


def _idx_paths(directory: str, split: str):
  """(images file, labels file or None): `train-images-idx3-ubyte[.gz]` (+ labels) for split
  'train', `t10k-...` for 'test'."""
  prefix = {'train': 'train', 'test': 't10k'}.get(split)
  if prefix is None:
    raise DataError(f"dataset.split must be 'train' or 'test' for IDX files, got {split!r}")
  images_path = _find(directory, f'{prefix}-images-idx3-ubyte')
  if images_path is None:
    raise DataError(f'{directory}: no {prefix}-images-idx3-ubyte[.gz] there; dataset.path must '
                    f'be a directory with the IDX files or an .npz file')
  return images_path, _find(directory, f'{prefix}-labels-idx1-ubyte')


def _check_idx_images(shape, images_path: str) -> None:
  if len(shape) != 3:
    raise DataError(f'{images_path}: expected N x H x W images, got shape {shape}')


def load_idx_dir(directory: str, split: str) -> Dataset:
  images_path, labels_path = _idx_paths(directory, split)
  images = read_idx(images_path)
  _check_idx_images(images.shape, images_path)
  labels = read_idx(labels_path) if labels_path else None
  return _as_dataset(images.astype(np.uint8), labels, images_path)


def spec_idx_dir(directory: str, split: str) -> DataSpec:
  """load_idx_dir's spec from the images file's header and the (small) labels file."""
  images_path, labels_path = _idx_paths(directory, split)
  _, shape = read_idx_header(images_path)
  _check_idx_images(shape, images_path)
  labels = read_idx(labels_path) if labels_path else None
  return _spec(shape, np.uint8, labels, images_path)


def _read_npz(path: str, read_images: Callable):
  """(read_images(npz), labels or None) of an .npz with `images` and optional `labels`."""
  try:
    with files.open_seekable(path) as data, np.load(data) as f:
      if 'images' not in f:
        raise DataError(f'{path}: no array named "images" (found: {", ".join(f.files)})')
      return read_images(f), (f['labels'] if 'labels' in f else None)
  except DataError:
    raise
  except Exception as e:  # zipfile/pickle/OS errors of a damaged file
    raise DataError(f'{path}: cannot read .npz ({type(e).__name__}: {e})') from None


def load_npz(path: str, float_range: str = 'unit') -> Dataset:
  """An .npz with `images` (N,H,W[,C]: uint8, or float in [0, 1] for `float_range` 'unit' or
  [-1, 1] for 'signed') and optional `labels`."""
  images, labels = _read_npz(path, lambda f: f['images'])
  return _as_dataset(images, labels, path, float_range)


def _npy_header(npz):
  """(shape, dtype) of npz's `images` from its .npy header, without reading the array."""
  member = 'images.npy' if 'images.npy' in npz.zip.namelist() else 'images'
  with npz.zip.open(member) as f:
    read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}.get(np.lib.format.read_magic(f))
    if read_header is not None:
      shape, _, dtype = read_header(f)
      return shape, dtype
  images = npz['images']  # format 3.0 (non-latin-1 field names): read it
  return images.shape, images.dtype


def spec_npz(path: str) -> DataSpec:
  """load_npz's spec from the `images` header and the `labels` array."""
  (shape, dtype), labels = _read_npz(path, _npy_header)
  return _spec(shape, dtype, labels, path)


def path_kind(path: str) -> str:
  """What dataset.path (local or gs://) holds: 'idx' (a directory with IDX image files),
  'folder' (any other directory: image files), or 'npz'; a DataError when it does not exist or
  is another kind of file."""
  if not files.path(path).exists():
    raise DataError(f'dataset.path {path!r} does not exist; give a directory with IDX files '
                    f'(train-images-idx3-ubyte[.gz], ...) or image files, or an .npz file')
  if files.path(path).is_dir():
    stems = ('train-images-idx3-ubyte', 't10k-images-idx3-ubyte')
    return 'idx' if any(_find(path, stem) for stem in stems) else 'folder'
  if not path.endswith('.npz'):
    raise DataError(f'dataset.path {path!r} is a file but not an .npz; give an .npz, or a '
                    f'directory with IDX files or image files')
  return 'npz'


def load_local(config) -> Dataset:
  """The files at dataset.path (local or gs://): IDX files, an .npz (both as they are), or a
  folder of images (fitted to image_size and channels)."""
  kind = path_kind(config.path)
  if kind == 'idx':
    return load_idx_dir(config.path, config.split)
  if kind == 'npz':
    return load_npz(config.path, config.float_range)
  images, labels, class_names = image_files.load_folder(config.path, config.image_size,
                                                        config.channels, config.storage)
  return Dataset(images, labels, len(class_names), class_names)


def spec_local(config) -> DataSpec:
  kind = path_kind(config.path)
  if kind == 'idx':
    return spec_idx_dir(config.path, config.split)
  if kind == 'npz':
    return spec_npz(config.path)
  _, _, class_names = image_files.list_folder(config.path)  # lists files, reads no image
  return DataSpec(_fitted_shape(config), len(class_names), class_names)


def _fitted_shape(config) -> Tuple[int, int, int]:
  """The shape of images fitted to the config: (image_size, image_size, channels)."""
  return (config.image_size, config.image_size, config.channels)


# ---------------------------------------------------------------- built-in datasets
def load_digits(config) -> Dataset:
  """scikit-learn's bundled 8x8 digits (1797 images, no download), resized to image_size with
  PIL's bilinear filter (not image_files.fit, so that the digits images, and the runs and
  reference statistics made from them, stay the same), in `channels`."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from sklearn import datasets as sk_datasets  # pylint: disable=g-import-not-at-top
  digits = sk_datasets.load_digits()
  small = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)  # values 0..16 -> 0..255
  size = config.image_size
  images = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR))
                     for im in small])
  if config.channels == 3:
    images = np.repeat(images[..., None], 3, axis=-1)
  return _as_dataset(images, digits.target, 'digits')




def load_tfds(config) -> Dataset:
  """A TFDS dataset, read whole into memory and fitted to image_size and channels; a clear
  DataError when it cannot be had."""
  images, labels, num_classes = tfds_data.read(config)
  source = f'tfds:{tfds_data.tfds_name(config.name)}'
  if isinstance(images, streaming.OnDemand):  # uint8 at the fitted shape, decoded when read
    _spec(images.shape, images.dtype, labels, source)  # what _as_dataset checks but values
    labels = None if labels is None else np.asarray(labels).reshape(-1).astype(np.int32)
    return Dataset(images, labels, num_classes)
  data = _as_dataset(images, labels, source, config.float_range)
  return dataclasses.replace(data, num_classes=num_classes)  # the label feature's classes


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """A named dataset: what `spec` says of it without loading, and its loader."""
  image_shape: Tuple[int, int, int]  # [H, W, C]: the defaults of dataset.image_size, channels
  num_classes: int
  load: Callable[[Any], Dataset]     # the dataset ConfigDict -> the whole split


# The one registry of named datasets: configs/common.py takes its names and shapes from here.
# A named dataset comes at dataset.image_size and channels, whose defaults are its image_shape
# here (the source's own for the 28- and 32-pixel sets: their arrays as they are).
# TFDS names outside it: 'tfds:NAME' (tfds_data.py), shape and classes from the dataset's info.
DATASETS: Dict[str, DatasetInfo] = {
    'mnist': DatasetInfo((28, 28, 1), 10, load_tfds),
    'fashion_mnist': DatasetInfo((28, 28, 1), 10, load_tfds),
    'cifar10': DatasetInfo((32, 32, 3), 10, load_tfds),
    'digits': DatasetInfo((28, 28, 1), 10, load_digits),
    'cifar100': DatasetInfo((32, 32, 3), 100, load_tfds),
    'svhn_cropped': DatasetInfo((32, 32, 3), 10, load_tfds),
    'stl10': DatasetInfo((96, 96, 3), 10, load_tfds),
    'celeb_a': DatasetInfo((64, 64, 3), 0, load_tfds),             # 218 x 178, cropped
    'lsun/bedroom': DatasetInfo((64, 64, 3), 0, load_tfds),        # sizes vary, cropped
    'imagenet_resized/32x32': DatasetInfo((32, 32, 3), 1000, load_tfds),
    'imagenet_resized/64x64': DatasetInfo((64, 64, 3), 1000, load_tfds),
}
_TFDS_ANY = DatasetInfo((64, 64, 3), 0, load_tfds)  # 'tfds:NAME': defaults before its info


def unknown_dataset(name: str) -> str:
  """The message for a dataset.name that names nothing: the nearest names and the choices."""
  close = difflib.get_close_matches(name, DATASETS, n=3, cutoff=0.5)
  hint = f'did you mean {" or ".join(map(repr, close))}? ' if close else ''
  return (f'unknown dataset {name!r}; {hint}choose one of {", ".join(DATASETS)}, '
          f"'{tfds_data.PREFIX}NAME' for any TFDS image dataset, or set dataset.path to IDX "
          f'files, an .npz or a folder of images (local or gs://)')


def is_named(name: str) -> bool:
  """Whether dataset.name names a dataset: a DATASETS key or 'tfds:NAME'."""
  return name in DATASETS or (name.startswith(tfds_data.PREFIX) and
                              len(name) > len(tfds_data.PREFIX))


def _info(name: str) -> DatasetInfo:
  if not is_named(name):
    raise DataError(unknown_dataset(name))
  return DATASETS.get(name, _TFDS_ANY)


def default_shape(name: str) -> Tuple[int, int, int]:
  """The (side, side, channels) a config takes by default for dataset `name`: the registry's;
  for 'tfds:NAME' the image feature's when square and fixed, else 64 x 64 (its channels)."""
  info = _info(name)
  if name in DATASETS:
    return info.image_shape
  platforms.keep_tf_off_accelerators()
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  shape = tfds_data.default_image_shape(tfds, name) or (None, None, 3)
  height, width, channels = shape
  side = height if height and height == width else info.image_shape[0]
  return (side, side, channels if channels in image_files.CHANNELS else 3)


def check_split(config, split: str, field: str = 'dataset.split') -> None:
  """DataError unless the source `config` (the `dataset` ConfigDict) names has `split`: an .npz
  and digits hold one split ('train'), IDX directories 'train' and 'test'; TFDS checks its own
  split names when it loads."""
  if config.path:
    if not files.path(config.path).exists():
      return  # load_local says what is missing
    source, splits = {'idx': ('IDX files', ('train', 'test')),
                      'folder': ('a folder of images', ('train',)),
                      'npz': ('an .npz file', ('train',))}[path_kind(config.path)]
  elif config.name == 'digits':
    source, splits = 'the digits dataset', ('train',)
  else:
    return
  if split not in splits:
    raise DataError(f'{field} must be {" or ".join(map(repr, splits))} for {source}, got '
                    f'{split!r}')


def check_channels(channels) -> None:
  if channels not in (0, *image_files.CHANNELS):
    raise ConfigError(f'dataset.channels must be 1 (grayscale), 3 (RGB) or 0 (the data\'s '
                      f'own), got {channels!r}')


def own_channels(config) -> Tuple[int, str]:
  """(channels, where they come from) of the `dataset` ConfigDict: dataset.channels when set,
  else (0) the data's own: a folder's (3 if its images have colour), IDX or .npz files' (their
  header's), a named dataset's (its registry entry or TFDS feature). A preset's dataset name
  sets the image size, never the channels of a user's files."""
  if config.channels:
    return config.channels, 'dataset.channels'
  if config.path:
    if path_kind(config.path) == 'folder':
      return image_files.folder_channels(config.path), f'the images in {config.path}'
    return spec_local(config).image_shape[2], f'the files at {config.path}'
  return default_shape(config.name)[2], f'the {config.name} dataset'


def settled(config):
  """The `dataset` ConfigDict with dataset.channels 0 replaced by the data's own (a copy; the
  same object when they are set)."""
  if config.channels:
    return config
  config = copy.deepcopy(config)
  config.channels = own_channels(config)[0]
  return config


def check_storage(config) -> None:
  """dataset.storage: 'stream' only where images are decoded on demand (folders of files and
  TFDS datasets)."""
  if config.storage not in streaming.STORAGES:
    raise ConfigError(f'dataset.storage must be one of {", ".join(map(repr, streaming.STORAGES))}'
                      f', got {config.storage!r}')
  streams = (path_kind(config.path) == 'folder' if config.path else
             is_named(config.name) and _info(config.name).load is load_tfds)
  if config.storage == 'stream' and not streams:
    source = f'dataset.path {config.path}' if config.path else f'dataset {config.name!r}'
    raise ConfigError(f"dataset.storage 'stream' reads folders of image files and TFDS "
                      f"datasets; {source} is loaded into memory: set dataset.storage to 'auto' "
                      f"or 'memory'")


def load(config) -> Dataset:
  """Loads `config` (the `dataset` ConfigDict): the files at `path` (local or gs://) when it
  is set, else by name. The whole split: training takes its dataset.subset (`subset`)."""
  check_float_range(config.float_range)
  check_channels(config.channels)
  check_storage(config)
  check_split(config, config.split)
  config = settled(config)
  if config.path:
    return load_local(config)
  return _info(config.name).load(config)


SUBSET_SEED = 0  # the subset's draw: one fixed subset of a split, whatever the run's seed


def subset_rows(count: int, fraction: float) -> np.ndarray:
  """The rows (in order) of a split of `count` images that dataset.subset `fraction` keeps: a
  random draw of round(fraction * count) of them (at least 1), the same for every run."""
  keep = max(1, int(round(fraction * count)))
  return np.sort(np.random.default_rng(SUBSET_SEED).permutation(count)[:keep])


def subset(data: Dataset, fraction: float) -> Dataset:
  """`data` restricted to `subset_rows` (fraction 1: `data` itself). Held in memory only: a
  streamed dataset is refused (ConfigError)."""
  if fraction >= 1:
    return data
  if isinstance(data.images, streaming.OnDemand):
    raise ConfigError(f'dataset.subset {fraction} keeps part of a dataset held in memory, and '
                      f'this one streams: set dataset.storage to \'memory\'')
  rows = subset_rows(len(data.images), fraction)
  logging.info('dataset.subset %g: training on %d of the split\'s %d images', fraction,
               len(rows), len(data.images))
  return dataclasses.replace(data, images=data.images[rows],
                             labels=None if data.labels is None else data.labels[rows])


def load_on_every_process(config) -> Dataset:
  """`load` on every process; with several, they agree before training: a DataError on one
  is a DataError on all (none is left waiting in a collective), and all must hold the same
  number of images, held the same way (a host that skipped another file, or whose memory made
  dataset.storage 'auto' choose otherwise, would walk another order)."""
  if jax.process_count() == 1:
    return load(config)
  data = error = None
  try:
    data = load(config)
  except DataError as e:
    error = e
  mine = [0, 0] if data is None else [len(data.images),
                                      isinstance(data.images, streaming.OnDemand)]
  facts = hosts.agree(error, 'loading the data', mine)
  if len(set(facts[:, 0].tolist())) > 1:
    raise DataError(f'the processes hold different numbers of images '
                    f'({", ".join(map(str, facts[:, 0]))}): every host must read the same files')
  if len(set(facts[:, 1].tolist())) > 1:
    raise DataError("dataset.storage 'auto' chose differently on different hosts (their memory "
                    "differs): set --config.dataset.storage to 'memory' or 'stream'")
  return data


def spec(config) -> DataSpec:
  """The image shape and classes `load(config)` gives, without loading the images.

  A named dataset's come from DATASETS (a 'tfds:' name's classes from its TFDS info, as do
  those of an explicit dataset.label_key); files' from the IDX or .npy header of the images
  and from the labels (small); a folder's from its file names. Refuses, as load does, what the
  headers show to be unusable.
  """
  check_float_range(config.float_range)
  check_channels(config.channels)
  check_storage(config)
  config = settled(config)
  if config.path:
    return spec_local(config)
  info = _info(config.name)
  num_classes = info.num_classes
  if info.load is load_tfds and (config.name not in DATASETS or config.label_key):
    num_classes = tfds_data.num_classes(config)
  return DataSpec(_fitted_shape(config), num_classes)


class BatchStream:
  """Endless shuffled stream over a dataset; `next(n)` gives one iteration's n batches.

  The stream is the concatenation of per-epoch permutations drawn from (seed, epoch), so its
  only state is `position` (examples consumed): restoring it restores the stream exactly.
  Every process walks the same global stream of `batch_size`-image batches and keeps its own
  rows (`shard` = (process index, process count)), so the global batch is the one a single
  process would see, whatever the number of hosts.
  """

  def __init__(self, data: Dataset, batch_size: int, seed: int, position: int = 0,
               shard=(0, 1)):
    self.data = data
    self.batch_size = batch_size   # global
    self.seed = seed
    self.position = position
    self.index, self.count = shard
    if batch_size % self.count:
      raise ValueError(f'batch size {batch_size} does not split over {self.count} processes')
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
    """Returns this process's rows of n global batches: {'image': [n, B_local, H, W, C],
    'label': [n, B_local]} (label only when there are labels)."""
    local = self.batch_size // self.count
    idx = self._indices(n * self.batch_size).reshape(n, self.batch_size)
    idx = idx[:, self.index * local:(self.index + 1) * local]
    batch = {'image': self.data.images[idx]}
    if self.data.labels is not None:
      batch['label'] = self.data.labels[idx]
    return batch
