"""TFDS image datasets by name: preparation on one process, the image and label features from
the dataset's info (or the config), and the images cropped and resized as folders are
(image_files.fit) when they are not (image_size, image_size, channels) already.

A name in input_pipeline.DATASETS, or any TFDS name after the prefix 'tfds:'
('tfds:celeb_a_hq/128', 'tfds:oxford_flowers102'), is read here.
"""

import difflib
import os
import uuid
from typing import Callable, Optional, Tuple

from absl import logging
import jax
import numpy as np

from gan_jax import files, hosts, image_files, platforms, streaming
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


def _once_per_data_dir(make: Callable[[], Optional[DataError]], what: str) -> None:
  """make() once per data_dir: with several processes, process 0 first while the others wait
  (a shared data_dir, gs:// or NFS, is written once), then any process that still needs it
  (its own local data_dir); `make` returns None or the DataError, raised on every process."""
  first = jax.process_index() == 0
  hosts.agree(make() if first else None, what)
  if jax.process_count() > 1:
    hosts.agree(None if first else make(), what)


def prepare_tfds(tfds, config) -> None:
  """Downloads and prepares the TFDS dataset, once per data_dir (_once_per_data_dir)."""
  name = tfds_name(config.name)
  _once_per_data_dir(lambda: _prepare(tfds, config, name), f'preparing TFDS dataset {name!r}')


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


def has_split(config, split: str) -> bool:
  """Whether the TFDS dataset has a split named `split`, from its info alone."""
  platforms.keep_tf_off_accelerators()
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return split in _builder(tfds, config).info.splits


def num_classes(config) -> int:
  """The classes of the dataset's label feature (0: unlabelled), from its info alone."""
  platforms.keep_tf_off_accelerators()
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return features(tfds, config)[2]


ARRAY_RECORD = 'array_record'  # TFDS's random-access file format (as_data_source reads it)


def _prepared(tfds, config):
  """The prepared dataset as its directory describes it (features and file formats from its
  dataset_info.json: a registered builder's info keeps no alternative formats from there)."""
  return tfds.builder_from_directory(_builder(tfds, config).data_dir)


def _random_access(tfds, builder) -> bool:
  return tfds.core.file_adapters.FileFormat.ARRAY_RECORD in builder.info.available_file_formats()


def _local(path) -> bool:
  return '://' not in str(path)


def _add_array_record(tfds, config) -> Optional[DataError]:
  """ArrayRecord copies of the prepared TFRecord shards of every split, written beside them
  and listed in the dataset's info as an alternative format. Each file is written under a
  name of this process's own (two runs sharing a data_dir may copy at once) and renamed when
  complete, the info last: an interrupted copy is made again. TFDS's own converter
  (`tfds convert_format`) needs Apache Beam; this is the same copy, record for record, in
  one process. None, or the reason it could not be made."""
  data_dir, partial = '?', None
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
    builder = _prepared(tfds, config)
    data_dir = files.path(builder.data_dir)
    if _random_access(tfds, builder):
      return None
    info = builder.info
    logging.info('TFDS dataset %r: writing ArrayRecord copies of its shards beside them in %s '
                 '(random access for dataset.storage stream; once)', info.full_name, data_dir)
    mine = f'{os.getpid()}.{uuid.uuid4().hex[:8]}.incomplete'
    for split in info.splits.values():
      template, shards = split.filename_template, split.num_shards
      targets = template.replace(filetype_suffix=ARRAY_RECORD).sharded_filepaths(shards)
      for source, target in zip(template.sharded_filepaths(shards), targets):
        partial = target.parent / f'{target.name}.{mine}'
        writer = array_record_module.ArrayRecordWriter(os.fspath(partial), 'group_size:1')
        for record in tf.data.TFRecordDataset(os.fspath(source)).as_numpy_iterator():
          writer.write(record)
        writer.close()
        partial.replace(target)
    info.add_alternative_file_format(ARRAY_RECORD)
    # dataset_info.json whole or not at all: written beside it, then renamed over it.
    staging = data_dir / f'.dataset_info.{mine}'
    staging.mkdir()
    info.write_dataset_info_json(staging)
    (staging / 'dataset_info.json').replace(data_dir / 'dataset_info.json')
    staging.rmdir()
  except Exception as e:  # pylint: disable=broad-except  (file system and TF errors differ)
    if partial is not None and partial.exists():
      partial.unlink()
    return DataError(f'dataset.storage stream reads TFDS datasets in the ArrayRecord format '
                     f'(random access), and the ArrayRecord copy of {config.name!r} could not '
                     f'be written in {data_dir} ({_why(e)}); set dataset.storage to '
                     f"'memory', or make the copy where it can be written (`tfds convert_format "
                     f'--out_file_format=array_record`)')
  return None


def add_random_access(tfds, config) -> None:
  """Makes the prepared dataset readable at random (ArrayRecord), once per data_dir."""
  _once_per_data_dir(lambda: _add_array_record(tfds, config),
                     f'copying TFDS dataset {config.name!r} to ArrayRecord')


def _on_demand(tfds, builder, config, image_key, label_key):
  """(streaming.OnDemand of the split's images, labels [N] or None), read at random from the
  ArrayRecord files of `builder` (_prepared); each image decoded (PIL) and fitted when it is
  indexed."""
  source = builder.as_data_source(config.split, decoders={image_key: tfds.decode.SkipDecoding()},
                                  file_format=ARRAY_RECORD)
  size, channels, n = config.image_size, config.channels, len(source)
  if not n:
    raise ValueError(f'split {config.split!r} is empty')
  name = lambda i: f'{config.name} {config.split} example {i}'

  def records(rows):
    try:
      return source.__getitems__([int(i) for i in rows])
    except Exception as e:  # pylint: disable=broad-except  (a storage error, a damaged file)
      raise DataError(f'cannot read {name(rows[0])} (and {len(rows) - 1} more) from '
                      f'{builder.data_dir} ({_why(e)})') from None

  labels = None
  if label_key:  # one pass over the records (their images are not decoded)
    labels = np.array([r[label_key] for i in range(0, n, CHUNK)
                       for r in records(range(i, min(i + CHUNK, n)))], np.int64)

  def read(rows):
    out = []
    for record in records(rows):
      try:
        out.append(image_files.fit_encoded(record[image_key], size, channels))
      except Exception:  # pylint: disable=broad-except  (PIL raises many types)
        out.append(None)
    return out

  return streaming.OnDemand(read, n, (size, size, channels), name, groups=labels), labels


def _read_sequential(tfds, config, image_key, label_key):
  """(images, labels or None) of the split through tf.data, whole (TFRecord files). The images
  come encoded and are decoded (JPEGs at a reduced scale) and fitted on a thread pool, as
  folders and streamed TFDS data are: the same pixels whichever way they are read."""
  size, channels = config.image_size, config.channels
  keys = [image_key] + ([label_key] if label_key else [])
  dataset = _builder(tfds, config).as_dataset(split=config.split, shuffle_files=False,
                                              decoders={image_key: tfds.decode.SkipDecoding()})
  dataset = dataset.map(lambda example: {k: example[k] for k in keys})
  chunks = []
  for chunk in tfds.as_numpy(dataset.batch(CHUNK).prefetch(2)):  # read while fitting
    chunk[image_key] = image_files.fit_encoded_all(list(chunk[image_key]), size, channels)
    chunks.append(chunk)
  if not chunks:
    raise ValueError(f'split {config.split!r} is empty')
  data = {k: np.concatenate([c[k] for c in chunks]) for k in keys}
  return data[image_key], (data[label_key] if label_key else None)


def _storage(config, splits) -> str:
  """dataset.storage for this split (streaming.choose), the same on every process: where
  'auto' chose differently (hosts whose memory differs), all stream."""
  storage = config.storage
  if splits:  # (none under tfds.testing.mock_data: its data is made up, in memory)
    storage = streaming.choose(storage, splits[config.split].num_examples,
                               (config.image_size, config.image_size, config.channels),
                               f'TFDS dataset {config.name!r} split {config.split!r}')
  if jax.process_count() > 1:
    streams = hosts.agree(None, 'choosing dataset.storage', [storage == 'stream'])
    if streams.any() and storage != 'stream':
      logging.info('dataset.storage: another process streams, so this one does too')
      storage = 'stream'
  return storage


def read(config):
  """(images uint8 [N, S, S, C] or a streaming.OnDemand of them, labels [N] or None, classes)
  of the split, S and C being dataset.image_size and channels; images of another shape are
  cropped and resized, all decoded by PIL.

  dataset.storage (streaming.choose) 'stream' reads the images at random from ArrayRecord
  files, made from the TFRecord ones first where the dataset has none; that needs a local
  data_dir. 'memory' reads the TFRecord files through tf.data (the ArrayRecord ones where
  the dataset has no others).
  """
  platforms.keep_tf_off_accelerators()
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  image_key, label_key, classes, _ = features(tfds, config)
  prepare_tfds(tfds, config)
  try:
    builder = _builder(tfds, config)
    storage = _storage(config, builder.info.splits)
    if storage == 'stream':
      if not _local(builder.data_dir):
        raise DataError(f"dataset.storage 'stream' reads TFDS datasets from a local data_dir "
                        f"(ArrayRecord files); {builder.data_dir} is not: copy the dataset to "
                        f"a local disk, or set dataset.storage to 'memory'")
      add_random_access(tfds, config)
    prepared = _prepared(tfds, config) if builder.info.splits else None
    formats = prepared.info.available_file_formats() if prepared else ()
    tfrecord = tfds.core.file_adapters.FileFormat.TFRECORD
    if storage == 'stream' or (formats and tfrecord not in formats):
      images, labels = _on_demand(tfds, prepared, config, image_key, label_key)
      if storage != 'stream':
        images = streaming.materialise(images)
    else:
      images, labels = _read_sequential(tfds, config, image_key, label_key)
  except DataError:
    raise
  except Exception as e:  # a damaged or partial preparation
    raise DataError(f'cannot read TFDS dataset {config.name!r} ({_why(e)}); '
                    f'{_TFDS_HINT}') from None
  return images, labels, classes
