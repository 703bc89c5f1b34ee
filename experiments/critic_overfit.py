r"""Whether a run's critic overfits its training images, measured as the ADA paper does
(Karras et al. 2020b, "Training Generative Adversarial Networks with Limited Data", Sec. 2.2,
Fig. 1c and its heuristics r_v and r_t):

  python experiments/critic_overfit.py --workdir=runs/sg2_table/ada/noada_20000_s0 [--steps=all]
  python experiments/critic_overfit.py --workdir=RUN --heldout=FOLDER --num=1000

For each checkpoint (default: the latest; --steps=all: every one the workdir keeps) it applies
the critic, in evaluation (no augmentation), to `num` of the images the run trains on, `num`
held-out images of the same distribution and `num` images of the trained (raw, not EMA)
generator, the one the critic plays against. It prints one JSON line each, with the critic's
mean output on the three and

  r_t = E[sign D(train)]                                      (ADA's adjustment heuristic)
  r_v = (E[D(train)] - E[D(held-out)]) / (E[D(train)] - E[D(generated)])

r_v is 0 where held-out images score as the training images (no overfitting) and 1 where they
score as generated ones. The held-out images are by default the rows of the run's split that
its dataset.subset left out (the first `num` of a fixed draw); --heldout names other images
(a folder, IDX directory or .npz, at the run's image size) for a run that trains on a whole
split. The run's own config (WORKDIR/config.json, as main.py reads it without --config) gives
its data; --dataset_path gives a moved folder's place. A bad flag or run is one line (exit 2);
--verbose shows the traceback.
"""

import json
import os
import sys

from absl import flags
import jax
import ml_collections
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position
from configs import workdir as workdir_config
from gan_jax import (checkpoints, cli, files, images, input_pipeline, modes, rundir, sampling,
                     updates)
from gan_jax.errors import ConfigError

FLAGS = flags.FLAGS


def split_rows(count: int, fraction: float, num: int, seed: int, heldout_count: int = 0):
  """(training rows, held-out rows), sorted, up to `num` each, of a split of `count` images of
  which a run with dataset.subset `fraction` trains on input_pipeline.subset_rows: training rows
  drawn from those, held-out rows from the rest, or (`heldout_count` > 0) from other images of
  that many."""
  rows = input_pipeline.subset_rows(count, fraction)
  rng = np.random.default_rng(seed)
  train = np.sort(rng.permutation(rows)[:num])
  rest = np.arange(heldout_count) if heldout_count else np.setdiff1d(np.arange(count), rows)
  if not len(rest):
    raise ConfigError('the run trains on its whole split (dataset.subset 1): name held-out '
                      'images with --heldout')
  return train, np.sort(rng.permutation(rest)[:num])


def image_sets(dataset_config, num: int, heldout: str, seed: int):
  """{'train': (images, labels), 'heldout': (images, labels)} of up to `num` each (split_rows),
  uint8 or float as the data loads (labels None where it has none)."""
  data = input_pipeline.load(dataset_config)
  other = input_pipeline.load(_with_path(dataset_config, heldout)) if heldout else data
  train, held = split_rows(len(data.images), dataset_config.subset, num, seed,
                           len(other.images) if heldout else 0)
  pick = lambda d, r: (np.asarray(d.images[r]), None if d.labels is None else d.labels[r])
  return {'train': pick(data, train), 'heldout': pick(other, held)}


def _with_path(dataset_config, path: str):
  """The run's dataset settings (image size, channels) for the whole of other files."""
  c = ml_collections.ConfigDict(dataset_config.to_dict())
  c.path, c.subset = path, 1.0
  return c


def scores(stepper, fn, state, x, labels, batch: int) -> np.ndarray:
  """The critic's outputs [N] on images x (uint8 or [-1, 1] float), `batch` at a time, by the
  compiled `fn` (state, x, labels) -> updates.critic_scores."""
  full = lambda a: np.resize(a, (batch, *a.shape[1:]))   # a short last chunk: its rows again
  out = []
  for i in range(0, len(x), batch):
    n = min(batch, len(x) - i)
    y = None if labels is None or not stepper.gan.spec.projection else full(labels[i:i + n])
    out.append(np.asarray(fn(state, images.to_signed(full(x[i:i + n])), y)).reshape(-1)[:n])
  return np.concatenate(out)


def generated(stepper, state, num: int, batch: int, seed: int):
  """(images [num, H, W, C] in [-1, 1], labels or None) of the state's trained generator, drawn
  as evaluation draws its samples (sampling.batches, seed's EVAL_STREAM)."""
  parts = list(sampling.batches(stepper, state, num, sampling.stream_key(
      seed, sampling.EVAL_STREAM), batch_size=batch, interleaved=True))
  labels = None if parts[0][1] is None else np.concatenate([y for _, y in parts])
  return np.concatenate([np.asarray(x) for x, _ in parts]), labels


def measure(stepper, state, sets, num: int, batch: int, seed: int) -> dict:
  """The critic's mean outputs on the sets and generated images, r_t and r_v."""
  fn = jax.jit(lambda s, x, y: updates.critic_scores(stepper.gan, s, x, y))  # compiled once
  fake, fake_labels = generated(stepper, state, num, batch, seed)
  d = {name: scores(stepper, fn, state, x, y, batch) for name, (x, y) in sets.items()}
  d['generated'] = scores(stepper, fn, state, fake, fake_labels, batch)
  train, held, gen = (float(d[k].mean()) for k in ('train', 'heldout', 'generated'))
  return {'d_train': round(train, 4), 'd_heldout': round(held, 4), 'd_generated': round(gen, 4),
          'r_t': round(float(np.sign(d['train']).mean()), 4),
          'r_v': round((train - held) / (train - gen), 4) if train != gen else None,
          'num': {k: len(v) for k, v in d.items()}}


def main():
  if not files.path(rundir.config_path(FLAGS.workdir)).exists():
    raise ConfigError(f'{FLAGS.workdir} holds no run (no config.json)')
  config = workdir_config.get_config(FLAGS.workdir)
  if FLAGS.dataset_path:
    config.dataset.path = FLAGS.dataset_path
  mngr = checkpoints.manager(FLAGS.workdir, 1, read_only=True)
  kept = list(mngr.all_steps())
  mngr.close()
  if FLAGS.steps == ['all']:
    steps = kept
  else:
    steps = [int(s) for s in FLAGS.steps] or kept[-1:]
  sets = image_sets(config.dataset, FLAGS.num, FLAGS.heldout, FLAGS.seed)
  group = config.model.get('mbstd_group_size') or 1 if config.model.arch == 'stylegan2' else 1
  batch = -(-FLAGS.batch // group) * group   # whole groups in every call
  for step in steps:
    _, stepper, state = modes.restored(config, FLAGS.workdir, step, raw_generator=True)
    line = {'workdir': FLAGS.workdir, 'step': int(state.step),
            **measure(stepper, state, sets, FLAGS.num, batch, FLAGS.seed)}
    print(json.dumps(line), flush=True)


def define_flags():
  """The flags, defined only where the script runs (its functions import without them)."""
  flags.DEFINE_string('workdir', None, 'The run (local or gs://).')
  flags.DEFINE_list('steps', [], "Checkpoint steps (default: the latest; 'all': every one kept).")
  flags.DEFINE_integer('num', 1500, 'Images of each kind: training, held-out, generated.',
                       lower_bound=1)
  flags.DEFINE_string('heldout', None, "Held-out images (a folder, IDX directory or .npz); "
                      "default: the rows of the run's split outside its dataset.subset.")
  flags.DEFINE_string('dataset_path', None, "The run's dataset.path, where its folder moved.")
  flags.DEFINE_integer('batch', 100, 'Images per critic call, rounded up to whole groups of '
                       "StyleGAN2's minibatch standard deviation (it sees groups of consecutive "
                       'images).',
                       lower_bound=1)
  flags.DEFINE_integer('seed', 0, 'Draws of the held-out rows and of the generated images.')
  flags.mark_flag_as_required('workdir')


if __name__ == '__main__':
  define_flags()
  cli.run_tool(main)
