r"""Converts pytorch-fid's Inception weights to the .npz that `config.eval.inception_weights` takes.

The standard FID network's weights (TensorFlow's 2015-12-05 Inception graph, as pytorch-fid
ports it) cannot be downloaded at run time; fetch them once where there is a network:
  https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
then, where torch is installed (requirements-reference.txt):
  python -m gan_jax.tools.convert_inception --pth=pt_inception-2015-12-05-6726825d.pth \
      --out=weights/inception_fid.npz
  python main.py --workdir=DIR --mode=eval --config.eval.inception_weights=weights/inception_fid.npz
Prints one JSON line: the output path, its parameter count and content hash.
"""

import json

from absl import flags
from flax import traverse_util

from gan_jax import cli, files, inception
from gan_jax.errors import ConfigError, DataError

flags.DEFINE_string('pth', None, "pytorch-fid's state dict (.pth; local or gs://).")
flags.DEFINE_string('out', None, 'Output .npz (local or gs://).')
flags.mark_flags_as_required(['pth', 'out'])
FLAGS = flags.FLAGS


def main() -> None:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ConfigError('converting the weights needs torch: pip install -r '
                      'requirements-reference.txt') from None
  if not files.path(FLAGS.pth).exists():
    raise DataError(f'--pth {FLAGS.pth} does not exist; fetch pytorch-fid\'s '
                    f'pt_inception-2015-12-05-6726825d.pth (see this tool\'s docstring)')
  with files.open_seekable(FLAGS.pth) as f:
    state = torch.load(f, map_location='cpu', weights_only=True)
  variables = inception.from_torch({k: v.numpy() for k, v in state.items()})
  inception.save(FLAGS.out, variables)
  _, digest = inception.load(FLAGS.out)
  count = sum(v.size for v in traverse_util.flatten_dict(variables).values())
  print(json.dumps({'out': FLAGS.out, 'parameters': int(count), 'sha1_10': digest}))


if __name__ == '__main__':
  cli.run_tool(main)
