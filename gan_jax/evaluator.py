"""Scores generated images: samples and reference data through the extractors of
gan_jax/extractors.py, then the metrics of gan_jax/feature_metrics.py.

big_vision's evaluator shape: `Evaluator(config, image_shape, num_classes)` loads the
extractors and checks every eval setting (before a run writes anything); `run(batches)` takes
the images to score and returns named metrics. It never imports the trainer: the caller brings
the images.

Reference statistics are computed once per (dataset, split, count, extractor weights, resize)
and cached as an npz in `eval.stats_dir` (default: the user's cache directory, see
`stats_dir`); a conditional GAN's per-class statistics (intra-FID) in a second npz beside them.
"""

import dataclasses
import hashlib
import io
import json
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import jax
import numpy as np

from gan_jax import (extractors as extractors_lib, feature_metrics, fields, files, gans,
                     input_pipeline, rundir)
from gan_jax.errors import ConfigError
from gan_jax.extractors import Extractor


class Accumulator:
  """Streams one side's (probs, features) into FID statistics, Inception Score sums (when the
  `total` sample count is given), and the first `keep` feature rows (KID and precision/recall
  need the features themselves)."""

  def __init__(self, ext: Extractor, total: Optional[int], keep: int):
    self.stats = feature_metrics.FeatureStats(ext.feature_dim)
    self.scores = (None if total is None or not ext.num_classes
                   else feature_metrics.ScoreStats(total, ext.num_classes))
    self.keep, self._kept = keep, []

  def update(self, probs, features) -> None:
    self.stats.update(features)
    if self.scores is not None:
      self.scores.update(probs)
    self._kept.append(features[:max(0, self.keep - sum(len(k) for k in self._kept))])

  @property
  def kept(self) -> np.ndarray:
    return np.concatenate(self._kept)


def stats_dir(eval_config) -> str:
  """eval.stats_dir (local or gs://), or the user's cache directory ($XDG_CACHE_HOME, else ~/.cache, then
  gan_jax/stats): the extractor's weights may lie where nothing can be written."""
  if eval_config.stats_dir:
    return eval_config.stats_dir
  cache = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return os.path.join(cache, 'gan_jax', 'stats')


def _write_atomically(path: str, stats: feature_metrics.FeatureStats, **arrays) -> None:
  """Writes under a name of this writer's own, then renames: a concurrent reader or writer of
  `path` sees either no file or a whole one."""
  data = io.BytesIO()
  stats.save(data, **arrays)
  files.write_bytes(path, data.getvalue())


def reference(config, count: int) -> Dict[str, Any]:
  """What the eval JSON says the reference images are: the files' path (absolute) or the named
  dataset (and its TFDS data_dir), the split, and the number of images."""
  data = config.dataset
  if data.path:
    where = {'path': files.absolute(data.path)}
  else:
    where = {'dataset': data.name,
             **({'data_dir': files.absolute(data.data_dir)} if data.data_dir else {})}
  return {**where, 'split': config.eval.reference_split, 'count': count}


def reference_data(config):
  """The `dataset` config of the reference images: the run's data, eval.reference_split (all
  of it: a run on a dataset.subset is scored against the whole split)."""
  data_config = config.dataset.copy_and_resolve_references()
  with data_config.unlocked():
    data_config.split = config.eval.reference_split
  return data_config


# The format of the cached statistics, in their file names, so that caches of another format are
# never read: Inception resizes [-1, 1] images, and the kept features (KID, precision/recall) and
# a reference_samples subset are a seeded random draw of the split, not its first images (a
# folder lists its images class by class).
CACHE_VERSION = 3


def cache_path(config, ext: Extractor, per_class: bool = False) -> str:
  """Where the reference statistics of `ext` on the run's reference data are cached: named by
  the dataset, split, count, the data's source (path, TFDS dir, float range, size, channels and
  image feature where not the dataset's own), a hash of the extractor's weights, its resize
  when not 'legacy' (the resize every earlier cache was made with, so they stay in use), and
  `per_class` for the statistics of each class (intra-FID)."""
  ev, data = config.eval, input_pipeline.settled(config.dataset)
  count = f'_n{ev.reference_samples}' if ev.reference_samples else ''
  named = [data.path, data.data_dir, data.float_range, data.image_size]
  registered = input_pipeline.DATASETS.get(data.name)
  if (not registered or data.channels != registered.image_shape[2] or data.image_key):
    named += [data.channels, data.image_key]  # (a named dataset as it is leaves them out)
  source = hashlib.sha1(json.dumps(named).encode()).hexdigest()[:8]
  resize = f'_{ext.resize}' if ext.resize not in ('', 'legacy') else ''
  name = (f'{data.name}_{ev.reference_split}{count}_{source}_{ext.kind}_{ext.cache_key}'
          f'{resize}{"_per_class" if per_class else ""}_v{CACHE_VERSION}.npz')
  return str(files.path(stats_dir(ev)) / name)


@dataclasses.dataclass
class Reference:
  """One extractor's statistics of the reference images."""
  stats: feature_metrics.FeatureStats
  kept: np.ndarray                  # [<= keep, D]: a random draw's features (KID, k-NN metrics)
  path: str                         # the cache file
  classes: Optional[feature_metrics.ClassStats] = None  # of each class (intra-FID)
  classes_path: str = ''            # their cache file


def _read_stats(path: str, keep: int):
  """(FeatureStats, kept features) of a cache file with >= `keep` kept rows (or all), or None."""
  if not files.path(path).exists():
    return None
  with files.open_seekable(path) as data, np.load(data) as f:
    stats = feature_metrics.FeatureStats(f['mu'].shape[0])
    stats.count, stats.sum, stats.outer = int(f['count']), f['sum'], f['outer']
    if len(f['kept']) >= min(keep, stats.count):
      return stats, f['kept'][:keep]
  return None


def _read_classes(path: str) -> Optional[feature_metrics.ClassStats]:
  """The per-class statistics of a cache file, or None."""
  if not files.path(path).exists():
    return None
  with files.open_seekable(path) as data, np.load(data) as f:
    classes = feature_metrics.ClassStats(0, 0)
    classes.count, classes.sum, classes.outer = f['count'], f['sum'], f['outer']
    return classes


def _check_class_counts(config, counts: Sequence[int], num_classes: int) -> None:
  """ConfigError unless each of the generator's classes has >= 2 reference images (intra-FID's
  covariance of that class)."""
  counts = list(counts) + [0] * max(0, num_classes - len(counts))
  few = [c for c in range(num_classes) if counts[c] < 2]
  if few:
    ev = config.eval
    listed = ', '.join(f'class {c} ({counts[c]})' for c in few[:5]) + (
        f' and {len(few) - 5} more' if len(few) > 5 else '')
    subset = f', eval.reference_samples {ev.reference_samples}' if ev.reference_samples else ''
    raise ConfigError(f'intra-FID needs >= 2 reference images of every class (a covariance); '
                      f'the reference (eval.reference_split {ev.reference_split!r}{subset}) '
                      f'has too few images of {listed}: use a split with more of them, or '
                      f'more eval.reference_samples')


def reference_stats(config, ext: Extractor, keep: int, num_classes: int = 0) -> Reference:
  """The Reference of `ext` on the reference split: statistics, kept features and, with
  `num_classes` (a conditional GAN's classes), the statistics of each class. The reference
  data is read only when the cache lacks some of them. ConfigError where a class has fewer
  than 2 reference images."""
  ev = config.eval
  path = cache_path(config, ext)
  classes_path = cache_path(config, ext, per_class=True) if num_classes else ''
  cached = _read_stats(path, keep)
  classes = _read_classes(classes_path) if num_classes else None
  if cached is not None and (classes is not None or not num_classes):
    if num_classes:
      _check_class_counts(config, classes.count, num_classes)
    return Reference(*cached, path, classes, classes_path)
  data = input_pipeline.load(reference_data(config))  # streamed images: read in chunks
  images = data.images
  count = min(len(images), ev.reference_samples or len(images))
  # A seeded random draw of `count` images (all of them by default), read in storage order;
  # the features kept are the first `keep` of the draw's order, so any prefix of them is a
  # random subset too (a folder lists its images class by class; IDX files are shuffled).
  order = np.random.default_rng(0).permutation(len(images))[:count]
  rank = np.full(len(images), count)
  rank[order] = np.arange(count)
  rows = np.sort(order)
  per_class = None
  if num_classes and classes is None:
    if data.labels is None:
      raise ConfigError(f'intra-FID needs the reference images\' classes; eval.reference_split '
                        f'{ev.reference_split!r} of the data has no labels')
    _check_class_counts(config, np.bincount(data.labels[rows]), num_classes)
    per_class = feature_metrics.ClassStats(
        ext.feature_dim, max(num_classes, int(data.labels[rows].max()) + 1))
  stats, kept_rank, kept = feature_metrics.FeatureStats(ext.feature_dim), [], []
  for start in range(0, count, 1000):
    chunk = rows[start:start + 1000]
    features = ext.predict(images[chunk])[1]
    stats.update(features)
    if per_class is not None:
      per_class.update(features, data.labels[chunk])
    chosen = rank[chunk] < keep
    kept_rank.append(rank[chunk][chosen])
    kept.append(features[chosen])
  kept = np.concatenate(kept)[np.argsort(np.concatenate(kept_rank))]
  info = dict(dataset=config.dataset.name, split=ev.reference_split)
  if jax.process_index() == 0:  # every process computed them; one writes the caches
    if cached is None:
      _write_atomically(path, stats, sum=stats.sum, outer=stats.outer, kept=kept, **info)
    if per_class is not None:
      buffer = io.BytesIO()
      np.savez(buffer, count=per_class.count, sum=per_class.sum, outer=per_class.outer, **info)
      files.write_bytes(classes_path, buffer.getvalue())
  if per_class is not None:
    classes = per_class
  elif num_classes:
    _check_class_counts(config, classes.count, num_classes)
  return Reference(*(cached or (stats, kept)), path, classes, classes_path)


def compare(ext: Extractor, ev, ref: Reference, fake: Accumulator, seed: int,
            fake_classes: Optional[feature_metrics.ClassStats] = None) -> Dict[str, float]:
  """The extractor's named metrics of `fake` against the reference; with `fake_classes` (the
  generated images' statistics by the class asked for), the intra-FID too."""
  names = extractors_lib.NAMES[ext.kind]
  out = {names['fid']: feature_metrics.fid(ref.stats, fake.stats)}
  if 'score' in names:   # an extractor with classes
    out[names['score']], out[names['score'] + '_std'] = fake.scores.result()
  out[names['kid']], out[names['kid'] + '_std'] = feature_metrics.kid(
      ref.kept, fake.kept, ev.kid_subsets, ev.kid_subset_size, seed=seed)
  knn = feature_metrics.nearest_neighbour_metrics(
      ref.kept[:ev.pr_samples], fake.kept[:ev.pr_samples], K_NEAREST, ev.dc_k)
  for role in ('precision', 'recall', 'density', 'coverage'):
    out[names[role]] = knn[role]
  if fake_classes is not None:
    few = [c for c, n in enumerate(fake_classes.count) if n < 2]
    if few:
      raise ValueError(f'intra-FID needs >= 2 generated images of every class; classes '
                       f'{few[:5]} have fewer')
    mean, per_class = feature_metrics.intra_fid(ref.classes, fake_classes)
    out[names['intra_fid']] = mean
    for c, value in enumerate(per_class):  # one scalar per class (TensorBoard)
      out[f'{names["intra_fid"]}_class_{c}'] = value
  return out


K_NEAREST = 3   # precision/recall's k: each side needs k + 1 samples


def check(config) -> None:
  """Raises ConfigError (DataError for a reference split the data source lacks) for eval
  settings that cannot score; reads no file (the Evaluator's constructor loads the extractors)."""
  ev = config.eval
  if not extractors_lib.configured(ev):
    raise ConfigError('set --config.eval.classifier to a directory written by python -m '
                      'gan_jax.tools.train_classifier, --config.eval.inception_weights to '
                      'an .npz written by python -m gan_jax.tools.convert_inception, or '
                      '--config.eval.dinov2_weights to one written by python -m '
                      'gan_jax.tools.convert_dinov2')
  refusal = fields.refusal(config, prefix='eval.')
  if refusal:
    raise ConfigError(refusal)
  neighbours = max(K_NEAREST, ev.dc_k)   # each side needs neighbours + 1 samples
  if ev.reference_samples < 0 or 0 < ev.reference_samples <= neighbours:
    raise ConfigError(f'eval.reference_samples must be 0 (the whole split) or >= '
                      f'{neighbours + 1} (precision/recall: k = {K_NEAREST}; density/coverage: '
                      f'eval.dc_k {ev.dc_k}), got {ev.reference_samples}')
  if min(ev.pr_samples, ev.num_samples) <= ev.dc_k:
    raise ConfigError(f'eval.dc_k {ev.dc_k} needs more samples per side: eval.pr_samples '
                      f'({ev.pr_samples}) and eval.num_samples ({ev.num_samples}) must be > '
                      f'eval.dc_k')
  input_pipeline.check_split(config.dataset, ev.reference_split, 'eval.reference_split')
  truncation_sweep(ev)
  produced = extractors_lib.computed_metrics(ev, gans.resolve(config).is_conditional)
  metric = extractors_lib.best_metric(ev)
  if metric not in produced:
    raise ConfigError(f'eval.best_metric {metric!r} is not computed by the configured '
                      f'extractors; choose one of {", ".join(sorted(produced))}')


def truncation_sweep(eval_config) -> Tuple[float, ...]:
  """The thresholds of eval.truncation_sweep ('0.25,0.5,1.0' -> (0.25, 0.5, 1.0); '': none);
  ConfigError for a value that is not a finite number > 0, or one given twice."""
  text = str(eval_config.truncation_sweep).strip()
  thresholds = []
  for word in (w.strip() for w in text.split(',') if text):
    try:
      value = float(word)
    except ValueError:
      value = None
    if value is None or not (np.isfinite(value) and value > 0):
      raise ConfigError(f'eval.truncation_sweep must be a comma list of thresholds > 0 '
                        f"(e.g. '0.25,0.5,1.0'), got {word!r} in {text!r}")
    if value in thresholds:
      raise ConfigError(f'eval.truncation_sweep gives {word} twice')
    thresholds.append(value)
  return tuple(thresholds)


class Evaluator:
  """Every metric of generated images against the reference split of config.dataset.

  Building one checks the eval settings and loads the extractors (ConfigError when they cannot
  score); `run` scores. With the `num_classes` of a conditional GAN's labels, it scores the
  intra-FID too, and reads (or computes) the reference's per-class statistics here: a class
  with too few reference images refuses the run before it trains.
  """

  def __init__(self, config, image_shape: Tuple[int, ...], num_classes: int = 0):
    check(config)
    self.config = config
    self.extractors = extractors_lib.load_extractors(config, image_shape)
    # What the first evaluation would otherwise find out mid-run: the reference images (their
    # headers only) and a cache that takes files.
    reference_spec = input_pipeline.spec(reference_data(config))
    if tuple(reference_spec.image_shape) != tuple(image_shape):
      raise ConfigError(f'the reference images (eval.reference_split '
                        f'{config.eval.reference_split!r}) have shape '
                        f'{tuple(reference_spec.image_shape)}, the generator makes '
                        f'{tuple(image_shape)}')
    # Intra-FID: the classes 0..num_classes - 1 a conditional generator is asked for.
    self.num_classes = num_classes if gans.resolve(config).is_conditional else 0
    if self.num_classes and config.eval.num_samples < 2 * self.num_classes:
      raise ConfigError(f'eval.num_samples must be >= {2 * self.num_classes} (intra-FID: 2 '
                        f'samples of each of the {self.num_classes} classes), got '
                        f'{config.eval.num_samples}')
    caches = [cache_path(config, ext, per_class) for ext in self.extractors
              for per_class in ((False, True) if self.num_classes else (False,))]
    if not all(files.path(path).exists() for path in caches):
      rundir.check_writable(stats_dir(config.eval), 'the statistics cache', 'eval.stats_dir')
    self.metric = extractors_lib.best_metric(config.eval)   # the best checkpoint's metric
    self._refs = None   # per extractor: its Reference
    if self.num_classes:   # the per-class counts can refuse: now, not at the first evaluation
      self._references()

  def _references(self) -> List[Reference]:
    if self._refs is None:
      ev = self.config.eval
      keep = max(ev.kid_subset_size, ev.pr_samples)
      self._refs = [reference_stats(self.config, ext, keep, self.num_classes)
                    for ext in self.extractors]
    return self._refs

  def run(self, batches: Iterable, num_samples: Optional[int] = None,
          label_key: str = extractors_lib.LABEL_ACCURACY) -> Dict[str, Any]:
    """Scores `batches`: (images [b, H, W, C] in [-1, 1] (or uint8), a jax.Array on the devices
    or numpy; labels [b] or None) pairs totalling `num_samples` (default eval.num_samples).
    Labels, when given, are checked by the domain classifier (`label_key`), and with
    `num_classes` give each extractor's intra-FID.

    Returns:
      {'num_samples', 'reference': {dataset or path, split, count[, class_counts]} (see
      `reference`), 'extractors': {kind: info with 'weights_hash'}, 'class_counts' (the
      samples of each class, with `num_classes`), and
      each extractor's metrics (see extractors.NAMES), plus `label_key` for labelled images}.
    """
    config, ev = self.config, self.config.eval
    total = ev.num_samples if num_samples is None else num_samples
    keep = max(ev.kid_subset_size, ev.pr_samples)
    refs = self._references()
    accs = [Accumulator(ext, total, keep) for ext in self.extractors]
    by_class = [feature_metrics.ClassStats(ext.feature_dim, self.num_classes)
                for ext in self.extractors] if self.num_classes else None
    domain_probs, requested = [], []    # the domain classifier's view of labelled images
    for images, labels in batches:
      for i, (ext, acc) in enumerate(zip(self.extractors, accs)):
        probs, features = ext.predict(images)
        acc.update(probs, features)
        if labels is not None and by_class:
          by_class[i].update(features, labels)
        if labels is not None and ext.kind == 'domain':
          domain_probs.append(probs)
          requested.append(np.asarray(labels))
    result = {
        'num_samples': total,
        'reference': reference(config, refs[0].stats.count),
        'extractors': {ext.kind: {**ext.info, 'weights_hash': ext.cache_key, 'stats': ref.path,
                                  **({'per_class_stats': ref.classes_path}
                                     if ref.classes_path else {})}
                       for ext, ref in zip(self.extractors, refs)},
    }
    if by_class:  # the images of each class: the reference's, and the samples'
      result['reference']['class_counts'] = refs[0].classes.count.astype(int).tolist()
      result['class_counts'] = by_class[0].count.astype(int).tolist()
    for i, (ext, ref, acc) in enumerate(zip(self.extractors, refs, accs)):
      labelled = by_class and by_class[i].count.sum() > 0
      result.update(compare(ext, ev, ref, acc, config.seed, by_class[i] if labelled else None))
    if requested:  # does each image show the class it was asked for?
      probs, asked = np.concatenate(domain_probs), np.concatenate(requested)
      result[label_key] = feature_metrics.class_accuracy(probs, asked)
      counts = feature_metrics.confusion(probs, asked)
      for c, row in enumerate(counts):  # one scalar per class asked for (TensorBoard)
        if row.sum():
          result[f'{label_key}_class_{c}'] = float(row[c] / row.sum())
      result['label_confusion'] = counts.tolist()  # rows: asked for; columns: classified as
    return result
