"""Conditioning 'projection': the projection critic (Miyato & Koyama 2018) and the generator's
conditional batch norm, beside 'acgan' and unconditional models, whose parameter trees are
fixed: checkpoints hold them."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config, model_config
from gan_jax import checks, models
from gan_jax.errors import ConfigError

K = 10  # classes
ARCHS = [('conv', (28, 28, 1)), ('resnet', (32, 32, 3)), ('mlp', (28, 28, 1))]


def _model_config(arch, **kw):
  return model_config(arch, **{**dict(width=4, kernel_size=3), **kw})


def _shapes(variables):
  """{'collection/module/.../leaf': shape} of a variables tree (arrays or ShapeDtypeStructs)."""
  return {'/'.join([c] + [k.key for k in path]): leaf.shape
          for c in variables
          for path, leaf in jax.tree_util.tree_flatten_with_path(variables[c])[0]}


def _init_shapes(module, *inputs):
  return _shapes(jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *inputs,
                                                    train=False)))


def _randomize(variables, name, key):
  """`variables` with every parameter whose path contains `name` drawn from N(0, 1)."""
  leaves, treedef = jax.tree_util.tree_flatten_with_path(variables)
  keys = jax.random.split(key, len(leaves))
  return jax.tree_util.tree_unflatten(treedef, [
      jax.random.normal(k, leaf.shape) if name in jax.tree_util.keystr(path) else leaf
      for k, (path, leaf) in zip(keys, leaves)])


def _pairwise_min_diff(outputs):
  """Smallest max-abs difference between two different rows of `outputs` [N, ...]."""
  flat = np.asarray(outputs).reshape(len(outputs), -1)
  diffs = np.abs(flat[:, None] - flat[None]).max(-1)
  return diffs[~np.eye(len(flat), dtype=bool)].min()


# The parameter trees of the 'acgan' and unconditional models, written out: a change of a name,
# a shape or a layer would change the paper presets' parameters (and their samples).

def _dense(name, n_in, n_out, bias=True):
  return {f'params/{name}/kernel': (n_in, n_out), **({f'params/{name}/bias': (n_out,)} if bias
                                                     else {})}


def _conv(name, k, c_in, c_out, bias=True):
  return {f'params/{name}/kernel': (k, k, c_in, c_out),
          **({f'params/{name}/bias': (c_out,)} if bias else {})}


def _batch_norm(name, c):
  return {f'params/{name}/scale': (c,), f'params/{name}/bias': (c,),
          f'batch_stats/{name}/mean': (c,), f'batch_stats/{name}/var': (c,)}


def _layer_norm(name, c):
  return {f'params/{name}/scale': (c,), f'params/{name}/bias': (c,)}


def _expected_trees(arch, num_classes):
  """(generator, critic) shapes at width 4, kernel 3, depth 2, latent 6, gen norm 'batch',
  critic norm 'layer'."""
  if arch == 'conv':    # 28x28x1: 4x4x16 -> 7x7x8 -> 14x14x4 -> 28x28x1
    gen = {**_dense('Dense_0', 6, 4 * 4 * 16, bias=False), **_batch_norm('BatchNorm_0', 16),
           **_conv('ConvTranspose_0', 3, 16, 8, bias=False), **_batch_norm('BatchNorm_1', 8),
           **_conv('ConvTranspose_1', 3, 8, 4, bias=False), **_batch_norm('BatchNorm_2', 4),
           **_conv('ConvTranspose_2', 3, 4, 1)}
    critic = {**_conv('Conv_0', 3, 1, 4), **_conv('Conv_1', 3, 4, 8), **_conv('Conv_2', 3, 8, 16),
              **_layer_norm('LayerNorm_0', 8), **_layer_norm('LayerNorm_1', 16)}
    features = 4 * 4 * 16
  elif arch == 'resnet':  # 32x32x3: 4x4x4 -> 3 up-blocks; critic 4 blocks, global mean pool
    gen = {**_dense('Dense_0', 6, 4 * 4 * 4), **_batch_norm('BatchNorm_0', 4),
           **_conv('Conv_0', 3, 4, 3)}
    for i in range(3):
      gen.update({**_conv(f'ResBlock_{i}/Conv_0', 1, 4, 4),
                  **_conv(f'ResBlock_{i}/Conv_1', 3, 4, 4),
                  **_conv(f'ResBlock_{i}/Conv_2', 3, 4, 4),
                  **_batch_norm(f'ResBlock_{i}/BatchNorm_0', 4),
                  **_batch_norm(f'ResBlock_{i}/BatchNorm_1', 4)})
    critic = {**_conv('ResBlock_0/Conv_0', 1, 3, 4), **_conv('ResBlock_0/Conv_1', 3, 3, 4),
              **_conv('ResBlock_0/Conv_2', 3, 4, 4), **_layer_norm('ResBlock_0/LayerNorm_0', 4),
              **_conv('ResBlock_1/Conv_0', 1, 4, 4)}
    for i in (1, 2, 3):
      critic.update({**_conv(f'ResBlock_{i}/Conv_{1 if i == 1 else 0}', 3, 4, 4),
                     **_conv(f'ResBlock_{i}/Conv_{2 if i == 1 else 1}', 3, 4, 4),
                     **_layer_norm(f'ResBlock_{i}/LayerNorm_0', 4),
                     **_layer_norm(f'ResBlock_{i}/LayerNorm_1', 4)})
    features = 4
  else:                 # mlp: 2 hidden layers of 4 units
    gen = {**_dense('Dense_0', 6, 4, bias=False), **_batch_norm('BatchNorm_0', 4),
           **_dense('Dense_1', 4, 4, bias=False), **_batch_norm('BatchNorm_1', 4),
           **_dense('Dense_2', 4, 28 * 28)}
    critic = {**_dense('Dense_0', 28 * 28, 4), **_dense('Dense_1', 4, 4),
              **_layer_norm('LayerNorm_0', 4), **_layer_norm('LayerNorm_1', 4)}
    features = 4
  critic.update(_dense('adv_head', features, 1))
  if num_classes:
    gen['params/label_embed/embedding'] = (num_classes, 6)
    critic.update(_dense('class_head', features, num_classes))
  return gen, critic


@pytest.mark.parametrize('arch,shape', ARCHS)
@pytest.mark.parametrize('num_classes', [0, K])
@pytest.mark.parametrize('conditioning', [None, 'acgan', 'projection'])
def test_acgan_and_unconditional_trees_are_fixed(arch, shape, num_classes, conditioning):
  """build()'s default is 'acgan'; 'acgan' and num_classes 0 (whatever the conditioning) give
  the parameter trees above, the ones checkpoints hold."""
  if conditioning == 'projection' and num_classes:
    pytest.skip('the projection model: tested below')
  kw = {} if conditioning is None else dict(conditioning=conditioning)
  gen, critic = models.build(_model_config(arch), shape, num_classes, **kw)
  assert gen.conditioning == critic.conditioning == (conditioning or 'acgan')
  labels = jnp.arange(2) if num_classes else None
  expected_gen, expected_critic = _expected_trees(arch, num_classes)
  assert _init_shapes(gen, jnp.ones((2, 6)), labels) == expected_gen
  assert _init_shapes(critic, jnp.ones((2, *shape)), labels) == expected_critic


def test_unknown_conditioning_is_named():
  with pytest.raises(ValueError,
                     match="unknown conditioning 'film'.*'acgan', 'tac', 'd2d', 'projection'"):
    models.build(_model_config('conv'), (28, 28, 1), K, conditioning='film')


def _adv_head_input(critic, variables, x, labels):
  """critic.apply's outputs and phi(x), the features the adversarial head sees."""
  seen = []
  def interceptor(next_fun, args, kwargs, context):
    if context.module.name == 'adv_head' and context.method_name == '__call__':
      seen.append(args[0])
    return next_fun(*args, **kwargs)
  with nn.intercept_methods(interceptor):
    out = critic.apply(variables, x, labels, train=False)
  assert len(seen) == 1
  return out, np.asarray(seen[0])


@pytest.mark.parametrize('arch,shape', ARCHS + [('resnet', (64, 64, 3))])
def test_projection_critic_is_linear_plus_inner_product(arch, shape):
  """adv = linear(phi(x)) + <embed(y), phi(x)>, by hand from the parameters; no class head;
  the same image under K labels gets K different scores."""
  _, critic = models.build(_model_config(arch), shape, K, conditioning='projection')
  x = jnp.repeat(jax.random.uniform(jax.random.PRNGKey(0), (1, *shape), minval=-1), K, axis=0)
  labels = jnp.arange(K)
  variables = critic.init(jax.random.PRNGKey(1), x, labels, train=False)
  params = variables['params']
  assert 'class_head' not in params
  (adv, cls), phi = _adv_head_input(critic, variables, x, labels)
  assert cls is None and adv.shape == (K,) and adv.dtype == jnp.float32
  embedding = np.asarray(params['projection_embed']['embedding'])
  assert embedding.shape == (K, phi.shape[-1])
  linear = phi @ np.asarray(params['adv_head']['kernel'])[:, 0] + params['adv_head']['bias'][0]
  projection = np.sum(embedding[labels] * phi, -1)
  np.testing.assert_allclose(adv, linear + projection, rtol=1e-5, atol=1e-6)
  assert np.abs(projection).max() > 1e-3  # the inner product does count
  assert _pairwise_min_diff(adv) > 1e-5


@pytest.mark.parametrize('init_std,std', [(0.0, 1 / 16), (0.02, 0.02)])
def test_projection_embedding_starts_at_the_heads_scale(init_std, std):
  """Rows drawn like the adversarial head's kernel (LeCun normal over phi's 256 features, or
  N(0, init_std)), not Flax's Embed default of variance 1, which would drown linear(phi)."""
  _, critic = models.build(_model_config('conv', init_std=init_std), (28, 28, 1), K,
                           conditioning='projection')
  params = critic.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)), jnp.zeros((1,), int),
                       train=False)['params']
  assert abs(float(jnp.std(params['projection_embed']['embedding'])) / std - 1) < 0.1


def test_projection_needs_labels():
  gen, critic = models.build(_model_config('conv'), (28, 28, 1), K, conditioning='projection')
  with pytest.raises(ValueError, match='projection critic needs labels'):
    critic.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)), train=False)
  with pytest.raises(ValueError, match='conditional generator needs labels'):
    gen.init(jax.random.PRNGKey(0), jnp.zeros((1, 6)), None, train=False)


def _to_cbn(shapes):
  """The tree an 'acgan' generator's has with projection: every BatchNorm_i conditional
  (ConditionalBatchNorm_i: per-class scale and bias, its BatchNorm_0 holding the statistics),
  z without a label embedding."""
  out = {}
  for path, shape in shapes.items():
    *modules, leaf = path.split('/')
    if modules[-1].startswith('BatchNorm_'):
      cbn = '/'.join(modules[:-1] + ['Conditional' + modules[-1]])
      if modules[0] == 'params':
        path, shape = f'{cbn}/{leaf}_embed/embedding', (K, *shape)
      else:
        path = f'{cbn}/BatchNorm_0/{leaf}'
    if 'label_embed' not in path:
      out[path] = shape
  return out


@pytest.mark.parametrize('arch,shape', ARCHS)
def test_projection_generator_conditions_every_batch_norm(arch, shape):
  """Every batch norm of G (the last one's too) is conditional and z has no label embedding; at
  init (scales 1, shifts 0) the label changes nothing, with other scales and shifts it does."""
  config = model_config(arch, width=16 if arch == 'mlp' else 4)  # 4 units: ReLU may kill all
  acgan_gen, _ = models.build(config, shape, K)
  gen, _ = models.build(config, shape, K, conditioning='projection')
  z = jnp.repeat(jax.random.normal(jax.random.PRNGKey(0), (1, 6)), K, axis=0)
  labels = jnp.arange(K)
  variables = gen.init(jax.random.PRNGKey(1), z, labels, train=False)
  assert _shapes(variables) == _to_cbn(_init_shapes(acgan_gen, z, labels))
  for train in (False, True):
    images, _ = gen.apply(variables, z, labels, train=train, mutable=['batch_stats'])
    assert images.shape == (K, *shape)
    if not train:  # in training all rows are the same z: batch norm makes them 0
      np.testing.assert_allclose(images, jnp.repeat(images[:1], K, axis=0), atol=1e-6)
  trained = _randomize(variables, '_embed', jax.random.PRNGKey(2))
  images = gen.apply(trained, z, labels, train=False)
  assert _pairwise_min_diff(images) > 1e-4
  z = jax.random.normal(jax.random.PRNGKey(3), (K, 6))  # a batch with statistics of its own
  images, _ = gen.apply(trained, z, labels, train=True, mutable=['batch_stats'])
  images_other, _ = gen.apply(trained, z, labels[::-1], train=True, mutable=['batch_stats'])
  assert np.abs(images - images_other).max() > 1e-4


@pytest.mark.parametrize('arch,norm', [('conv', 'none'), ('mlp', 'layer'), ('resnet', 'none')])
def test_projection_generator_without_batch_norm_is_acgans(arch, norm):
  """No batch norm to condition: G falls back to z times a label embedding, the 'acgan'
  generator itself (same parameters, same images)."""
  shape = dict(ARCHS)[arch]
  z = jnp.repeat(jax.random.normal(jax.random.PRNGKey(0), (1, 6)), K, axis=0)
  labels = jnp.arange(K)
  outputs = []
  for conditioning in ('acgan', 'projection'):
    gen, _ = models.build(model_config(arch, gen_norm=norm), shape, K, conditioning=conditioning)
    variables = gen.init(jax.random.PRNGKey(1), z, labels, train=False)
    assert 'label_embed' in variables['params']
    outputs.append((variables, gen.apply(variables, z, labels, train=True)))
  (acgan_vars, acgan_images), (proj_vars, proj_images) = outputs
  jax.tree.map(np.testing.assert_array_equal, acgan_vars, proj_vars)
  np.testing.assert_array_equal(acgan_images, proj_images)
  assert _pairwise_min_diff(proj_images) > 1e-4


def _batch_norm_by_hand(x, scale, shift):
  """x [B, H, W, C] normalised over (B, H, W) (biased variance, epsilon 1e-5), times scale [B, C]
  plus shift [B, C]."""
  x = np.asarray(x, np.float64)
  normed = (x - x.mean((0, 1, 2))) / np.sqrt(x.var((0, 1, 2)) + 1e-5)
  return normed * scale[:, None, None] + shift[:, None, None]


def test_conditional_batch_norm():
  """At init it is BatchNorm without scale and bias, and plain BatchNorm (same outputs, same
  running statistics); with other scales and shifts, x_hat * scale[y] + shift[y]."""
  x = jax.random.normal(jax.random.PRNGKey(0), (6, 3, 3, 5)) * 2 + 1
  labels = jnp.array([0, 2, 1, 2, 0, 3])
  cbn = models.ConditionalBatchNorm(4)
  variables = cbn.init(jax.random.PRNGKey(1), x, labels)
  out, stats = cbn.apply(variables, x, labels, mutable=['batch_stats'])
  batch_norm = lambda **kw: nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5,
                                        **kw)
  for reference in (batch_norm(use_scale=False, use_bias=False), batch_norm()):
    ref_out, ref_stats = reference.apply(reference.init(jax.random.PRNGKey(1), x), x,
                                         mutable=['batch_stats'])
    np.testing.assert_allclose(out, ref_out, rtol=1e-6, atol=1e-6)
    jax.tree.map(np.testing.assert_array_equal, stats['batch_stats']['BatchNorm_0'],
                 ref_stats['batch_stats'])
  trained = _randomize(variables, '_embed', jax.random.PRNGKey(2))
  scale = np.asarray(trained['params']['scale_embed']['embedding'])[labels]
  shift = np.asarray(trained['params']['bias_embed']['embedding'])[labels]
  out, _ = cbn.apply(trained, x, labels, mutable=['batch_stats'])
  np.testing.assert_allclose(out, _batch_norm_by_hand(x, scale, shift), rtol=1e-4, atol=1e-5)
  # Inference: the running statistics (0 and 1 at init) instead of the batch's.
  out = models.ConditionalBatchNorm(4, use_running_average=True).apply(trained, x, labels)
  np.testing.assert_allclose(out, x / np.sqrt(1 + 1e-5) * scale[:, None, None]
                             + shift[:, None, None], rtol=1e-5, atol=1e-5)


def test_projection_models_under_pmap_with_an_axis_name():
  """Synced batch norm (conditional in G, plain in D): a one-device pmap over axis 'batch', and
  a vmap over axis 'batch' standing in for two devices of half the batch each, give what the
  models without an axis give on the whole batch (its statistics, not a half's)."""
  config = _model_config('conv', critic_norm='batch')
  build = lambda axis_name: models.build(config, (28, 28, 1), K, axis_name,
                                         conditioning='projection')
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 6))
  labels = jnp.array([1, 3, 3, 7])
  gen, critic = build(None)
  gen_vars = _randomize(gen.init(jax.random.PRNGKey(1), z, labels, train=False), '_embed',
                        jax.random.PRNGKey(2))
  critic_vars = critic.init(jax.random.PRNGKey(3), jnp.zeros((1, 28, 28, 1)), labels[:1],
                            train=False)

  def step(gen, critic, gen_vars, critic_vars, z, labels):
    images, gen_stats = gen.apply(gen_vars, z, labels, train=True, mutable=['batch_stats'])
    (adv, cls), critic_stats = critic.apply(critic_vars, images, labels, train=True,
                                            mutable=['batch_stats'])
    return images, adv, gen_stats, critic_stats, cls

  expected = jax.jit(lambda *a: step(gen, critic, *a))(gen_vars, critic_vars, z, labels)
  synced_gen, synced_critic = build('batch')
  one = lambda tree: jax.tree.map(lambda a: a[None], tree)
  got = jax.pmap(lambda *a: step(synced_gen, synced_critic, *a), axis_name='batch')(
      *one((gen_vars, critic_vars, z, labels)))
  assert got[-1] is None and expected[-1] is None
  jax.tree.map(lambda e, g: np.testing.assert_allclose(g[0], e, rtol=1e-5, atol=1e-5),
               expected[:-1], got[:-1])
  halves = lambda x: x.reshape(2, x.shape[0] // 2, *x.shape[1:])
  images, adv, gen_stats, critic_stats, _ = jax.jit(jax.vmap(
      lambda *a: step(synced_gen, synced_critic, *a), in_axes=(None, None, 0, 0),
      axis_name='batch'))(gen_vars, critic_vars, halves(z), halves(labels))
  np.testing.assert_allclose(images.reshape(expected[0].shape), expected[0], rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(adv.reshape(-1), expected[1], rtol=1e-5, atol=1e-5)
  jax.tree.map(lambda e, g: np.testing.assert_allclose(g[0], e, rtol=1e-5, atol=1e-5),
               expected[2:4], (gen_stats, critic_stats))
  gen_stats = expected[2]['batch_stats']['ConditionalBatchNorm_0']['BatchNorm_0']
  assert float(jnp.abs(gen_stats['mean']).max()) > 0  # the statistics did move


def _built(arch, conditioning, label_input, **kw):
  """(variables, images at train=False) of a conditional generator on K labels, z repeated."""
  shape = dict(ARCHS)[arch]
  gen, _ = models.build(model_config(arch, gen_label_input=label_input, **kw), shape, K,
                        conditioning=conditioning)
  z = jnp.repeat(jax.random.normal(jax.random.PRNGKey(0), (1, 6)), K, axis=0)
  variables = gen.init(jax.random.PRNGKey(1), z, jnp.arange(K), train=False)
  return variables, gen.apply(variables, z, jnp.arange(K), train=False)


@pytest.mark.parametrize('arch', [a for a, _ in ARCHS])
@pytest.mark.parametrize('conditioning,same_as', [('acgan', 'embed'), ('projection', 'cbn')])
def test_gen_label_input_default_is_the_conditionings(arch, conditioning, same_as):
  """model.gen_label_input '' is 'embed' for ACGAN and 'cbn' for projection with batch norm:
  the same parameters and images."""
  default = _built(arch, conditioning, '')
  explicit = _built(arch, conditioning, same_as)
  jax.tree.map(np.testing.assert_array_equal, default, explicit)


@pytest.mark.parametrize('arch', [a for a, _ in ARCHS])
def test_gen_label_input_embed_cbn_has_both_and_cbn_alone_none(arch):
  """'embed_cbn': the label embedding and the conditional batch norms; 'cbn' in an ACGAN
  generator: the batch norms only, so at init (scales 1, shifts 0) the label changes nothing;
  'embed' and 'embed_cbn' differ by the batch norms' embeddings only."""
  both, both_images = _built(arch, 'acgan', 'embed_cbn')
  cbn, cbn_images = _built(arch, 'acgan', 'cbn')
  embed, _ = _built(arch, 'acgan', 'embed')
  assert 'label_embed' in both['params'] and 'label_embed' not in cbn['params']
  assert set(_shapes(both)) == set(_shapes(cbn)) | {'params/label_embed/embedding'}
  assert set(_shapes(both)) == set(_to_cbn(_shapes(embed))) | {'params/label_embed/embedding'}
  np.testing.assert_allclose(cbn_images, jnp.repeat(cbn_images[:1], K, axis=0), atol=1e-6)
  assert _pairwise_min_diff(both_images) > 1e-4  # the embedding draws each class apart at init


@pytest.mark.parametrize('arch', [a for a, _ in ARCHS])
def test_gen_label_input_concat_feeds_the_one_hot_label_to_the_first_layer(arch):
  variables, images = _built(arch, 'projection', 'concat')
  flat = _shapes(variables)
  assert not any('label_embed' in p or 'Conditional' in p for p in flat)
  assert flat['params/Dense_0/kernel'][0] == 6 + K  # z (6) and the one-hot label (K)
  assert _pairwise_min_diff(images) > 1e-4


@pytest.mark.parametrize('label_input', ['cbn', 'embed_cbn'])
def test_gen_label_input_cbn_needs_batch_norm(label_input):
  config = load_config('acgan.py:mnist')
  config.model.gen_norm = 'none'
  config.model.gen_label_input = label_input
  with pytest.raises(ConfigError, match=r"gen_label_input .* model.gen_norm is 'none'"):
    checks.check_config(config, 1)
  config.model.gen_norm = 'batch'
  checks.check_config(config, 1)
