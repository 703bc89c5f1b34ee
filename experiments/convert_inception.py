r"""Converts pytorch-fid's Inception weights to the .npz that `config.eval.inception_weights` takes.

The standard FID network's weights (TensorFlow's 2015-12-05 Inception graph, as pytorch-fid
ports it) cannot be downloaded at run time; fetch them once where there is a network:
  https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
then, where torch is installed (requirements-inception-test.txt):
  python experiments/convert_inception.py --pth=pt_inception-2015-12-05-6726825d.pth \
      --out=weights/inception_fid.npz
  python main.py --workdir=DIR --mode=eval --config.eval.inception_weights=weights/inception_fid.npz
Prints one JSON line: the output path, its parameter count and content hash.
"""

import json
import os
import sys

from absl import app, flags
from flax import traverse_util

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gan_jax import files, inception  # pylint: disable=g-import-not-at-top

flags.DEFINE_string('pth', None, "pytorch-fid's state dict (.pth; local or gs://).")
flags.DEFINE_string('out', None, 'Output .npz (local or gs://).')
flags.mark_flags_as_required(['pth', 'out'])
FLAGS = flags.FLAGS


def main(_):
  import torch  # pylint: disable=g-import-not-at-top
  with files.open_seekable(FLAGS.pth) as f:
    state = torch.load(f, map_location='cpu', weights_only=True)
  variables = inception.from_torch({k: v.numpy() for k, v in state.items()})
  inception.save(FLAGS.out, variables)
  _, digest = inception.load(FLAGS.out)
  count = sum(v.size for v in traverse_util.flatten_dict(variables).values())
  print(json.dumps({'out': FLAGS.out, 'parameters': int(count), 'sha1_10': digest}))


if __name__ == '__main__':
  app.run(main)
