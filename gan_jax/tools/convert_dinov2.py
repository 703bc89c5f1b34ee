r"""Converts DINOv2 ViT-L/14 weights to the .npz that `config.eval.dinov2_weights` takes.

FD_DINOv2's network cannot be downloaded at run time; fetch it once where there is a network,
either transformers' facebook/dinov2-large (config.json and model.safetensors, ~1.2 GB):
  huggingface-cli download facebook/dinov2-large config.json model.safetensors \
      --local-dir dinov2-large
  python -m gan_jax.tools.convert_dinov2 --src=dinov2-large --out=weights/dinov2_vitl14.npz
(no torch needed for safetensors), or the torch hub's state dict (needs torch:
requirements-reference.txt):
  https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth
  python -m gan_jax.tools.convert_dinov2 --src=dinov2_vitl14_pretrain.pth \
      --out=weights/dinov2_vitl14.npz
then
  python main.py --workdir=DIR --mode=eval --config.eval.dinov2_weights=weights/dinov2_vitl14.npz
--src takes a directory with config.json (transformers' save_pretrained), a .safetensors file,
or a PyTorch state dict (.pth, .bin). Prints one JSON line: the output path, the architecture,
its parameter count and content hash.
"""

import json

from absl import flags
import numpy as np
from flax import traverse_util

from gan_jax import cli, dinov2, files
from gan_jax.errors import ConfigError, DataError

flags.DEFINE_string('src', None, "transformers' model directory (config.json and "
                    'model.safetensors or pytorch_model.bin), a .safetensors file, or a PyTorch '
                    'state dict (.pth, .bin); local or gs://.')
flags.DEFINE_string('out', None, 'Output .npz (local or gs://).')
flags.DEFINE_integer('heads', 0, 'attention heads, where no config.json says (0: width / 64, '
                     "every DINOv2's).")
flags.mark_flags_as_required(['src', 'out'])
FLAGS = flags.FLAGS

_DTYPES = {'F32': np.float32, 'F16': np.float16, 'F64': np.float64}


def read_safetensors(data: bytes):
  """The arrays of a safetensors file's bytes: an 8-byte little-endian header length, a JSON
  header (name -> dtype, shape, data_offsets into the rest), then the data."""
  length = int.from_bytes(data[:8], 'little')
  header = json.loads(data[8:8 + length])
  arrays = {}
  for name, entry in header.items():
    if name == '__metadata__':
      continue
    if entry['dtype'] == 'BF16':   # the high half of a float32
      begin, end = entry['data_offsets']
      bits = np.frombuffer(data, np.uint16, (end - begin) // 2, 8 + length + begin)
      arrays[name] = (bits.astype(np.uint32) << 16).view(np.float32).reshape(entry['shape'])
      continue
    if entry['dtype'] not in _DTYPES:
      raise DataError(f'{name}: dtype {entry["dtype"]} is not a float type')
    dtype = np.dtype(_DTYPES[entry['dtype']])
    begin, end = entry['data_offsets']
    arrays[name] = np.frombuffer(data, dtype, (end - begin) // dtype.itemsize,
                                 8 + length + begin).reshape(entry['shape'])
  return arrays


def _read_torch(path: str):
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ConfigError(f'reading {path} needs torch: pip install -r requirements-reference.txt '
                      f'(or convert model.safetensors, which needs none)') from None
  with files.open_seekable(path) as f:
    state = torch.load(f, map_location='cpu', weights_only=True)
  return {k: v.float().numpy() for k, v in state.items()}


def read(src: str):
  """(state dict, heads, layer-norm eps) of --src; heads 0 where no config.json says."""
  config, weights = {}, src
  if files.path(src).is_dir():
    directory = files.path(src)
    if (directory / 'config.json').exists():
      config = json.loads((directory / 'config.json').read_text())
    names = ('model.safetensors', 'pytorch_model.bin')
    found = [n for n in names if (directory / n).exists()]
    if not found:
      raise DataError(f'--src {src} holds neither of {", ".join(names)}')
    weights = str(directory / found[0])
  if config and (config.get('model_type') != 'dinov2' or config.get('use_swiglu_ffn')):
    raise DataError(f'--src {src} is a {config.get("model_type")!r} model'
                    f'{" with SwiGLU" if config.get("use_swiglu_ffn") else ""}: DINOv2 ViTs '
                    f'with an MLP (S, B, L) convert')
  if weights.endswith('.safetensors'):
    state = read_safetensors(files.path(weights).read_bytes())
  else:
    state = _read_torch(weights)
  return state, config.get('num_attention_heads', 0), config.get('layer_norm_eps', 1e-6)


def main() -> None:
  if not FLAGS.out.endswith('.npz'):
    raise ConfigError(f'--out {FLAGS.out} must name an .npz file')
  if not files.path(FLAGS.src).exists():
    raise DataError(f'--src {FLAGS.src} does not exist; fetch facebook/dinov2-large (see this '
                    f"tool's docstring)")
  state, heads, eps = read(FLAGS.src)
  try:
    variables, arch = dinov2.from_torch(state, heads=heads or FLAGS.heads, eps=eps)
  except ValueError as e:
    raise DataError(f'--src {FLAGS.src}: {e}') from None
  dinov2.save(FLAGS.out, variables, arch)
  _, _, digest = dinov2.load(FLAGS.out)
  count = sum(v.size for v in traverse_util.flatten_dict(variables).values())
  print(json.dumps({'out': FLAGS.out, 'arch': dinov2.arch_name(arch), 'parameters': int(count),
                    'sha1_10': digest}))


if __name__ == '__main__':
  cli.run_tool(main)
