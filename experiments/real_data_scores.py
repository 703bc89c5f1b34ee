r"""The scores of real images, as the floor (FID) and ceiling (classifier score) for GAN runs:
the reference split's statistics against another real split, with the same domain classifier.

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
from gan_jax import classifier, evaluation, input_pipeline, scoring  # pylint: disable=g-import-not-at-top

config_flags.DEFINE_config_file('config', None, 'A config naming the dataset and eval fields.')
flags.DEFINE_string('split', 'test', 'The real split scored against eval.reference_split.')
flags.mark_flags_as_required(['config'])
FLAGS = flags.FLAGS


def main(_):
  config = FLAGS.config
  ev = config.eval
  data_config = config.dataset.copy_and_resolve_references()
  data_config.split = FLAGS.split
  data = input_pipeline.load(data_config)
  params, meta = scoring.load_classifier(config, data.image_shape)
  keep = max(ev.kid_subset_size, ev.pr_samples)
  ref_stats, ref_kept, stats_path = scoring.reference_stats(config, params, meta, keep)
  n = min(ev.num_samples, len(data.images))
  probs, features = classifier.predict(params, meta['num_classes'], data.images[:n])
  stats = evaluation.FeatureStats(meta['feature_dim'])
  stats.update(features)
  score, score_std = evaluation.inception_score(probs)
  kid, kid_std = evaluation.kid(ref_kept, features[:keep], ev.kid_subsets, ev.kid_subset_size)
  result = {'real_split': FLAGS.split, 'num_samples': n,
            'reference': {'dataset': config.dataset.name, 'split': ev.reference_split,
                          'count': ref_stats.count, 'stats': stats_path},
            'domain_fid': evaluation.fid(ref_stats, stats), 'classifier_score': score,
            'classifier_score_std': score_std, 'kid': kid, 'kid_std': kid_std,
            **evaluation.precision_recall(ref_kept[:ev.pr_samples], features[:ev.pr_samples])}
  if data.labels is not None:
    result['label_accuracy'] = evaluation.class_accuracy(probs, data.labels[:n])
  print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
