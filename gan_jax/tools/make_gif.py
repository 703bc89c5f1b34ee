"""Animated GIF of training: the fixed-z sample grids a run wrote to TensorBoard, in step order.

  python -m gan_jax.tools.make_gif --workdir=runs/fashion_mnist/dcgan
  # -> runs/fashion_mnist/dcgan/samples.gif, one frame per sample_every steps, captioned by step
"""

import json

from absl import flags

from gan_jax import cli, files, images
from gan_jax.errors import DataError

flags.DEFINE_string('workdir', None, 'Run directory with TensorBoard event files (local or '
                    'gs://).')
flags.DEFINE_string('out', None, 'GIF path, local or gs:// (default: WORKDIR/samples.gif).')
flags.DEFINE_string('tag', 'samples', 'Image summary tag.')
flags.DEFINE_float('seconds_per_frame', 0.25, 'Frame duration.')
flags.DEFINE_integer('scale', 2, 'Nearest-neighbour upscaling.')
flags.mark_flags_as_required(['workdir'])
FLAGS = flags.FLAGS


def main() -> None:
  if not files.path(FLAGS.workdir).exists():
    raise DataError(f'--workdir {FLAGS.workdir} does not exist')
  try:
    grids = images.read_grids(FLAGS.workdir, FLAGS.tag)
  except ValueError as e:
    raise DataError(str(e)) from None
  out = FLAGS.out or str(files.path(FLAGS.workdir) / f'{FLAGS.tag}.gif')
  images.save_gif([g for _, g in grids], out, FLAGS.seconds_per_frame, FLAGS.scale,
                  captions=[f'step {s}' for s, _ in grids])
  print(json.dumps({'out': out, 'frames': len(grids), 'steps': [s for s, _ in grids]}))


if __name__ == '__main__':
  cli.run_tool(main)
