"""Metrics with known answers."""

import numpy as np
import pytest

from gan_jax import feature_metrics as ev


def _stats(x):
  s = ev.FeatureStats(x.shape[1])
  for chunk in np.array_split(x, 7):  # streamed in uneven batches
    s.update(chunk)
  return s


def test_streamed_statistics_equal_numpy():
  x = np.random.default_rng(0).normal(size=(1000, 6)) * [1, 2, 3, 4, 5, 6] + 3
  s = _stats(x)
  np.testing.assert_allclose(s.mean, x.mean(0), rtol=1e-12)
  np.testing.assert_allclose(s.cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-12)


def test_fid_of_a_set_against_itself_is_zero():
  x = np.random.default_rng(1).normal(size=(2000, 8))
  s = _stats(x)
  assert abs(ev.fid(s, s)) < 1e-8


def test_frechet_distance_equals_the_closed_form():
  rng = np.random.default_rng(2)
  # Two Gaussians with commuting (diagonal) covariances: ||mu1-mu2||^2 + sum (s1 - s2)^2.
  mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
  s1, s2 = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
  closed = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
  got = ev.frechet_distance(mu1, np.diag(s1 ** 2), mu2, np.diag(s2 ** 2))
  assert got == pytest.approx(closed, rel=1e-10)
  # A full covariance, rotated: the distance does not change under a common rotation.
  q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
  rotated = ev.frechet_distance(q @ mu1, q @ np.diag(s1 ** 2) @ q.T, q @ mu2,
                                q @ np.diag(s2 ** 2) @ q.T)
  assert rotated == pytest.approx(closed, rel=1e-8)


def test_fid_of_a_shifted_gaussian_sample_approaches_the_shift():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(20000, 4))
  y = rng.normal(size=(20000, 4)) + [1.0, 0, 0, 0]
  assert ev.fid(_stats(x), _stats(y)) == pytest.approx(1.0, abs=0.05)


def test_inception_score_uniform_is_one_confident_balanced_is_num_classes():
  uniform = np.full((1000, 10), 0.1)
  assert ev.inception_score(uniform)[0] == pytest.approx(1.0, abs=1e-9)
  confident = np.eye(10)[np.arange(1000) % 10]
  mean, std = ev.inception_score(confident)
  assert mean == pytest.approx(10.0, rel=1e-9) and std < 1e-9


def test_inception_score_streams_like_the_whole_array():
  rng = np.random.default_rng(4)
  logits = rng.normal(size=(1003, 7)) * 3
  probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  stats = ev.ScoreStats(1003, 7)
  for chunk in np.array_split(probs, 13):
    stats.update(chunk)
  streamed = stats.result()
  # The published code, split by split, on the whole array.
  scores = []
  for i in range(10):
    part = probs[i * 1003 // 10:(i + 1) * 1003 // 10]
    py = part.mean(0)
    scores.append(np.exp(np.mean(np.sum(part * (np.log(part) - np.log(py)), 1))))
  np.testing.assert_allclose(streamed, (np.mean(scores), np.std(scores)), rtol=1e-9)


def test_kid_is_unbiased_on_equal_distributions_and_positive_when_shifted():
  rng = np.random.default_rng(5)
  a, b = rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16))
  mean, std = ev.kid(a, b, num_subsets=50, subset_size=500)
  assert abs(mean) < 3 * std / np.sqrt(50) + 1e-3  # zero within its standard error
  shifted, _ = ev.kid(a, b + 0.5, num_subsets=50, subset_size=500)
  assert shifted > 20 * max(abs(mean), 1e-4)


def test_precision_recall_of_identical_and_disjoint_sets():
  rng = np.random.default_rng(6)
  x = rng.normal(size=(500, 3))
  same = ev.precision_recall(x, x.copy())
  assert same == {'precision': 1.0, 'recall': 1.0}
  far = ev.precision_recall(x, x + 100.0)
  assert far == {'precision': 0.0, 'recall': 0.0}
  # Generated samples collapsed onto a few real points: precise, but little recall.
  collapsed = ev.precision_recall(x, np.repeat(x[:5], 100, axis=0))
  assert collapsed['precision'] == 1.0 and collapsed['recall'] < 0.2


def test_class_accuracy():
  probs = np.eye(3)[[0, 1, 2, 2]]
  assert ev.class_accuracy(probs, [0, 1, 2, 0]) == 0.75


def test_interleaved_labels_balance_every_split():
  from gan_jax import sampling as sample
  blocks = sample.balanced_labels(1000, 10)
  mixed = sample.balanced_labels(1000, 10, interleaved=True)
  assert np.array_equal(np.bincount(blocks), np.bincount(mixed))
  assert np.array_equal(np.bincount(mixed[:100]), np.full(10, 10))   # the first IS split
  assert len(set(blocks[:100])) == 1


def _density_coverage_by_hand(real, fake, k):
  """Naeem et al.'s formulas, one ball and one sample at a time (open balls)."""
  radius = [np.sort([np.linalg.norm(x - y) for y in real])[k] for x in real]  # [0]: itself
  inside = [[np.linalg.norm(y - x) < r for y in fake] for x, r in zip(real, radius)]
  density = sum(map(sum, inside)) / (k * len(fake))
  coverage = np.mean([any(row) for row in inside])
  return density, coverage


def test_density_coverage_of_points_on_a_line():
  # Real 0, 1, 3, 6 (k = 1): radii 1, 1, 2, 3, balls (-1, 1), (0, 2), (1, 5), (3, 9).
  # Fake 0.5 and 0.75 fall in the first two balls, 5 only in the last (it lies on the border of
  # (1, 5): open balls leave it out), 20 in none: density (2 + 2 + 1 + 0) / 4; the ball of 3
  # holds no sample: coverage 3 / 4.
  line = lambda *x: np.array(x, np.float64)[:, None] * [1.0, 0.0]
  real, fake = line(0, 1, 3, 6), line(0.5, 0.75, 5, 20)
  assert ev.density_coverage(real, fake, k=1) == {'density': 1.25, 'coverage': 0.75}
  assert _density_coverage_by_hand(real, fake, 1) == (1.25, 0.75)


def test_density_coverage_of_a_copy_is_one_and_of_a_far_set_zero():
  x = np.random.default_rng(7).normal(size=(500, 3))
  for k in (1, 3, 5):
    assert ev.density_coverage(x, x.copy(), k) == {'density': 1.0, 'coverage': 1.0}
    assert ev.density_coverage(x, x + 100.0, k) == {'density': 0.0, 'coverage': 0.0}
  # Generated samples collapsed onto a few real points: dense there, but covering little.
  collapsed = ev.density_coverage(x, np.repeat(x[:5], 100, axis=0), 5)
  assert collapsed['density'] > 1 and collapsed['coverage'] < 0.1


def test_density_coverage_of_a_second_sample_of_the_distribution():
  """Naeem et al.'s expectations for fake and real drawn from one distribution: density 1;
  coverage 1 - (N-1)...(N-k) / ((M+N-1)...(M+N-k)) (1 - 1/2^k for M = N large)."""
  rng = np.random.default_rng(8)
  n = m = 2000
  real, fake = rng.normal(size=(n, 4)), rng.normal(size=(m, 4))
  k = 5
  got = ev.density_coverage(real, fake, k)
  expected = 1 - np.prod([(n - i) / (m + n - i) for i in range(1, k + 1)])   # 0.9688
  assert got['density'] == pytest.approx(1.0, abs=0.05)
  assert got['coverage'] == pytest.approx(expected, abs=0.015)


def test_density_coverage_equal_the_formulas_sample_by_sample():
  rng = np.random.default_rng(9)
  real, fake = rng.normal(size=(60, 4)), rng.normal(size=(50, 4)) * 1.3 + 0.2
  for k in (1, 3, 5):
    got = ev.density_coverage(real, fake, k)
    density, coverage = _density_coverage_by_hand(real, fake, k)
    assert got['density'] == pytest.approx(density, rel=1e-12)
    assert got['coverage'] == pytest.approx(coverage, rel=1e-12)
    # The evaluator's one pass gives the same four numbers as the two functions.
    assert ev.nearest_neighbour_metrics(real, fake, 3, k) == {
        **ev.precision_recall(real, fake, 3), **got}


def test_intra_fid_of_shifted_classes_is_the_squared_shift():
  """Each class's samples shifted by s_c: the same covariance, so its FID is |s_c|^2."""
  rng = np.random.default_rng(10)
  labels = rng.integers(0, 3, 900)
  features = rng.normal(size=(900, 4)) + labels[:, None]   # a class's own mean
  shifts = np.array([[0, 0, 0, 0], [1, 0, 0, 0], [0, 2, 0, 1]], np.float64)
  real, fake = ev.ClassStats(4, 3), ev.ClassStats(4, 3)
  for chunk in np.array_split(np.arange(900), 7):   # streamed in uneven batches
    real.update(features[chunk], labels[chunk])
    fake.update(features[chunk] + shifts[labels[chunk]], labels[chunk])
  assert real.count.tolist() == np.bincount(labels).tolist()
  for c in range(3):
    np.testing.assert_allclose(real[c].cov, np.cov(features[labels == c], rowvar=False),
                               rtol=1e-9, atol=1e-12)
  mean, per_class = ev.intra_fid(real, fake)
  np.testing.assert_allclose(per_class, [0, 1, 5], atol=1e-8)
  assert mean == pytest.approx(2.0, abs=1e-8)
