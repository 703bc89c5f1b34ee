"""GAN metrics on features: FID, Inception Score, KID, improved precision/recall, density and
coverage.

Every metric takes features (or class probabilities) that some network computed on real and
generated images; which network (InceptionV3 for the published numbers, or the project's own
domain classifier offline) is the caller's choice and is reported with the score.

  * FID (Heusel et al. 2017): Frechet distance between Gaussians fitted to the two feature sets.
    The statistics accumulate in float64 running sums (`FeatureStats`), so any number of
    samples streams through in batches.
  * Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), over 10 contiguous
    splits, reported as mean and standard deviation across the splits, as published. Streams
    too (`ScoreStats`).
  * KID (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel
    k(x, y) = (x.y / d + 1)^3, averaged over random subsets.
  * Precision / recall (Kynkaanniemi et al. 2019): the share of generated samples inside the
    k-NN balls of the real ones, and vice versa (k = 3).
  * Density / coverage (Naeem et al. 2020): with the real samples' k-NN balls
    B(X_i, NND_k(X_i)), density = 1/(kM) sum_j sum_i 1[Y_j in B_i] (how many real balls hold a
    generated sample, on average, over k: 1 when fake and real share their distribution) and
    coverage = 1/N sum_i 1[some Y_j in B_i] (the share of real balls holding a generated sample).
    The balls are open, as in the authors' code: a copy of the real set scores 1 and 1.
  * Intra-FID (Miyato & Koyama 2018): the FID of each class's generated images against the
    reference images of that class, and its mean over the classes (`intra_fid`).
"""

from typing import Dict, List, Tuple

import numpy as np


class FeatureStats:
  """Running count, sum and sum of outer products of feature vectors (float64)."""

  def __init__(self, dim: int):
    self.count = 0
    self.sum = np.zeros(dim, np.float64)
    self.outer = np.zeros((dim, dim), np.float64)

  def update(self, features) -> None:
    f = np.asarray(features, np.float64).reshape(len(features), -1)
    self.count += f.shape[0]
    self.sum += f.sum(axis=0)
    self.outer += f.T @ f

  @property
  def mean(self) -> np.ndarray:
    return self.sum / self.count

  @property
  def cov(self) -> np.ndarray:
    """Unbiased covariance (divides by count - 1, like np.cov)."""
    if self.count < 2:
      raise ValueError(f'a covariance needs >= 2 samples, got {self.count}')
    mean = self.mean
    return (self.outer - self.count * np.outer(mean, mean)) / (self.count - 1)

  def save(self, file, **info) -> None:
    """An npz (`file`: a path or a file open for writing) with mu, sigma, count and any `info`
    (e.g. the dataset split and extractor)."""
    np.savez(file, mu=self.mean, sigma=self.cov, count=self.count, **info)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
  values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
  return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).

  Tr((S1 S2)^(1/2)) is computed as Tr((S1^(1/2) S2 S1^(1/2))^(1/2)): the same eigenvalues, but
  from a symmetric PSD matrix, so no complex square roots appear.
  """
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
  root1 = _sqrt_psd(sigma1)
  eigenvalues = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
  trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def fid(stats_a: FeatureStats, stats_b: FeatureStats) -> float:
  return frechet_distance(stats_a.mean, stats_a.cov, stats_b.mean, stats_b.cov)


class ClassStats:
  """Running counts, sums and sums of outer products of each class 0..num_classes-1 (float64:
  num_classes D x D sums, e.g. 10 x 2048^2 x 8 bytes = 335 MB for Inception on 10 classes),
  streamed with the features' labels."""

  def __init__(self, dim: int, num_classes: int):
    self.count = np.zeros(num_classes, np.int64)
    self.sum = np.zeros((num_classes, dim), np.float64)
    self.outer = np.zeros((num_classes, dim, dim), np.float64)

  def update(self, features, labels) -> None:
    f = np.asarray(features, np.float64).reshape(len(features), -1)
    labels = np.asarray(labels)
    for c in np.unique(labels):
      x = f[labels == c]
      self.count[c] += len(x)
      self.sum[c] += x.sum(axis=0)
      self.outer[c] += x.T @ x

  def __len__(self) -> int:
    return len(self.count)

  def __getitem__(self, c: int) -> FeatureStats:
    """Class c's FeatureStats (its sums are views of these)."""
    stats = FeatureStats(0)
    stats.count, stats.sum, stats.outer = int(self.count[c]), self.sum[c], self.outer[c]
    return stats


def intra_fid(real: ClassStats, fake: ClassStats) -> Tuple[float, List[float]]:
  """(mean over the classes, [FID of class c]) of the classes of `fake`, each against the same
  class of `real` (each needs >= 2 samples for its covariance)."""
  values = [fid(real[c], fake[c]) for c in range(len(fake))]
  return float(np.mean(values)), values


class ScoreStats:
  """Streams class probabilities p(y|x) into the Inception Score's per-split sums.

  The splits are contiguous blocks of the `total` samples, as in the published code.
  """

  def __init__(self, total: int, num_classes: int, splits: int = 10):
    if total < splits:
      raise ValueError(f'{total} samples cannot make {splits} splits')
    self.total, self.splits, self.seen = total, splits, 0
    self.bounds = [total * i // splits for i in range(splits + 1)]
    self.p_sum = np.zeros((splits, num_classes), np.float64)      # sum_x p(y|x)
    self.plogp_sum = np.zeros(splits, np.float64)                 # sum_x sum_y p log p

  def update(self, probs) -> None:
    p = np.asarray(probs, np.float64)
    index = np.arange(self.seen, self.seen + len(p))
    if index[-1] >= self.total:
      raise ValueError(f'more than the {self.total} samples announced')
    split = np.searchsorted(self.bounds, index, side='right') - 1
    plogp = np.sum(p * np.log(np.clip(p, 1e-30, None)), axis=1)
    np.add.at(self.p_sum, split, p)
    np.add.at(self.plogp_sum, split, plogp)
    self.seen += len(p)

  def result(self) -> Tuple[float, float]:
    """(mean, std) of exp(E KL(p(y|x) || p(y))) over the splits."""
    if self.seen != self.total:
      raise ValueError(f'{self.seen} of the {self.total} samples announced were given')
    sizes = np.diff(self.bounds).astype(np.float64)
    marginal = self.p_sum / sizes[:, None]
    kl = self.plogp_sum / sizes - np.sum(
        marginal * np.log(np.clip(marginal, 1e-30, None)), axis=1)
    scores = np.exp(kl)
    return float(scores.mean()), float(scores.std())


def inception_score(probs, splits: int = 10) -> Tuple[float, float]:
  stats = ScoreStats(len(probs), np.asarray(probs).shape[1], splits)
  stats.update(probs)
  return stats.result()


def _poly_kernel(x, y):
  return (x @ y.T / x.shape[1] + 1.0) ** 3


def kid(real, fake, num_subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> Tuple[float, float]:
  """(mean, std) over subsets of the unbiased MMD^2 with the cubic polynomial kernel."""
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  m = min(subset_size, len(real), len(fake))
  if m < 2:
    raise ValueError('KID needs at least 2 samples in each set')
  rng = np.random.default_rng(seed)
  values = []
  for _ in range(num_subsets):
    x = real[rng.choice(len(real), m, replace=False)]
    y = fake[rng.choice(len(fake), m, replace=False)]
    kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    # Unbiased: the diagonals (each sample with itself) are left out.
    mmd = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) +
           (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    values.append(mmd)
  return float(np.mean(values)), float(np.std(values))


def _pairwise_sq_dists(a, b, chunk: int = 1024):
  out = np.empty((len(a), len(b)), np.float64)
  b_sq = np.sum(b * b, axis=1)
  for i in range(0, len(a), chunk):
    x = a[i:i + chunk]
    out[i:i + chunk] = np.sum(x * x, axis=1)[:, None] + b_sq[None] - 2 * x @ b.T
  return np.maximum(out, 0)


def _knn_radii(features, k: int):
  d = _pairwise_sq_dists(features, features)
  return np.sort(d, axis=1)[:, k]  # column 0 is the point itself


def _coverage(ref, radii, query):
  """Share of `query` points inside at least one ball (ref[i], radii[i])."""
  return float(np.mean(np.any(_pairwise_sq_dists(query, ref) <= radii[None], axis=1)))


def precision_recall(real, fake, k: int = 3) -> Dict[str, float]:
  """Improved precision (fake inside the real manifold) and recall (real inside the fake one)."""
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  return {'precision': _coverage(real, _knn_radii(real, k), fake),
          'recall': _coverage(fake, _knn_radii(fake, k), real)}


def _density_coverage(real_fake, radii, k: int) -> Dict[str, float]:
  """Density and coverage from the squared distances real_fake [N, M] (real rows) and the real
  samples' squared k-NN radii [N]; open balls (strict <, as the authors' code)."""
  inside = real_fake < radii[:, None]          # [N, M]: Y_j in B(X_i, NND_k(X_i))
  return {'density': float(inside.sum() / (k * real_fake.shape[1])),
          'coverage': float(np.mean(inside.any(axis=1)))}


def density_coverage(real, fake, k: int = 5) -> Dict[str, float]:
  """Density and coverage (Naeem et al. 2020) of `fake` [M, D] against `real` [N, D] with the
  real samples' k-NN balls (k = 5 in the paper)."""
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  return _density_coverage(_pairwise_sq_dists(real, fake), _knn_radii(real, k), k)


def nearest_neighbour_metrics(real, fake, pr_k: int = 3, dc_k: int = 5) -> Dict[str, float]:
  """precision_recall (k = pr_k) and density_coverage (k = dc_k), the same values, from one
  set of pairwise distances (the real set's sorted once for both radii)."""
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  real_sorted = np.sort(_pairwise_sq_dists(real, real), axis=1)  # column 0: the point itself
  real_fake = _pairwise_sq_dists(real, fake)                     # [N, M]
  out = {'precision': _coverage(real, real_sorted[:, pr_k], fake),
         'recall': float(np.mean(np.any(real_fake <= _knn_radii(fake, pr_k)[None], axis=1)))}
  out.update(_density_coverage(real_fake, real_sorted[:, dc_k], dc_k))
  return out


def class_accuracy(probs, labels) -> float:
  """Accuracy of a classifier's predictions on generated images against the requested labels
  (ACGAN)."""
  return float(np.mean(np.argmax(probs, axis=1) == np.asarray(labels)))


def confusion(probs, labels) -> np.ndarray:
  """[K, K] counts: row c holds what the classifier (K classes) calls the images asked of
  class c."""
  num = probs.shape[1]
  counts = np.zeros((num, num), np.int64)
  np.add.at(counts, (np.asarray(labels), np.argmax(probs, axis=1)), 1)
  return counts
