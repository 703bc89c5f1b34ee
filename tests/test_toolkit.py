"""The modern toolkit: the generator's EMA, spectral norm, hinge and least-squares
losses, R1, DiffAugment where the critic sees images, projection conditioning; each against a
known answer. (DiffAugment's transforms: test_augment.py; the projection modules:
test_projection.py; 1 vs 8 devices: test_multidevice.py; refusals: test_train.py.)"""

import json
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config, run_main, run_tool
from gan_jax import (ada, augment, checks, errors, gans, images, input_pipeline, losses, modes, spectral,
                     updates)
from gan_jax.stepper import Stepper


def _stepper(config, **kwargs):
  data = input_pipeline.load(config.dataset)
  return Stepper(config, data.image_shape, data.num_classes, **kwargs), data


def _batch(data, config, n_critic=1, start=0):
  stream = input_pipeline.BatchStream(data, config.batch_size, config.seed, start)
  return stream.next(n_critic)


# --- EMA ---------------------------------------------------------------------------------------

def test_ema_update_is_the_closed_form_of_a_known_sequence():
  decay, start, n = 0.9, 2, 6
  values = [float(k * k) for k in range(n + 1)]  # p_0 (init), p_1 ... p_n (after each update)
  player = lambda v: updates.PlayerState({'w': jnp.full((3,), v)}, {'m': jnp.full((2,), -v)}, None)
  ema = {'params': player(values[0]).params, 'stats': player(values[0]).stats}
  for step in range(n):   # update `step` (0-based) leaves p_{step + 1}
    ema = updates.ema_update(ema, player(values[step + 1]), jnp.asarray(step), decay, start)
  # Updates before `start` copy (the average starts from p_start), then it decays.
  expected = decay ** (n - start) * values[start] + (1 - decay) * sum(
      decay ** (n - i) * values[i] for i in range(start + 1, n + 1))
  np.testing.assert_allclose(ema['params']['w'], expected, rtol=1e-6)
  np.testing.assert_allclose(ema['stats']['m'], -expected, rtol=1e-6)


def test_training_keeps_the_ema_of_the_generators_parameters_and_samples_with_it():
  # batch norm in G: its statistics are averaged too
  config = load_config('dcgan.py:digits,runlocal,mlp', ema__decay=0.8, ema__start_step=1)
  stepper, data = _stepper(config)
  state = stepper.init()
  history = [jax.device_get(state.gen)]
  stream = input_pipeline.BatchStream(data, config.batch_size, config.seed)
  for _ in range(4):
    state, _, _ = stepper.train(state, [stream.next(config.n_critic)])
    history.append(jax.device_get(state.gen))
  for part in ('params', 'stats'):
    seq = [getattr(g, part) for g in history]
    expected = jax.tree.map(lambda *xs: 0.8 ** 3 * xs[1] + 0.2 * sum(
        0.8 ** (4 - i) * xs[i] for i in range(2, 5)), *seq)
    for a, b in zip(jax.tree.leaves(state.ema[part]), jax.tree.leaves(expected), strict=True):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  z = stepper.noise(jax.random.PRNGKey(3), 5)
  ema_images = stepper.generate(state, z)
  by_hand = stepper.gan.generator.apply(
      {'params': state.ema['params'], 'batch_stats': state.ema['stats']}, z, None, train=False)
  np.testing.assert_allclose(ema_images, by_hand, atol=1e-6)
  raw = Stepper(config, data.image_shape, data.num_classes, raw_generator=True)
  raw_images = raw.generate(state, z)
  np.testing.assert_allclose(raw_images, updates.generate(stepper.gan, state.replace(ema={}), z),
                             atol=1e-6)
  assert float(jnp.max(jnp.abs(raw_images - ema_images))) > 1e-4


@pytest.mark.slow   # several processes (main.py runs)
def test_sample_mode_uses_the_ema_generator_unless_raw_generator(tmp_path):
  workdir = tmp_path / 'run'
  proc = run_main('--config=configs/dcgan.py:digits,runlocal,mlp', f'--workdir={workdir}',
                  '--config.ema.decay=0.5', '--config.num_steps=2', '--config.sample_every=0')
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'use the EMA generator (ema.decay 0.5' in proc.stderr
  results, outs = [], []
  for flags in ([], ['--raw_generator']):
    outs.append(tmp_path / f'samples{len(outs)}.npz')
    proc = run_main(f'--workdir={workdir}', '--mode=sample', '--num_samples=8',
                    f'--out={outs[-1]}', *flags)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
  assert [r['generator'] for r in results] == ['ema', 'raw']
  with np.load(outs[0]) as ema, np.load(outs[1]) as raw:
    assert np.max(np.abs(ema['images'] - raw['images'])) > 1e-4


# --- spectral norm -----------------------------------------------------------------------------

@pytest.mark.parametrize('shape', [(20, 30), (3, 3, 4, 8)])  # a dense and a conv kernel
def test_spectral_norm_of_a_dense_and_a_conv_kernel(shape):
  w = jax.random.normal(jax.random.PRNGKey(0), shape)
  params = {'layer': {'kernel': w, 'bias': jnp.zeros(shape[-1])}}
  vectors = spectral.init_vectors(params, jax.random.PRNGKey(1))
  assert list(vectors) == ['layer/kernel']   # biases are not normalised
  matrix = np.asarray(w, np.float64).reshape(-1, shape[-1])
  top = np.linalg.svd(matrix, compute_uv=False)[0]
  # The first iteration's estimate: numpy's power iteration from the same u, below the top.
  u = np.asarray(vectors['layer/kernel'], np.float64)
  v = matrix @ u
  v /= np.linalg.norm(v)
  u = matrix.T @ v
  u /= np.linalg.norm(u)
  first = spectral.normalise(params, spectral.iterate(params, vectors))[1]['layer/kernel']
  np.testing.assert_allclose(first, np.linalg.norm(matrix @ u), rtol=1e-5)
  assert first <= top * (1 + 1e-6) and first > 0.3 * top
  # After enough iterations, the normalised kernel's spectral norm is 1.
  normalised, sigmas = spectral.normalise(params, spectral.iterate(params, vectors, 100))
  np.testing.assert_allclose(sigmas['layer/kernel'], top, rtol=1e-4)
  new = np.asarray(normalised['layer']['kernel'], np.float64).reshape(-1, shape[-1])
  assert abs(np.linalg.svd(new, compute_uv=False)[0] - 1.0) < 1e-3
  np.testing.assert_array_equal(normalised['layer']['bias'], params['layer']['bias'])
  # sigma's gradient is v u^T (u, v held constant), as in the paper.
  u_k = spectral.iterate(params, vectors, 3)['layer/kernel']
  grad = jax.grad(lambda x: spectral.sigma(x, u_k))(w)
  v_k = matrix @ np.asarray(u_k, np.float64)
  np.testing.assert_allclose(np.asarray(grad).reshape(matrix.shape),
                             np.outer(v_k / np.linalg.norm(v_k), u_k), atol=1e-5)


def test_spectral_norm_leaves_norm_parameters_alone_and_zero_weights_zero():
  params = {'Dense_0': {'kernel': jnp.zeros((3, 4)), 'bias': jnp.ones(4)},
            'BatchNorm_0': {'scale': jnp.ones(4)},
            'CBN_0': {'scale_embed': {'embedding': jnp.ones((10, 4))},
                      'bias_embed': {'embedding': jnp.zeros((10, 4))}},
            'projection_embed': {'embedding': jnp.ones((10, 4))}}
  vectors = spectral.init_vectors(params, jax.random.PRNGKey(0))
  assert set(vectors) == {'Dense_0/kernel', 'projection_embed/embedding'}
  normalised, _ = spectral.normalise(params, spectral.iterate(params, vectors))
  np.testing.assert_array_equal(normalised['Dense_0']['kernel'], 0.0)  # not NaN
  np.testing.assert_array_equal(normalised['CBN_0']['bias_embed']['embedding'], 0.0)
  # ones((10, 4)) has the single singular value sqrt(40)
  np.testing.assert_allclose(normalised['projection_embed']['embedding'], 1 / np.sqrt(40),
                             rtol=1e-5)


def test_each_player_takes_one_power_iteration_per_update():
  config = load_config('dcgan.py:digits,runlocal,modern', model__gen_spectral_norm=True)
  stepper, data = _stepper(config)
  state = stepper.init()
  assert state.critic.spectral and state.gen.spectral
  before = jax.device_get(state)
  state, metrics, _ = stepper.train(state, [_batch(data, config)])
  for player in ('gen', 'critic'):
    old = getattr(before, player)
    expected = spectral.iterate(old.params, old.spectral)
    for name, u in getattr(state, player).spectral.items():
      np.testing.assert_allclose(u, expected[name], rtol=1e-5, atol=1e-6)
      assert abs(float(jnp.linalg.norm(u)) - 1) < 1e-5
  assert float(metrics['critic_sigma_max'][0]) > 0


# --- losses and R1 -----------------------------------------------------------------------------

def test_hinge_and_least_squares_losses_on_known_logits():
  real, fake = jnp.array([2.0, 0.5, -1.0]), jnp.array([-2.0, 0.0, 1.0])
  loss, metrics = losses.hinge_critic(real, fake)
  np.testing.assert_allclose(loss, (0 + 0.5 + 2) / 3 + (0 + 1 + 2) / 3, rtol=1e-6)
  np.testing.assert_allclose(metrics['d_real'], 0.5, rtol=1e-6)
  np.testing.assert_allclose(losses.hinge_gen(fake)[0], -(-2.0 + 0.0 + 1.0) / 3, rtol=1e-6)
  loss, _ = losses.least_squares_critic(real, fake)
  np.testing.assert_allclose(loss, 0.5 * (1 + 0.25 + 4) / 3 + 0.5 * (4 + 0 + 1) / 3, rtol=1e-6)
  np.testing.assert_allclose(losses.least_squares_gen(fake)[0], 0.5 * (9 + 1 + 0) / 3,
                             rtol=1e-6)


def test_r1_of_a_linear_critic_is_the_squared_norm_of_its_weights():
  w = jax.random.normal(jax.random.PRNGKey(0), (4, 4, 1))
  real = jax.random.normal(jax.random.PRNGKey(1), (6, 4, 4, 1))
  penalty = losses.r1_penalty(lambda x: jnp.sum(x * w, axis=(1, 2, 3)), real)
  np.testing.assert_allclose(penalty, float(jnp.sum(w * w)), rtol=1e-5)


@pytest.mark.parametrize('r1_now', [True, False])
def test_r1_adds_half_gamma_times_every_to_the_critic_loss_on_its_updates(r1_now):
  base = dict(loss__adversarial='nonsaturating')
  plain = load_config('wgan_gp.py:digits,runlocal,mlp', loss__lipschitz='none', **base)
  r1 = load_config('wgan_gp.py:digits,runlocal,mlp', loss__lipschitz='r1', loss__r1_weight=3.0,
                   loss__r1_every=4, **base)
  data = input_pipeline.load(plain.dataset)
  batch = jax.tree.map(lambda x: x[0], _batch(data, plain))
  state = updates.init_state(updates.build_gan(plain, data.image_shape, 0), 0, data.image_shape)
  results = {}
  for name, config in (('plain', plain), ('r1', r1)):
    gan = updates.build_gan(config, data.image_shape, 0)
    results[name] = updates.critic_update(gan, state.gen, state.critic, batch,
                                        jax.random.PRNGKey(2), jnp.asarray(r1_now))[1]
  penalty = float(results['r1']['r1_penalty'])
  assert (penalty > 0) == r1_now
  np.testing.assert_allclose(results['r1']['critic_loss'],
                             results['plain']['critic_loss'] + 0.5 * 3.0 * 4 * penalty, rtol=1e-5)


def test_lazy_r1_falls_on_every_kth_critic_update():
  config = load_config('wgan_gp.py:digits,runlocal,mlp', loss__lipschitz='r1', loss__r1_every=3,
                       n_critic=2, loss__adversarial='nonsaturating')
  stepper, data = _stepper(config)
  state = stepper.init()
  stream = input_pipeline.BatchStream(data, config.batch_size, config.seed)
  taken = []
  with mock.patch.object(updates.losses, 'r1_penalty', wraps=losses.r1_penalty):
    for _ in range(3):  # critic updates 0..5: R1 on 0 and 3, i.e. steps 0 and 1 once each
      state, metrics, _ = stepper.train(state, [stream.next(2)])
      taken.append(float(metrics['r1_penalty'][0]) > 0)
  assert taken == [True, True, False]


# --- DiffAugment where the critic sees images --------------------------------------------------

def _blind(images, draws, policy):  # an "augmentation" that shows the critic nothing
  del draws, policy
  return jnp.zeros_like(images)


def test_the_critic_sees_real_fake_and_interpolates_through_the_augmentation():
  config = load_config('wgan_gp.py:digits,runlocal,mlp', augment__policy='translation')
  stepper, data = _stepper(config)
  state = stepper.init()
  batch = jax.tree.map(lambda x: x[0], _batch(data, config))
  gan = stepper.gan
  with mock.patch.object(augment, 'apply', _blind):
    _, metrics = updates.critic_update(gan, state.gen, state.critic, batch, jax.random.PRNGKey(0))
    gen, _ = updates.gen_update(gan, state.gen, state.critic, jax.random.PRNGKey(1), 16)
  # Real and fake both became zeros: the critic cannot tell them apart, and the penalty's
  # interpolates (between the two) are zeros too, one gradient norm for all.
  assert float(metrics['wasserstein']) == 0.0
  # The generator's images reach the critic only through the augmentation: no gradient.
  for a, b in zip(jax.tree.leaves(gen.params), jax.tree.leaves(state.gen.params), strict=True):
    np.testing.assert_array_equal(a, b)
  _, seen = updates.critic_update(gan, state.gen, state.critic, batch, jax.random.PRNGKey(0))
  assert float(seen['wasserstein']) != 0.0


def test_augmentation_changes_the_critics_view_but_keeps_the_generators_gradient():
  config = load_config('dcgan.py:digits,runlocal,mlp', augment__policy='color,translation,cutout')
  plain = load_config('dcgan.py:digits,runlocal,mlp')
  stepper, data = _stepper(config)
  state = stepper.init()
  grads = {}
  for name, c in (('augmented', config), ('plain', plain)):
    gan = updates.build_gan(c, data.image_shape, 0)
    gen, metrics = updates.gen_update(gan, state.gen, state.critic, jax.random.PRNGKey(1), 16)
    grads[name] = (metrics['gen_loss'], gen.params)
  assert float(grads['augmented'][0]) != float(grads['plain'][0])
  moved = [float(jnp.max(jnp.abs(a - b))) for a, b in zip(
      jax.tree.leaves(grads['augmented'][1]), jax.tree.leaves(state.gen.params))]
  assert all(np.isfinite(moved)) and min(moved) > 0


# --- ADA where the critic sees images ------------------------------------------------------------

def _ada_config(**overrides):
  """An R1 GAN with ADA ('bgc') at the runlocal batch of 16, one critic update per iteration."""
  return load_config('wgan_gp.py:digits,runlocal,mlp', loss__lipschitz='r1',
                     loss__adversarial='nonsaturating', n_critic=1, augment__ada='bgc',
                     **overrides)


def _train(config, iterations):
  """`iterations` iterations of one call each; (state, [metrics of each])."""
  stepper, data = _stepper(config)
  state = stepper.init()
  stream = input_pipeline.BatchStream(data, config.batch_size, config.seed)
  logged = []
  for _ in range(iterations):
    state, metrics, _ = stepper.train(state, [stream.next(config.n_critic)])
    logged.append({k: float(v[0]) for k, v in metrics.items()})
  return state, logged


def test_ada_p_moves_after_every_interval_by_the_mean_of_its_real_signs():
  """p against a replay of the official heuristic (training_loop.py) on the logged sign means:
  after every 3rd critic update, p + sign(mean of the 3 updates' E[sign D(real)] - target) *
  16 * 3 / (kimg * 1000), clipped to [0, 1]."""
  kimg, target, interval = 0.48, 0.1, 3          # a move of 16 * 3 / 480 = 0.1
  config = _ada_config(augment__ada_p=0.5, augment__ada_target=target,
                       augment__ada_interval=interval, augment__ada_kimg=kimg)
  state, logged = _train(config, 9)
  p, signs, expected = 0.5, [], []
  for metrics in logged:
    signs.append(metrics['ada_sign_real'])
    if len(signs) == interval:
      p = min(max(p + np.sign(np.mean(signs) - target) * 16 * interval / (kimg * 1000), 0), 1)
      signs = []
    expected.append(p)
  np.testing.assert_allclose([m['ada_p'] for m in logged], expected, atol=1e-6)
  assert len(set(np.round(expected, 6))) > 1           # it moved (16 signs: never on 0.1)
  assert float(state.ada['count']) == 0.0 and abs(float(state.ada['p']) - expected[-1]) < 1e-6


def test_a_runs_p_reaches_tensorboard_as_train_ada_p_which_plot_fid_reads(tmp_path):
  """What docs/stylegan2.md's p curves are read from: main.py's event files, by the tool."""
  config = _ada_config(augment__ada_p=0.5, augment__ada_target=0.1, augment__ada_interval=1,
                       augment__ada_kimg=0.48, num_steps=4, log_every=1, sample_every=0)
  state = modes.train(config, str(tmp_path))
  plot = run_tool('plot_fid', f'--workdir={tmp_path}', '--metric=train/ada_p', timeout=120)
  assert plot.returncode == 0, plot.stderr[-2000:]
  logged = json.loads(plot.stdout.strip().splitlines()[-1])
  assert logged['steps'] == [1, 2, 3, 4]
  assert logged['values'][-1] == pytest.approx(float(state.ada['p']), abs=1e-6)   # p after
  assert len(set(np.round(logged['values'], 6))) > 1      # it moved (a step of 0.033 each)


def test_ada_at_a_fixed_p_of_0_trains_exactly_as_without_it_and_a_fixed_p_stays():
  plain, _ = _train(load_config('wgan_gp.py:digits,runlocal,mlp', loss__lipschitz='r1',
                                loss__adversarial='nonsaturating', n_critic=1), 3)
  zero, logged = _train(_ada_config(augment__ada_p=0.0, augment__ada_target=0.0), 3)
  assert [m['ada_p'] for m in logged] == [0.0] * 3
  for a, b in zip(jax.tree.leaves((plain.gen, plain.critic)),
                  jax.tree.leaves((zero.gen, zero.critic)), strict=True):
    np.testing.assert_array_equal(a, b)
  half, logged = _train(_ada_config(augment__ada_p=0.5, augment__ada_target=0.0), 3)
  assert [m['ada_p'] for m in logged] == [0.5] * 3
  assert float(jnp.max(jnp.abs(half.critic.params['Dense_0']['kernel'] -
                               zero.critic.params['Dense_0']['kernel']))) > 0


def test_with_ada_the_critic_sees_augmented_images_and_r1_is_taken_before_the_pipeline():
  config = _ada_config(augment__ada_p=1.0, augment__ada_target=0.0)
  stepper, data = _stepper(config)
  state = stepper.init()
  batch = jax.tree.map(lambda x: x[0], _batch(data, config))
  gan, seen, at = stepper.gan, [], []
  real = np.asarray(images.to_signed(batch['image']))

  def view(x, draws, spec):   # records what the pipeline is given, shows the critic zeros
    del draws, spec
    seen.append(np.asarray(x) if not isinstance(x, jax.core.Tracer) else 'traced')
    return jnp.zeros_like(x)

  penalty = losses.r1_penalty

  def r1(critic_fn, x):
    at.append(np.asarray(x))
    return penalty(critic_fn, x)

  with mock.patch.object(ada, 'apply', view), mock.patch.object(losses, 'r1_penalty', r1):
    _, metrics = updates.critic_update(gan, state.gen, state.critic, batch,
                                       jax.random.PRNGKey(0), ada_p=jnp.float32(1.0))
    gen, _ = updates.gen_update(gan, state.gen, state.critic, jax.random.PRNGKey(1), 16,
                                ada_p=jnp.float32(1.0))
  np.testing.assert_array_equal(at[0], real)          # R1: the gradient at the real images
  np.testing.assert_array_equal(seen[0], real)        # which the pipeline then transforms
  # Real and fake both became zeros: the critic cannot tell them apart, and R1's gradient
  # through a pipeline that shows nothing is 0.
  assert float(metrics['d_real']) == float(metrics['d_fake'])
  assert float(metrics['r1_penalty']) == 0.0
  for a, b in zip(jax.tree.leaves(gen.params), jax.tree.leaves(state.gen.params), strict=True):
    np.testing.assert_array_equal(a, b)               # G reaches D only through the pipeline


def test_ada_and_diffaugment_together_are_refused_in_one_line():
  config = _ada_config(augment__policy='translation')
  with pytest.raises(errors.ConfigError, match='choose one augmentation'):
    checks.check_config(config, 1)


# --- projection ---------------------------------------------------------------------------------

def test_a_projection_gan_has_a_label_dependent_critic_and_no_class_head():
  # (it trains: test_train.py's sngan.py:digits,runlocal,conditional)
  config = load_config('acgan.py:digits,runlocal', model__conditional='projection',
                       loss__adversarial='hinge')
  stepper, _ = _stepper(config)
  state = stepper.init()
  assert 'projection_embed' in state.critic.params and 'class_head' not in state.critic.params
  x = jnp.repeat(jax.random.uniform(jax.random.PRNGKey(0), (1, 28, 28, 1), minval=-1), 10, 0)
  variables = {'params': state.critic.params, 'batch_stats': state.critic.stats}
  adv, cls = stepper.gan.critic.apply(variables, x, jnp.arange(10), train=False)
  assert cls is None and len(set(np.round(np.asarray(adv), 6))) == 10


def test_sngan_cifar10_preset_is_the_papers_resnet():
  """configs/sngan.py:cifar10: G 256 channels with batch norm, D 128 with spectral norm on every
  weight, no norm, global sum pool; hinge; n_critic 5; Adam(2e-4, 0, 0.9) decayed linearly."""
  config = load_config('sngan.py:cifar10')
  assert (config.model.arch, config.model.width, config.model.critic_width) == ('resnet', 256, 128)
  assert config.model.critic_pool == 'sum' and config.model.critic_norm == 'none'
  assert config.n_critic == 5 and config.batch_size == 64
  assert (config.critic_optimizer.learning_rate, config.critic_optimizer.b1,
          config.critic_optimizer.b2, config.critic_optimizer.schedule) == (2e-4, 0.0, 0.9, 'linear')
  gan = updates.build_gan(config, (32, 32, 3), 0)
  assert gan.spec == gans.GanSpec('hinge', 'none', 'none') and gan.critic_spectral
  state = jax.eval_shape(lambda: updates.init_state(gan, 0, (32, 32, 3)))
  kernels = {'/'.join(k.key for k in path[:-1]) for path, leaf in
             jax.tree_util.tree_flatten_with_path(state.critic.params)[0] if leaf.ndim >= 2}
  assert set(state.critic.spectral) == {k + '/kernel' for k in kernels}
  assert state.gen.params['Dense_0']['kernel'].shape == (128, 4 * 4 * 256)
  assert state.critic.params['adv_head']['kernel'].shape == (128, 1)
  # Sum pooling: the critic's features are the sum over the 8x8 map, 64 times the mean.
  mean = load_config('sngan.py:cifar10', model__critic_pool='mean')
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, 32, 32, 3), minval=-1, maxval=1)
  outs = []
  for c in (config, mean):
    c.model.width = c.model.critic_width = 8
    g = updates.build_gan(c, (32, 32, 3), 0)
    params = updates.init_state(g, 0, (32, 32, 3)).critic.params
    outs.append(g.critic.apply({'params': {**params, 'adv_head': {
        'kernel': jnp.ones_like(params['adv_head']['kernel']),
        'bias': jnp.zeros_like(params['adv_head']['bias'])}}}, x, train=False)[0])
  np.testing.assert_allclose(outs[0], 64 * outs[1], rtol=1e-4)


def test_a_subset_of_the_split_is_one_fixed_draw_and_evaluation_scores_against_all_of_it(
    tmp_path):
  from gan_jax import evaluator  # pylint: disable=g-import-not-at-top
  full = load_config('dcgan.py:digits,runlocal')
  part = load_config('dcgan.py:digits,runlocal', dataset__subset=0.1, seed=5)
  all_data = input_pipeline.load(full.dataset)
  rows = input_pipeline.subset_rows(1797, 0.1)
  assert len(rows) == 180 and len(set(rows)) == 180
  trained = {}
  with mock.patch.object(modes.trainer, 'train',
                         lambda config, workdir, stepper, data, evaluation: trained.update(
                             data=data)):
    modes.train(part, str(tmp_path))
  np.testing.assert_array_equal(trained['data'].images, all_data.images[rows])
  np.testing.assert_array_equal(trained['data'].labels, all_data.labels[rows])
  assert len(set(trained['data'].labels.tolist())) == 10   # a random draw, not the first images
  # The evaluator's reference is the whole split.
  assert len(input_pipeline.load(evaluator.reference_data(part)).images) == 1797
  part.dataset.storage = 'stream'
  with pytest.raises(errors.ConfigError, match='dataset.subset keeps part'):
    modes.train(part, str(tmp_path / 'streamed'))
