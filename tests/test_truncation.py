"""The truncation trick (Brock et al. 2019): z drawn from N(0, I) with every |z_i| above the
threshold drawn again, in --mode=sample (--truncation) and in evaluations (eval.truncation and
eval.truncation_sweep); without a threshold, the samples of today's N(0, I) bit for bit. For
StyleGAN2 (a generator with ws) the same value is psi: every w pulled toward w_avg."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config, run_main
from gan_jax import (evaluator, input_pipeline, interpolation, modes, sampling, trainer,
                     updates)
from gan_jax.errors import ConfigError
from gan_jax.stepper import Stepper


def _normal_cdf(x):
  return 0.5 * (1 + np.vectorize(math.erf)(np.asarray(x) / math.sqrt(2)))


def _resampled(rng, n: int, threshold: float) -> np.ndarray:
  """The paper's procedure: N(0, 1) draws, those above the threshold drawn again until none is."""
  z = rng.standard_normal(n)
  while True:
    outside = np.abs(z) > threshold
    if not outside.any():
      return z
    z[outside] = rng.standard_normal(int(outside.sum()))


@pytest.mark.parametrize('threshold', [0.25, 0.5, 1.0, 2.0])
def test_truncated_noise_is_the_resampled_normal(threshold):
  n = 200_000
  z = np.asarray(sampling.truncated_noise(jax.random.PRNGKey(0), n // 8, 8, threshold))
  assert z.shape == (n // 8, 8) and z.dtype == np.float32
  z = z.ravel().astype(np.float64)
  assert np.all(np.abs(z) <= threshold)
  # The variance of N(0, 1) truncated to [-t, t]: 1 - 2 t phi(t) / (2 Phi(t) - 1).
  phi = math.exp(-threshold ** 2 / 2) / math.sqrt(2 * math.pi)
  mass = 2 * _normal_cdf(threshold) - 1
  variance = 1 - 2 * threshold * phi / mass
  np.testing.assert_allclose(z.var(), variance, rtol=0.02)
  assert abs(z.mean()) < 5 * math.sqrt(variance / n)
  # Its CDF (Kolmogorov-Smirnov, 0.1 % level), and the resampling procedure's sample's.
  z = np.sort(z)
  cdf = (_normal_cdf(z) - _normal_cdf(-threshold)) / mass
  ecdf = np.arange(1, n + 1) / n
  assert np.max(np.abs(ecdf - cdf)) < 1.95 / math.sqrt(n)
  reference = np.sort(_resampled(np.random.default_rng(1), n, threshold))
  both = np.concatenate([z, reference])
  gap = np.abs(np.searchsorted(z, both, 'right') - np.searchsorted(reference, both, 'right'))
  assert np.max(gap) / n < 1.95 * math.sqrt(2 / n)


def _z_stepper(spec='dcgan.py:digits,runlocal,mlp', **overrides):
  """A Stepper whose 'images' are the z they were asked for (to look at the noise)."""
  config = load_config(spec, **overrides)
  data = input_pipeline.load(config.dataset)
  stepper = Stepper(config, data.image_shape, data.num_classes)
  stepper.generate = lambda state, z, labels=None, noise_key=None: z
  return config, stepper


def test_sampling_draws_normal_z_without_a_threshold_and_truncated_z_with_one():
  _, stepper = _z_stepper()
  key = jax.random.PRNGKey(5)
  plain = [z for z, _ in sampling.batches(stepper, None, 300, key, batch_size=128)]
  truncated = [z for z, _ in sampling.batches(stepper, None, 300, key, batch_size=128,
                                              truncation=0.5)]
  for z, t in zip(plain, truncated, strict=True):   # each batch's key split from the last
    key, z_key = jax.random.split(key)
    np.testing.assert_array_equal(z, stepper.noise(z_key, len(z)))   # N(0, I) as always
    np.testing.assert_array_equal(
        t, sampling.truncated_noise(z_key, len(z), stepper.latent_dim, 0.5))
  assert float(np.max(np.abs(np.concatenate(plain)))) > 2
  assert float(np.max(np.abs(np.concatenate(truncated)))) <= 0.5


@pytest.mark.slow   # StyleGAN2's networks op by op and several compiles: about a minute
def test_stylegan2_truncation_is_psi_toward_w_avg_of_normal_z():
  """StyleGAN's truncation (the official truncation_cutoff None): samples of N(0, I) z whose ws
  are w_avg + psi (w - w_avg), in sample batches and interpolation's keyframes alike."""
  config = load_config('stylegan2.py:digits,auto,runlocal')
  stepper = Stepper(config, (32, 32, 1), 0)
  assert stepper.truncates_w and not _z_stepper()[1].truncates_w
  state = stepper.init()
  w_avg = jnp.linspace(-1, 1, config.model.w_dim)   # (0 at init: give truncation a target)
  with_avg = lambda stats: {**stats, 'mapping': {'w_avg': w_avg}}
  state = state.replace(ema={**state.ema, 'stats': with_avg(state.ema['stats'])},
                        gen=state.gen.replace(stats=with_avg(state.gen.stats)))
  key = jax.random.PRNGKey(5)
  plain, = [b for b, _ in sampling.batches(stepper, state, 6, key, batch_size=8)]
  half, = [b for b, _ in sampling.batches(stepper, state, 6, key, batch_size=8,
                                          truncation=0.5)]
  _, z_key = jax.random.split(key)
  z, noise_key = stepper.noise(z_key, 6), jax.random.fold_in(z_key, updates.NOISE_STREAM)
  np.testing.assert_array_equal(plain, stepper.generate(state, z, None, noise_key))
  np.testing.assert_array_equal(plain, stepper.generate(state, z, None, noise_key,
                                                        truncation_psi=1.0))   # psi 1: none
  # psi 0.5 by hand: the EMA generator's ws of the same z, halfway to w_avg, synthesised
  variables = {'params': state.ema['params'], 'batch_stats': state.ema['stats']}
  generator = stepper.gan.generator
  ws = generator.apply(variables, z, train=False, method='map')
  by_hand = generator.apply(variables, w_avg + 0.5 * (ws - w_avg), train=False,
                            method='synthesize', rngs={'noise': noise_key})
  np.testing.assert_allclose(half, by_hand, atol=1e-5)
  assert float(jnp.abs(half - plain).max()) > 1e-3
  # interpolation: the keyframes' z are N(0, I) (psi acts on their ws when rendered)
  latents = interpolation.keyframe_noise(stepper, 0, 2, 3, 0.5)
  np.testing.assert_array_equal(latents, interpolation.keyframe_noise(stepper, 0, 2, 3))
  frames = [interpolation.render(stepper, state, latents, 3, truncation=t) for t in (None, 0.5)]
  assert np.abs(frames[0][0].astype(int) - frames[1][0]).max() > 0


class _MaxAbsZ:
  """An evaluator of the z behind the samples: their largest |z_i| and their mean."""

  def run(self, batches):
    z = np.concatenate([np.asarray(b) for b, _ in batches])
    return {'max_abs_z': float(np.max(np.abs(z))), 'mean_z': float(np.mean(z)),
            'num_samples': len(z), 'reference': {'count': 1}, 'label_confusion': [[1]]}


@pytest.mark.parametrize('num_seeds', [1, 2])
def test_evaluations_truncate_at_eval_truncation_and_score_each_sweep_threshold(num_seeds):
  config, stepper = _z_stepper(num_seeds=num_seeds, eval__num_samples=400)
  plain = modes._evaluation(config, stepper, _MaxAbsZ()).run(stepper.init())
  assert 'truncation' not in plain and 'truncation_sweep' not in plain
  assert plain['max_abs_z'] > 2
  config.eval.truncation, config.eval.truncation_sweep = 0.5, '0.25, 1'
  result = modes._evaluation(config, stepper, _MaxAbsZ()).run(stepper.init())
  assert result['truncation'] == 0.5 and result['truncation_sweep'] == [0.25, 1.0]
  assert 0.4 < result['max_abs_z'] <= 0.5
  assert 0.2 < result['truncation_0.25/max_abs_z'] <= 0.25
  assert 0.9 < result['truncation_1/max_abs_z'] <= 1.0
  # Each threshold's scores only: what every evaluation shares is said once.
  swept = {k for k in result if k.startswith('truncation_0.25/')}
  expected = {'max_abs_z', 'mean_z'}
  if num_seeds > 1:   # each score's mean, spread and members' values (seeds.combine)
    expected |= {f'{name}{suffix}' for name in ('max_abs_z', 'mean_z')
                 for suffix in ('_seed_std', '_members')}
    assert len(result['truncation_0.25/max_abs_z_members']) == 2
  assert swept == {f'truncation_0.25/{name}' for name in expected}
  # Training's evaluations write each threshold's scores to TensorBoard, not the threshold.
  written = []

  class Writer:
    def write_scalars(self, step, scalars):
      written.append(scalars)
  trainer._write_eval(Writer(), [], 4, result)
  assert 'eval/truncation_0.25/max_abs_z' in written[0] and 'eval/truncation' not in written[0]


def test_bad_thresholds_are_refused():
  config = load_config('dcgan.py:digits,runlocal,mlp')
  for text, message in (('0.5,x', "got 'x'"), ('0.5,-1', "got '-1'"), ('0', "got '0'"),
                        ('nan', "got 'nan'"), ('0.5,0.5', 'gives 0.5 twice')):
    config.eval.truncation_sweep = text
    with pytest.raises(ConfigError, match=message):
      evaluator.truncation_sweep(config.eval)
  config.eval.truncation_sweep = ''
  assert evaluator.truncation_sweep(config.eval) == ()
  config.eval.update(classifier='somewhere', truncation=-1.0)
  with pytest.raises(ConfigError, match='eval.truncation must be >= 0'):
    evaluator.check(config)


@pytest.mark.slow   # several processes, over a minute on 2 cores
def test_sample_and_eval_modes_write_the_threshold(tmp_path):
  from test_scoring import _random_classifier  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / 'run'
  proc = run_main('--config=configs/dcgan.py:digits,runlocal,mlp', f'--workdir={workdir}',
                  '--config.num_steps=2', '--config.sample_every=0')
  assert proc.returncode == 0, proc.stderr[-2000:]
  results, outs = [], []
  for flags in ([], ['--truncation=0.5']):
    outs.append(tmp_path / f'samples{len(outs)}.npz')
    proc = run_main(f'--workdir={workdir}', '--mode=sample', '--num_samples=8',
                    f'--out={outs[-1]}', *flags)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
  assert 'truncation' not in results[0] and results[1]['truncation'] == 0.5
  with np.load(outs[0]) as plain, np.load(outs[1]) as truncated:
    # (two steps in, the images depend on z only a little)
    assert np.max(np.abs(plain['images'] - truncated['images'])) > 1e-6
  for flags, message in ((['--mode=sample', '--truncation=0'], '--truncation must be'),
                         (['--mode=eval', '--truncation=0.5'], 'takes --config.eval.truncation')):
    proc = run_main(f'--workdir={workdir}', *flags)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]

  _random_classifier(tmp_path / 'clf')
  proc = run_main(f'--workdir={workdir}', '--mode=eval',
                  f'--config.eval.classifier={tmp_path / "clf"}', '--config.eval.num_samples=50',
                  '--config.eval.kid_subsets=2', '--config.eval.kid_subset_size=20',
                  '--config.eval.pr_samples=20', f'--config.eval.stats_dir={tmp_path / "stats"}',
                  '--config.eval.truncation=0.5', '--config.eval.truncation_sweep=0.5,1')
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result['truncation'] == 0.5 and result['truncation_sweep'] == [0.5, 1.0]
  for threshold in ('0.5', '1'):
    for name in ('domain_fid', 'classifier_score', 'domain_kid', 'domain_precision',
                 'domain_recall'):
      assert np.isfinite(result[f'truncation_{threshold}/{name}'])
  # The sweep's 0.5 scores the same samples as eval.truncation 0.5.
  assert result['truncation_0.5/domain_fid'] == result['domain_fid']
  assert result['truncation_1/domain_fid'] != result['domain_fid']
