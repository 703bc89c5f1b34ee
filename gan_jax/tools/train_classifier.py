r"""Trains the domain classifier that --mode=eval scores with offline, and reports its test
accuracy. Any data a run trains on: a named dataset, or IDX files, an .npz or a folder of images
at --path, at the run's image size and channels.

  python -m gan_jax.tools.train_classifier --dataset=fashion_mnist \
      --path=/usr/share/datasets/fashion-mnist --out=classifiers/fashion_mnist
  python -m gan_jax.tools.train_classifier --dataset=digits --path=my_photos/ --image_size=32 \
      --channels=3 --out=classifiers/photos

The test accuracy is measured on the source's --test_split where it has one (IDX files with
t10k-* files, TFDS datasets with that split). Where it has none (a folder, an .npz, digits,
IDX files without t10k-*), a fixed share (--held_out) of the training split is held out:
drawn with --seed, per class (the same share of every class), and the classifier trains on the
rest. OUT/held_out.json records the rows held out (indices into the split in the order the
loader reads it: a folder's files sorted by class folder, then path) with the source's path,
split, image count and shape. Writes OUT/params (Orbax) and OUT/meta.json; prints one JSON
line (test accuracy, examples, seconds). A bad flag or source: one line, exit 2.
"""

import json
import sys
import time
from typing import Any, Dict, Tuple

from absl import flags
import numpy as np

from configs import common
from gan_jax import classifier, cli, files, input_pipeline, tfds_data
from gan_jax.errors import ConfigError, DataError

flags.DEFINE_string('dataset', 'fashion_mnist', 'Dataset name (input_pipeline.DATASETS, or '
                    'tfds:NAME); with --path, it sets only the default image size (as '
                    'config.dataset.name).')
flags.DEFINE_string('path', '', 'IDX directory, .npz or folder of images, local or gs:// (as '
                    'config.dataset.path).')
flags.DEFINE_string('data_dir', '', 'Prepared TFDS directory (as config.dataset.data_dir).')
flags.DEFINE_enum('float_range', 'unit', ['unit', 'signed'],
                  'Float .npz images: [0, 1] or [-1, 1] (as config.dataset.float_range).')
flags.DEFINE_integer('image_size', 0, 'Folders, TFDS, digits: the side images are fitted to, as '
                     'the run\'s config.dataset.image_size (0: the dataset\'s default).',
                     lower_bound=0)
flags.DEFINE_integer('channels', 0, 'Folders, TFDS, digits: 1 or 3, as the run\'s '
                     'config.dataset.channels (0: the data\'s own, as a run takes them).')
flags.DEFINE_string('split', 'train', 'The split to train on (as config.dataset.split).')
flags.DEFINE_string('test_split', 'test', 'The split to test on, where the source has it; '
                    'else (or when empty) --held_out of --split is held out.')
flags.DEFINE_float('held_out', 0.1, 'Share of each class held out for the test where there is '
                   'no --test_split.')
flags.DEFINE_string('out', None, 'Output directory (local or gs://).')
flags.DEFINE_integer('epochs', 3, 'Training epochs.', lower_bound=1)
flags.DEFINE_integer('batch_size', 128, 'Training batch size.', lower_bound=1)
flags.DEFINE_integer('seed', 0, 'Seed of the parameters, the data order and the held-out draw.')
flags.mark_flags_as_required(['out'])
FLAGS = flags.FLAGS

HELD_OUT_FILE = 'held_out.json'


class Rows:
  """The images of `rows` of `images` (numpy, or streamed ones still decoded when indexed), as
  an array [len(rows), H, W, C] that classifier.train and predict index."""

  def __init__(self, images, rows: np.ndarray):
    self.images, self.rows = images, rows
    self.shape = (len(rows), *images.shape[1:])

  def __len__(self) -> int:
    return len(self.rows)

  def __getitem__(self, key) -> np.ndarray:
    return np.asarray(self.images[self.rows[key]])


def dataset_config(split: str):
  """The `dataset` ConfigDict the flags describe (a run's, with the flags' fields)."""
  config = common.base_config('wgan_gp', FLAGS.dataset).dataset
  config.path, config.data_dir, config.split = FLAGS.path, FLAGS.data_dir, split
  config.float_range = FLAGS.float_range
  config.image_size = FLAGS.image_size or config.image_size
  config.channels = FLAGS.channels or config.channels
  return config


def has_split(config, split: str) -> bool:
  """Whether the source `config` names holds `split` (after `config.split` was loaded: a TFDS
  dataset is prepared by then)."""
  if not split:
    return False
  try:
    input_pipeline.check_split(config, split)
  except DataError:
    return False  # a folder, an .npz, digits: one split
  if config.path:  # IDX files: t10k-* may be missing
    try:
      input_pipeline.spec(dataset_config(split))
    except DataError:
      return False
    return True
  return tfds_data.has_split(config, split)


def source(config, data: input_pipeline.Dataset) -> Dict[str, Any]:
  """What the data is, for meta.json and held_out.json."""
  where = ({'path': files.absolute(config.path)} if config.path else
           {'dataset': config.name, **({'data_dir': files.absolute(config.data_dir)}
                                       if config.data_dir else {})})
  names = {'class_names': list(data.class_names)} if data.class_names else {}
  return {**where, 'split': config.split, 'images': len(data.images),
          'image_shape': list(data.image_shape), **names}


def split_data(config, data: input_pipeline.Dataset
               ) -> Tuple[Tuple[Any, np.ndarray], Tuple[Any, np.ndarray], Dict[str, Any]]:
  """((train images, labels), (test images, labels), the test's description for meta.json);
  the description of a held-out test also has the rows ('rows', for held_out.json)."""
  if has_split(config, FLAGS.test_split):
    test = input_pipeline.load(dataset_config(FLAGS.test_split))
    return ((data.images, data.labels), (test.images, test.labels),
            {'split': FLAGS.test_split, 'images': len(test.images)})
  rows = classifier.held_out_rows(data.labels, len(data.images), FLAGS.held_out, FLAGS.seed)
  train = np.setdiff1d(np.arange(len(data.images)), rows)
  held = {'held_out_rows': HELD_OUT_FILE, 'fraction': FLAGS.held_out, 'seed': FLAGS.seed,
          'stratified_by': 'label', 'images': len(rows),
          'per_class': np.bincount(data.labels[rows], minlength=data.num_classes).tolist()}
  return ((Rows(data.images, train), data.labels[train]),
          (Rows(data.images, rows)[:], data.labels[rows]), {**held, 'rows': rows.tolist()})


def main() -> None:
  start = time.time()
  if not 0 < FLAGS.held_out < 1:
    raise ConfigError(f'--held_out must be a share in (0, 1), got {FLAGS.held_out}')
  config = dataset_config(FLAGS.split)
  data = input_pipeline.load(config)
  if data.labels is None:
    raise DataError(f'{FLAGS.path or FLAGS.dataset}: the classifier needs labelled images (a '
                    f'folder: one subfolder per class)')
  (train_images, train_labels), (test_images, test_labels), test = split_data(config, data)
  if len(train_images) < FLAGS.batch_size:
    raise ConfigError(f'--batch_size {FLAGS.batch_size} is larger than the {len(train_images)} '
                      f'training images: set a smaller one')
  params = classifier.train(train_images, train_labels, data.num_classes, FLAGS.epochs,
                            batch_size=FLAGS.batch_size, seed=FLAGS.seed,
                            log=lambda m: print(m, file=sys.stderr))
  probs, _ = classifier.predict(params, data.num_classes, test_images)
  accuracy = float(np.mean(probs.argmax(1) == test_labels))
  rows = test.pop('rows', None)
  meta = {'dataset': FLAGS.dataset, 'num_classes': data.num_classes,
          'image_shape': list(data.image_shape), 'feature_dim': classifier.FEATURE_DIM,
          'test_accuracy': accuracy, 'train_examples': len(train_images),
          'test_examples': len(test_labels), 'epochs': FLAGS.epochs,
          'source': source(config, data), 'test': test}
  classifier.save(FLAGS.out, params, meta)
  held_out_file = files.path(FLAGS.out) / HELD_OUT_FILE
  if rows is None:
    held_out_file.unlink(missing_ok=True)   # an earlier classifier's, in the same directory
  else:
    held = {k: v for k, v in test.items() if k != 'held_out_rows'}
    files.write_text(held_out_file, json.dumps({'source': meta['source'], **held, 'rows': rows}))
  print(json.dumps({**meta, 'out': FLAGS.out, 'seconds': round(time.time() - start, 1)}))


if __name__ == '__main__':
  cli.run_tool(main)
