"""model.arch 'biggan' (gan_jax/models/biggan.py), spectral norm's 'uv' estimate, the orthogonal
penalty and configs/biggan.py, without torch (the comparison with a PyTorch BigGAN:
test_biggan_torch.py)."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config, model_config, restore_state, run_main
from gan_jax import checks, input_pipeline, losses, models, spectral
from gan_jax.errors import ConfigError
from gan_jax.models import biggan
from gan_jax.stepper import Stepper


def _biggan(**overrides):
  return model_config('biggan', **{**dict(critic_norm='none', shared_dim=8), **overrides})


def _shapes(module, *inputs):
  variables = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *inputs, train=False))
  return variables, jax.tree.map(lambda p: p.shape, variables['params'])


def _count(variables):
  return sum(math.prod(p.shape) for p in jax.tree.leaves(variables['params']))


def _pair_shapes(m, side, classes, latent):
  gen, critic = models.build(m, (side, side, 3), classes, conditioning='projection')
  labels = jnp.zeros((1,), jnp.int32)
  return (_shapes(gen, jnp.zeros((1, latent)), labels),
          _shapes(critic, jnp.zeros((1, side, side, 3)), labels))


@pytest.mark.parametrize('side,ch,critic_ch,latent,attention,counts', [
    # BigGAN-PyTorch's BigGAN.py (G_shared, hier, dim_z 120, shared_dim 128, attention 64) at
    # ch 96, counted from its modules' parameters: the paper's 70.4M G and 88.0M D at 128 px
    (128, 96, 96, 120, 64, (70_433_988, 87_982_370)),
    (64, 96, 96, 120, 64, (70_239_108, 45_500_449)),
    # StudioGAN's CIFAR-10 BigGAN (G ch 96, D 192 channels, z 80, attention at 16x16): the
    # parameter counts its training log prints
    (32, 96, 48, 80, 16, (9_416_196, 2_415_170)),
])
def test_parameter_counts_are_the_reference_codes(side, ch, critic_ch, latent, attention,
                                                  counts):
  m = _biggan(width=ch, critic_width=critic_ch, attention_resolution=attention, shared_dim=128)
  (gen, _), (critic, _) = _pair_shapes(m, side, 10 if side == 32 else 1000, latent)
  assert (_count(gen), _count(critic)) == counts


def test_the_128_px_architecture_is_biggans():
  """G: linear 20 -> 4x4x16ch, up-blocks 16-16-8-4-2 ch -> 16-8-4-2-1 ch, attention at 64x64
  (after the 4th block, on 2ch), ccbn linears from [shared 128, z chunk 20]; D: blocks to
  ch, 2, 4, 8, 16, 16 ch (the last without downsampling or 1x1 shortcut), attention at 64x64
  (after the first), linear and projection on 16ch."""
  ch = 8
  m = _biggan(width=ch, critic_width=ch, attention_resolution=64, shared_dim=128)
  (_, g), (_, d) = _pair_shapes(m, 128, 1000, 120)
  assert g['Dense_0']['kernel'] == (20, 4 * 4 * 16 * ch)
  assert g['shared_embed']['embedding'] == (1000, 128)
  ins, outs = [16, 16, 8, 4, 2], [16, 8, 4, 2, 1]
  for i, (cin, cout) in enumerate(zip(ins, outs)):
    block = g[f'ResBlock_{i}']
    assert block['Conv_0']['kernel'] == (1, 1, cin * ch, cout * ch)   # shortcut
    assert block['Conv_1']['kernel'] == (3, 3, cin * ch, cout * ch)
    assert block['Conv_2']['kernel'] == (3, 3, cout * ch, cout * ch)
    for j, c in enumerate((cin, cout)):
      cbn = block[f'ConditionalBatchNorm_{j}']
      assert cbn['scale_linear']['kernel'] == cbn['bias_linear']['kernel'] == (148, c * ch)
  assert g['SelfAttention_0']['theta']['kernel'] == (1, 1, 2 * ch, 2 * ch // 8)
  assert g['SelfAttention_0']['g']['kernel'] == (1, 1, 2 * ch, ch)
  assert g['SelfAttention_0']['gamma'] == ()
  assert 'SelfAttention_1' not in g and g['Conv_0']['kernel'] == (3, 3, ch, 3)
  outs = [1, 2, 4, 8, 16, 16]
  for i, (cin, cout) in enumerate(zip([3 / ch] + outs[:-1], outs)):
    block = d[f'ResBlock_{i}']
    convs = [block[f'Conv_{k}']['kernel'] for k in range(3) if f'Conv_{k}' in block]
    if i < 5:   # a 1x1 shortcut, then the wide block's convs: both give cout
      assert convs == [(1, 1, cin * ch, cout * ch), (3, 3, cin * ch, cout * ch),
                       (3, 3, cout * ch, cout * ch)]
    else:
      assert convs == [(3, 3, cin * ch, cout * ch), (3, 3, cout * ch, cout * ch)]
  assert d['SelfAttention_0']['o']['kernel'] == (1, 1, ch // 2, ch)
  assert 'SelfAttention_1' not in d
  assert d['adv_head']['kernel'] == (16 * ch, 1)
  assert d['projection_embed']['embedding'] == (1000, 16 * ch)


def test_without_hierarchy_z_goes_whole_into_the_linear_layer():
  m = _biggan(width=2, critic_width=2, hierarchical=False, attention_resolution=0)
  (_, g), (_, d) = _pair_shapes(m, 32, 10, 30)
  assert g['Dense_0']['kernel'] == (30, 4 * 4 * 8)
  assert g['ResBlock_0']['ConditionalBatchNorm_0']['scale_linear']['kernel'] == (8, 8)
  assert not any(k.startswith('SelfAttention') for k in list(g) + list(d))


def test_unconditional_biggan_conditions_its_norms_on_z_or_not_at_all():
  for hierarchical, norm in ((True, 'ConditionalBatchNorm_0'), (False, 'BatchNorm_0')):
    gen, critic = models.build(_biggan(width=2, critic_width=2, hierarchical=hierarchical),
                               (32, 32, 1), 0)
    z = jax.random.normal(jax.random.PRNGKey(0), (3, 16))
    variables = gen.init(jax.random.PRNGKey(1), z, None, train=False)
    assert 'shared_embed' not in variables['params']
    assert norm in variables['params'].get('ResBlock_0', {}) or norm in variables[
        'batch_stats']['ResBlock_0']
    images = gen.apply(variables, z, None, train=False)
    assert images.shape == (3, 32, 32, 1)
    adv, cls = critic.apply(critic.init(jax.random.PRNGKey(2), images, train=False), images,
                            train=False)
    assert adv.shape == (3,) and cls is None


def test_generator_depends_on_each_z_chunk_and_the_label():
  gen, _ = models.build(_biggan(width=2, critic_width=2, attention_resolution=16), (32, 32, 3),
                        10, conditioning='projection')
  z = jax.random.normal(jax.random.PRNGKey(0), (2, 16))
  labels = jnp.array([1, 2])
  variables = gen.init(jax.random.PRNGKey(1), z, labels, train=False)
  base = gen.apply(variables, z, labels, train=False)
  for chunk in range(4):   # 16 = 4 chunks of 4: the linear layer's and one per block
    moved = gen.apply(variables, z.at[:, 4 * chunk:4 * chunk + 4].add(1.0), labels, train=False)
    assert float(jnp.abs(moved - base).max()) > 1e-3, chunk
  other = gen.apply(variables, z, labels + 1, train=False)
  assert float(jnp.abs(other - base).max()) > 1e-3


def test_self_attention_starts_as_the_identity_and_attends_once_its_gain_moves():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 16))
  layer = biggan.SelfAttention()
  variables = layer.init(jax.random.PRNGKey(1), x)
  np.testing.assert_array_equal(layer.apply(variables, x), x)
  params = {**variables['params'], 'gamma': jnp.asarray(1.0)}
  out = np.asarray(layer.apply({'params': params}, x), np.float64)
  # numpy: theta, max-pooled phi and g, softmax over the pooled positions, o
  k = {n: np.asarray(params[n]['kernel'][0, 0], np.float64) for n in ('theta', 'phi', 'g', 'o')}
  xs = np.asarray(x, np.float64)
  pool = lambda a: a.reshape(2, 4, 2, 4, 2, -1).max(axis=(2, 4)).reshape(2, 16, -1)
  theta = (xs @ k['theta']).reshape(2, 64, -1)
  logits = theta @ pool(xs @ k['phi']).transpose(0, 2, 1)
  beta = np.exp(logits - logits.max(-1, keepdims=True))
  beta /= beta.sum(-1, keepdims=True)
  expected = xs + ((beta @ pool(xs @ k['g'])) @ k['o']).reshape(2, 8, 8, 16)
  np.testing.assert_allclose(out, expected, atol=1e-4)


def test_ccbn_scales_by_one_plus_and_shifts_by_linear_maps_of_its_vector():
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 3, 3, 5)) * 2 + 1
  c = jax.random.normal(jax.random.PRNGKey(1), (4, 6))
  layer = models.ConditionalBatchNorm(0, condition='vector',
                                      kernel_init=jax.nn.initializers.normal(1.0))
  variables = layer.init(jax.random.PRNGKey(2), x, c)
  out, _ = layer.apply(variables, x, c, mutable=['batch_stats'])
  p = variables['params']
  mean, var = np.mean(x, (0, 1, 2)), np.var(x, (0, 1, 2))
  gain = 1 + np.asarray(c) @ np.asarray(p['scale_linear']['kernel'])
  shift = np.asarray(c) @ np.asarray(p['bias_linear']['kernel'])
  expected = (x - mean) / np.sqrt(var + 1e-5) * gain[:, None, None] + shift[:, None, None]
  np.testing.assert_allclose(out, expected, atol=1e-4)
  assert set(p) == {'scale_linear', 'bias_linear'}


# --- spectral norm: Miyato et al.'s estimate ---------------------------------------------------

def test_uv_estimate_is_miyatos_algorithm_and_an_embeddings_u_spans_its_classes():
  rng = np.random.default_rng(0)
  params = {'Dense_0': {'kernel': jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)},
            'projection_embed': {'embedding': jnp.asarray(rng.normal(size=(10, 4)),
                                                          jnp.float32)},
            'shared_embed': {'embedding': jnp.ones((10, 3))}}
  vectors = spectral.init_vectors(params, jax.random.PRNGKey(0), 'uv')
  assert set(vectors) == {'Dense_0/kernel', 'projection_embed/embedding'}  # not G's shared
  assert vectors['projection_embed/embedding'].shape == (10,)   # over the classes
  assert spectral.init_vectors(params, jax.random.PRNGKey(0))[
      'projection_embed/embedding'].shape == (4,)                  # 'u': over the features
  new, sigma_from = spectral.power_step(params, vectors, 'uv')
  assert sigma_from is vectors    # sigma from the u before the iteration
  _, sigmas = spectral.normalise(params, sigma_from, 'uv')
  # Algorithm 1 with W as torch holds it ([outputs, inputs]; an embedding [classes, features]):
  # v = W^T u / |W^T u|, u' = W v / |W v|, sigma = u'^T W v.
  for name, w in (('Dense_0/kernel', params['Dense_0']['kernel'].T),
                  ('projection_embed/embedding', params['projection_embed']['embedding'])):
    w, u = np.asarray(w, np.float64), np.asarray(vectors[name], np.float64)
    v = w.T @ u / np.linalg.norm(w.T @ u)
    u_new = w @ v / np.linalg.norm(w @ v)
    np.testing.assert_allclose(new[name], u_new, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sigmas[name], u_new @ w @ v, rtol=1e-5)
  # 'u' stays as it was: |W u'| of the new u
  u_new, _ = spectral.power_step(params, spectral.init_vectors(params, jax.random.PRNGKey(0)))
  w = np.asarray(params['Dense_0']['kernel'], np.float64)
  np.testing.assert_allclose(spectral.normalise(params, u_new)[1]['Dense_0/kernel'],
                             np.linalg.norm(w @ np.asarray(u_new['Dense_0/kernel'])), rtol=1e-5)


# --- orthogonal regularisation -----------------------------------------------------------------

@pytest.mark.parametrize('shape', [(12, 5), (3, 20), (3, 3, 4, 6)])  # tall, wide (rows < cols), conv
def test_orthogonal_penalty_is_the_off_diagonal_of_the_gram_matrix(shape):
  w = jax.random.normal(jax.random.PRNGKey(0), shape)
  params = {'layer': {'kernel': w, 'bias': jnp.ones(shape[-1])},
            'shared_embed': {'embedding': jnp.ones((10, 4))}, 'gamma': jnp.ones(())}
  matrix = np.asarray(w, np.float64).reshape(-1, shape[-1])
  off = (matrix.T @ matrix) * (1 - np.eye(shape[-1]))
  np.testing.assert_allclose(losses.orthogonal_penalty(params), np.sum(off ** 2), rtol=1e-4)
  grads = jax.grad(losses.orthogonal_penalty)(params)
  np.testing.assert_allclose(np.asarray(grads['layer']['kernel']).reshape(matrix.shape),
                             4 * matrix @ off, rtol=1e-3, atol=1e-3)
  assert not np.any(grads['shared_embed']['embedding']) and not np.any(grads['layer']['bias'])


# --- checks ------------------------------------------------------------------------------------

@pytest.mark.parametrize('overrides,shape,message', [
    ({}, (48, 48, 3), 'side 32, 64, 128, 256'),
    ({'latent_dim': 18}, (32, 32, 3), 'not a multiple of 4'),
    ({'model__attention_resolution': 12}, (32, 32, 3), 'a power of two >= 8'),
    ({'model__gen_label_input': 'embed'}, (32, 32, 3), "leave model.gen_label_input ''"),
    ({'model__gen_norm': 'layer'}, (32, 32, 3), "leave model.gen_norm 'batch'"),
])
def test_what_biggan_cannot_build_is_refused_in_one_line(overrides, shape, message):
  config = load_config('biggan.py:digits,runlocal', **overrides)
  checks.check_config(config, 1)
  with pytest.raises(ConfigError, match=message):
    checks.check_data(config, shape, 10)


# --- the config --------------------------------------------------------------------------------

def test_config_by_dataset_is_studiogans_at_32_and_the_papers_above():
  cifar = load_config('biggan.py:cifar10')
  assert (cifar.dataset.image_size, cifar.model.width, cifar.model.critic_width,
          cifar.latent_dim, cifar.model.attention_resolution) == (32, 96, 48, 80, 16)
  assert (cifar.batch_size, cifar.n_critic, cifar.ema.decay, cifar.ema.start_step) == (
      64, 5, 0.9999, 1000)
  assert (cifar.gen_optimizer.learning_rate, cifar.gen_optimizer.b1,
          cifar.critic_optimizer.learning_rate, cifar.loss.ortho_weight) == (2e-4, 0.5, 2e-4, 0)
  assert load_config('biggan.py:fashion_mnist').dataset.image_size == 32   # resized
  for spec, side in (('imagenet_resized/64x64', 64), ('imagenet_resized/64x64,size128', 128)):
    c = load_config(f'biggan.py:{spec}')
    assert c.dataset.image_size == side and c.latent_dim == 120
    assert (c.model.width, c.model.critic_width, c.model.attention_resolution) == (96, 0, 64)
    assert (c.gen_optimizer.learning_rate, c.critic_optimizer.learning_rate) == (5e-5, 2e-4)
    assert (c.gen_optimizer.b1, c.gen_optimizer.b2, c.n_critic) == (0.0, 0.999, 2)
    assert c.loss.ortho_weight == 1e-4 and c.ema.start_step == 20_000
  for c in (cifar, load_config('biggan.py:imagenet_resized/64x64')):
    assert c.gan == 'biggan' and c.model.spectral_norm and c.model.gen_spectral_norm
    assert c.model.spectral_estimate == 'uv' and c.model.hierarchical


def test_small_is_the_32_px_preset_narrower_and_only_at_32_px():
  """'small' (the CPU comparison's): G ch 16, D critic_width 8, every other field the 32 px
  preset's; a larger image is refused in one line."""
  small, full = load_config('biggan.py:fashion_mnist,small'), load_config('biggan.py:fashion_mnist')
  assert (small.model.width, small.model.critic_width) == (16, 8)
  with small.unlocked():
    small.model.width, small.model.critic_width = full.model.width, full.model.critic_width
  assert small.to_dict() == full.to_dict()
  with pytest.raises(ValueError, match="'small' is a 32 px model; this dataset is 64 px"):
    load_config('biggan.py:imagenet_resized/64x64,small')


@pytest.mark.slow   # 39 s on 2 cores (BigGAN's compile); CI runs it
def test_a_training_step_iterates_each_players_vectors_once_and_applies_the_penalty():
  config = load_config('biggan.py:digits,runlocal', loss__ortho_weight=1e-3)
  data = input_pipeline.load(config.dataset)
  stepper = Stepper(config, data.image_shape, data.num_classes)
  state = stepper.init()
  assert 'shared_embed/embedding' not in state.gen.spectral
  assert state.critic.spectral['projection_embed/embedding'].shape == (10,)
  assert 'SelfAttention_0' in state.gen.params and 'SelfAttention_0' in state.critic.params
  before = jax.device_get(state)
  stream = input_pipeline.BatchStream(data, config.batch_size, config.seed)
  state, metrics, health = stepper.train(state, [stream.next(config.n_critic)])
  assert all(bool(v[0]) for v in jax.device_get(health).values())
  for key in ('critic_loss', 'gen_loss', 'd_real', 'd_fake', 'critic_sigma_max'):
    assert np.isfinite(metrics[key][0]), key
  penalty = float(losses.orthogonal_penalty(before.gen.params))
  np.testing.assert_allclose(metrics['ortho_penalty'][0], penalty, rtol=1e-5)
  # G: one iteration from its vectors ('uv'); D: n_critic of them
  expected = spectral.iterate(before.gen.params, before.gen.spectral, 1, 'uv')
  for name, u in state.gen.spectral.items():
    np.testing.assert_allclose(u, expected[name], rtol=1e-4, atol=1e-5)


@pytest.mark.slow   # several processes, minutes on 2 cores
def test_runlocal_trains_resumes_exactly_and_samples(tmp_path):
  """configs/biggan.py:digits,runlocal (32 px, attention, EMA) through main.py: 2 steps, then
  resumed to 4, equals 4 straight bit for bit (parameters, batch norm's statistics, spectral
  norm's vectors, the EMA, Adam's moments, the keys); sampling uses the EMA."""
  run = tmp_path / 'run'
  args = ['--config=configs/biggan.py:digits,runlocal', f'--workdir={run}']
  proc = run_main(*args, '--config.num_steps=2')
  assert proc.returncode == 0, proc.stderr[-3000:]
  proc = run_main(*args)
  assert proc.returncode == 0 and 'Resumed from step 2' in proc.stderr, proc.stderr[-3000:]
  proc = run_main('--config=configs/biggan.py:digits,runlocal',
                  f'--workdir={tmp_path / "straight"}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  state = restore_state(run, 'biggan.py:digits,runlocal')
  straight = restore_state(tmp_path / 'straight', 'biggan.py:digits,runlocal')
  assert int(state.step) == int(straight.step) == 4 and state.ema and state.gen.spectral
  for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(state), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  proc = run_main(f'--workdir={run}', '--mode=sample', '--num_samples=10',
                  f'--out={tmp_path / "samples.npz"}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert json.loads(proc.stdout.strip().splitlines()[-1])['generator'] == 'ema'
  with np.load(tmp_path / 'samples.npz') as samples:
    assert samples['images'].shape == (10, 32, 32, 1)
