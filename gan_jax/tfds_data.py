"""TFDS image datasets by name: preparation on one process, the image and label features from
the dataset's info (or the config), and the images cropped and resized as folders are
(image_files.fit) when they are not (image_size, image_size, channels) already.

A name in input_pipeline.DATASETS, or any TFDS name after the prefix 'tfds:'
('tfds:celeb_a_hq/128', 'tfds:oxford_flowers102'), is read here.
"""

import difflib
import os
from typing import Optional, Tuple

from absl import logging
import jax
import numpy as np

from gan_jax import hosts, image_files, platforms, streaming
from gan_jax.errors import DataError

PREFIX = 'tfds:'  # dataset.name 'tfds:NAME': any TFDS-registered image dataset
CHUNK = 1024      # examples per read (batch_size=-1 aborts inside TensorFlow 2.21)


def tfds_name(name: str) -> str:
  """The TFDS name of a dataset.name ('tfds:x/y' -> 'x/y'; a registry name as it is)."""
  return name[len(PREFIX):] if name.startswith(PREFIX) else name


_TFDS_HINT = ('point --config.dataset.path at a directory with the IDX files or an .npz, or '
              '--config.dataset.data_dir at a prepared TFDS directory')


def _why(e: Exception) -> str:
  """'Type: the first line of the message' (160 characters at most)."""
  text = str(e).strip()
  return f'{type(e).__name__}: {text.splitlines()[0][:160]}' if text else type(e).__name__


def _prepare(tfds, config, name: str) -> Optional[DataError]:
  """Downloads and prepares the TFDS dataset unless it is prepared: None, or the reason not."""
  from tensorflow_datasets.core.download import downloader  # pylint: disable=g-import-not-at-top
  try:
    builder = tfds.builder(name, data_dir=config.data_dir or None)
    if builder.is_prepared():
      return None
    if not config.download:
      return DataError(f'TFDS dataset {name!r} is not prepared in {builder.data_dir} '
                       f'and dataset.download is off: {_TFDS_HINT}')
    # TFDS retries each file 10 times with back-off (minutes offline); fail fast instead.
    # DownloadConfig has no retry setting (TFDS 4.9), so the module global is set for the
    # download alone and restored.
    max_retries = downloader.MAX_RETRIES
    downloader.MAX_RETRIES = min(max_retries, 1)
    try:
      builder.download_and_prepare()
    finally:
      downloader.MAX_RETRIES = max_retries
  except Exception as e:  # download/preparation errors come in many types
    return DataError(f'cannot load TFDS dataset {name!r}: it is not prepared and could '
                     f'not be downloaded ({_why(e)}); {_TFDS_HINT}')
  return None


def prepare_tfds(tfds, config) -> None:
  """Prepares the TFDS dataset, once per data_dir: with several processes, process 0 prepares
  while the others wait, so a shared data_dir (gs://, NFS) is downloaded and written once; a
  process that still finds it unprepared afterwards (its own local data_dir) prepares its copy.
  A failure anywhere raises a DataError on every process."""
  name = tfds_name(config.name)
  first, what = jax.process_index() == 0, f'preparing TFDS dataset {name!r}'
  hosts.agree(_prepare(tfds, config, name) if first else None, what)
  if jax.process_count() > 1:
    hosts.agree(None if first else _prepare(tfds, config, name), what)




def _builder(tfds, config):
  """tfds.builder of the dataset (its info needs no preparation); unknown names: a DataError
  with the nearest TFDS names."""
  name = tfds_name(config.name)
  try:
    return tfds.builder(name, data_dir=config.data_dir or None)
  except tfds.core.registered.DatasetNotFoundError:
    close = difflib.get_close_matches(name, tfds.list_builders(), n=3, cutoff=0.6)
    hint = f'; did you mean {", ".join(PREFIX + c for c in close)}?' if close else ''
    raise DataError(f'no TFDS dataset named {name!r}{hint}') from None


def features(tfds, config) -> Tuple[str, Optional[str], int, Tuple]:
  """(image key, label key or None, classes, the image feature's shape, None where it varies)
  of the dataset: dataset.image_key / label_key when set ('none': no labels), else the feature
  'image' (or the only Image feature) and 'label' when it is a ClassLabel."""
  info = dict(_builder(tfds, config).info.features.items())
  images = [k for k, f in info.items() if isinstance(f, tfds.features.Image)]
  image_key = config.image_key or ('image' if 'image' in images else
                                   images[0] if len(images) == 1 else '')
  if not isinstance(info.get(image_key), tfds.features.Image):
    raise DataError(f'TFDS dataset {config.name!r}: set dataset.image_key to one of its image '
                    f'features ({", ".join(images) or "it has none"}), got {image_key!r}')
  default_label = isinstance(info.get('label'), tfds.features.ClassLabel)
  label_key = config.label_key or ('label' if default_label else 'none')
  if label_key == 'none':
    return image_key, None, 0, tuple(info[image_key].shape)
  if not isinstance(info.get(label_key), tfds.features.ClassLabel):
    labels = [k for k, f in info.items() if isinstance(f, tfds.features.ClassLabel)]
    raise DataError(f"TFDS dataset {config.name!r}: dataset.label_key must be 'none' or one of "
                    f'its ClassLabel features ({", ".join(labels) or "it has none"}), got '
                    f'{label_key!r}')
  return image_key, label_key, info[label_key].num_classes, tuple(info[image_key].shape)


def default_image_shape(tfds, name: str) -> Optional[Tuple]:
  """The shape of the image feature a config takes by default ('image', or the only Image
  feature), None where that is ambiguous (the config then names it, dataset.image_key, which
  it can do only after this default is taken) or where the dataset is found only through
  dataset.data_dir."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  try:
    info = _builder(tfds, ml_collections.ConfigDict(dict(name=name, data_dir=''))).info
  except DataError:
    # Not registered, and not prepared in the default data_dir: a dataset prepared elsewhere,
    # which dataset.data_dir will name (a config file cannot see it yet); loading says if not.
    return None
  images = {k: f for k, f in info.features.items() if isinstance(f, tfds.features.Image)}
  image = images.get('image') or (next(iter(images.values())) if len(images) == 1 else None)
  return None if image is None else tuple(image.shape)


def num_classes(config) -> int:
  """The classes of the dataset's label feature (0: unlabelled), from its info alone."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return features(tfds, config)[2]


ARRAY_RECORD = 'array_record'  # TFDS's random-access file format (as_data_source reads it)


def _prepared(tfds, config):
  """The prepared dataset as its directory describes it (features and file formats from its
  dataset_info.json: a registered builder's info keeps no alternative formats from there)."""
  return tfds.builder_from_directory(_builder(tfds, config).data_dir)


def _random_access(tfds, builder) -> bool:
  return tfds.core.file_adapters.FileFormat.ARRAY_RECORD in builder.info.available_file_formats()


def _add_array_record(tfds, config) -> Optional[DataError]:
  """ArrayRecord copies of the prepared TFRecord shards of every split, written beside them
  (each under a temporary name, then renamed) and listed in the dataset's info as an
  alternative format, last: an interrupted copy is made again. TFDS's own converter
  (`tfds convert_format`) needs Apache Beam; this is the same copy, record for record, in
  one process. None, or the reason it could not be made."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  builder = _prepared(tfds, config)
  if _random_access(tfds, builder):
    return None
  info = builder.info
  logging.info('TFDS dataset %r: writing ArrayRecord copies of its shards beside them in %s '
               '(random access for dataset.storage stream; once)', info.full_name,
               builder.data_dir)
  try:
    for split in info.splits.values():
      template, shards = split.filename_template, split.num_shards
      targets = template.replace(filetype_suffix=ARRAY_RECORD).sharded_filepaths(shards)
      for source, target in zip(template.sharded_filepaths(shards), targets):
        partial = target.parent / f'{target.name}.incomplete'
        writer = array_record_module.ArrayRecordWriter(os.fspath(partial), 'group_size:1')
        for record in tf.data.TFRecordDataset(os.fspath(source)).as_numpy_iterator():
          writer.write(record)
        writer.close()
        partial.replace(target)
    info.add_alternative_file_format(ARRAY_RECORD)
    info.write_dataset_info_json(builder.data_dir)
  except Exception as e:  # pylint: disable=broad-except  (file system and TF errors differ)
    return DataError(f'dataset.storage stream reads TFDS datasets in the ArrayRecord format '
                     f'(random access), and the ArrayRecord copy of {config.name!r} could not '
                     f'be written in {builder.data_dir} ({_why(e)}); set dataset.storage to '
                     f"'memory', or make the copy where it can be written (`tfds convert_format "
                     f'--out_file_format=array_record`)')
  return None


def add_random_access(tfds, config) -> None:
  """Makes the prepared dataset readable at random (ArrayRecord), once per data_dir, as
  prepare_tfds prepares it: process 0 first, then any process that still lacks it."""
  first, what = jax.process_index() == 0, f'copying TFDS dataset {config.name!r} to ArrayRecord'
  hosts.agree(_add_array_record(tfds, config) if first else None, what)
  if jax.process_count() > 1:
    hosts.agree(None if first else _add_array_record(tfds, config), what)


def _on_demand(tfds, config, image_key, label_key):
  """(streaming.OnDemand of the split's images, labels [N] or None), read at random from its
  ArrayRecord files; each image decoded (PIL) and fitted when it is indexed."""
  builder = _prepared(tfds, config)
  source = builder.as_data_source(config.split, decoders={image_key: tfds.decode.SkipDecoding()},
                                  file_format=ARRAY_RECORD)
  size, channels, n = config.image_size, config.channels, len(source)
  if not n:
    raise ValueError(f'split {config.split!r} is empty')
  labels = None
  if label_key:
    labels = np.concatenate([[r[label_key] for r in source.__getitems__(range(i, min(i + CHUNK, n)))]
                             for i in range(0, n, CHUNK)]).astype(np.int64)

  def read(rows):
    out = []
    for record in source.__getitems__(rows.tolist()):
      try:
        out.append(image_files.fit_encoded(record[image_key], size, channels))
      except Exception:  # pylint: disable=broad-except  (PIL raises many types)
        out.append(None)
    return out

  name = lambda i: f'{config.name} {config.split} example {i}'
  return streaming.OnDemand(read, n, (size, size, channels), name, groups=labels), labels


def _read_sequential(tfds, config, image_key, label_key, own_shape):
  """(images, labels or None) of the split through tf.data, whole (TFRecord files)."""
  size, channels = config.image_size, config.channels
  keys = [image_key] + ([label_key] if label_key else [])
  # Images to fit come encoded and are decoded (JPEGs at a reduced scale) and fitted on a
  # thread pool, as folders are; a dataset at its own shape comes as TFDS decodes it.
  decoders = None if own_shape else {image_key: tfds.decode.SkipDecoding()}
  dataset = _builder(tfds, config).as_dataset(split=config.split, shuffle_files=False,
                                              decoders=decoders)
  dataset = dataset.map(lambda example: {k: example[k] for k in keys})
  chunks = []
  for chunk in tfds.as_numpy(dataset.batch(CHUNK).prefetch(2)):  # read while fitting
    if not own_shape:
      chunk[image_key] = image_files.fit_encoded_all(list(chunk[image_key]), size, channels)
    chunks.append(chunk)
  if not chunks:
    raise ValueError(f'split {config.split!r} is empty')
  data = {k: np.concatenate([c[k] for c in chunks]) for k in keys}
  return data[image_key], (data[label_key] if label_key else None)


def read(config):
  """(images uint8 [N, S, S, C] or a streaming.OnDemand of them, labels [N] or None, classes)
  of the split, S and C being dataset.image_size and channels; images of another shape are
  cropped and resized.

  dataset.storage (streaming.choose) 'stream' reads the images at random from ArrayRecord
  files, which are made from the TFRecord ones first where the dataset has none. A dataset
  with ArrayRecord files is read from them in memory too (decoded on a thread pool, faster
  than tf.data); one without, through tf.data.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  platforms.keep_tf_off_accelerators()
  image_key, label_key, classes, shape = features(tfds, config)
  prepare_tfds(tfds, config)
  size, channels = config.image_size, config.channels
  try:
    storage = config.storage
    splits = _builder(tfds, config).info.splits
    if splits:  # (none under tfds.testing.mock_data: its data is made up, in memory)
      storage = streaming.choose(storage, splits[config.split].num_examples,
                                 (size, size, channels),
                                 f'TFDS dataset {config.name!r} split {config.split!r}')
    if storage == 'stream':
      add_random_access(tfds, config)
    if splits and _random_access(tfds, _prepared(tfds, config)):
      images, labels = _on_demand(tfds, config, image_key, label_key)
      if storage == 'memory':
        images = streaming.materialise(images)
    else:
      own_shape = tuple(shape) == (size, size, channels)
      images, labels = _read_sequential(tfds, config, image_key, label_key, own_shape)
  except DataError:
    raise
  except Exception as e:  # a damaged or partial preparation
    raise DataError(f'cannot read TFDS dataset {config.name!r} ({_why(e)}); '
                    f'{_TFDS_HINT}') from None
  return images, labels, classes
