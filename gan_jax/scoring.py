"""Scores a run's checkpoint: samples and reference data through a feature extractor, then the
metrics of gan_jax/evaluation.py.

The extractor here is the project's domain classifier (gan_jax/classifier.py): its penultimate
layer gives the domain FID, KID and precision/recall features, its class probabilities the
classifier score (the Inception Score formula) and ACGAN's label accuracy. Reference statistics
are computed once per (dataset, split, classifier) and cached as an npz in `eval.stats_dir`.
"""

import hashlib
import os
from typing import Any, Dict, Optional

import numpy as np

from gan_jax import classifier, evaluation, input_pipeline, train
from gan_jax.errors import ConfigError


def _classifier_id(directory: str) -> str:
  with open(os.path.join(directory, 'meta.json'), 'rb') as f:
    return hashlib.sha1(f.read()).hexdigest()[:10]


def _keep_first(kept: list, features, limit: int) -> None:
  """Appends to `kept` the rows of `features` that keep it within `limit` rows in all (KID and
  precision/recall need features themselves, not only their statistics)."""
  kept.append(features[:max(0, limit - sum(len(k) for k in kept))])


def reference_stats(config, clf_params, clf_meta, max_keep: int):
  """(FeatureStats, kept features [<= max_keep, D], stats file) of the reference split."""
  ev = config.eval
  name = f'{config.dataset.name}_{ev.reference_split}_{_classifier_id(ev.classifier)}.npz'
  stats_dir = ev.stats_dir or os.path.join(os.path.abspath(ev.classifier), 'stats')
  path = os.path.join(stats_dir, name)
  if os.path.exists(path):
    with np.load(path) as f:
      stats = evaluation.FeatureStats(f['mu'].shape[0])
      stats.count, stats.sum, stats.outer = int(f['count']), f['sum'], f['outer']
      return stats, f['kept'], path
  data_config = config.dataset.copy_and_resolve_references()
  with data_config.unlocked():
    data_config.split = ev.reference_split
  data = input_pipeline.load(data_config)
  stats = evaluation.FeatureStats(clf_meta['feature_dim'])
  kept = []
  for start in range(0, len(data.images), 1000):
    _, features = classifier.predict(clf_params, clf_meta['num_classes'],
                                     data.images[start:start + 1000])
    stats.update(features)
    _keep_first(kept, features, max_keep)
  kept = np.concatenate(kept)
  os.makedirs(stats_dir, exist_ok=True)
  tmp = path + '.tmp.npz'
  np.savez(tmp, mu=stats.mean, sigma=stats.cov, count=stats.count, sum=stats.sum,
           outer=stats.outer, kept=kept, dataset=config.dataset.name, split=ev.reference_split)
  os.replace(tmp, path)
  return stats, kept, path


def classify_unit(clf_params, clf_meta, images):
  """(probs, features) of images in [0, 1] (what the generator's samples are given as); the
  classifier takes [-1, 1], as training data reaches the models."""
  return classifier.predict(clf_params, clf_meta['num_classes'], np.asarray(images) * 2.0 - 1.0)


def score_state(config, run: train.Run, state, clf_params, clf_meta) -> Dict[str, Any]:
  """Every metric for the generator in `state` (sampled as in --mode=sample, another seed)."""
  ev = config.eval
  keep = max(ev.kid_subset_size, ev.pr_samples)
  real_stats, real_kept, stats_path = reference_stats(config, clf_params, clf_meta, keep)
  fake_stats = evaluation.FeatureStats(clf_meta['feature_dim'])
  scores = evaluation.ScoreStats(ev.num_samples, clf_meta['num_classes'])
  kept, correct = [], 0
  for images, labels in train.generate_batches(run, state, ev.num_samples, config.seed + 3):
    probs, features = classify_unit(clf_params, clf_meta, images)
    fake_stats.update(features)
    scores.update(probs)
    _keep_first(kept, features, keep)
    if labels is not None:
      correct += int(np.sum(probs.argmax(1) == labels))
  kept = np.concatenate(kept)
  result = {
      'step': int(state.step), 'num_samples': ev.num_samples,
      'reference': {'dataset': config.dataset.name, 'split': ev.reference_split,
                    'count': real_stats.count, 'stats': stats_path},
      'extractor': {'kind': 'domain classifier', 'path': os.path.abspath(ev.classifier),
                    'test_accuracy': clf_meta['test_accuracy']},
      'domain_fid': evaluation.fid(real_stats, fake_stats),
  }
  result['classifier_score'], result['classifier_score_std'] = scores.result()
  result['kid'], result['kid_std'] = evaluation.kid(
      real_kept, kept, ev.kid_subsets, ev.kid_subset_size, seed=config.seed)
  result.update(evaluation.precision_recall(real_kept[:ev.pr_samples], kept[:ev.pr_samples]))
  if run.gan.num_classes:
    result['acgan_label_accuracy'] = correct / ev.num_samples
  return result


def load_classifier(config, image_shape):
  """The domain classifier named by config.eval.classifier, checked against the data."""
  if not config.eval.classifier:
    raise ConfigError('set --config.eval.classifier to a directory written by '
                      'experiments/train_classifier.py')
  params, meta = classifier.load(config.eval.classifier)
  if tuple(meta['image_shape']) != tuple(image_shape):
    raise ConfigError(f'the classifier in {config.eval.classifier} takes images of shape '
                      f'{tuple(meta["image_shape"])}, the data has {tuple(image_shape)}')
  if meta['dataset'] != config.dataset.name:
    raise ConfigError(f'the classifier in {config.eval.classifier} was trained on '
                      f'{meta["dataset"]}, the run uses {config.dataset.name}')
  return params, meta


def evaluate(config, workdir: str, step: Optional[int] = None,
             best: bool = False) -> Dict[str, Any]:
  """--mode=eval: scores the checkpoint at `step` (default: latest; `best`: the best one)."""
  if config.eval.num_samples < 10:
    raise ConfigError(f'eval.num_samples must be >= 10, got {config.eval.num_samples}')
  run, state = train.restore_for_use(config, workdir, step, best)
  clf_params, clf_meta = load_classifier(config, run.data.image_shape)
  return score_state(config, run, state, clf_params, clf_meta)
