r"""Trains the domain classifier that evaluation uses offline, and reports its test accuracy.

  python -m gan_jax.tools.train_classifier --dataset=fashion_mnist \
      --path=/usr/share/datasets/fashion-mnist --out=classifiers/fashion_mnist
  python -m gan_jax.tools.train_classifier --dataset=digits --out=classifiers/digits --epochs=20

Prints one JSON line (test accuracy, examples, seconds) and writes OUT/params (Orbax) and
OUT/meta.json. Datasets without a test split (digits) hold out every 5th example.
"""

import json
import sys
import time

from absl import flags
import ml_collections
import numpy as np

from configs import common
from gan_jax import classifier, cli, input_pipeline
from gan_jax.errors import DataError

flags.DEFINE_string('dataset', 'fashion_mnist', 'Dataset name (input_pipeline.DATASETS).')
flags.DEFINE_string('path', '', 'IDX directory or .npz, local or gs:// (as config.dataset.path).')
flags.DEFINE_string('data_dir', '', 'Prepared TFDS directory (as config.dataset.data_dir).')
flags.DEFINE_enum('float_range', 'unit', ['unit', 'signed'],
                  'Float .npz images: [0, 1] or [-1, 1] (as config.dataset.float_range).')
flags.DEFINE_string('out', None, 'Output directory (local or gs://).')
flags.DEFINE_integer('epochs', 3, 'Training epochs.')
flags.DEFINE_integer('seed', 0, 'Seed.')
flags.mark_flags_as_required(['out'])
FLAGS = flags.FLAGS


def _load(split: str):
  config = common.base_config('wgan_gp', FLAGS.dataset).dataset
  with config.unlocked() if isinstance(config, ml_collections.ConfigDict) else config:
    config.path, config.data_dir, config.split = FLAGS.path, FLAGS.data_dir, split
    config.float_range = FLAGS.float_range
  return input_pipeline.load(config)


def main() -> None:
  start = time.time()
  train = _load('train')
  if FLAGS.dataset == 'digits':  # no test split: hold out every 5th example
    held = np.arange(len(train.images)) % 5 == 0
    test = input_pipeline.Dataset(train.images[held], train.labels[held], train.num_classes)
    train = input_pipeline.Dataset(train.images[~held], train.labels[~held],
                                   train.num_classes)
  else:
    test = _load('test')
  if train.labels is None:
    raise DataError('the classifier needs labelled data')
  params = classifier.train(train.images, train.labels, train.num_classes, FLAGS.epochs,
                            seed=FLAGS.seed, log=lambda m: print(m, file=sys.stderr))
  probs, _ = classifier.predict(params, train.num_classes, test.images)
  accuracy = float(np.mean(probs.argmax(1) == test.labels))
  meta = {'dataset': FLAGS.dataset, 'num_classes': train.num_classes,
          'image_shape': list(train.image_shape), 'feature_dim': classifier.FEATURE_DIM,
          'test_accuracy': accuracy, 'train_examples': len(train.images),
          'test_examples': len(test.images), 'epochs': FLAGS.epochs}
  classifier.save(FLAGS.out, params, meta)
  print(json.dumps({**meta, 'out': FLAGS.out, 'seconds': round(time.time() - start, 1)}))


if __name__ == '__main__':
  cli.run_tool(main)
