"""Scores a run's checkpoint: samples and reference data through feature extractors, then the
metrics of gan_jax/feature_metrics.py.

Two extractors, either or both:
  * InceptionV3 (gan_jax/inception.py, `eval.inception_weights`): the standard `fid`,
    `inception_score`, `kid`, `precision` and `recall`, comparable with published numbers;
  * the project's domain classifier (gan_jax/classifier.py, `eval.classifier`): its penultimate
    layer gives `domain_fid`, `domain_kid`, `domain_precision` and `domain_recall`, its class
    probabilities the `classifier_score` (the Inception Score formula) and ACGAN's
    `acgan_label_accuracy`. Works offline, where no Inception weights exist.
Reference statistics are computed once per (dataset, split, count, extractor) and cached as an
npz in `eval.stats_dir` (default: beside the extractor's weights).
"""

import dataclasses
import hashlib
import os
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from gan_jax import checkpoints, classifier, feature_metrics, inception, input_pipeline, train
from gan_jax.errors import ConfigError

# Metric names per extractor kind: FID, the Inception Score formula, KID, precision, recall.
NAMES = {
    'inception': dict(fid='fid', score='inception_score', kid='kid', precision='precision',
                      recall='recall'),
    'domain': dict(fid='domain_fid', score='classifier_score', kid='domain_kid',
                   precision='domain_precision', recall='domain_recall'),
}


@dataclasses.dataclass(frozen=True)
class Extractor:
  """A feature network, and what its scores are reported with."""
  kind: str                 # a key of NAMES
  predict: Callable         # images in [-1, 1] (or uint8) -> (probs [N, K], features [N, D])
  feature_dim: int
  num_classes: int
  cache_key: str            # content hash of the weights: names the cached reference statistics
  stats_dir: str            # default directory of that cache
  info: Dict[str, Any]      # reported with every score


def _sha1(path: str) -> str:
  with open(path, 'rb') as f:
    return hashlib.sha1(f.read()).hexdigest()[:10]


def domain_extractor(config, image_shape) -> Extractor:
  """The domain classifier named by config.eval.classifier, checked against the data."""
  directory = config.eval.classifier
  params, meta = classifier.load(directory)
  if tuple(meta['image_shape']) != tuple(image_shape):
    raise ConfigError(f'the classifier in {directory} takes images of shape '
                      f'{tuple(meta["image_shape"])}, the data has {tuple(image_shape)}')
  if meta['dataset'] != config.dataset.name:
    raise ConfigError(f'the classifier in {directory} was trained on '
                      f'{meta["dataset"]}, the run uses {config.dataset.name}')
  return Extractor(
      'domain', lambda images: classifier.predict(params, meta['num_classes'], images),
      meta['feature_dim'], meta['num_classes'],
      _sha1(os.path.join(directory, 'meta.json')),
      os.path.join(os.path.abspath(directory), 'stats'),
      {'path': os.path.abspath(directory), 'test_accuracy': meta['test_accuracy']})


def _unit(images):
  """uint8 [0, 255] or float [-1, 1] -> float32 [0, 1] (the range pytorch-fid's network takes)."""
  images = np.asarray(images)
  if images.dtype == np.uint8:
    return images.astype(np.float32) / 255.0
  return (images.astype(np.float32) + 1.0) / 2.0


def inception_extractor(config, image_shape) -> Extractor:
  """InceptionV3 with the weights file config.eval.inception_weights."""
  if image_shape[-1] not in (1, 3):
    raise ConfigError(f'Inception takes 1- or 3-channel images, the data has {image_shape}')
  path = config.eval.inception_weights
  variables, digest = inception.load(path)
  return Extractor(
      'inception', lambda images: inception.predict(variables, _unit(images)),
      inception.FEATURE_DIM, inception.NUM_CLASSES, digest,
      os.path.join(os.path.dirname(os.path.abspath(path)), 'stats'),
      {'path': os.path.abspath(path), 'resize': f'bilinear to {inception.SIZE}x{inception.SIZE}'})


def load_extractors(config, image_shape) -> List[Extractor]:
  """The extractors the eval config names: Inception first, then the domain classifier."""
  ev = config.eval
  if not ev.inception_weights and not ev.classifier:
    raise ConfigError('set --config.eval.classifier to a directory written by '
                      'experiments/train_classifier.py, or --config.eval.inception_weights to '
                      'an .npz written by experiments/convert_inception.py')
  out = []
  if ev.inception_weights:
    out.append(inception_extractor(config, image_shape))
  if ev.classifier:
    out.append(domain_extractor(config, image_shape))
  metric = checkpoints.best_metric(ev)
  produced = {n for e in out for n in NAMES[e.kind].values()}
  produced |= {'acgan_label_accuracy'} if ev.classifier else set()
  if metric not in produced:
    raise ConfigError(f'eval.best_metric {metric!r} is not computed by the configured '
                      f'extractors; choose one of {", ".join(sorted(produced))}')
  return out


class Accumulator:
  """Streams one side's (probs, features) into FID statistics, Inception Score sums (when the
  `total` sample count is given), and the first `keep` feature rows (KID and precision/recall
  need the features themselves)."""

  def __init__(self, ext: Extractor, total: Optional[int], keep: int):
    self.stats = feature_metrics.FeatureStats(ext.feature_dim)
    self.scores = None if total is None else feature_metrics.ScoreStats(total, ext.num_classes)
    self.keep, self._kept = keep, []

  def update(self, probs, features) -> None:
    self.stats.update(features)
    if self.scores is not None:
      self.scores.update(probs)
    self._kept.append(features[:max(0, self.keep - sum(len(k) for k in self._kept))])

  @property
  def kept(self) -> np.ndarray:
    return np.concatenate(self._kept)


def reference_stats(config, ext: Extractor, keep: int):
  """(FeatureStats, kept features [<= keep, D], cache path) of the reference split."""
  ev = config.eval
  count = f'_n{ev.reference_samples}' if ev.reference_samples else ''
  name = f'{config.dataset.name}_{ev.reference_split}{count}_{ext.kind}_{ext.cache_key}.npz'
  path = os.path.join(ev.stats_dir or ext.stats_dir, name)
  if os.path.exists(path):
    with np.load(path) as f:
      stats = feature_metrics.FeatureStats(f['mu'].shape[0])
      stats.count, stats.sum, stats.outer = int(f['count']), f['sum'], f['outer']
      if len(f['kept']) >= min(keep, stats.count):
        return stats, f['kept'][:keep], path
  data_config = config.dataset.copy_and_resolve_references()
  with data_config.unlocked():
    data_config.split = ev.reference_split
  images = input_pipeline.load(data_config).images
  if ev.reference_samples:
    images = images[:ev.reference_samples]
  acc = Accumulator(ext, None, keep)
  for start in range(0, len(images), 1000):
    acc.update(*ext.predict(images[start:start + 1000]))
  stats, kept = acc.stats, acc.kept
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + '.tmp.npz'
  stats.save(tmp, sum=stats.sum, outer=stats.outer, kept=kept, dataset=config.dataset.name,
             split=ev.reference_split)
  os.replace(tmp, path)
  return stats, kept, path


def compare(ext: Extractor, ev, real_stats, real_kept, fake: Accumulator,
            seed: int) -> Dict[str, float]:
  """The extractor's named metrics of `fake` against the reference."""
  names = NAMES[ext.kind]
  out = {names['fid']: feature_metrics.fid(real_stats, fake.stats)}
  out[names['score']], out[names['score'] + '_std'] = fake.scores.result()
  out[names['kid']], out[names['kid'] + '_std'] = feature_metrics.kid(
      real_kept, fake.kept, ev.kid_subsets, ev.kid_subset_size, seed=seed)
  pr = feature_metrics.precision_recall(real_kept[:ev.pr_samples], fake.kept[:ev.pr_samples])
  out[names['precision']], out[names['recall']] = pr['precision'], pr['recall']
  return out


def score_images(config, extractors: List[Extractor], batches, total: int,
                 label_key: str = 'acgan_label_accuracy') -> Dict[str, Any]:
  """Every metric of `total` images from `batches` ((images in [-1, 1] or uint8, labels or
  None) pairs) against the reference split; labels are checked by the domain classifier."""
  ev = config.eval
  keep = max(ev.kid_subset_size, ev.pr_samples)
  refs = [reference_stats(config, ext, keep) for ext in extractors]
  accs = [Accumulator(ext, total, keep) for ext in extractors]
  correct, labelled = 0, False
  for images, labels in batches:
    for ext, acc in zip(extractors, accs):
      probs, features = ext.predict(images)
      acc.update(probs, features)
      if labels is not None and ext.kind == 'domain':
        correct, labelled = correct + int(np.sum(probs.argmax(1) == labels)), True
  result = {
      'num_samples': total,
      'reference': {'dataset': config.dataset.name, 'split': ev.reference_split,
                    'count': refs[0][0].count},
      'extractors': {ext.kind: {**ext.info, 'stats': path}
                     for ext, (_, _, path) in zip(extractors, refs)},
  }
  for ext, (real_stats, real_kept, _), acc in zip(extractors, refs, accs):
    result.update(compare(ext, ev, real_stats, real_kept, acc, config.seed))
  if labelled:
    result[label_key] = correct / total
  return result


def score_state(config, run: train.Run, state, extractors: List[Extractor]) -> Dict[str, Any]:
  """Every metric for the generator in `state` (sampled as in --mode=sample, another seed; ACGAN's
  labels interleaved, so that every IS split and the features kept for KID and precision/recall
  cover all classes)."""
  batches = ((images * 2.0 - 1.0, labels) for images, labels in
             train.generate_batches(run, state, config.eval.num_samples, config.seed + 3,
                                    interleaved=True))
  return {'step': int(state.step),
          **score_images(config, extractors, batches, config.eval.num_samples)}


def evaluate(config, workdir: str, step: Optional[int] = None,
             best: bool = False) -> Dict[str, Any]:
  """--mode=eval: scores the checkpoint at `step` (default: latest; `best`: the best one)."""
  if config.eval.num_samples < 10:
    raise ConfigError(f'eval.num_samples must be >= 10, got {config.eval.num_samples}')
  run, state = train.restore_for_use(config, workdir, step, best)
  extractors = load_extractors(config, run.data.image_shape)
  return score_state(config, run, state, extractors)
