"""Plot of a logged scalar (default: the domain FID of eval_every; any tag, train/ada_p among
them) against steps and wall-clock time, from a run's TensorBoard event files.

  python -m gan_jax.tools.plot_fid --workdir=runs/fashion_mnist/dcgan   # -> WORKDIR/eval_domain_fid.png
"""

import io
import json

from absl import flags
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
from tensorboard.util import tensor_util  # pylint: disable=g-import-not-at-top

from gan_jax import cli, files  # pylint: disable=g-import-not-at-top
from gan_jax.errors import DataError  # pylint: disable=g-import-not-at-top

flags.DEFINE_string('workdir', None, 'Run directory with TensorBoard event files (local or '
                    'gs://).')
flags.DEFINE_string('metric', 'eval/domain_fid', 'Scalar tag to plot.')
flags.DEFINE_string('out', None, 'PNG path, local or gs:// (default: WORKDIR/<metric>.png).')
flags.mark_flags_as_required(['workdir'])
FLAGS = flags.FLAGS


def read_scalar(workdir: str, tag: str):
  """[(step, wall_time, value)] by step (the latest write of a step wins)."""
  if not files.path(workdir).exists():
    raise DataError(f'--workdir {workdir} does not exist')
  acc = event_accumulator.EventAccumulator(workdir, size_guidance={'tensors': 0, 'scalars': 0})
  acc.Reload()
  tags = acc.Tags()
  if tag in tags['tensors']:
    events = [(e.step, e.wall_time, float(tensor_util.make_ndarray(e.tensor_proto)))
              for e in acc.Tensors(tag)]
  elif tag in tags['scalars']:
    events = [(e.step, e.wall_time, e.value) for e in acc.Scalars(tag)]
  else:
    raise DataError(f'no scalar {tag!r} in {workdir}; train with --config.eval_every=N '
                     f'and --config.eval.classifier=DIR')
  by_step = {}
  for step, wall, value in sorted(events, key=lambda e: e[1]):
    by_step[step] = (step, wall, value)
  return [by_step[s] for s in sorted(by_step)]


def main() -> None:
  points = read_scalar(FLAGS.workdir, FLAGS.metric)
  steps, walls, values = zip(*points)
  minutes = [(w - walls[0]) / 60 for w in walls]
  fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(10, 3.5))
  for ax, x, label in ((by_step, steps, 'generator step'),
                       (by_time, minutes, f'minutes since step {steps[0]}')):
    ax.plot(x, values, marker='o')
    ax.set_xlabel(label)
    ax.set_ylabel(FLAGS.metric)
    ax.grid(alpha=0.3)
  fig.suptitle(files.absolute(FLAGS.workdir))
  fig.tight_layout()
  out = FLAGS.out or str(files.path(FLAGS.workdir) / (FLAGS.metric.replace('/', '_') + '.png'))
  png = io.BytesIO()
  fig.savefig(png, format='png', dpi=100)
  files.write_bytes(out, png.getvalue())
  print(json.dumps({'out': out, 'points': len(points), 'steps': list(steps),
                    'values': list(values)}))


if __name__ == '__main__':
  cli.run_tool(main)
