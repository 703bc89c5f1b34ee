"""DINOv2's ViT as FD_DINOv2 uses it (Stein et al. 2023, the dgm-eval code), in Flax.

FD_DINOv2 is the Fréchet distance of the CLS token of DINOv2 ViT-L/14 (Oquab et al. 2023), taken
after the final layer norm (the hub model's `x_norm_clstoken`, transformers' `pooler_output`;
1024-d). Its input handling is dgm-eval's:
  * images resized to 224x224 with PIL's bicubic (Keys a = -0.5, widened when it shrinks an
    image, i.e. antialiased; each pass clipped to the pixel range, as PIL's 8-bit passes are),
    then ImageNet mean/std normalisation; grayscale images repeated to three channels;
  * the position embeddings, trained at 518x518 (37x37 patches), resized to the 16x16 patches
    of 224x224 as the hub model (`torch.hub.load('facebookresearch/dinov2', 'dinov2_vitl14')`)
    does: PyTorch's bicubic (a = -0.75, edge taps clamped), no antialiasing, and a scale of
    37 / (16 + 0.1) (its `interpolate_offset`). transformers' Dinov2Model resizes to the size
    instead (a scale of 37 / 16): `interpolate_offset=0` gives its features.
Images are not rounded to 8 bits (dgm-eval reads PNG files; PIL rounds each pass): a difference
of about one grey level at most before normalisation.

Weights cannot be downloaded here: convert facebook/dinov2-large (transformers' safetensors) or
the hub's dinov2_vitl14_pretrain.pth once with `python -m gan_jax.tools.convert_dinov2` and point
`config.eval.dinov2_weights` at the `.npz` it writes. Module and parameter names follow the hub
model's, so the conversion is a rename and a transpose (`from_torch`).
"""

import functools
import hashlib
import io
import json
import re
from typing import Any, Callable, Dict, Mapping, Tuple

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import files, images as images_lib, sharding, weights
from gan_jax.errors import ConfigError

SIZE = 224                          # dgm-eval's input side
MEAN = (0.485, 0.456, 0.406)        # ImageNet's, on [0, 1] images
STD = (0.229, 0.224, 0.225)
HUB_OFFSET = 0.1                    # the hub model's interpolate_offset (dgm-eval's features)
# ViT-L/14, the FD_DINOv2 network (facebook/dinov2-large, the hub's dinov2_vitl14).
VIT_L14 = dict(width=1024, depth=24, heads=16, patch=14, grid=37, mlp_dim=4096, eps=1e-6)
_SIZE_NAMES = {384: 'S', 768: 'B', 1024: 'L', 1536: 'g'}


def arch_name(arch: Mapping[str, Any]) -> str:
  """'ViT-L/14' for ViT-L/14's architecture dict."""
  return f"ViT-{_SIZE_NAMES.get(arch['width'], arch['width'])}/{arch['patch']}"


def _torch_bicubic_matrix(in_size: int, out_size: int, scale: float) -> np.ndarray:
  """[out_size, in_size] weights of PyTorch's bicubic (align_corners=False, no antialiasing):
  output i samples input (i + 0.5) * scale - 0.5 with Keys' cubic, a = -0.75; taps past an
  edge take the edge's value. In float32, as PyTorch computes the positions and weights."""
  f32 = np.float32
  a = f32(-0.75)
  # One rounding, as the fused multiply-add PyTorch's kernel compiles to: a product of two
  # float32 is exact in float64.
  src = (np.float64(f32(scale)) * (np.arange(out_size, dtype=f32) + f32(0.5)) - 0.5).astype(f32)
  first = np.floor(src)
  t = src - first
  near = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1          # |x| <= 1
  far = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a     # 1 < |x| < 2
  weights = np.zeros((out_size, in_size), f32)
  for k, w in enumerate((far(t + 1), near(t), near(1 - t), far(2 - t))):
    taps = np.clip(first.astype(int) - 1 + k, 0, in_size - 1)
    np.add.at(weights, (np.arange(out_size), taps), w)
  return weights


def position_embeddings(pos, grid: int, image_hw: Tuple[int, int], patch: int,
                        offset: float):
  """The [1, 1 + grid * grid, D] position embeddings for an image of `image_hw` pixels: as
  trained for a square image of `grid` patches a side, else the patch part resized bicubically
  to its patches, with scale grid / (patches + offset) (see the module docstring)."""
  h, w = image_hw[0] // patch, image_hw[1] // patch
  if h * w == grid * grid and image_hw[0] == image_hw[1]:
    return pos
  rows = jnp.asarray(_torch_bicubic_matrix(grid, h, grid / (h + offset)), jnp.float32)
  cols = jnp.asarray(_torch_bicubic_matrix(grid, w, grid / (w + offset)), jnp.float32)
  patches = pos[0, 1:].reshape(grid, grid, -1)
  patches = jnp.einsum('ai,bj,ijd->abd', rows, cols, patches,
                       precision=jax.lax.Precision.HIGHEST)
  return jnp.concatenate([pos[:, :1], patches.reshape(1, h * w, -1)], axis=1)


class LayerScale(nn.Module):
  @nn.compact
  def __call__(self, x):
    return x * self.param('gamma', nn.initializers.ones, (x.shape[-1],))


class Attention(nn.Module):
  heads: int

  @nn.compact
  def __call__(self, x):
    n, t, d = x.shape
    qkv = nn.Dense(3 * d, name='qkv')(x).reshape(n, t, 3, self.heads, d // self.heads)
    out = jax.nn.dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2])
    return nn.Dense(d, name='proj')(out.reshape(n, t, d))


class Mlp(nn.Module):
  hidden: int

  @nn.compact
  def __call__(self, x):
    y = nn.gelu(nn.Dense(self.hidden, name='fc1')(x), approximate=False)   # exact GELU
    return nn.Dense(x.shape[-1], name='fc2')(y)


class Block(nn.Module):
  """Pre-norm transformer block with layer scale (the hub's NestedTensorBlock at inference)."""
  heads: int
  mlp_dim: int
  eps: float

  @nn.compact
  def __call__(self, x):
    norm = functools.partial(nn.LayerNorm, epsilon=self.eps, use_fast_variance=False)
    x = x + LayerScale(name='ls1')(Attention(self.heads, name='attn')(norm(name='norm1')(x)))
    return x + LayerScale(name='ls2')(Mlp(self.mlp_dim, name='mlp')(norm(name='norm2')(x)))


class Dinov2(nn.Module):
  """[N, H, W, 3] normalised images -> [N, width] CLS token after the final layer norm.
  Defaults: ViT-L/14; `interpolate_offset`: see the module docstring."""
  width: int = 1024
  depth: int = 24
  heads: int = 16
  patch: int = 14
  grid: int = 37            # the position embeddings' side, in patches (518 / 14)
  mlp_dim: int = 4096
  eps: float = 1e-6
  interpolate_offset: float = HUB_OFFSET

  @nn.compact
  def __call__(self, images):
    n, height, width, _ = images.shape
    x = nn.Conv(self.width, (self.patch, self.patch), (self.patch, self.patch),
                padding='VALID', name='patch_embed')(images)       # [N, h, w, D]
    x = x.reshape(n, -1, self.width)
    cls = self.param('cls_token', nn.initializers.zeros, (1, 1, self.width))
    pos = self.param('pos_embed', nn.initializers.zeros, (1, 1 + self.grid ** 2, self.width))
    x = jnp.concatenate([jnp.broadcast_to(cls, (n, 1, self.width)), x], axis=1)
    x = x + position_embeddings(pos, self.grid, (height, width), self.patch,
                                self.interpolate_offset)
    for i in range(self.depth):
      x = Block(self.heads, self.mlp_dim, self.eps, name=f'blocks_{i}')(x)
    x = nn.LayerNorm(epsilon=self.eps, use_fast_variance=False, name='norm')(x)
    return x[:, 0]


def preprocess(images):
  """[N, H, W, 1 or 3] images in [-1, 1] (or uint8) -> [N, 224, 224, 3] as dgm-eval feeds
  DINOv2: PIL's bicubic resize, ImageNet mean/std normalisation; grayscale repeated to three
  channels."""
  x = images_lib.to_unit(images_lib.to_signed(images))
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  n, h, _, c = x.shape
  # PIL resizes the width, then the height, each pass into 8-bit pixels: an overshoot of the
  # first pass is clipped before the second. (Pillow 13 starts with the height where it
  # shrinks by more than the width; the two orders differ only where an overshoot is clipped.)
  x = jnp.clip(jax.image.resize(x, (n, h, SIZE, c), 'bicubic', antialias=True), 0.0, 1.0)
  x = jnp.clip(jax.image.resize(x, (n, SIZE, SIZE, c), 'bicubic', antialias=True), 0.0, 1.0)
  return (x - jnp.asarray(MEAN, jnp.float32)) / jnp.asarray(STD, jnp.float32)


# transformers' Dinov2Model names -> the hub model's (first match wins); query, key and value
# are concatenated into the hub's qkv afterwards.
_TRANSFORMERS_NAMES = (
    (r'embeddings\.cls_token', 'cls_token'),
    (r'embeddings\.mask_token', 'mask_token'),
    (r'embeddings\.position_embeddings', 'pos_embed'),
    (r'embeddings\.patch_embeddings\.projection\.(weight|bias)', r'patch_embed.proj.\1'),
    (r'encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)',
     r'blocks.\1.attn.\2.\3'),
    (r'encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)', r'blocks.\1.attn.proj.\2'),
    (r'encoder\.layer\.(\d+)\.layer_scale(1|2)\.lambda1', r'blocks.\1.ls\2.gamma'),
    (r'encoder\.layer\.(\d+)\.(norm1|norm2|mlp\.fc1|mlp\.fc2)\.(weight|bias)', r'blocks.\1.\2.\3'),
    (r'layernorm\.(weight|bias)', r'norm.\1'),
)


def _hub_names(state: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """A state dict in either naming (transformers' or the hub's) in the hub's."""
  out, qkv = {}, {}
  for key, value in state.items():
    for pattern, name in _TRANSFORMERS_NAMES:
      if re.fullmatch(pattern, key):
        key = re.sub(pattern, name, key)
        break
    split = re.fullmatch(r'blocks\.(\d+)\.attn\.(query|key|value)\.(weight|bias)', key)
    if split:
      block, part, leaf = split.groups()
      qkv.setdefault(f'blocks.{block}.attn.qkv.{leaf}', {})[part] = value
    else:
      out[key] = value
  for key, parts in qkv.items():
    if sorted(parts) != ['key', 'query', 'value']:
      raise ValueError(f'{key}: only {sorted(parts)} of query, key and value')
    out[key] = np.concatenate([parts['query'], parts['key'], parts['value']])
  return out


def from_torch(state_dict: Mapping[str, Any], heads: int = 0,
               eps: float = 1e-6) -> Tuple[Dict[str, Any], Dict[str, Any]]:
  """A DINOv2 ViT's state dict (the hub's dinov2_vit*14, or transformers' Dinov2Model; names ->
  arrays, numpy or anything np.asarray takes) -> (Flax variables {'params'}, arch: the
  Dinov2 module's fields). The shapes give the architecture but the heads: `heads` (0: width
  / 64, every DINOv2's). Raises ValueError naming what does not fit (registers, SwiGLU)."""
  state = _hub_names({k: np.asarray(v, np.float32) for k, v in state_dict.items()})
  params = {}
  for key, value in state.items():
    block = re.fullmatch(r'blocks\.(\d+)\.(norm1|norm2|ls1|ls2|attn\.qkv|attn\.proj|mlp\.fc1|'
                         r'mlp\.fc2)\.(weight|bias|gamma)', key)
    if key == 'mask_token':        # masked image modelling: training only
      continue
    if key in ('cls_token', 'pos_embed'):
      params[(key,)] = value
    elif key == 'patch_embed.proj.weight':         # [O, I, kh, kw] -> [kh, kw, I, O]
      params[('patch_embed', 'kernel')] = value.transpose(2, 3, 1, 0)
    elif key == 'patch_embed.proj.bias':
      params[('patch_embed', 'bias')] = value
    elif key in ('norm.weight', 'norm.bias'):
      params[('norm', 'scale' if key.endswith('weight') else 'bias')] = value
    elif block:
      index, module, leaf = block.groups()
      path = (f'blocks_{index}', *module.split('.'))
      if module.startswith('norm'):
        params[path + ({'weight': 'scale', 'bias': 'bias'}[leaf],)] = value
      elif module.startswith('ls'):
        params[path + ('gamma',)] = value
      else:                                        # Linear: [O, I] -> [I, O]
        params[path + ({'weight': 'kernel', 'bias': 'bias'}[leaf],)] = (
            value.T if leaf == 'weight' else value)
    else:
      raise ValueError(f'unexpected entry {key!r} in the DINOv2 state dict (a ViT without '
                       f'registers and with an MLP, not SwiGLU, is what converts)')
  try:
    width = params[('cls_token',)].shape[-1]
    arch = dict(width=int(width),
                depth=len({k[0] for k in params if k[0].startswith('blocks_')}),
                heads=int(heads or width // 64),
                patch=int(params[('patch_embed', 'kernel')].shape[0]),
                grid=int(round((params[('pos_embed',)].shape[1] - 1) ** 0.5)),
                mlp_dim=int(params[('blocks_0', 'mlp', 'fc1', 'kernel')].shape[1]),
                eps=float(eps))
  except KeyError as e:
    raise ValueError(f'not a DINOv2 state dict: no {"/".join(e.args[0])}') from None
  variables = {'params': traverse_util.unflatten_dict(params)}
  check_shapes(variables, arch)
  return variables, arch


def check_shapes(variables, arch: Mapping[str, Any]) -> None:
  """ValueError unless `variables` are those of Dinov2(**arch), shape for shape."""
  patch = arch['patch']
  want = weights.shapes_of(Dinov2(**arch), jnp.zeros((1, 2 * patch, 2 * patch, 3), jnp.float32))
  weights.check_shapes(variables, want, f'the weights of a DINOv2 {arch_name(arch)}')


def save(path: str, variables, arch: Mapping[str, Any]) -> None:
  """Flat npz ('params/blocks_0/attn/qkv/kernel', ...) and its 'arch' (JSON), written
  atomically."""
  flat = traverse_util.flatten_dict(jax.device_get(variables), sep='/')
  data = io.BytesIO()
  np.savez(data, arch=np.array(json.dumps(dict(arch), sort_keys=True)), **flat)
  files.write_bytes(path, data.getvalue())


def load(path: str) -> Tuple[Dict[str, Any], Dict[str, Any], str]:
  """(variables, arch, short content hash) of an npz from `save`; ConfigError when unusable."""
  if not path or not files.path(path).exists():
    raise ConfigError(f'eval.dinov2_weights {path!r} does not exist; convert facebook/'
                      f'dinov2-large with python -m gan_jax.tools.convert_dinov2')
  if not path.endswith('.npz'):
    raise ConfigError(f'{path} is not an .npz; convert it first: python -m '
                      f'gan_jax.tools.convert_dinov2 --src={path} --out=dinov2_vitl14.npz')
  digest = hashlib.sha1()
  try:
    with files.open_seekable(path) as f:
      for chunk in iter(lambda: f.read(1 << 24), b''):   # ~1.2 GB for ViT-L/14
        digest.update(chunk)
      f.seek(0)
      with np.load(f) as data:
        arch = json.loads(str(data['arch']))
        variables = traverse_util.unflatten_dict(
            {tuple(k.split('/')): data[k] for k in data.files if k != 'arch'})
    check_shapes(variables, arch)
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ConfigError(f'{path}: cannot be used as DINOv2 weights ({e})') from None
  return variables, arch, digest.hexdigest()[:10]


@functools.lru_cache()
def make_apply(arch: Tuple[Tuple[str, Any], ...], interpolate_offset: float = HUB_OFFSET):
  """jit-compiled (variables, images [N, H, W, 1 or 3] in [-1, 1] or uint8) -> (no class
  probabilities [N, 0], features [N, width]) for the architecture `arch` (sorted items)."""
  model = Dinov2(**dict(arch), interpolate_offset=interpolate_offset)

  @jax.jit
  def apply(variables, images):
    features = model.apply(variables, preprocess(images))
    return jnp.zeros((features.shape[0], 0), features.dtype), features
  return apply


def predictor(variables, arch: Mapping[str, Any], batch_size: int = 50, devices=None,
              interpolate_offset: float = HUB_OFFSET) -> Callable[[Any], Tuple[np.ndarray,
                                                                                 np.ndarray]]:
  """images (jax or numpy; [-1, 1] or uint8) -> (probs [N, 0], features [N, width]) as numpy,
  in batches split over `devices` (default: this process's). The weights (~1.2 GB for
  ViT-L/14) are placed on the devices once, here."""
  mesh = sharding.make_mesh(jax.local_devices() if devices is None else devices)
  variables = sharding.replicate(variables, mesh)
  apply = make_apply(tuple(sorted(arch.items())), interpolate_offset)
  return lambda images: sharding.map_batches(apply, variables, images, batch_size, mesh)
