"""model.arch 'stylegan2' (gan_jax/models/stylegan2/__init__.py), the 'stylegan2' preset and
configs/stylegan2.py: the registry's contract, the refusals, the official parameter counts of
the 'cifar' config, the EMA's ramp-up, style mixing's draws and the path length penalty in the
updates (jit and pmap alike; lazy: times pl_every on the updates that take it), and the
runlocal config training with both, resuming exactly and sampling deterministically, two
members (num_seeds) resuming exactly, and a colour folder at 256 px trained and sampled through
main.py (the networks, style mixing and the penalty against the official code:
test_stylegan2_networks.py).
"""

import dataclasses
import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import load_config, model_config, run_main
from gan_jax import (checkpoints, checks, input_pipeline, modes, models, sampling, seeds, styles,
                     trainer, updates)
from gan_jax.errors import ConfigError
from gan_jax.stepper import Stepper

TINY = dict(channel_base=128, channel_max=16, w_dim=16, mapping_layers=2, gen_norm='none',
            critic_norm='none')


def _count(variables):
  return sum(math.prod(p.shape) for p in jax.tree.leaves(variables['params']))


def _init(module, *inputs):
  return module.init(jax.random.PRNGKey(0), *inputs, train=False)


@pytest.mark.parametrize('classes', [0, 10])
def test_the_pair_obeys_the_registrys_contract(classes):
  """Shapes by tracing (the values: test_stylegan2_networks.py against the official code; the
  labels' effect on G: the runlocal test)."""
  gen, critic = models.build(model_config('stylegan2', **TINY), (32, 32, 1), classes,
                             conditioning='projection')
  z, labels = jnp.zeros((4, 8)), jnp.arange(4)
  gen_vars = jax.eval_shape(lambda: _init(gen, z, labels))
  assert set(gen_vars['params']) == {'mapping', 'synthesis'}   # the official names
  assert gen_vars['batch_stats']['mapping']['w_avg'].shape == (16,)
  images = jax.eval_shape(lambda v: gen.apply(v, z, labels, train=True,
                                             rngs={'noise': jax.random.PRNGKey(2)},
                                             mutable=['batch_stats'])[0], gen_vars)
  assert images.shape == (4, 32, 32, 1) and images.dtype == jnp.float32
  critic_vars = jax.eval_shape(lambda x: _init(critic, x, labels), images)
  adv, class_logits = jax.eval_shape(lambda v, x: critic.apply(v, x, labels, train=True),
                                     critic_vars, images)
  assert adv.shape == (4,) and class_logits is None
  # conditional: G embeds the one-hot label in its mapping, D maps it to cmap (16 channels at 4x4)
  g_embed = gen_vars['params']['mapping'].get('embed')
  d_mapping = critic_vars['params'].get('mapping')
  if classes:
    assert g_embed['weight'].shape == (10, 16)
    assert d_mapping['embed']['weight'].shape == (10, 16)
    assert critic_vars['params']['b4']['out']['weight'].shape == (16, 16)   # to cmap_dim
  else:
    assert g_embed is None and d_mapping is None
    assert critic_vars['params']['b4']['out']['weight'].shape == (16, 1)


def test_the_cifar_configs_parameter_counts_are_the_officials():
  """stylegan2-ada-pytorch's train.py --cfg=cifar --cond=1: G 20,215,315, D ('orig')
  23,089,664 (test_stylegan2_networks.py counts the official modules)."""
  config = load_config('stylegan2.py:cifar10')
  gen, critic = models.build(config.model, (32, 32, 3), 10, conditioning='projection')
  labels = jnp.zeros((1,), jnp.int32)
  counts = (_count(jax.eval_shape(lambda: _init(gen, jnp.zeros((1, 512)), labels))),
            _count(jax.eval_shape(lambda: _init(critic, jnp.zeros((1, 32, 32, 3)), labels))))
  assert counts == (20_215_315, 23_089_664)


# --- refusals ------------------------------------------------------------------------------------

@pytest.mark.parametrize('overrides,shape,message', [
    ({}, (48, 48, 3), 'side 32, 64, 128, 256'),
    ({'model__gen_label_input': 'embed'}, (32, 32, 3), "leave model.gen_label_input ''"),
    ({'model__spectral_norm': True}, (32, 32, 3), 'not spectral norm'),
    ({'model__critic_norm': 'layer'}, (32, 32, 3), "critic_norm 'none'"),
])
def test_what_stylegan2_cannot_build_is_refused_in_one_line(overrides, shape, message):
  config = load_config('stylegan2.py:digits,runlocal', **overrides)
  checks.check_config(config, 1)
  with pytest.raises(ConfigError, match=message) as refused:
    checks.check_data(config, shape, 10)
  assert '\n' not in str(refused.value)


@pytest.mark.parametrize('overrides,message', [
    ({'model__conditional': 'acgan'},
     "model.arch 'stylegan2' is conditioned by 'projection': set model.conditional to it or "
     "'none', got 'acgan'"),
    ({'model__critic_architecture': 'skip'}, "model.critic_architecture must be one of"),
    ({'model__noise_mode': 'fixed'}, 'model.noise_mode must be one of'),
    ({'model__mbstd_group_size': 6},
     "model.mbstd_group_size 6 must divide the critic's batch of 16 images"),
])
def test_conditioning_other_than_projection_and_unknown_choices_are_refused(overrides, message):
  with pytest.raises(ConfigError, match=message) as refused:
    checks.check_config(load_config('stylegan2.py:digits,runlocal', **overrides), 1)
  assert '\n' not in str(refused.value)


@pytest.mark.parametrize('overrides,message', [
    ({'model__style_mixing': 0.9},
     "model.style_mixing 0.9 works on the ws of StyleGAN2's generator: model.arch 'mlp' has "
     "none (set it 0)"),
    ({'loss__pl_weight': 2.0}, "loss.pl_weight 2.0 works on the ws of StyleGAN2's generator"),
])
def test_style_mixing_and_the_path_length_penalty_are_refused_for_other_families(overrides,
                                                                                 message):
  checks.check_config(load_config('dcgan.py:digits,runlocal,mlp'), 1)
  with pytest.raises(ConfigError, match=re.escape(message)) as refused:
    checks.check_config(load_config('dcgan.py:digits,runlocal,mlp', **overrides), 1)
  assert '\n' not in str(refused.value)


# --- the config ----------------------------------------------------------------------------------

def test_cifar10_takes_the_official_cifar_spec_and_other_data_auto_by_resolution():
  c = load_config('stylegan2.py:cifar10')
  m = c.model
  assert (c.gan, m.arch, m.conditional, m.critic_architecture) == (
      'stylegan2', 'stylegan2', 'projection', 'orig')
  assert (m.channel_base, m.channel_max, m.mapping_layers, m.w_dim, c.latent_dim) == (
      32768, 512, 2, 512, 512)
  assert (c.batch_size, m.mbstd_group_size, m.conv_clamp, c.n_critic) == (64, 32, 256.0, 1)
  assert (c.loss.r1_weight, c.loss.r1_every, c.num_steps) == (0.01, 16, 100_000_000 // 64)
  assert c.ema.decay == pytest.approx(0.5 ** (64 / 500_000)) and c.ema.rampup == 0.05
  # lazy regularisation: lr and betas ** (interval / (interval + 1)), D 16, G 4
  d, g = c.critic_optimizer, c.gen_optimizer
  assert (d.learning_rate, d.b1, d.b2) == pytest.approx((0.0025 * 16 / 17, 0, 0.99 ** (16 / 17)))
  assert (g.learning_rate, g.b1, g.b2) == pytest.approx((0.0025 * 4 / 5, 0, 0.99 ** (4 / 5)))
  assert (m.style_mixing, c.loss.pl_weight) == (0.0, 0.0)     # 'cifar': neither
  for arg, side, gamma in (('cifar10,auto', 32, 0.0032), ('celeb_a', 64, 0.0128),
                           ('celeb_a,size128', 128, 0.0512), ('celeb_a,size256', 256, 0.2048)):
    a = load_config(f'stylegan2.py:{arg}')   # 'auto' for 8 GPUs: gamma 0.0002 res^2 / 64
    assert a.dataset.image_size == side and a.loss.r1_weight == pytest.approx(gamma)
    assert a.model.conditional == 'none' and a.model.critic_architecture == 'resnet'
    assert (a.batch_size, a.model.mbstd_group_size, a.model.channel_base) == (64, 4, 16384)
    assert a.ema.decay == pytest.approx(0.5 ** (64 / 20_000)) and a.num_steps == 390_625
    # StyleGAN2Loss's defaults: style mixing 0.9, the path length penalty on batch / 2 every
    # 4th G update (G_reg_interval), weight 2, pl_mean's rate 0.01
    assert a.model.style_mixing == 0.9
    assert (a.loss.pl_weight, a.loss.pl_every, a.loss.pl_batch_shrink, a.loss.pl_decay) == (
        2.0, 4, 2, 0.01)
  assert load_config('stylegan2.py:fashion_mnist').dataset.image_size == 32   # resized
  for arg in ('cifar10,cifar,auto', 'cifar10,cifar,small', 'cifar10,auto,small',
              'celeb_a,auto,paper256'):
    with pytest.raises(ValueError, match="one of the options 'cifar', 'auto', 'small' and "
                                         "'paper256'"):
      load_config(f'stylegan2.py:{arg}')
  with pytest.raises(ValueError, match='choose one image size, got size128, size256'):
    load_config('stylegan2.py:celeb_a,size128,size256')


def test_paper256_is_the_officials_256_px_setting():
  """train.py's cfg_specs['paper256']: 8 GPUs, batch 64, groups of 8, fmaps 0.5, lr 0.0025,
  gamma 1, EMA 20 kimg without ramp-up, mapping 8; the loss's defaults (style mixing 0.9, the
  path length penalty); 256 px unless a size option is given."""
  p, a = load_config('stylegan2.py:celeb_a,paper256'), load_config('stylegan2.py:celeb_a,size256')
  m = p.model
  assert (p.dataset.image_size, p.batch_size, m.mbstd_group_size) == (256, 64, 8)
  assert (m.channel_base, m.channel_max, m.mapping_layers, m.w_dim, p.latent_dim) == (
      16384, 512, 8, 512, 512)
  assert (p.loss.r1_weight, p.num_steps, m.conditional, m.critic_architecture) == (
      1.0, 25_000_000 // 64, 'none', 'resnet')
  assert p.ema.decay == pytest.approx(0.5 ** (64 / 20_000)) and p.ema.rampup == 0.0
  assert (m.style_mixing, p.loss.pl_weight, p.augment.ada) == (0.9, 2.0, 'bgc')
  assert p.gen_optimizer == a.gen_optimizer and p.critic_optimizer == a.critic_optimizer
  assert load_config('stylegan2.py:celeb_a,paper256,size128').dataset.image_size == 128


def test_small_is_auto_for_one_gpu_with_the_documented_widths_and_sizes():
  """configs/stylegan2.py's 'small': train.py's 'auto' for 1 GPU at 32 px (batch 32, groups of
  4, gamma 0.0002 * 32^2 / 32, EMA half-life 10k images), channel_base 1024, channel_max 128,
  z and w 128; G 748,715 and D 871,521 parameters at 32x32x1 (unconditional)."""
  s, a = load_config('stylegan2.py:fashion_mnist,small'), load_config('stylegan2.py:cifar10,auto')
  m = s.model
  assert (s.dataset.image_size, m.conditional, m.critic_architecture) == (32, 'none', 'resnet')
  assert load_config('stylegan2.py:cifar10,small').model.conditional == 'none'
  assert (m.channel_base, m.channel_max, m.w_dim, s.latent_dim, m.mapping_layers) == (
      1024, 128, 128, 128, 2)
  assert [min(m.channel_base // r, m.channel_max) for r in (4, 8, 16, 32)] == [128, 128, 64, 32]
  assert (s.batch_size, m.mbstd_group_size, s.num_steps) == (32, 4, 25_000_000 // 32)
  assert s.loss.r1_weight == pytest.approx(0.0064) and s.loss.r1_every == 16
  assert s.ema.decay == pytest.approx(0.5 ** (32 / 10_000)) and s.ema.rampup == 0.05
  # the rest is auto's: lr and the lazy adjustment, style mixing, the penalty, ADA
  assert s.gen_optimizer == a.gen_optimizer and s.critic_optimizer == a.critic_optimizer
  assert (m.style_mixing, m.conv_clamp, m.noise_mode) == (0.9, 256.0, 'random')
  assert s.loss.to_dict() == {**a.loss.to_dict(), 'r1_weight': s.loss.r1_weight}
  assert s.augment.to_dict() == a.augment.to_dict()
  gen, critic = models.build(m, (32, 32, 1), 0, conditioning='projection')
  counts = (_count(jax.eval_shape(lambda: _init(gen, jnp.zeros((1, 128)), None))),
            _count(jax.eval_shape(lambda: _init(critic, jnp.zeros((1, 32, 32, 1)), None))))
  assert counts == (748_715, 871_521)
  # against auto's networks on the same 32x32x1 images (docs/stylegan2.md's comparison): auto's
  # 32x32x3 counts (test_stylegan2_networks.py) less ToRGB's and FromRGB's two colour channels
  gen, critic = models.build(a.model, (32, 32, 1), 0, conditioning='projection')
  counts = (_count(jax.eval_shape(lambda: _init(gen, jnp.zeros((1, a.latent_dim)), None))),
            _count(jax.eval_shape(lambda: _init(critic, jnp.zeros((1, 32, 32, 1)), None))))
  assert counts == (19_943_435, 21_506_049)


def test_the_ema_half_life_ramps_up_with_the_images_seen():
  """StyleGAN2-ADA: beta = 0.5 ** (B / min(half-life, rampup * images seen)); a copy at 0."""
  gen = updates.PlayerState({'w': jnp.ones(())}, {}, None)
  ema = {'params': {'w': jnp.zeros(())}, 'stats': {}}
  decay, rampup, batch = 0.5 ** (64 / 500_000), 0.05, 64
  for step in (0, 1, 100, 10_000, 200_000):
    rate = 0.0 if step == 0 else 0.5 ** (batch / min(500_000, rampup * step * batch))
    out = updates.ema_update(ema, gen, jnp.asarray(step), decay, 0, rampup)
    np.testing.assert_allclose(out['params']['w'], 1 - rate, rtol=1e-5, atol=1e-7)
  # without a ramp-up, the decay from the start
  out = updates.ema_update(ema, gen, jnp.asarray(1), decay, 0)
  np.testing.assert_allclose(out['params']['w'], 1 - decay, atol=1e-7)


# --- style mixing and the path length penalty in the updates ------------------------------------

@functools.lru_cache(maxsize=None)
def _sg2():
  """(GAN, its initial state) of the unconditional runlocal config with style mixing 0.9 and
  the path length penalty."""
  config = load_config('stylegan2.py:digits,auto,runlocal')
  gan = updates.build_gan(config, (32, 32, 1), 0)
  return gan, jax.jit(functools.partial(updates.init_state, gan, 0, (32, 32, 1)))()


def _map(gan, gen, z, **kwargs):
  return gan.generator.apply({'params': gen.params, 'batch_stats': gen.stats}, z, train=True,
                             method='map', mutable=['batch_stats'], **kwargs)


def test_the_mixing_cutoff_is_one_per_batch_uniform_below_num_ws_with_its_probability():
  cutoffs = np.asarray(jax.vmap(lambda k: styles.mixing_cutoff(k, 0.9, 8))(
      jax.random.split(jax.random.PRNGKey(0), 20_000)))
  assert cutoffs.shape == (20_000,) and cutoffs.min() == 1 and cutoffs.max() == 8
  np.testing.assert_allclose(np.mean(cutoffs == 8), 0.1, atol=0.01)   # not mixed
  counts = np.bincount(cutoffs[cutoffs < 8], minlength=8)[1:]
  np.testing.assert_allclose(counts / counts.sum(), 1 / 7, atol=0.01)   # 1..7 alike
  never = jax.vmap(lambda k: styles.mixing_cutoff(k, 0.0, 8))(jax.random.split(
      jax.random.PRNGKey(1), 1000))
  assert set(np.asarray(never).tolist()) == {8}


def test_mixing_takes_the_ws_after_one_cutoff_from_other_z_and_without_it_is_the_plain_forward():
  gan, state = _sg2()
  gen = state.gen
  z = jax.random.normal(jax.random.PRNGKey(1), (6, gan.latent_dim))
  key = jax.random.PRNGKey(2)
  (plain, plain_stats), num_ws = _map(gan, gen, z), gan.generator.num_ws
  # p = 1: the other z as _mapped draws them, the ws from the batch's cutoff on theirs
  always = dataclasses.replace(gan, style_mixing=1.0)
  ws, stats = updates._mapped(always, gen.params, gen.stats, z, None, key)
  z_key, cutoff_key = jax.random.split(jax.random.fold_in(key, updates.MIXING_STREAM))
  other, _ = _map(gan, gen, jax.random.normal(z_key, z.shape))
  cutoff = int(styles.mixing_cutoff(cutoff_key, 1.0, num_ws))
  assert 1 <= cutoff < num_ws == ws.shape[1] == 8
  np.testing.assert_array_equal(ws[:, :cutoff], plain[:, :cutoff])
  np.testing.assert_array_equal(ws[:, cutoff:], other[:, cutoff:])
  assert float(jnp.abs(other - plain).min()) > 0       # so every row switches at the cutoff
  _tree_equal(stats, plain_stats)                      # w_avg moved by z's ws alone
  assert float(jnp.abs(stats['mapping']['w_avg'] - gen.stats['mapping']['w_avg']).max()) > 0
  # p > 0 but no mixing drawn (cutoff num_ws): the plain forward, images and statistics
  never = dataclasses.replace(gan, style_mixing=1e-9)
  generated = lambda g: jax.jit(lambda p, s, z, k: updates._generated(g, p, s, z, None, k))(
      gen.params, gen.stats, z, key)   # compiled: op by op, the synthesis network is slow
  images, stats = generated(never)
  plain_images, plain_stats = generated(dataclasses.replace(gan, style_mixing=0.0))
  np.testing.assert_allclose(images, plain_images, atol=1e-6)
  _tree_equal(stats, plain_stats)


def _as_devices(gan, fn, devices: int):
  """`fn(gan)` run as `devices` pmap devices (a vmap with the device axis): each its share of
  the batch, concatenated."""
  named = dataclasses.replace(gan, axis_name='devices')
  return jax.vmap(lambda _: fn(named), axis_name='devices')(jnp.arange(devices))


def test_mixing_and_the_path_length_penalty_draw_the_same_on_one_device_and_on_two():
  """Under pmap each device keeps its rows of the global batch's other z and of the penalty's
  z and y, and every device takes the same cutoff and pl_mean; the penalty is then the global
  batch's mean. (G's noise inputs are fixed here: a device draws its own.)"""
  gan, state = _sg2()
  gen = state.gen
  gan = dataclasses.replace(gan, style_mixing=1.0,
                            generator=gan.generator.clone(noise_mode='const'))
  z = jax.random.normal(jax.random.PRNGKey(1), (8, gan.latent_dim))
  key, pl_mean = jax.random.PRNGKey(3), jnp.asarray(0.5, jnp.float32)
  ws, _ = updates._mapped(gan, gen.params, gen.stats, z, None, key)
  halves = _as_devices(gan, lambda g: updates._mapped(
      g, gen.params, gen.stats, z.reshape(2, 4, -1)[jax.lax.axis_index('devices')], None,
      key)[0], 2)
  np.testing.assert_allclose(halves.reshape(ws.shape), ws, atol=1e-6)
  one = jax.jit(lambda: updates._path_length(gan, gen.params, gen.stats, pl_mean, key, 8))()
  two = jax.jit(lambda: _as_devices(gan, lambda g: (lambda p, m: (
      jax.lax.pmean(p, 'devices'), m))(*updates._path_length(g, gen.params, gen.stats, pl_mean,
                                                             key, 4)), 2))()
  np.testing.assert_allclose(two[0], one[0], rtol=1e-5)        # the penalty, both devices
  np.testing.assert_allclose(two[1], one[1], rtol=1e-6)        # pl_mean, both devices
  assert float(one[0]) > 0 and float(one[1]) != 0.5


@pytest.mark.slow   # a compile of G's update through the penalty's second derivatives
def test_the_lazy_path_length_penalty_adds_weight_times_every_on_its_updates_only():
  """On an update that takes it, the generator's loss gains pl_weight * pl_every * penalty and
  pl_mean moves; on the others the penalty is 0 and pl_mean stays (the same z, noise and
  critic: the losses differ by the penalty term alone)."""
  gan, state = _sg2()
  lazy = dataclasses.replace(gan, pl_weight=2.0, pl_every=4)
  key, p = jax.random.PRNGKey(5), state.ada['p'] if state.ada else None
  mean = {'mean': jnp.asarray(0.5, jnp.float32)}
  update = jax.jit(lambda now: updates.gen_update(lazy, state.gen, state.critic, key, 8, p,
                                                  mean, now)[1])
  taken, skipped = update(jnp.asarray(True)), update(jnp.asarray(False))
  penalty = float(taken['pl_penalty'])
  assert penalty > 0 and float(skipped['pl_penalty']) == 0.0
  np.testing.assert_allclose(taken['gen_loss'], skipped['gen_loss'] + 2.0 * 4 * penalty,
                             rtol=1e-5)
  assert float(taken['pl_mean']) != 0.5 and float(skipped['pl_mean']) == 0.5


@pytest.mark.slow   # a compile of 4 StyleGAN2 iterations in one call
def test_lazy_r1_and_path_length_penalty_fall_on_the_iterations_their_intervals_divide():
  """4 iterations of the runlocal config in one call (1 critic update an iteration; R1 and the
  path length penalty every 2nd update): both penalties are taken on iterations 0 and 2 and are
  0 on 1 and 3 (updates.train_step's update % r1_every and step % pl_every); pl_mean moves on
  0 and 2 and stays on 1 and 3, and the state keeps iteration 3's."""
  config = load_config('stylegan2.py:digits,auto,runlocal')
  assert (config.n_critic, config.loss.r1_every, config.loss.pl_every) == (1, 2, 2)
  assert config.loss.pl_weight > 0
  data = input_pipeline.load(config.dataset)
  stepper = Stepper(config, data.image_shape, data.num_classes)
  stream = seeds.stream(data, config)
  state, metrics, _ = stepper.train(stepper.init(), [stream.next(1) for _ in range(4)])
  r1, pl, mean = (np.asarray(metrics[k]) for k in ('r1_penalty', 'pl_penalty', 'pl_mean'))
  assert r1.shape == pl.shape == mean.shape == (4,) and int(state.step) == 4
  assert r1[0] > 0 and r1[2] > 0 and r1[1] == 0 and r1[3] == 0
  assert pl[0] > 0 and pl[2] > 0 and pl[1] == 0 and pl[3] == 0
  assert mean[0] > 0 and mean[1] == mean[0] and mean[2] != mean[1] and mean[3] == mean[2]
  assert float(state.path_length['mean']) == mean[3]


# --- training ------------------------------------------------------------------------------------

def _tree_equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.slow   # three trainings of the runlocal config: minutes on 2 cores
def test_runlocal_trains_resumes_exactly_and_samples_deterministically(tmp_path):
  spec = 'stylegan2.py:digits,cifar,runlocal'    # conditional: the 'cifar' settings
  # ... with 'auto''s style mixing and path length penalty (every 2nd G update in runlocal)
  quiet = dict(sample_every=0, log_every=0, model__style_mixing=0.9, loss__pl_weight=2.0)
  straight = modes.train(load_config(spec, num_steps=4, **quiet), str(tmp_path / 'straight'))
  modes.train(load_config(spec, num_steps=2, **quiet), str(tmp_path / 'resumed'))
  resumed = modes.train(load_config(spec, num_steps=4, **quiet), str(tmp_path / 'resumed'))
  assert int(straight.step) == int(resumed.step) == 4
  _tree_equal(straight, resumed)       # 2 + 2 steps are 4 straight, bit for bit
  w_avg = np.asarray(straight.gen.stats['mapping']['w_avg'])
  assert np.abs(w_avg).max() > 0       # the mapping's average moved in training
  assert straight.critic.params['mapping']['embed']['weight'].shape == (10, 16)  # conditional
  # ADA's p and its sign sums are in the state, and resume exactly (compared above)
  assert set(straight.ada) == {'p', 'signs', 'count'} and 0 <= float(straight.ada['p']) <= 1
  # ... and so does pl_mean, moved by the penalties of G updates 0 and 2 from its start at 0
  assert set(straight.path_length) == {'mean'} and float(straight.path_length['mean']) > 0

  config = load_config(spec, **quiet)
  stepper = Stepper(config, (32, 32, 1), 10)
  first = sampling.draw(stepper, straight, seed=0, num_samples=12)
  again = sampling.draw(stepper, resumed, seed=0, num_samples=12)
  other = sampling.draw(stepper, straight, seed=1, num_samples=12)
  np.testing.assert_array_equal(first[0], again[0])     # the sample stream decides
  np.testing.assert_array_equal(first[1], again[1])
  assert np.abs(first[0] - other[0]).max() > 1e-3
  # the noise inputs count: the same z with other noise gives other images
  z, labels = stepper.noise(jax.random.PRNGKey(3), 4), jnp.arange(4)
  fixed = np.asarray(stepper.generate(straight, z, labels))
  np.testing.assert_array_equal(fixed, stepper.generate(straight, z, labels))
  noisy = np.asarray(stepper.generate(straight, z, labels, jax.random.PRNGKey(4)))
  assert np.abs(noisy - fixed).max() > 1e-5
  # ... and so do the labels (the mapping's embedding)
  relabelled = np.asarray(stepper.generate(straight, z, labels + 4))
  assert np.abs(relabelled - fixed).max() > 1e-5


@pytest.mark.slow   # three trainings of two members of the runlocal config
def test_members_resume_exactly_each_with_its_own_ada_p_and_path_length_mean(tmp_path):
  """num_seeds 2: 2 + 1 iterations are 3 straight, bit for bit, every member's ADA p, sign sums
  and path length mean included; each member keeps its own (test_multidevice.py's seeds_3
  shows each equals the separate run of its seed)."""
  spec = 'stylegan2.py:digits,auto,runlocal'
  # p from 0.5 (from 0 it stayed at 0 here: E[sign D(real)] below the target 0.6)
  quiet = dict(sample_every=0, log_every=0, num_seeds=2, seed=1, augment__ada_p=0.5)
  straight = modes.train(load_config(spec, num_steps=3, **quiet), str(tmp_path / 'straight'))
  modes.train(load_config(spec, num_steps=2, **quiet), str(tmp_path / 'resumed'))
  resumed = modes.train(load_config(spec, num_steps=3, **quiet), str(tmp_path / 'resumed'))
  assert int(straight.step) == int(resumed.step) == 3
  _tree_equal(straight, resumed)
  p, pl_mean = np.asarray(straight.ada['p']), np.asarray(straight.path_length['mean'])
  assert p.shape == pl_mean.shape == straight.ada['count'].shape == (2,)
  # p moved by +-0.1 on each of the 3 iterations (runlocal: every iteration, by 16 / 160
  # images), to 0.2, 0.4, 0.6 or 0.8
  tenths = np.round(p * 10)
  assert np.all((np.abs(p * 10 - tenths) < 1e-4) & np.isin(tenths, (2, 4, 6, 8))), p
  assert np.all(pl_mean > 0) and pl_mean[0] != pl_mean[1]   # each member's own mean


@pytest.mark.slow   # main.py's compiles at 256 px: a minute or more on 2 cores
def test_a_colour_folder_at_256_px_trains_and_samples_through_main(tmp_path):
  """A user's folder of colour images of another size, at the official configs' largest 256 px:
  main.py trains 'auto' with ADA at runlocal widths (channel_base 1024: 16 channels to 64 px,
  4 at 256; batch 4, one minibatch-std group) on 256x256x3, its synthesis and D blocks at 4 to
  256 px, and --mode=sample draws 256x256x3 images from the workdir. (ADA's geometric
  transforms pad every image by its side - 1 and upsample it 2x, 1,532 px a side at 256 px:
  at batch 16 they took most of an iteration here.)"""
  rng = np.random.default_rng(0)
  folder = tmp_path / 'photos'
  folder.mkdir()
  for i in range(16):
    Image.fromarray(rng.integers(0, 256, (300, 280, 3), dtype=np.uint8)).save(
        folder / f'{i}.png')
  run = tmp_path / 'run'
  common = ('--config=configs/stylegan2.py:celeb_a,runlocal', f'--workdir={run}',
            f'--config.dataset.path={folder}', '--config.dataset.image_size=256',
            '--config.model.channel_base=1024', '--config.batch_size=4',
            '--config.sample_every=0', '--config.num_steps=2')
  proc = run_main(*common, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'Training on 256x256x3 images' in proc.stderr
  config = load_config('stylegan2.py:celeb_a,runlocal', dataset__image_size=256,
                       model__channel_base=1024, batch_size=4)
  state = checkpoints.restore_for_use(
      str(run), Stepper(config, (256, 256, 3), 0).abstract_state())
  assert int(state.step) == 2 and float(state.ada['p']) > 0   # ADA ran
  resolutions = [2 ** k for k in range(2, 9)]
  assert sorted(state.gen.params['synthesis']) == sorted(f'b{r}' for r in resolutions)
  assert {f'b{r}' for r in resolutions[1:]} <= set(state.critic.params)
  proc = run_main(f'--workdir={run}', '--mode=sample', '--num_samples=4',
                  f'--out={tmp_path / "samples.npz"}', timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with np.load(tmp_path / 'samples.npz') as samples:
    images = samples['images']
  assert images.shape == (4, 256, 256, 3) and np.isfinite(images).all()
  assert images.std() > 0


@pytest.mark.slow   # four compiles of both players' second derivatives, a minute or more
def test_cpu_convolutions_equal_lax_in_both_players_to_r1():
  """conv_impl 'hybrid' (what 'auto' picks on a CPU: gan_jax/layers.py's F/D/W forms for
  every one-group convolution, up- and downsampling ones included) computes what 'xla' (the
  lax calls, the official code's) does: both players' outputs, G's parameter gradients and the
  R1 penalty's (a second derivative through D)."""
  from gan_jax.models.stylegan2 import StyleGAN2Critic, StyleGAN2Generator  # pylint: disable=g-import-not-at-top
  gen = lambda impl: StyleGAN2Generator((32, 32, 1), channel_base=128, channel_max=16,
                                        w_dim=16, mapping_layers=2, conv_impl=impl)
  critic = lambda impl: StyleGAN2Critic(channel_base=128, channel_max=16, conv_impl=impl)
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 8))
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 32, 32, 1))
  g_vars = gen('xla').init({'params': jax.random.PRNGKey(2), 'noise': jax.random.PRNGKey(3)}, z)
  d_vars = critic('xla').init(jax.random.PRNGKey(4), x)
  images = jax.jit(lambda v, impl: gen(impl).apply(v, z, rngs={'noise': jax.random.PRNGKey(5)},
                                                   mutable=True)[0], static_argnums=1)
  scores = jax.jit(lambda v, impl: critic(impl).apply(v, x)[0], static_argnums=1)
  np.testing.assert_allclose(images(g_vars, 'hybrid'), images(g_vars, 'xla'), atol=1e-5)
  np.testing.assert_allclose(scores(d_vars, 'hybrid'), scores(d_vars, 'xla'), atol=1e-6)

  def r1(v, impl):
    return jnp.sum(jax.grad(lambda x: jnp.sum(critic(impl).apply(v, x)[0]))(x) ** 2)

  gen_loss = lambda v, impl: jnp.sum(jnp.sin(images(v, impl)))
  for loss, variables in ((r1, d_vars), (gen_loss, g_vars)):
    grad = jax.jit(jax.grad(loss), static_argnums=1)
    got, want = grad(variables, 'hybrid'), grad(variables, 'xla')
    scale = max(float(jnp.max(jnp.abs(leaf))) for leaf in jax.tree.leaves(want))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(a, b, atol=1e-5 * scale)
