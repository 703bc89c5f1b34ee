"""The PyTorch models that `benchmark.py --torch` times compute what gan_jax's models compute.

Flax parameters are copied into `experiments/torch_reference.py`'s modules and both run on the
same inputs (eval mode, so batch norm uses the same initial statistics). Runs where torch is
installed (requirements-reference.txt, which CI installs, or requirements-benchmark.txt); skipped
elsewhere, failed under CI.

Checked: DCGAN (kernel 4) at 32 and 64 px and the WGAN-GP ResNets at 32, 64 and 128 px. The WGAN-GP MNIST reference (kernel 5) has
the same shapes and multiplies but is not the same function: PyTorch's symmetric padding 2
against lax 'SAME''s (1, 2) shifts some layers by a pixel. That does not matter for timing.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import reference_import
from configs import dcgan, wgan_gp
from gan_jax import models

torch = reference_import('torch')   # CI installs it: missing there, the run fails
from experiments import torch_reference  # pylint: disable=g-import-not-at-top,wrong-import-position


def _t(a):
  return torch.from_numpy(np.asarray(a).copy())


def _load_conv(layer, p, transposed=False):
  kernel = np.asarray(p['kernel'])
  if transposed:  # lax.conv_transpose's kernel is PyTorch's flipped, as [Cin, Cout, k, k]
    weight = kernel[::-1, ::-1].transpose(2, 3, 0, 1)
  else:
    weight = kernel.transpose(3, 2, 0, 1)
  layer.weight.data = _t(weight)
  # (PyTorch's layers have a bias where gan_jax leaves it out before batch norm)
  layer.bias.data = _t(p['bias']) if 'bias' in p else torch.zeros_like(layer.bias)


def _load_dense(layer, p, unflatten=None):
  """`unflatten` = (C, H, W) when PyTorch reshapes the output NCHW where Flax reshapes NHWC."""
  kernel = np.asarray(p['kernel'])
  bias = np.asarray(p['bias']) if 'bias' in p else np.zeros(kernel.shape[1], np.float32)
  if unflatten:
    c, h, w = unflatten
    kernel = kernel.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(kernel.shape[0], -1)
    bias = bias.reshape(h, w, c).transpose(2, 0, 1).reshape(-1)
  layer.weight.data = _t(kernel.T)
  layer.bias.data = _t(bias)


def _load_norm(layer, p):
  if isinstance(layer, torch.nn.Identity):
    return
  layer.weight.data, layer.bias.data = _t(p['scale']), _t(p['bias'])
  if hasattr(layer, 'reset_running_stats'):  # `build` ran the critic once in training mode
    layer.reset_running_stats()


def _compare(config, image_shape, load):
  gen, critic = models.build(config.model, image_shape, 0, dtype=jnp.float32)
  z = jax.random.normal(jax.random.PRNGKey(0), (3, config.latent_dim))
  x = jax.random.uniform(jax.random.PRNGKey(1), (3, *image_shape), minval=-1, maxval=1)
  g_vars = gen.init(jax.random.PRNGKey(2), z, None, train=False)
  c_vars = critic.init(jax.random.PRNGKey(3), x, train=False)
  t_gen, t_critic = torch_reference.build(config, image_shape)
  load(t_gen, t_critic, g_vars['params'], c_vars['params'])
  t_gen.eval(), t_critic.eval()
  with torch.no_grad():
    t_images = t_gen(_t(z)).numpy().transpose(0, 2, 3, 1)
    t_scores = t_critic(_t(x).permute(0, 3, 1, 2)).numpy()[:, 0]
  np.testing.assert_allclose(t_images, gen.apply(g_vars, z, None, train=False), atol=2e-5)
  np.testing.assert_allclose(t_scores, critic.apply(c_vars, x, train=False)[0],
                             rtol=1e-4, atol=1e-4)


def _of_type(modules, *types):
  return [l for l in modules if isinstance(l, types)]


def _load_flat_head(layer, p, side):
  """Flax flattens the critic's last features NHWC, PyTorch NCHW."""
  kernel = np.asarray(p['kernel'])
  kernel = kernel.reshape(side, side, kernel.shape[0] // side ** 2, 1)
  layer.weight.data = _t(kernel.transpose(3, 2, 0, 1).reshape(1, -1))
  layer.bias.data = _t(p['bias'])


@pytest.mark.parametrize('size', [32, 64])
def test_dcgan_reference_is_the_same_function(size):
  """32x32: the DCGAN CIFAR-10 model; 64x64: the DCGAN paper's model (one more level)."""
  config = dcgan.get_config('cifar10')
  config.model.width = 16 if size == 32 else 8  # same architecture, smaller

  def load(t_gen, t_critic, gp, cp):
    top = models.conv_channels(size, config.model.width)[0]
    _load_dense(t_gen[0], gp['Dense_0'], unflatten=(top, 4, 4))
    convs = _of_type(t_gen, torch.nn.ConvTranspose2d)
    assert len(convs) == models.conv_levels(size)
    for i, conv in enumerate(convs):
      _load_conv(conv, gp[f'ConvTranspose_{i}'], transposed=True)
    for i, norm in enumerate(_of_type(t_gen, torch.nn.BatchNorm2d)):
      _load_norm(norm, gp[f'BatchNorm_{i}'])
    for i, conv in enumerate(_of_type(t_critic, torch.nn.Conv2d)):
      _load_conv(conv, cp[f'Conv_{i}'])
    for i, norm in enumerate(_of_type(t_critic, torch.nn.BatchNorm2d)):
      _load_norm(norm, cp[f'BatchNorm_{i}'])
    _load_flat_head(t_critic[-1], cp['adv_head'], 4)

  _compare(config, (size, size, 3), load)


@pytest.mark.parametrize('size', [32, 64, 128])
def test_wgan_gp_resnet_reference_is_the_same_function(size):
  """32x32: the CIFAR-10 ResNet; 64x64: gan_64x64.py's ResNet (layer norm in its critic);
  128x128: one block more."""
  config = wgan_gp.get_config('cifar10')
  config.model.width = 8 if size == 32 else 4
  if size > 32:
    config.model.critic_norm = 'layer'

  def load_block(block, p):
    _load_conv(block.conv1, p['Conv_1' if 'Conv_2' in p else 'Conv_0'])
    _load_conv(block.conv2, p['Conv_2' if 'Conv_2' in p else 'Conv_1'])
    if 'Conv_2' in p:  # the 1x1 shortcut is the block's first conv
      _load_conv(block.shortcut, p['Conv_0'])
    for kind in ('BatchNorm', 'LayerNorm'):
      if f'{kind}_0' in p:
        _load_norm(block.norm1, p[f'{kind}_0'])
        _load_norm(block.norm2, p[f'{kind}_1'])

  def load(t_gen, t_critic, gp, cp):
    blocks = _of_type(t_gen, torch_reference.ResBlock)
    first = blocks[0].conv1.in_channels
    base = 4 if size > 32 else size // 8
    _load_dense(t_gen[0], gp['Dense_0'], unflatten=(first, base, base))
    for i, block in enumerate(blocks):
      load_block(block, gp[f'ResBlock_{i}'])
    _load_norm(t_gen[-4], gp['BatchNorm_0'])
    _load_conv(t_gen[-2], gp['Conv_0'])
    c_blocks = _of_type(t_critic, torch_reference.ResBlock)
    for i, block in enumerate(c_blocks):
      load_block(block, cp[f'ResBlock_{i}'])
    if size > 32:
      assert len(c_blocks) == len(blocks) == {64: 4, 128: 5}[size]
      _load_conv(t_critic[0], cp['Conv_0'])
      _load_flat_head(t_critic[-1], cp['adv_head'], 4)
    else:
      _load_dense(t_critic[-1], cp['adv_head'])

  _compare(config, (size, size, 3), load)
