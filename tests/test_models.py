"""Model shapes, size checks and conditioning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import model_config
from gan_jax import models


@pytest.mark.parametrize('arch,shape', [('conv', (28, 28, 1)), ('conv', (32, 32, 3)),
                                        ('resnet', (32, 32, 3)), ('mlp', (28, 28, 1)),
                                        ('conv', (16, 16, 1)), ('conv', (64, 64, 3)),
                                        ('conv', (128, 128, 1)), ('resnet', (64, 64, 3)),
                                        ('resnet', (128, 128, 3))])
@pytest.mark.parametrize('num_classes', [0, 10])
def test_shapes(arch, shape, num_classes):
  gen, critic = models.build(model_config(arch), shape, num_classes)
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
  gen, critic = models.build(model_config('conv', width=64, gen_norm='none',
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


def _param_shapes(module, *inputs):
  variables = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *inputs))
  return jax.tree.map(lambda p: p.shape, variables['params'])


def test_dcgan_64_model_is_the_papers():
  """Radford et al.'s 64x64 model (width 128): z -> 4x4x1024 -> 8x8x512 -> 16x16x256 ->
  32x32x128 -> 64x64x3 with kernel 4; the critic mirrors it (128, 256, 512, 1024 channels)."""
  gen, critic = models.build(model_config('conv', width=128, kernel_size=4,
                                           critic_norm='batch'), (64, 64, 3), 0)
  shapes = _param_shapes(gen, jnp.ones((1, 100)), None)
  assert shapes['Dense_0']['kernel'] == (100, 4 * 4 * 1024)
  assert [shapes[f'ConvTranspose_{i}']['kernel'] for i in range(4)] == [
      (4, 4, 1024, 512), (4, 4, 512, 256), (4, 4, 256, 128), (4, 4, 128, 3)]
  assert len(shapes) == 1 + 4 + 4  # Dense, ConvTranspose_0-3, BatchNorm_0-3
  shapes = _param_shapes(critic, jnp.ones((1, 64, 64, 3)))
  assert [shapes[f'Conv_{i}']['kernel'] for i in range(4)] == [
      (4, 4, 3, 128), (4, 4, 128, 256), (4, 4, 256, 512), (4, 4, 512, 1024)]
  assert shapes['adv_head']['kernel'] == (4 * 4 * 1024, 1)


@pytest.mark.parametrize('size,levels', [(8, 3), (16, 3), (28, 3), (32, 3), (48, 4), (64, 4),
                                         (128, 5)])
def test_conv_levels_grow_above_32(size, levels):
  """3 stride-2 layers up to 32 px (the presets' models); one more per doubling."""
  assert models.conv_levels(size) == levels
  assert models.pyramid(size, levels)[0] <= 4
  assert models.conv_channels(size, 2) == [2 * 2 ** i for i in range(levels)][::-1]


@pytest.mark.parametrize('size,blocks', [(64, [8, 4, 2, 1]), (128, [8, 8, 4, 2, 1])])
def test_wgan_gp_64_resnet_is_the_papers(size, blocks):
  """gan_64x64.py's GoodGenerator / GoodDiscriminator (DIM = 64): Linear -> 4x4x8DIM, up-blocks
  8 -> 8 -> 4 -> 2 -> 1 DIM; critic conv 3 -> DIM, down-blocks to 2, 4, 8, 8 DIM, Linear from
  4x4x8DIM. One block more at 128 px."""
  dim = 64
  gen, critic = models.build(model_config('resnet', width=dim, critic_norm='layer'),
                             (size, size, 3), 0)
  shapes = _param_shapes(gen, jnp.ones((1, 128)), None)
  assert shapes['Dense_0']['kernel'] == (128, 4 * 4 * 8 * dim)
  ins = [8] + blocks[:-1]
  for i, (cin, cout) in enumerate(zip(ins, blocks)):
    block = shapes[f'ResBlock_{i}']
    assert block['Conv_0']['kernel'] == (1, 1, cin * dim, cout * dim)  # shortcut
    assert block['Conv_1']['kernel'] == (3, 3, cin * dim, cout * dim)
    assert block['Conv_2']['kernel'] == (3, 3, cout * dim, cout * dim)
  assert f'ResBlock_{len(blocks)}' not in shapes
  assert shapes['Conv_0']['kernel'] == (3, 3, dim, 3)
  shapes = _param_shapes(critic, jnp.ones((1, size, size, 3)))
  assert shapes['Conv_0']['kernel'] == (3, 3, 3, dim)
  outs = [2, 4, 8, 8, 8][:len(blocks)]
  for i, (cin, cout) in enumerate(zip([1] + outs[:-1], outs)):
    block = shapes[f'ResBlock_{i}']
    assert block['Conv_1']['kernel'] == (3, 3, cin * dim, cin * dim)
    assert block['Conv_2']['kernel'] == (3, 3, cin * dim, cout * dim)
    assert block['LayerNorm_0']['scale'] == (cin * dim,)
  assert shapes['adv_head']['kernel'] == (4 * 4 * 8 * dim, 1)


@pytest.mark.parametrize('arch,shape,message', [
    ('conv', (28, 20, 1), 'square images'),
    ('resnet', (28, 28, 1), 'multiple of 8 up to 32'),
    ('resnet', (48, 48, 3), r'64, 128, 256\.\.\. \(a power of two'),
    ('resnet', (96, 96, 3), 'got 96x96'),
    ('conv', (4, 4, 3), 'side >= 8'),
    ('conv', (28, 28, 2), '1 or 3 channels'),
    ('vit', (28, 28, 1), 'unknown model.arch'),
])
def test_unsupported_sizes_are_named(arch, shape, message):
  with pytest.raises(ValueError, match=message):
    models.check_image_shape(arch, shape)


def test_conditional_generator_depends_on_label():
  gen, _ = models.build(model_config('conv'), (28, 28, 1), 10)
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
  gen, critic = models.build(model_config(arch, width=16, init_std=0.02), shape, 0)
  z = jnp.ones((2, 12))
  variables = [gen.init(jax.random.PRNGKey(0), z, None, train=False),
               critic.init(jax.random.PRNGKey(1), jnp.zeros((2, *shape)), train=False)]
  kernels = [leaf for v in variables
             for path, leaf in jax.tree_util.tree_flatten_with_path(v['params'])[0]
             if 'kernel' in jax.tree_util.keystr(path) and leaf.size >= 64]
  assert kernels
  for kernel in kernels:
    assert 0.015 < float(jnp.std(kernel)) < 0.025, kernel.shape
