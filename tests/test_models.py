"""Model shapes, size checks and conditioning."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gan_jax import models


def _model_config(arch, **kw):
  c = dict(arch=arch, width=8, depth=2, kernel_size=5, gen_norm='batch', critic_norm='layer',
           init_std=0.0, conv_impl='auto')
  c.update(kw)
  return ml_collections.ConfigDict(c)


@pytest.mark.parametrize('arch,shape', [('conv', (28, 28, 1)), ('conv', (32, 32, 3)),
                                        ('resnet', (32, 32, 3)), ('mlp', (28, 28, 1)),
                                        ('conv', (16, 16, 1))])
@pytest.mark.parametrize('num_classes', [0, 10])
def test_shapes(arch, shape, num_classes):
  gen, critic = models.build(_model_config(arch), shape, num_classes)
  z = jnp.ones((3, 12))
  labels = jnp.arange(3) if num_classes else None
  gen_vars = gen.init(jax.random.PRNGKey(0), z, labels, train=False)
  images = gen.apply(gen_vars, z, labels, train=False)
  assert images.shape == (3, *shape)
  assert float(jnp.abs(images).max()) <= 1.0
  critic_vars = critic.init(jax.random.PRNGKey(1), images, train=False)
  adv, cls = critic.apply(critic_vars, images, train=False)
  assert adv.shape == (3,)
  assert (cls is None) if not num_classes else cls.shape == (3, num_classes)


def test_wgan_gp_mnist_model_is_the_papers():
  """DIM=64: Linear 128 -> 4*4*256, deconvs 256->128->64->1 (kernel 5); critic 1->64->128->256."""
  gen, critic = models.build(_model_config('conv', width=64, gen_norm='none',
                                           critic_norm='none'), (28, 28, 1), 0)
  gen_params = gen.init(jax.random.PRNGKey(0), jnp.ones((1, 128)), None)['params']
  shapes = jax.tree.map(lambda p: p.shape, gen_params)
  assert shapes['Dense_0']['kernel'] == (128, 4 * 4 * 256)
  assert [shapes[f'ConvTranspose_{i}']['kernel'] for i in range(3)] == [
      (5, 5, 256, 128), (5, 5, 128, 64), (5, 5, 64, 1)]
  critic_params = critic.init(jax.random.PRNGKey(0), jnp.ones((1, 28, 28, 1)))['params']
  shapes = jax.tree.map(lambda p: p.shape, critic_params)
  assert [shapes[f'Conv_{i}']['kernel'] for i in range(3)] == [
      (5, 5, 1, 64), (5, 5, 64, 128), (5, 5, 128, 256)]
  assert shapes['adv_head']['kernel'] == (4 * 4 * 256, 1)


@pytest.mark.parametrize('arch,shape,message', [
    ('conv', (28, 20, 1), 'square images'),
    ('resnet', (28, 28, 1), 'multiple of 8'),
    ('conv', (28, 28, 2), '1 or 3 channels'),
    ('vit', (28, 28, 1), 'unknown model.arch'),
])
def test_unsupported_sizes_are_named(arch, shape, message):
  with pytest.raises(ValueError, match=message):
    models.check_image_shape(arch, shape)


def test_conditional_generator_depends_on_label():
  gen, _ = models.build(_model_config('conv'), (28, 28, 1), 10)
  z = jnp.repeat(jax.random.normal(jax.random.PRNGKey(0), (1, 12)), 10, axis=0)
  variables = gen.init(jax.random.PRNGKey(1), z, jnp.arange(10), train=False)
  images = np.asarray(gen.apply(variables, z, jnp.arange(10), train=False))
  # Same z, ten labels: ten different images.
  diffs = np.abs(images[:, None] - images[None]).reshape(10, 10, -1).max(-1)
  assert np.all(diffs[~np.eye(10, dtype=bool)] > 1e-4)


@pytest.mark.parametrize('arch', ['conv', 'resnet', 'mlp'])
def test_init_std_sets_every_kernel(arch):
  """model.init_std > 0: every kernel (Dense and conv, G and D) is N(0, init_std)."""
  shape = (32, 32, 3) if arch == 'resnet' else (28, 28, 1)
  gen, critic = models.build(_model_config(arch, width=16, init_std=0.02), shape, 0)
  z = jnp.ones((2, 12))
  variables = [gen.init(jax.random.PRNGKey(0), z, None, train=False),
               critic.init(jax.random.PRNGKey(1), jnp.zeros((2, *shape)), train=False)]
  kernels = [leaf for v in variables
             for path, leaf in jax.tree_util.tree_flatten_with_path(v['params'])[0]
             if 'kernel' in jax.tree_util.keystr(path) and leaf.size >= 64]
  assert kernels
  for kernel in kernels:
    assert 0.015 < float(jnp.std(kernel)) < 0.025, kernel.shape
