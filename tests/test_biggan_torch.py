"""model.arch 'biggan' computes what BigGAN-PyTorch computes: tests/biggan_torch.py (a PyTorch
BigGAN written as BigGAN-PyTorch's BigGAN.py and layers.py compute it) loaded with gan_jax's
random weights, batch statistics and spectral-norm vectors (estimate 'uv'), on the same inputs.

Checked: the self-attention block, G's block with its ccbn, D's three kinds of block, and the
whole CIFAR-size G and D (hierarchical z, shared embedding, attention at 16x16, projection), in
eval mode (running statistics, sigma from the kept u) and for a training-mode step (batch
statistics, one power iteration: the new u, the outputs, the running statistics and the
gradients of every weight through sigma); BigGAN-PyTorch's orthogonal regularisation gradient;
the parameter counts. Float32 throughout: outputs agree within atol 2e-5 + rtol 1e-4 (images in
[-1, 1], D's scores of order 1-10), gradients within 1e-5 of the largest.

Skipped where torch is not installed (CI installs it).
"""

import functools
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import model_config, reference_import
from gan_jax import losses, models, spectral
from gan_jax.models import biggan, resnet

torch = reference_import('torch')   # CI installs it: missing there, the run fails
import biggan_torch  # pylint: disable=g-import-not-at-top,wrong-import-position

ATOL, RTOL = 2e-5, 1e-4
CLASSES, SHARED = 10, 8


def _t(a):
  return torch.from_numpy(np.array(a, np.float32))


def _nchw(a):
  return _t(np.asarray(a).transpose(0, 3, 1, 2))


def _nhwc(t):
  return t.detach().numpy().transpose(0, 2, 3, 1)


@jax.jit
def _randomised(variables, key):
  """`variables` with norm scales near 1, shifts, attention gains and running statistics drawn
  at random (initially 1, 0, 0 and 0/1: a check would not see them)."""
  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    noise = jax.random.normal(jax.random.fold_in(key, zlib.crc32(name.encode())), leaf.shape)
    if name.endswith("['gamma']"):
      return jnp.full(leaf.shape, 0.7)
    if 'batch_stats' in name:
      return 0.3 * noise if name.endswith("['mean']") else jnp.exp(0.3 * noise)
    if name.endswith("['scale']"):
      return 1.0 + 0.2 * noise
    if name.endswith("['bias']"):   # conv, dense and norm biases
      return 0.1 * noise
    return leaf
  return jax.tree_util.tree_map_with_path(draw, variables)


def _close(ours, theirs, atol=ATOL, rtol=RTOL):
  np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), atol=atol, rtol=rtol)


def _grads_close(ours, theirs):
  """Every gradient of `theirs` ({path: array}) equals ours, relative to the largest."""
  flat = {tuple(k.key for k in path): leaf
          for path, leaf in jax.tree_util.tree_flatten_with_path(ours)[0]}
  assert set(theirs) <= set(flat)
  scale = max(float(np.abs(g).max()) for g in theirs.values())
  for path, grad in theirs.items():
    np.testing.assert_allclose(flat[path], grad, atol=1e-5 * scale, rtol=0, err_msg=str(path))


def _sn(variables, key=1):
  """(params, stats, vectors ('uv')) of `variables`."""
  params = variables['params']
  return params, variables.get('batch_stats', {}), jax.jit(spectral.init_vectors, static_argnums=2)(
      params, jax.random.PRNGKey(key), 'uv')


def _init(module, key, *args, **kwargs):
  return jax.jit(functools.partial(module.init, **kwargs))(jax.random.PRNGKey(key), *args)


@functools.partial(jax.jit, static_argnames=('module', 'train'))
def _apply(module, params, stats, vectors, *args, train=False, **kwargs):
  """`module` on `args` with spectral norm's sigmas from `vectors` ('uv')."""
  variables = {'params': spectral.normalise(params, vectors, 'uv')[0],
               **({'batch_stats': stats} if stats else {})}
  return module.apply(variables, *args, train=train, mutable=['batch_stats'], **kwargs)[0]


# --- blocks ------------------------------------------------------------------------------------

def test_self_attention_is_biggans():
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 8, 16))
  layer = biggan.SelfAttention(biggan.kernel_init(0.0))
  params, _, vectors = _sn(_randomised(_init(layer, 1, x), jax.random.PRNGKey(2)))
  ours = jax.jit(lambda p: layer.apply({'params': spectral.normalise(p, vectors, 'uv')[0]}, x))(
      params)
  ref = biggan_torch.Attention(16)
  pairs = biggan_torch.attention_pairs(ref)
  biggan_torch.load_flax(ref, params, {}, vectors, pairs)
  ref.eval()
  with torch.no_grad():
    _close(ours, _nhwc(ref(_nchw(x))))
  assert float(jnp.abs(ours - x).max()) > 0.05  # the attention is not a no-op


def _g_block():
  block = resnet.ResBlock(12, 'up', 'batch', kernel_init=biggan.kernel_init(0.0),
                          condition='vector')
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 4, 4, 8))
  c = jax.random.normal(jax.random.PRNGKey(1), (4, 6))   # [shared embedding, z chunk]
  variables = _randomised(_init(block, 2, x, train=False, norm_labels=c), jax.random.PRNGKey(3))
  return block, x, c, variables


@pytest.mark.parametrize('train', [False, True])
def test_generator_block_and_its_ccbn_are_biggans(train):
  block, x, c, variables = _g_block()
  params, stats, vectors = _sn(variables)
  new_u, sigma_u = jax.jit(spectral.power_step, static_argnums=2)(params, vectors, 'uv')
  ours = _apply(block, params, stats, sigma_u if train else vectors, x, train=train,
                norm_labels=c)
  ref = biggan_torch.GBlock(8, 12, 6)
  pairs = biggan_torch.block_pairs(ref)
  biggan_torch.load_flax(ref, params, stats, vectors, pairs)
  ref.train(train)
  with torch.no_grad():
    _close(ours, _nhwc(ref(_nchw(x), _t(c))))
  if train:  # one power iteration, the same u
    for name, u in biggan_torch.flax_u(ref, pairs).items():
      _close(new_u[name], u, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize('first,resample,cin,cout', [(True, 'down', 3, 8), (False, 'down', 8, 16),
                                                     (False, None, 16, 16)])
def test_discriminator_blocks_are_biggans(first, resample, cin, cout):
  block = resnet.ResBlock(cout, resample, 'none', first=first, wide=True,
                          kernel_init=biggan.kernel_init(0.0))
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 8, cin))
  params, _, vectors = _sn(_randomised(_init(block, 1, x, train=False), jax.random.PRNGKey(2)))
  ours = _apply(block, params, {}, vectors, x)
  ref = biggan_torch.DBlock(cin, cout, preactivation=not first, downsample=resample == 'down')
  biggan_torch.load_flax(ref, params, {}, vectors, biggan_torch.block_pairs(ref, (), False))
  ref.eval()
  with torch.no_grad():
    _close(ours, _nhwc(ref(_nchw(x))))


# --- the whole CIFAR-size G and D --------------------------------------------------------------

CH, CRITIC_CH, LATENT, ATTENTION = 4, 4, 20, 16   # G 16 channels, D 16; z in 4 chunks of 5


def _models(side=32):
  m = model_config('biggan', width=CH, critic_width=CRITIC_CH, critic_norm='none',
                   attention_resolution=ATTENTION, hierarchical=True, shared_dim=SHARED)
  return models.build(m, (side, side, 3), CLASSES, conditioning='projection')


def _inputs(batch=4, side=32):
  z = jax.random.normal(jax.random.PRNGKey(19), (batch, LATENT))  # see _relu_margin
  labels = jnp.array([3, 0, 7, 3])[:batch]
  x = jax.random.uniform(jax.random.PRNGKey(11), (batch, side, side, 3), minval=-1, maxval=1)
  return z, labels, x


def _pair(side=32):
  gen, critic = _models(side)
  z, labels, x = _inputs(side=side)
  g_vars = _randomised(_init(gen, 0, z, labels, train=False), jax.random.PRNGKey(1))
  c_vars = _randomised(_init(critic, 2, x, labels, train=False), jax.random.PRNGKey(3))
  t_gen = biggan_torch.Generator(CH, side, CLASSES, LATENT, SHARED, ATTENTION)
  t_critic = biggan_torch.Discriminator(CRITIC_CH, side, CLASSES, ATTENTION)
  g, c = _sn(g_vars, 4), _sn(c_vars, 5)
  biggan_torch.load_flax(t_gen, *g)
  biggan_torch.load_flax(t_critic, *c)
  return (gen, critic), (t_gen, t_critic), (g, c), (z, labels, x)


@pytest.mark.slow   # both whole networks in two frameworks: half a minute on 2 cores
def test_whole_generator_and_discriminator_are_biggans_in_eval_mode():
  (gen, critic), (t_gen, t_critic), (g, c), (z, labels, x) = _pair()
  assert 'SelfAttention_0' in g[0] and 'SelfAttention_0' in c[0]
  images = _apply(gen, *g, z, labels)
  scores = _apply(critic, *c, x, labels)[0]
  t_gen.eval(), t_critic.eval()
  with torch.no_grad():
    t_images = t_gen(_t(z), torch.from_numpy(np.asarray(labels)).long())
    t_scores = t_critic(_nchw(x), torch.from_numpy(np.asarray(labels)).long())
  _close(images, _nhwc(t_images))
  _close(scores, t_scores.numpy()[:, 0])
  assert np.std(np.asarray(scores)) > 1e-3  # not a constant


def _relu_margin(gen, variables, inputs, sigma_u):
  """The smallest |value| a ReLU of generator `gen` sees in our training-mode forward (its
  norms' outputs). A ReLU input within float32 round-off of 0 may fall on either side in the two
  implementations, and batch norm, coupling the examples, carries that one unit's change into
  every gradient (by 1% at such a point): the test's z is chosen away from it (`MARGIN`)."""
  params, stats, _ = variables
  feeds_relu = lambda mdl, _: bool(mdl.path) and (
      mdl.path[-1].startswith('ConditionalBatchNorm') or mdl.path == ('BatchNorm_0',))
  _, state = gen.apply({'params': spectral.normalise(params, sigma_u, 'uv')[0],
                        'batch_stats': stats}, *inputs, train=True,
                       mutable=['batch_stats', 'intermediates'], capture_intermediates=feeds_relu)
  return min(float(jnp.abs(v).min()) for v in jax.tree.leaves(state['intermediates']))


MARGIN = 2e-6


def _train_step(module, t_module, variables, inputs, t_inputs, weights):
  """Ours and the reference's training-mode forward of sum(weights * output) with spectral
  norm's step; returns ((output, new u, new stats, grads), the reference's)."""
  params, stats, vectors = variables

  @jax.jit
  def step(params):
    new_u, sigma_u = spectral.power_step(params, vectors, 'uv')

    def loss(p):
      out, updates = module.apply({'params': spectral.normalise(p, sigma_u, 'uv')[0],
                                   **({'batch_stats': stats} if stats else {})}, *inputs,
                                  train=True, mutable=['batch_stats'])
      out = out[0] if isinstance(out, tuple) else out
      return jnp.sum(out * weights), (out, updates.get('batch_stats', {}))

    grads, (out, new_stats) = jax.grad(loss, has_aux=True)(params)
    return out, new_u, new_stats, grads

  out, new_u, new_stats, grads = step(params)
  if stats:   # batch norm: a ReLU at its kink would move every gradient (_relu_margin)
    sigma_u = spectral.power_step(params, vectors, 'uv')[1]
    assert _relu_margin(module, variables, inputs, sigma_u) > MARGIN, 'choose another z'
  t_module.train()
  t_out = t_module(*t_inputs)
  t_out = t_out[:, 0] if t_out.ndim == 2 else t_out
  w = _t(weights.transpose(0, 3, 1, 2) if weights.ndim == 4 else weights)
  (t_out * w).sum().backward()
  t_out = _nhwc(t_out) if t_out.ndim == 4 else t_out.detach().numpy()
  return (out, new_u, new_stats, grads), (t_out, biggan_torch.flax_u(t_module),
                                          biggan_torch.flax_grads(t_module))


@pytest.mark.slow   # 35 s on 2 cores; CI runs it
def test_a_training_step_with_spectral_norm_is_biggans():
  """Batch statistics and one power iteration in G and D: the same outputs, the same new u,
  the same running means (running variances: torch's unbiased batch variance, Flax's biased),
  the same gradient of every weight through sigma."""
  (gen, critic), (t_gen, t_critic), (g, c), (z, labels, x) = _pair()
  t_labels = torch.from_numpy(np.asarray(labels)).long()
  g_weights = np.asarray(jax.random.normal(jax.random.PRNGKey(20), (4, 32, 32, 3)))
  ours, theirs = _train_step(gen, t_gen, g, (z, labels), (_t(z), t_labels), g_weights)
  _close(ours[0], theirs[0])
  for name, u in theirs[1].items():
    _close(ours[1][name], u, atol=1e-6, rtol=1e-5)
  assert set(theirs[1]) == set(ours[1])   # every weight but the shared embedding
  n = 4 * 4 * 4  # examples x positions in the first block's first norm
  old, new = g[1]['ResBlock_0']['ConditionalBatchNorm_0']['BatchNorm_0'], (
      ours[2]['ResBlock_0']['ConditionalBatchNorm_0']['BatchNorm_0'])
  ccbn = t_gen.blocks[0][0].bn1
  _close(new['mean'], ccbn.stored_mean.numpy(), atol=1e-6)
  _close((np.asarray(new['var']) - 0.9 * np.asarray(old['var'])) * n / (n - 1),
         ccbn.stored_var.numpy() - 0.9 * np.asarray(old['var']), atol=1e-6)
  _grads_close(ours[3], theirs[2])

  c_weights = np.asarray(jax.random.normal(jax.random.PRNGKey(21), (4,)))
  ours, theirs = _train_step(critic, t_critic, c, (x, labels), (_nchw(x), t_labels), c_weights)
  _close(ours[0], theirs[0])
  for name, u in theirs[1].items():
    _close(ours[1][name], u, atol=1e-6, rtol=1e-5)
  assert set(theirs[1]) == set(ours[1]) and 'projection_embed/embedding' in theirs[1]
  _grads_close(ours[3], theirs[2])


def test_orthogonal_regularisation_is_biggans_at_half_the_weight():
  """BigGAN-PyTorch's utils.ortho(G, beta, blacklist=G.shared) adds 2 beta (W W^T * (1 - I)) W to
  every gradient but the shared embedding's: the gradient of beta / 2 times our penalty."""
  (_, _), (t_gen, _), (g, _), _ = _pair()
  beta = 1e-2
  grads = jax.jit(jax.grad(lambda p: beta / 2 * losses.orthogonal_penalty(p)))(g[0])
  for p in t_gen.parameters():
    p.grad = torch.zeros_like(p)
  biggan_torch.ortho(t_gen, beta, blacklist=[t_gen.shared.weight])
  theirs = biggan_torch.flax_grads(t_gen)
  _grads_close(grads, theirs)
  assert float(np.abs(grads['shared_embed']['embedding']).max()) == 0.0
  assert max(float(np.abs(v).max()) for v in theirs.values()) > 0


# --- parameter counts --------------------------------------------------------------------------

@pytest.mark.parametrize('side,ch,critic_ch,latent,attention,counts', [
    # BigGAN-PyTorch's BigGAN.py at 128 px, ch 96 (G_shared, hier, dim_z 120, shared_dim 128,
    # attention 64): the paper's 70.4M and 88.0M
    (128, 96, 96, 120, 64, (70_433_988, 87_982_370)),
    # StudioGAN's CIFAR-10 BigGAN (its training log prints these two numbers)
    (32, 96, 48, 80, 16, (9_416_196, 2_415_170)),
])
def test_parameter_counts_are_the_reference_codes(side, ch, critic_ch, latent, attention,
                                                  counts):
  classes = 10 if side == 32 else 1000
  with torch.device('meta'):
    reference = (biggan_torch.parameter_count(biggan_torch.Generator(
        ch, side, classes, latent, attention=attention)),
                 biggan_torch.parameter_count(biggan_torch.Discriminator(
                     critic_ch, side, classes, attention=attention)))
  assert reference == counts
