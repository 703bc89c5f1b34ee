r"""The scores of real images, as the floor (FID) and ceiling (classifier score) for GAN runs:
the reference split's statistics against another real split, with the same extractors
(domain classifier and/or Inception) that --mode=eval uses.

  python experiments/real_data_scores.py --config=configs/dcgan.py:fashion_mnist \
      --config.dataset.path=/usr/share/datasets/fashion-mnist \
      --config.eval.classifier=classifiers/fashion_mnist --split=test

Prints one JSON line in the form --mode=eval prints.
"""

import json
import os
import sys

from absl import app, flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gan_jax import evaluator, input_pipeline  # pylint: disable=g-import-not-at-top

config_flags.DEFINE_config_file('config', None, 'A config naming the dataset and eval fields.')
flags.DEFINE_string('split', 'test', 'The real split scored against eval.reference_split.')
flags.mark_flags_as_required(['config'])
FLAGS = flags.FLAGS


def main(_):
  config = FLAGS.config
  data_config = config.dataset.copy_and_resolve_references()
  data_config.split = FLAGS.split
  data = input_pipeline.load(data_config)
  scorer = evaluator.Evaluator(config, data.image_shape)
  n = min(config.eval.num_samples, len(data.images))
  labels = None if data.labels is None else data.labels[:n]
  batches = ((data.images[s:s + 1000], None if labels is None else labels[s:s + 1000])
             for s in range(0, n, 1000))
  result = scorer.run(batches, n, label_key='label_accuracy')
  print(json.dumps({'real_split': FLAGS.split, **result}))


if __name__ == '__main__':
  app.run(main)
