"""InceptionV3 as the standard FID uses it, in Flax.

The architecture is the one pytorch-fid ports from TensorFlow's 2015-12-05 Inception graph (the
network of the original FID and Inception Score code), not torchvision's ImageNet model:
  * average pools inside Mixed_5b..5d, 6b..6e and 7b leave the zero padding out of the mean
    (TensorFlow's `count_include_pad=False`); Mixed_7c pools with a max instead;
  * 1008 output classes (the TensorFlow graph's), whose softmax the Inception Score uses;
  * images are resized to 299x299 bilinearly (half-pixel centres, no antialiasing, as
    `F.interpolate(..., align_corners=False)`); the network takes them in [-1, 1] (pytorch-fid's
    [0, 1] scaled), as generators make them, so no range conversion comes between the two.
    `resize='clean'` resizes as clean-fid does instead (gan_jax/resize.py, eval.resize).
Features are the 2048-d output of the final average pool ("pool3"), the FID features.

Weights cannot be downloaded here: convert pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`
once with `python -m gan_jax.tools.convert_inception` and point `config.eval.inception_weights`
at the `.npz` it writes. Module and parameter names follow the PyTorch ones, so the conversion is a
rename and a transpose (`from_torch`).
"""

import functools
import hashlib
import io
from typing import Any, Callable, Dict, Mapping, Tuple

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import files, images as images_lib, resize as resize_lib, sharding, weights
from gan_jax.errors import ConfigError

NUM_CLASSES = 1008
FEATURE_DIM = 2048
SIZE = 299


class BasicConv(nn.Module):
  """Conv (no bias) -> batch norm (eps 1e-3, running statistics) -> ReLU."""
  features: int
  kernel: Tuple[int, int]
  stride: int = 1
  padding: Tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x):
    ph, pw = self.padding
    x = nn.Conv(self.features, self.kernel, (self.stride, self.stride),
                padding=((ph, ph), (pw, pw)), use_bias=False, name='conv')(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name='bn')(x)
    return nn.relu(x)


def _conv(features, kernel, stride=1, padding=0, name=None):
  kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
  padding = (padding, padding) if isinstance(padding, int) else padding
  return BasicConv(features, kernel, stride, padding, name=name)


def _avg_pool_same(x):
  """3x3 stride-1 average whose mean leaves the zero padding out (TensorFlow's)."""
  return nn.avg_pool(x, (3, 3), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_valid(x):
  return nn.max_pool(x, (3, 3), strides=(2, 2))


class InceptionA(nn.Module):
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = _conv(64, 1, name='branch1x1')(x)
    b5 = _conv(48, 1, name='branch5x5_1')(x)
    b5 = _conv(64, 5, padding=2, name='branch5x5_2')(b5)
    b3 = _conv(64, 1, name='branch3x3dbl_1')(x)
    b3 = _conv(96, 3, padding=1, name='branch3x3dbl_2')(b3)
    b3 = _conv(96, 3, padding=1, name='branch3x3dbl_3')(b3)
    bp = _conv(self.pool_features, 1, name='branch_pool')(_avg_pool_same(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = _conv(384, 3, stride=2, name='branch3x3')(x)
    bd = _conv(64, 1, name='branch3x3dbl_1')(x)
    bd = _conv(96, 3, padding=1, name='branch3x3dbl_2')(bd)
    bd = _conv(96, 3, stride=2, name='branch3x3dbl_3')(bd)
    return jnp.concatenate([b3, bd, _max_pool_valid(x)], axis=-1)


class InceptionC(nn.Module):
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    b1 = _conv(192, 1, name='branch1x1')(x)
    b7 = _conv(c7, 1, name='branch7x7_1')(x)
    b7 = _conv(c7, (1, 7), padding=(0, 3), name='branch7x7_2')(b7)
    b7 = _conv(192, (7, 1), padding=(3, 0), name='branch7x7_3')(b7)
    bd = _conv(c7, 1, name='branch7x7dbl_1')(x)
    bd = _conv(c7, (7, 1), padding=(3, 0), name='branch7x7dbl_2')(bd)
    bd = _conv(c7, (1, 7), padding=(0, 3), name='branch7x7dbl_3')(bd)
    bd = _conv(c7, (7, 1), padding=(3, 0), name='branch7x7dbl_4')(bd)
    bd = _conv(192, (1, 7), padding=(0, 3), name='branch7x7dbl_5')(bd)
    bp = _conv(192, 1, name='branch_pool')(_avg_pool_same(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = _conv(192, 1, name='branch3x3_1')(x)
    b3 = _conv(320, 3, stride=2, name='branch3x3_2')(b3)
    b7 = _conv(192, 1, name='branch7x7x3_1')(x)
    b7 = _conv(192, (1, 7), padding=(0, 3), name='branch7x7x3_2')(b7)
    b7 = _conv(192, (7, 1), padding=(3, 0), name='branch7x7x3_3')(b7)
    b7 = _conv(192, 3, stride=2, name='branch7x7x3_4')(b7)
    return jnp.concatenate([b3, b7, _max_pool_valid(x)], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b (average pool) and Mixed_7c (`max_pool=True`: the FID graph's max pool)."""
  max_pool: bool = False

  @nn.compact
  def __call__(self, x):
    b1 = _conv(320, 1, name='branch1x1')(x)
    b3 = _conv(384, 1, name='branch3x3_1')(x)
    b3 = jnp.concatenate([_conv(384, (1, 3), padding=(0, 1), name='branch3x3_2a')(b3),
                          _conv(384, (3, 1), padding=(1, 0), name='branch3x3_2b')(b3)], -1)
    bd = _conv(448, 1, name='branch3x3dbl_1')(x)
    bd = _conv(384, 3, padding=1, name='branch3x3dbl_2')(bd)
    bd = jnp.concatenate([_conv(384, (1, 3), padding=(0, 1), name='branch3x3dbl_3a')(bd),
                          _conv(384, (3, 1), padding=(1, 0), name='branch3x3dbl_3b')(bd)], -1)
    if self.max_pool:
      pooled = nn.max_pool(x, (3, 3), padding=((1, 1), (1, 1)))
    else:
      pooled = _avg_pool_same(x)
    bp = _conv(192, 1, name='branch_pool')(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3(nn.Module):
  """[N, H, W, 3] images in [-1, 1] -> (pool3 features [N, 2048], logits [N, 1008]); the
  images resized to 299x299 by `resize` (gan_jax/resize.py: 'legacy' is pytorch-fid's)."""
  resize: str = 'legacy'

  @nn.compact
  def __call__(self, images):
    # pytorch-fid resizes [0, 1] images, then scales them to [-1, 1]; bilinear weights sum to
    # one, so resizing [-1, 1] images gives the same up to round-off (clean-fid's bicubic ones
    # too, and its clip to [0, 255] is a clip to [-1, 1]).
    x = resize_lib.resize(images, SIZE, self.resize)
    x = _conv(32, 3, stride=2, name='Conv2d_1a_3x3')(x)
    x = _conv(32, 3, name='Conv2d_2a_3x3')(x)
    x = _conv(64, 3, padding=1, name='Conv2d_2b_3x3')(x)
    x = _max_pool_valid(x)
    x = _conv(80, 1, name='Conv2d_3b_1x1')(x)
    x = _conv(192, 3, name='Conv2d_4a_3x3')(x)
    x = _max_pool_valid(x)
    x = InceptionA(32, name='Mixed_5b')(x)
    x = InceptionA(64, name='Mixed_5c')(x)
    x = InceptionA(64, name='Mixed_5d')(x)
    x = InceptionB(name='Mixed_6a')(x)
    for name, c7 in (('Mixed_6b', 128), ('Mixed_6c', 160), ('Mixed_6d', 160), ('Mixed_6e', 192)):
      x = InceptionC(c7, name=name)(x)
    x = InceptionD(name='Mixed_7a')(x)
    x = InceptionE(name='Mixed_7b')(x)
    x = InceptionE(max_pool=True, name='Mixed_7c')(x)
    features = jnp.mean(x, axis=(1, 2))
    return features, nn.Dense(NUM_CLASSES, name='fc')(features)


def from_torch(state_dict: Mapping[str, Any]) -> Dict[str, Any]:
  """pytorch-fid's state dict (names -> arrays; numpy or anything np.asarray takes) -> Flax
  variables {'params', 'batch_stats'}. Raises ValueError naming what is missing or extra."""
  params, stats = {}, {}
  for key, value in state_dict.items():
    if key.endswith('num_batches_tracked'):
      continue
    value = np.asarray(value, np.float32)
    path, leaf = tuple(key.split('.')[:-1]), key.split('.')[-1]
    if path[-1] == 'conv' and leaf == 'weight':      # [O, I, kh, kw] -> [kh, kw, I, O]
      params[path + ('kernel',)] = value.transpose(2, 3, 1, 0)
    elif path[-1] == 'bn':
      target = stats if leaf.startswith('running_') else params
      name = {'weight': 'scale', 'bias': 'bias', 'running_mean': 'mean',
              'running_var': 'var'}[leaf]
      target[path + (name,)] = value
    elif path == ('fc',):
      params[path + ({'weight': 'kernel', 'bias': 'bias'}[leaf],)] = (
          value.T if leaf == 'weight' else value)
    else:
      raise ValueError(f'unexpected entry {key!r} in the Inception state dict')
  variables = {'params': traverse_util.unflatten_dict(params),
               'batch_stats': traverse_util.unflatten_dict(stats)}
  _check_shapes(variables)
  return variables


def _expected_shapes():
  return weights.shapes_of(InceptionV3(), jnp.zeros((1, 75, 75, 3), jnp.float32))


def _check_shapes(variables) -> None:
  weights.check_shapes(variables, _expected_shapes(), 'the FID Inception weights')


def save(path: str, variables) -> None:
  """Flat npz ('params/Conv2d_1a_3x3/conv/kernel', ...), written atomically."""
  flat = traverse_util.flatten_dict(jax.device_get(variables), sep='/')
  data = io.BytesIO()
  np.savez(data, **flat)
  files.write_bytes(path, data.getvalue())


def load(path: str) -> Tuple[Dict[str, Any], str]:
  """(variables, short content hash) of an npz from `save`; ConfigError when unusable."""
  if not path or not files.path(path).exists():
    raise ConfigError(f'eval.inception_weights {path!r} does not exist; convert pytorch-fid\'s '
                      f'pt_inception-2015-12-05-6726825d.pth with '
                      f'python -m gan_jax.tools.convert_inception')
  if path.endswith('.pth'):
    raise ConfigError(f'{path} is a PyTorch file; convert it first: python -m '
                      f'gan_jax.tools.convert_inception --pth={path} --out=inception_fid.npz')
  data = files.path(path).read_bytes()   # ~95 MB: read once, for the hash and the arrays
  digest = hashlib.sha1(data)
  try:
    with np.load(io.BytesIO(data)) as f:
      variables = traverse_util.unflatten_dict({tuple(k.split('/')): f[k] for k in f.files})
    _check_shapes(variables)
  except (OSError, ValueError) as e:
    raise ConfigError(f'{path}: cannot be used as Inception weights ({e})') from None
  return variables, digest.hexdigest()[:10]


@functools.lru_cache()
def make_apply(resize: str = 'legacy'):
  """jit-compiled (variables, images [N, H, W, 1 or 3] in [-1, 1] or uint8) -> (probs,
  features), the images resized by `resize` (eval.resize). Grayscale images are repeated to
  three channels."""
  model = InceptionV3(resize)

  @jax.jit
  def apply(variables, images):
    images = images_lib.to_signed(images)
    if images.shape[-1] == 1:
      images = jnp.repeat(images, 3, axis=-1)
    features, logits = model.apply(variables, images)
    return jax.nn.softmax(logits), features
  return apply


def predictor(variables, batch_size: int = 100, devices=None, resize: str = 'legacy'
              ) -> Callable[[Any], Tuple[np.ndarray, np.ndarray]]:
  """images (jax or numpy; [-1, 1] or uint8) -> (probs [N, 1008], features [N, 2048]) as
  numpy, in batches split over `devices` (default: this process's), resized by `resize`. The
  weights (~95 MB) are placed on the devices once, here."""
  mesh = sharding.make_mesh(jax.local_devices() if devices is None else devices)
  variables, apply = sharding.replicate(variables, mesh), make_apply(resize)
  return lambda images: sharding.map_batches(apply, variables, images, batch_size, mesh)


def predict(variables, images, batch_size: int = 100, resize: str = 'legacy'):
  """(probs [N, 1008], features [N, 2048]) as numpy for images in [0, 1] (pytorch-fid's
  input), in batches split over the local devices."""
  return predictor(variables, batch_size, resize=resize)(
      images_lib.from_unit(np.asarray(images, np.float32)))
