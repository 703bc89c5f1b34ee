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
