"""Training end to end on tiny configs: every GAN, the update schedule, determinism, checkpoints."""

import dataclasses
import os
import signal
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from gan_jax import checkpoints, gans, input_pipeline, losses, modes, schedule, updates, trainer
from gan_jax.errors import ConfigError
from gan_jax.stepper import Stepper

GANS = ['wgan.py:digits,runlocal', 'wgan_gp.py:digits,runlocal', 'dcgan.py:digits,runlocal',
        'acgan.py:digits,runlocal', 'acgan.py:digits,runlocal,wasserstein_gp',
        'acgan.py:digits,runlocal,wasserstein_clip', 'wgan_gp.py:digits,runlocal,mlp',
        'sngan.py:digits,runlocal,conditional',
        'dcgan.py:digits,runlocal,modern']
# Slow (CI runs them): ACGAN's other losses train in the 8-device and preset checks too, and
# the modern DCGAN in test_compat's format-3 and format-4 workdirs.
_SLOW_GANS = ('acgan.py:digits,runlocal,wasserstein_gp', 'acgan.py:digits,runlocal,wasserstein_clip',
              'dcgan.py:digits,runlocal,modern')
GAN_PARAMS = [pytest.param(spec, marks=pytest.mark.slow) if spec in _SLOW_GANS else spec
              for spec in GANS]


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _assert_trees_equal(a, b):
  for x, y in zip(_leaves(a), _leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


class _Run:
  """A Stepper and the data of a config, as modes.train builds them."""

  def __init__(self, config):
    self.data = input_pipeline.load(config.dataset)
    self.stepper = Stepper(config, self.data.image_shape, self.data.num_classes)
    self.gan = self.stepper.gan

  def stream(self, config):
    return input_pipeline.BatchStream(self.data, config.batch_size, config.seed)


def _critic_metrics(gan, state, batch, key):
  """The metrics of one critic update of `state` on `batch`, compiled (op by op, a conv model's
  update takes tens of seconds)."""
  update = jax.jit(lambda s, b, k: updates.critic_update(gan, s.gen, s.critic, b, k)[1])
  return update(state, batch, key)


def _steps(run, state, stream, n_steps, config):
  """Drives the compiled step like the training loop does; returns (state, metrics list)."""
  history = []
  for _ in range(n_steps):
    n = gans.n_critic_at(int(state.step), config)
    state, metrics, health = run.stepper.train(state, [stream.next(n)])
    assert all(bool(v[0]) for v in jax.device_get(health).values())
    history.append(jax.tree.map(lambda m: m[0], jax.device_get(metrics)))
  return state, history


@pytest.mark.parametrize('spec', GAN_PARAMS)
def test_every_gan_trains_with_finite_metrics(spec, tmp_path):
  config = load_config(spec, num_steps=2, sample_every=0)
  run = _Run(config)
  stream = run.stream(config)
  state0 = run.stepper.init()
  before = _leaves(state0.gen.params)
  state, history = _steps(run, state0, stream, 2, config)
  for metrics in history:
    for key in ('critic_loss', 'gen_loss', 'd_real', 'd_fake'):
      assert np.isfinite(metrics[key]), (key, metrics)
  variant = run.gan.spec
  if variant.adversarial == 'wasserstein':
    assert 'wasserstein' in history[-1]
  if variant.gradient_penalty:
    assert history[-1]['gradient_penalty'] >= 0 and history[-1]['grad_norm'] > 0
  if variant.class_head:
    assert {'aux_acc_real', 'aux_acc_fake'} <= set(history[-1])
  if config.model.spectral_norm:
    assert history[-1]['critic_sigma_max'] > 0
  assert int(state.step) == 2
  assert any(np.any(a != b) for a, b in zip(before, _leaves(state.gen.params)))


def test_wgan_critic_weights_are_clipped(tmp_path):
  config = load_config('wgan.py:digits,runlocal')
  run = _Run(config)
  state0 = run.stepper.init()
  # N(0, 0.02) init puts many weights outside [-0.01, 0.01] before the first update.
  assert max(np.abs(x).max() for x in _leaves(state0.critic.params)) > 0.03
  stream = run.stream(config)
  state, _ = _steps(run, state0, stream, 1, config)
  weights = np.concatenate([x.ravel() for x in _leaves(state.critic.params)])
  assert np.abs(weights).max() <= 0.01
  assert np.isclose(np.abs(weights).max(), 0.01)  # the clip is active, not vacuous


def test_wgan_schedule_is_the_papers():
  config = load_config('wgan.py:mnist')
  counts = [gans.n_critic_at(s, config) for s in range(1002)]
  assert counts[:25] == [100] * 25 and counts[25:30] == [5] * 5
  assert counts[500] == 100 and counts[1000] == 100 and counts[501] == 5
  assert load_config('wgan_gp.py:mnist').critic_boost.iters == 0


def test_critic_updates_per_iteration_and_no_retrace(tmp_path, monkeypatch):
  """The paper's 100 critic updates on boosted steps (runlocal: step 0 and every 3rd), else 5."""
  traced = []  # n_critic of each trace of the step
  original = updates.train_step

  def counting(state, batch, *, gan):
    traced.append(batch['image'].shape[0])
    return original(state, batch, gan=gan)
  monkeypatch.setattr(updates, 'train_step', counting)
  config = load_config('wgan.py:digits,runlocal', critic_boost__iters=100)
  run = _Run(config)
  stream = run.stream(config)
  state, history = _steps(run, run.stepper.init(), stream, 5, config)
  assert [int(m['n_critic']) for m in history] == [100, 5, 5, 100, 5]
  assert stream.position == (100 + 5 + 5 + 100 + 5) * config.batch_size  # real batches seen
  assert traced == [100, 5]  # one compile per distinct n_critic, not per step


def test_adam_counts_n_critic_critic_updates_and_lr_decays_per_generator_step(tmp_path):
  config = load_config('wgan_gp.py:digits,runlocal', n_critic=3,
                       gen_optimizer__schedule='linear', critic_optimizer__schedule='linear')
  run = _Run(config)
  stream = run.stream(config)
  state, history = _steps(run, run.stepper.init(), stream, 2, config)
  assert int(state.critic.opt_state.inner_state[0].count) == 6
  assert int(state.gen.opt_state.inner_state[0].count) == 2
  # Linear decay to 0 at num_steps (4), by generator step, for both players.
  for name in ('gen', 'critic'):
    lrs = [float(m[f'{name}_learning_rate']) for m in history]
    np.testing.assert_allclose(lrs, [1e-4, 0.75e-4], rtol=1e-6)
  assert float(state.critic.opt_state.hyperparams['learning_rate']) == pytest.approx(0.75e-4)


def test_scanned_critic_updates_equal_an_unrolled_loop(tmp_path):
  config = load_config('wgan_gp.py:digits,runlocal', n_critic=3)
  run = _Run(config)
  gan, state = run.gan, run.stepper.init()
  batch = input_pipeline.BatchStream(run.data, config.batch_size, config.seed).next(3)
  batch = jax.tree.map(jnp.asarray, batch)
  scanned, _, _ = jax.jit(lambda s, b: updates.train_step(s, b, gan=gan))(state, batch)
  keys = jax.random.split(jax.random.fold_in(state.key, state.step), 4)
  critic = state.critic
  update = jax.jit(lambda c, b, k: updates.critic_update(gan, state.gen, c, b, k))
  for i in range(3):
    critic, _ = update(critic, jax.tree.map(lambda x, i=i: x[i], batch), keys[i + 1])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               scanned.critic.params, critic.params)


def test_same_seed_same_parameters_other_seed_differs(tmp_path):
  # Exact resume across processes (bitwise) is tested in test_preemption.py.
  finals = []
  for seed in (0, 1):
    config = load_config('dcgan.py:digits,runlocal', seed=seed)
    run = _Run(config)
    for _ in range(2 if seed == 0 else 1):
      stream = run.stream(config)
      finals.append(_steps(run, run.stepper.init(), stream, 2, config)[0])
  _assert_trees_equal(finals[0].gen.params, finals[1].gen.params)
  _assert_trees_equal(finals[0].critic.stats, finals[1].critic.stats)
  assert any(np.any(a != b) for a, b in zip(_leaves(finals[0].gen.params),
                                            _leaves(finals[2].gen.params)))


def test_restored_checkpoint_gives_the_same_samples(tmp_path):
  config = load_config('acgan.py:digits,runlocal', num_steps=2)
  state = modes.train(config, str(tmp_path))
  run = _Run(config)
  restored, data_state = trainer.restore_or_init(run.stepper, str(tmp_path))
  assert data_state['position'] == 2 * config.batch_size
  z = jax.random.normal(jax.random.PRNGKey(5), (10, config.latent_dim))
  labels = jnp.arange(10)
  np.testing.assert_array_equal(run.stepper.generate(state, z, labels),
                                run.stepper.generate(restored, z, labels))


def test_acgan_auxiliary_head_learns(tmp_path):
  config = load_config('acgan.py:digits,runlocal', batch_size=64)
  config.model.width = 16
  run = _Run(config)
  stream = run.stream(config)
  _, history = _steps(run, run.stepper.init(), stream, 40, config)
  first = np.mean([m['aux_loss_real'] for m in history[:3]])
  last = np.mean([m['aux_loss_real'] for m in history[-5:]])
  assert first > 2.0 and last < 0.7 * first, (first, last)
  assert np.mean([m['aux_acc_real'] for m in history[-5:]]) > 0.4  # chance is 0.1


@pytest.mark.parametrize('overrides,message', [
    (dict(batch_size=0), 'batch_size must be >= 1'),
    (dict(n_critic=0), 'n_critic must be >= 1'),
    (dict(gan='stylegan'), 'not a preset'),
    (dict(num_seeds=0), 'num_seeds must be >= 1'),
    (dict(num_seeds=-2), 'num_seeds must be >= 1'),
    (dict(seed=2**32 - 2, num_seeds=3), 'seed \\+ num_seeds - 1 must be <= 4294967295'),
    (dict(num_seeds=2, parallelism='pmap'), "num_seeds > 1 trains on a mesh"),
    (dict(ema__decay=-0.1), 'ema.decay must be >= 0 and < 1'),
    (dict(ema__decay=1.0), 'ema.decay must be >= 0 and < 1'),
    (dict(ema__start_step=-1), 'ema.start_step must be >= 0'),
    (dict(loss__r1_weight=-1.0), 'loss.r1_weight must be >= 0'),
    (dict(loss__r1_every=0), 'loss.r1_every must be >= 1'),
    (dict(loss__gp_weight=-1.0), 'loss.gp_weight must be >= 0'),
    (dict(augment__policy='color,flip'), "augment.policy: .*unknown name 'flip'"),
    (dict(augment__policy='cutout,cutout'), "augment.policy: .*'cutout' is given twice"),
    (dict(loss__adversarial='relativistic'), "loss.adversarial 'relativistic' is unknown"),
    (dict(loss__lipschitz='r1', model__critic_norm='batch'), 'R1 is per example'),
    (dict(model__conditional='film'), "model.conditional 'film' is unknown"),
    (dict(model__critic_pool='max'), "model.critic_pool must be one of"),
    (dict(model__critic_pool='sum'), "model.critic_pool 'sum' is the ResNet critic's global"),
    (dict(num_seeds=2, seed_shards=2, seed_mapping='loop'), "seed_mapping 'loop' runs every"),
])
def test_bad_configs_are_refused_before_anything_is_written(tmp_path, overrides, message):
  config = load_config('wgan_gp.py:digits,runlocal', **overrides)
  workdir = tmp_path / 'w'
  with pytest.raises(ConfigError, match=message):
    modes.train(config, str(workdir))
  assert not workdir.exists()


def test_gradient_penalty_refuses_batch_norm_critic(tmp_path):
  config = load_config('wgan_gp.py:digits,runlocal')
  config.model.critic_norm = 'batch'
  with pytest.raises(ConfigError, match='batch norm'):
    modes.train(config, str(tmp_path))


def test_wgan_gp_cifar10_resnet_through_tfds_mock_data(tmp_path):
  """The default cifar10 path: TFDS (mocked, no download) and the paper's ResNet."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  config = load_config('wgan_gp.py:cifar10,runlocal', num_steps=1, sample_every=1)
  assert config.model.arch == 'resnet'
  with tfds.testing.mock_data(num_examples=48):
    state = modes.train(config, str(tmp_path))
  assert int(state.step) == 1
  leaves = _leaves(state.gen.params)
  assert all(np.all(np.isfinite(x)) for x in leaves)
  assert os.path.isdir(tmp_path / 'checkpoints' / '1')


def test_bfloat16_computes_in_bf16_keeps_float32_params_and_the_gradient_penalty(tmp_path):
  config = load_config('wgan_gp.py:digits,runlocal', dtype='bfloat16')
  run = _Run(config)
  state = run.stepper.init()
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.critic.params))
  # The same parameters and interpolates through the float32 and the bfloat16 critic.
  f32_gan = updates.build_gan(load_config('wgan_gp.py:digits,runlocal'), (28, 28, 1), 10)
  x_hat = jax.random.uniform(jax.random.PRNGKey(1), (16, 28, 28, 1), minval=-1, maxval=1)
  penalties = {}
  for name, gan in (('f32', f32_gan), ('bf16', run.gan)):
    critic_fn = lambda x, gan=gan: gan.critic.apply({'params': state.critic.params}, x)[0]
    hidden = jax.make_jaxpr(critic_fn)(x_hat)
    assert ('bf16' in str(hidden)) == (name == 'bf16')
    penalties[name] = jax.jit(lambda x, f=critic_fn: losses.gradient_penalty(f, x))(x_hat)
  for f32, bf16 in zip(penalties['f32'], penalties['bf16']):
    assert bf16.dtype == jnp.float32
    np.testing.assert_allclose(float(bf16), float(f32), rtol=3e-2)
  stream = run.stream(config)
  state, history = _steps(run, state, stream, 2, config)
  assert all(np.isfinite(v).all() for m in history for v in m.values())
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.gen.params))


def test_a_compiled_call_never_spans_a_periodic_action():
  config = load_config('wgan_gp.py:digits,runlocal', num_steps=20, steps_per_call=4,
                       log_every=8, sample_every=0, checkpoint_every=0, eval_every=6)
  lengths, done = [], 0
  while done < config.num_steps:
    lengths.append(schedule.call_length(done, config))
    done += lengths[-1]
  ends = np.cumsum(lengths)
  for every in (8, 6):  # each log and eval step ends a call
    assert all(s in ends for s in range(every, 20, every)), (every, lengths)
  assert max(lengths) == 4


def _fake_evaluation(calls, on_call=None):
  """An Evaluation that records the steps it scored (and may act, e.g. send a signal)."""
  def run(state):
    calls.append(int(state.step))
    if on_call:
      on_call(int(state.step))
    return {'domain_fid': 100.0 - int(state.step)}
  return trainer.Evaluation(run, 'domain_fid', 'min')


def test_skipped_iterations_warn_once_also_when_an_evaluation_is_due(tmp_path):
  """skip_nonfinite: one warning per skipped iteration, also at steps with an evaluation and
  a checkpoint (each call's health is checked once)."""
  config = load_config('wgan_gp.py:digits,runlocal,mlp', num_steps=2, eval_every=2,
                       checkpoint_every=2, skip_nonfinite=True)
  config.loss.gp_weight = float('nan')   # every iteration is non-finite, so skipped
  run = _Run(config)
  warnings, calls = [], []
  with mock.patch.object(trainer.logging, 'warning',
                         lambda msg, *args: warnings.append(msg % args)):
    state = trainer.train(config, str(tmp_path), run.stepper, run.data, _fake_evaluation(calls))
  skipped = [w.split(' with ')[0] for w in warnings if 'skipped an iteration' in w]
  assert skipped == ['step 1: skipped an iteration', 'step 2: skipped an iteration'], warnings
  assert all('train/critic_loss' in w and 'critic.params' in w
             for w in warnings if 'skipped' in w)
  assert int(state.skipped) == 2 and calls == [2]


def test_a_stop_request_saves_before_anything_else(tmp_path):
  """SIGTERM: the checkpoint of that step comes first; no sampling or evaluation delays it."""
  config = load_config('dcgan.py:digits,runlocal,mlp', num_steps=6, eval_every=1,
                       checkpoint_every=0, sample_every=1)
  run = _Run(config)
  calls = []
  terminate = lambda step: step == 2 and os.kill(os.getpid(), signal.SIGTERM)
  saved_before_eval = []
  real_save = checkpoints.save

  def save(mngr, step, *args, **kwargs):
    saved_before_eval.append((step, list(calls)))
    return real_save(mngr, step, *args, **kwargs)
  with mock.patch.object(trainer.checkpoints, 'save', save):
    state = trainer.train(config, str(tmp_path), run.stepper, run.data,
                          _fake_evaluation(calls, terminate))
  assert int(state.step) == 3 and calls == [1, 2]
  # The best checkpoint after each evaluation, then step 3's, saved before any evaluation.
  assert saved_before_eval == [(1, [1]), (2, [1, 2]), (3, [1, 2])]
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['3']


def test_restore_for_use_closes_its_manager_when_it_refuses(tmp_path, monkeypatch):
  config = load_config('dcgan.py:digits,runlocal,mlp', num_steps=2)
  modes.train(config, str(tmp_path))
  closed = []
  real_manager = checkpoints.manager

  def manager(*args, **kwargs):
    mngr = real_manager(*args, **kwargs)
    real_close = mngr.close
    mngr.close = lambda: (closed.append(True), real_close())
    return mngr
  monkeypatch.setattr(checkpoints, 'manager', manager)
  with pytest.raises(ConfigError, match='no checkpoint at step 7'):
    checkpoints.restore_for_use(str(tmp_path), _Run(config).stepper.abstract_state(), step=7)
  assert closed == [True]


def test_sampling_streams_are_named_and_never_another_seeds():
  """The grid, sample and eval noise of one seed are neither the training key of another seed
  nor one another (PRNGKey(seed + 1/2/3) would make seed 0's grid seed 1's training key)."""
  from gan_jax import sampling  # pylint: disable=g-import-not-at-top
  keys = {(seed, 'train'): jax.random.PRNGKey(seed) for seed in range(5)}
  for seed in range(5):
    for name in ('GRID_STREAM', 'SAMPLE_STREAM', 'EVAL_STREAM', 'INTERPOLATE_STREAM'):
      keys[(seed, name)] = sampling.stream_key(seed, getattr(sampling, name))
  values = [tuple(np.asarray(jax.random.key_data(k) if jnp.issubdtype(k.dtype, jax.dtypes.prng_key)
                             else k).tolist()) for k in keys.values()]
  assert len(set(values)) == len(values)


def _lengths(config, start=0):
  lengths, done = [], start
  while done < config.num_steps:
    lengths.append(schedule.call_length(done, config))
    done += lengths[-1]
  return lengths


def test_auto_steps_per_call_fills_the_gaps_between_periodic_actions():
  """steps_per_call 0 (auto): max_steps_per_call where that many fit before the next
  action, else the largest power of two that fits, so few lengths are ever compiled."""
  assert load_config('dcgan.py:mnist').steps_per_call == 0  # the default
  auto = lambda spec, **kw: load_config(spec, steps_per_call=0, **kw)
  # The defaults (log 100, sample 500, checkpoint 1000; max 25): one length.
  assert set(_lengths(auto('dcgan.py:mnist', num_steps=3000))) == {25}
  config = auto('wgan_gp.py:digits,runlocal', num_steps=50, max_steps_per_call=8,
                log_every=20, eval_every=12, sample_every=0, checkpoint_every=0)
  #   log at 20, 40; eval at 12, 24, 36, 48; the end at 50
  assert _lengths(config) == [8, 4, 8, 4, 8, 4, 4, 8, 2]
  assert _lengths(config, start=5) == [4, 2, 1, 8, 4, 8, 4, 4, 8, 2]  # a resume at step 5
  # runlocal (every action every 2 steps): 2 per call.
  assert _lengths(auto('dcgan.py:digits,runlocal')) == [2, 2]
  # A change of n_critic ends a call: WGAN's boosted steps (runlocal: 0, 3, 6, ...) stand alone.
  wgan = auto('wgan.py:digits,runlocal', num_steps=12, log_every=0, sample_every=0,
              checkpoint_every=0)
  assert _lengths(wgan) == [1, 2, 1, 2, 1, 2, 1, 2]
  # A call holds at most max_steps_per_call x n_critic critic batches: the paper's 25 boosted
  # steps (100 critic updates each) run one per call, then 25 at n_critic 5.
  assert _lengths(auto('wgan.py:mnist', num_steps=75, log_every=75))[:26] == [1] * 25 + [25]
  # An explicit steps_per_call keeps its meaning: K, or 1 where K would span an action.
  assert _lengths(load_config('wgan_gp.py:digits,runlocal', num_steps=10, steps_per_call=3,
                              log_every=5, sample_every=0, checkpoint_every=0)) == [
                                  3, 1, 1, 3, 1, 1]


def test_prefetcher_keeps_the_order_runs_ahead_boundedly_and_passes_errors_on():
  import threading  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  from gan_jax import prefetch  # pylint: disable=g-import-not-at-top
  made = []

  def items(n, fail_at=None):
    for i in range(n):
      if i == fail_at:
        raise ValueError(f'item {i}')
      made.append(i)
      yield i
  assert list(prefetch.Prefetcher(items(50), size=2)) == list(range(50))
  made.clear()
  ahead = prefetch.Prefetcher(items(1000), size=2)
  assert next(ahead) == 0
  time.sleep(0.5)
  assert len(made) <= 1 + 2 + 1  # the one consumed, 2 queued, 1 waiting for room
  ahead.close()
  assert not any(t.name == 'prefetch' and t.is_alive() for t in threading.enumerate())
  failing = prefetch.Prefetcher(items(5, fail_at=3))
  assert [next(failing) for _ in range(3)] == [0, 1, 2]
  with pytest.raises(ValueError, match='item 3'):
    next(failing)


class _HostStepper:
  """The Stepper interface the batch producer uses, on the host."""

  def put(self, host_batches):
    return host_batches


def test_each_call_carries_the_stream_position_after_its_own_batches():
  """Made ahead of the steps, each call knows the position a checkpoint after it must save."""
  config = load_config('wgan.py:digits,runlocal', num_steps=9, log_every=0, sample_every=0,
                       checkpoint_every=0, batch_size=4, steps_per_call=2)
  data = input_pipeline.load(config.dataset)
  reference = input_pipeline.BatchStream(data, 4, 0)
  for s in range(2):  # steps 0 (boosted) and 1: a run resumed at step 2
    reference.next(gans.n_critic_at(s, config))
  stream = input_pipeline.BatchStream(data, 4, 0, reference.position)
  calls = list(trainer._calls(_HostStepper(), stream, config, 2))
  assert [(c.step, c.length, c.n_critic) for c in calls] == [
      (2, 1, 5), (3, 1, 10), (4, 2, 5), (6, 1, 10), (7, 2, 5)]
  for call in calls:
    for batch in call.batch:
      np.testing.assert_array_equal(batch['image'], reference.next(call.n_critic)['image'])
    assert call.position == reference.position


def test_a_prefetching_run_saves_the_position_of_the_steps_done_and_resumes_exactly(tmp_path):
  """The producer runs ahead of the steps; checkpoints hold the steps' own position, and a run
  resumed from one equals an uninterrupted run bitwise (auto steps_per_call: calls of 2, 1)."""
  config = load_config('wgan_gp.py:digits,runlocal,mlp', num_steps=6, log_every=3,
                       checkpoint_every=3, sample_every=0, keep_checkpoints=5)
  run = _Run(config)
  straight = trainer.train(config, str(tmp_path / 'straight'), run.stepper, run.data)
  mngr = checkpoints.manager(str(tmp_path / 'straight'), 5, read_only=True)
  for step in (3, 6):
    _, data_state = checkpoints.restore(mngr, run.stepper.abstract_state(), step)
    assert data_state['position'] == step * config.n_critic * config.batch_size
  mngr.close()
  first = load_config('wgan_gp.py:digits,runlocal,mlp', num_steps=3, log_every=3,
                      checkpoint_every=3, sample_every=0)
  trainer.train(first, str(tmp_path / 'resumed'), run.stepper, run.data)
  resumed = trainer.train(config, str(tmp_path / 'resumed'), run.stepper, run.data)
  _assert_trees_equal(straight, resumed)


def test_a_stop_saves_the_position_of_the_steps_done_not_of_the_batches_made_ahead(tmp_path):
  config = load_config('dcgan.py:digits,runlocal,mlp', num_steps=50, eval_every=1,
                       checkpoint_every=0, sample_every=0, log_every=0)
  run = _Run(config)
  terminate = lambda step: step == 4 and os.kill(os.getpid(), signal.SIGTERM)
  state = trainer.train(config, str(tmp_path), run.stepper, run.data,
                        _fake_evaluation([], terminate))
  assert int(state.step) == 5
  mngr = checkpoints.manager(str(tmp_path), 1, read_only=True)
  assert mngr.all_steps() == [5]
  _, data_state = checkpoints.restore(mngr, run.stepper.abstract_state())
  mngr.close()
  assert data_state['position'] == 5 * config.batch_size


def test_progress_counts_finished_iterations_from_the_second_finished_call():
  """The first finished call (compile included) starts the clock; later log steps give the
  rate over finished iterations and the ETA of the rest."""
  config = load_config('wgan_gp.py:digits,runlocal', num_steps=10, log_every=2)
  written = []

  class Writer:
    def write_scalars(self, step, scalars):
      written.append((step, scalars))

  progress = trainer._Progress(config, Writer())
  times = iter([100.0, 104.0, 106.0, 108.0])  # the first call took 100 s to compile
  with mock.patch.object(trainer.time, 'monotonic', lambda: next(times)), \
       mock.patch.object(trainer.logging, 'info') as info:
    for step in (2, 4, 5, 6):  # calls finishing at these steps (5 is not a log step)
      progress(step)
  assert [step for step, _ in written] == [4, 6]
  assert written[0][1]['steps_per_sec'] == pytest.approx(2 / 4.0)  # steps 2 -> 4 in 4 s
  assert written[1][1]['steps_per_sec'] == pytest.approx(2 / 4.0)  # 4 -> 6 in 4 s
  first = info.call_args_list[0][0]
  assert first[1:4] == (4, 10, 40.0) and first[-2:] == (0, 12)  # 6 steps left at 0.5/s


def test_class_loss_real_leaves_the_fakes_class_term_out_of_the_critics_loss():
  config = load_config('acgan.py:digits,runlocal')
  run = _Run(config)
  state = run.stepper.init()
  batch = jax.tree.map(lambda x: x[0], run.stream(config).next(1))  # one critic update's
  key = jax.random.PRNGKey(3)

  def critic_loss(class_loss, aux_weight=1.0):
    gan = dataclasses.replace(run.gan, class_loss=class_loss, aux_weight=aux_weight)
    metrics = _critic_metrics(gan, state, batch, key)
    return float(metrics['critic_loss']), float(metrics['aux_loss_real'])

  both, real_xent = critic_loss('real_fake')
  real_only, real_xent_again = critic_loss('real')
  assert real_xent == real_xent_again
  # The fakes' cross-entropy at init is about log(10): what 'real' leaves out.
  assert 1.5 < both - real_only < 3.5, (both, real_only)
  assert critic_loss('real_fake', 0.0)[0] == critic_loss('real', 0.0)[0]


def test_tac_critic_has_a_twin_head_that_learns_the_generated_classes():
  config = load_config('acgan.py:digits,runlocal', loss__class_loss='tac')
  run = _Run(config)
  state = run.stepper.init()
  assert set(state.critic.params) >= {'class_head', 'twin_head'}
  assert 'twin_head' not in _Run(load_config('acgan.py:digits,runlocal')).stepper.init(
  ).critic.params
  batch = jax.tree.map(lambda x: x[0], run.stream(config).next(1))

  def metrics(aux_weight):
    gan = dataclasses.replace(run.gan, aux_weight=aux_weight)
    return _critic_metrics(gan, state, batch, jax.random.PRNGKey(3))

  with_classes, adversarial_only = metrics(1.0), metrics(0.0)
  class_terms = float(with_classes['aux_loss_real'] + with_classes['twin_loss_fake'])
  assert 1.5 < float(with_classes['twin_loss_fake']) < 3.5  # about log(10) at init
  np.testing.assert_allclose(
      float(with_classes['critic_loss'] - adversarial_only['critic_loss']), class_terms,
      rtol=1e-5)
