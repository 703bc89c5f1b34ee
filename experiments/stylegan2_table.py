r"""docs/stylegan2.md's and docs/biggan.md's measurements on Fashion-MNIST at 32x32 (issues #30
and #29), two grids of a run per seed, each scored by --mode=eval with the domain classifier
(gan_jax/tools/train_classifier.py): the domain FID of 5,000 samples against the 10,000 test
images and the classifier score; for the conditional rows also the domain intra-FID and the
label accuracy (how often the classifier sees the class a sample was drawn for).

  python experiments/stylegan2_table.py --grid=wallclock --out=/tmp/sg2_table [--seconds=600]
  python experiments/stylegan2_table.py --grid=ada --out=/tmp/sg2_table [--steps=2000]
  python experiments/stylegan2_table.py --grid=wallclock --out=/tmp/sg2_table --table
  python experiments/stylegan2_table.py --grid=ada --out=/tmp/sg2_table --steps=20000 \
      --eval_every=1000 [--curves]

wallclock: StyleGAN2 (configs/stylegan2.py's CPU-sized 'small' option), DCGAN
  (configs/dcgan.py:fashion_mnist), SNGAN (configs/sngan.py:fashion_mnist; and with labels, its
  'conditional' option) and BigGAN (configs/biggan.py's CPU-sized 'small', labels) for SECONDS of
  wall-clock each: main.py gets SIGTERM that long after it starts (Python's start, decoding the
  data and compiling count), checkpoints and exits (docs/training.md, 'Preemption'). Each keeps
  its preset's num_steps, which none reaches (SNGAN's linear lr decay over 50,000 iterations
  barely starts), and takes max_steps_per_call 4, so that the calls dispatched before the signal
  end soon after it. The row records the iterations reached, the seconds to main.py's exit
  and the CPU (table_runs.cpu: the iterations are that machine's; lines from before 2026-12-07
  lack it).
  DCGAN's conv model takes 32 px (4, 8, 16, 32 px; 256, 128, 64 channels at width 64); SNGAN's
  fashion_mnist preset is its conv model with spectral norm (chosen at the preset's 28 px),
  not the paper's ResNet that configs/sngan.py:cifar10 builds at 32 px. A run left unfinished
  by an interruption starts again from scratch (resumed, it would get more than SECONDS).
ada: StyleGAN2 'small' on dataset.subset 0.025 (1,500 of the 60,000 training images, the same
  for every run) for STEPS iterations: 'noada' (no augmentation), 'ada' (the preset's 'bgc',
  adaptive toward E[sign D(real)] = 0.6, every 4 iterations, with augment.ada_kimg 100 in place
  of the official 500, so that p can move by up to 0.64 in 2,000 iterations at batch 32 rather
  than 0.128) and 'diffaugment' (color, translation, cutout; ADA off). An interrupted run
  resumes exactly (its seconds are then those of its last part). With --eval_every=N each run
  is also scored every N iterations while it trains (main.py's eval_every: the domain FID of
  5,000 samples against the whole train folder, 60,000 images, not only the 1,500 it trains
  on), and its line keeps the curve; --curves prints the runs' curves, finished or not, as
  mean ± std over the seeds at each iteration (the comparison at equal iterations), with ADA's
  mean p, and draws them in OUT/ada_STEPS_curves.png. Every finished ada run's line also keeps
  its critic's overfitting at the end, ADA's r_v and r_t (experiments/critic_overfit.py, about
  a minute), and the table gives r_v's mean ± std. (The lines in docs/stylegan2_table.jsonl
  written before that had theirs added afterwards from the same final checkpoints, where the
  workdirs were kept: not seed 0's 2,000-iteration runs.)
Runs with ADA ('ada', and 'stylegan2' of wallclock with the official ada_kimg 500) also record
the final p and its curve, train/ada_p every log_every (100) iterations, read from the run's
event files by gan_jax/tools/plot_fid.py (which draws it in WORKDIR/train_ada_p.png). Every run
also leaves a grid of 100 samples, WORKDIR/samples.png.

32 px: IDX files load at their own 28x28, so the IDX files are written once as PNG folders
(gan_jax/tools/idx_to_folder.py, OUT/fashion_png/train and test) and every run trains on the
train folder at dataset.image_size 32 (Lanczos, as any folder). The domain classifier trains on
that folder at 32 px (testing on 10 % of it held out: a folder has one split); the evaluation
reads the test folder as dataset.path (its one split, eval.reference_split 'train').

Each finished run is a line of OUT/results.jsonl, not run again; --only runs some rows. On a
2-core Intel Xeon a wallclock run takes about 12 minutes with its scoring (its results:
docs/stylegan2_table.jsonl, the table in docs/results.md), 11-13 minutes on a 2-core AMD EPYC
(Zen 3: docs/stylegan2_wallclock_zen3.jsonl, the rerun of three rows); an ada run of 2,000
iterations took 15-50 minutes, on that Xeon and an AMD EPYC, depending on what ran beside it.
"""

import json
import os
import shutil
import subprocess
import sys
import time

from absl import app, flags

from table_runs import IDX, ROOT, cpu, domain_classifier, run_main  # experiments/table_runs.py

flags.DEFINE_enum('grid', None, ['wallclock', 'ada'], 'Which grid to run (or print).')
flags.DEFINE_string('out', '/tmp/sg2_table', 'Directory for the data, classifier, runs, results.')
flags.DEFINE_integer('seconds', 600, 'wallclock: wall-clock seconds of every run.')
flags.DEFINE_integer('steps', 2000, 'ada: generator iterations of every run.')
flags.DEFINE_integer('eval_every', 0, 'ada: also score every run every this-many iterations '
                     'while it trains (the domain FID against the train folder: a curve; 0: off).')
flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds of every row, a run each.')
flags.DEFINE_integer('samples', 5000, 'Generated samples per run and evaluation.')
flags.DEFINE_string('idx', IDX, 'The Fashion-MNIST IDX directory.')
flags.DEFINE_list('only', [], 'Rows of the grid to run (names as in the table).')
flags.DEFINE_bool('table', False, 'Print the markdown table of the grid in OUT/results.jsonl '
                  'and stop.')
flags.DEFINE_bool('curves', False, "ada: print the runs' domain FID curves of --eval_every (from "
                  'their event files, finished or not) as a table of mean ± std over the seeds '
                  'at each iteration, draw them in OUT/ada_STEPS_curves.png and stop.')
flags.mark_flag_as_required('grid')
FLAGS = flags.FLAGS

SIZE = 32
SMALL = 'configs/stylegan2.py:fashion_mnist,small'
ADA_SUBSET = 0.025
DIFFAUGMENT = 'color,translation,cutout'
# grid -> row -> (config file argument, overrides, what it is)
GRIDS = {
    'wallclock': {
        'stylegan2': (SMALL, {}, "StyleGAN2-ADA, configs/stylegan2.py's 'small'"),
        'dcgan': ('configs/dcgan.py:fashion_mnist', {'dataset.image_size': SIZE},
                  'DCGAN, the preset at 32 px'),
        'sngan': ('configs/sngan.py:fashion_mnist', {'dataset.image_size': SIZE},
                  'SNGAN, the preset (conv model) at 32 px'),
        'sngan_projection': ('configs/sngan.py:fashion_mnist,conditional',
                             {'dataset.image_size': SIZE},
                             'SNGAN with the projection critic and conditional batch norm '
                             '(labels), at 32 px'),
        'biggan': ('configs/biggan.py:fashion_mnist,small', {},
                   "BigGAN (labels), configs/biggan.py's 'small'"),
    },
    'ada': {
        'noada': (SMALL + ',noada', {'dataset.subset': ADA_SUBSET}, 'no augmentation'),
        'ada': (SMALL, {'dataset.subset': ADA_SUBSET, 'augment.ada_kimg': 100},
                "ADA 'bgc', target 0.6, ada_kimg 100"),
        'diffaugment': (SMALL + ',noada', {'dataset.subset': ADA_SUBSET,
                                           'augment.policy': DIFFAUGMENT},
                        f'DiffAugment ({DIFFAUGMENT}), no ADA'),
    },
}
# of the eval line, where it has them (the intra-FID and label accuracy: conditional rows)
SCORES = ('domain_fid', 'classifier_score', 'domain_intra_fid', 'acgan_label_accuracy')


def budget(grid: str) -> int:
  """A run's length: seconds of wall-clock (wallclock) or iterations (ada)."""
  return FLAGS.seconds if grid == 'wallclock' else FLAGS.steps


def run_flags(grid, row, seed, data, classifier):
  """(workdir, main.py's flags for every mode of the run, reading its images from `data`)."""
  config, overrides, _ = GRIDS[grid][row]
  workdir = os.path.join(FLAGS.out, grid, f'{row}_{budget(grid)}_s{seed}')
  length = (['--config.max_steps_per_call=4'] if grid == 'wallclock' else
            [f'--config.num_steps={FLAGS.steps}', f'--config.eval_every={FLAGS.eval_every}'])
  return workdir, [
      f'--config={config}', f'--workdir={workdir}', f'--config.dataset.path={data}',
      f'--config.seed={seed}', f'--config.eval.classifier={classifier}',
      '--config.eval.reference_split=train', f'--config.eval.num_samples={FLAGS.samples}',
      '--config.sample_every=0', *length, *[f'--config.{k}={v}' for k, v in overrides.items()]]


def curve(workdir: str, metric: str, digits: int, check: bool = True):
  """[[step, value]] of one of the run's scalars, `metric` (gan_jax/tools/plot_fid.py reads its
  event files and draws them in WORKDIR/<metric>.png); with check False, [] where the run has
  none (yet)."""
  proc = subprocess.run([sys.executable, '-m', 'gan_jax.tools.plot_fid', f'--workdir={workdir}',
                         f'--metric={metric}'], cwd=ROOT, capture_output=True, text=True,
                        check=check)
  if proc.returncode:
    return []
  line = json.loads(proc.stdout.splitlines()[-1])
  return [[step, round(v, digits)] for step, v in zip(line['steps'], line['values'])]


def run_row(grid, row, seed, folders, classifier):
  """A finished run's line of OUT/results.jsonl: it trains, is scored and samples a grid."""
  workdir, train = run_flags(grid, row, seed, folders['train'], classifier)
  if grid == 'wallclock':
    shutil.rmtree(workdir, ignore_errors=True)   # from scratch: the budget is one run's
  start = time.time()
  run_main(train, workdir + '.train.log', FLAGS.seconds if grid == 'wallclock' else 0)
  seconds = round(time.time() - start)
  _, test = run_flags(grid, row, seed, folders['test'], classifier)
  scores = json.loads(run_main([*test, '--mode=eval'], workdir + '.eval.log').splitlines()[-1])
  run_main([*train, '--mode=sample', '--num_samples=100',
            f'--out={os.path.join(workdir, "samples.npz")}'], workdir + '.sample.log')
  config, overrides, _ = GRIDS[grid][row]
  result = {'grid': grid, 'row': row, 'budget': budget(grid), 'seed': seed, 'config': config,
            'overrides': overrides, 'samples': FLAGS.samples, 'iterations': scores['step'],
            'seconds': seconds, 'classifier_test_accuracy': _accuracy(classifier),
            **{k: scores[k] for k in SCORES if k in scores}}
  if grid == 'wallclock':   # its iterations are this machine's
    result['cpu'] = cpu()
  if config == SMALL:   # the preset's ADA: its p
    p = curve(workdir, 'train/ada_p', 5)
    result.update(ada_p=p[-1][1], ada_p_curve=p)
  if grid == 'ada' and FLAGS.eval_every:
    result.update(eval_every=FLAGS.eval_every, fid_curve=curve(workdir, 'eval/domain_fid', 2))
  if grid == 'ada':
    critic = critic_overfit(workdir)
    result.update(r_v=critic.pop('r_v'), critic=critic)
  return result


def critic_overfit(workdir: str) -> dict:
  """The final checkpoint's experiments/critic_overfit.py line: ADA's r_v and r_t, the
  critic's mean outputs on training, held-out and generated images."""
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', 'critic_overfit.py'),
                         f'--workdir={workdir}'], cwd=ROOT, capture_output=True, text=True,
                        check=True, env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'})
  line = json.loads(proc.stdout.splitlines()[-1])
  return {k: line[k] for k in ('r_v', 'r_t', 'd_train', 'd_heldout', 'd_generated')}


def _accuracy(classifier):
  with open(os.path.join(classifier, 'meta.json')) as f:
    return json.load(f)['test_accuracy']


def fashion_png(idx: str) -> dict:
  """{'train': folder, 'test': folder}: the IDX files as PNG folders in OUT/fashion_png, written
  once (gan_jax/tools/idx_to_folder.py)."""
  folder = os.path.join(FLAGS.out, 'fashion_png')
  if not os.path.isdir(folder):
    partial = folder + '.partial'
    shutil.rmtree(partial, ignore_errors=True)
    with open(folder + '.log', 'w') as f:
      subprocess.run([sys.executable, '-m', 'gan_jax.tools.idx_to_folder', f'--idx_dir={idx}',
                      f'--out={partial}'], cwd=ROOT, stdout=f, stderr=f, check=True)
    os.replace(partial, folder)
  return {split: os.path.join(folder, split) for split in ('train', 'test')}


def _results(path):
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return {(r['grid'], r['row'], r['budget'], r['seed']): r for r in map(json.loads, f) if r}


def _mean_std(values):
  mean = sum(values) / len(values)
  return mean, (sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5


def table(results, grid: str) -> str:
  """The markdown table of `grid`: a line per row and budget, the domain FID against the test
  images, the iterations, (wallclock) the seconds, (ADA's rows) the final p and (the ada grid)
  the critic's final r_v (critic_overfit) as mean ± std over the seeds' runs (a score that
  only some runs' lines have, over those, naming their seeds). The ada grid's
  runs are of a number of iterations, so they may share the CPU or be paused: their seconds
  (in OUT/results.jsonl) are no speed and not in its table."""
  timed = grid == 'wallclock'
  unit = 's' if timed else 'iterations'
  # (header, key in the run's line, digits): each a mean ± std over the seeds' runs
  scores = [('domain FID (test)', 'domain_fid', 1), ('intra-FID', 'domain_intra_fid', 1),
            ('classifier score', 'classifier_score', 2),
            ('label accuracy', 'acgan_label_accuracy', 3), ('iterations', 'iterations', 0),
            ('seconds', 'seconds', 0), ('final p', 'ada_p', 3), ("critic's r_v", 'r_v', 2)]
  scores = [s for s in scores if s[1] != ('r_v' if timed else 'seconds')]
  header = ['row', 'what it is', 'budget', *(name for name, _, _ in scores), 'seeds']
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  groups = {}
  for (g, row, length, _), r in results.items():
    if g == grid:
      groups.setdefault((row, length), []).append(r)
  order = lambda key: (key[1], list(GRIDS[grid]).index(key[0]) if key[0] in GRIDS[grid] else 99)
  for row, length in sorted(groups, key=order):
    runs = sorted(groups[row, length], key=lambda r: r['seed'])
    def cell(key, digits):   # over the runs whose lines have the score (lines before it lack it)
      have = [r for r in runs if key in r]
      if not have:
        return '—'
      mean, std = _mean_std([r[key] for r in have])
      return (f'{mean:.{digits}f}' + (f' ± {std:.{digits}f}' if len(have) > 1 else '')
              + ('' if len(have) == len(runs) else
                 f" (seed{'s' * (len(have) > 1)} {','.join(str(r['seed']) for r in have)})"))
    what = GRIDS[grid][row][2] if row in GRIDS[grid] else ''
    cells = [row, what, f'{length} {unit}', *(cell(key, digits) for _, key, digits in scores),
             ','.join(str(r['seed']) for r in runs)]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def curves_table(curves) -> str:
  """The markdown table of {row: {seed: [[step, FID]]}} (and 'ada_p': {seed: [[step, p]]}): a
  line per iteration that some run scored, a column per row, mean ± std (seeds) of the runs
  that reached it; ADA's p (mean over the seeds) at that iteration."""
  rows = [r for r in curves if r != 'ada_p']
  steps = sorted({step for r in rows for c in curves[r].values() for step, _ in c})
  header = ['iteration', *(f'{r}: domain FID (train)' for r in rows)]
  p = curves.get('ada_p', {})
  if p:
    header.append("ADA's p")
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  def cell(by_seed, step, digits):
    values = [v for c in by_seed.values() for s, v in c if s == step]
    if not values:
      return '—'
    mean, std = _mean_std(values)
    return (f'{mean:.{digits}f}' + (f' ± {std:.{digits}f}' if len(values) > 1 else '')
            + f' ({len(values)})')
  for step in steps:
    cells = [str(step), *(cell(curves[r], step, 1) for r in rows)]
    if p:
      cells.append(cell(p, step, 3))
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def plot_curves(curves, path: str):
  """Each row's runs (thin) and their mean where every run of the row has a value (thick)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4))
  for i, row in enumerate(r for r in curves if r != 'ada_p'):
    color = f'C{i}'
    runs = list(curves[row].values())
    for c in runs:
      ax.plot([s for s, _ in c], [v for _, v in c], color=color, alpha=0.3, linewidth=0.8)
    common = sorted(set.intersection(*({s for s, _ in c} for c in runs))) if runs else []
    ax.plot(common, [_mean_std([dict(c)[s] for c in runs])[0] for s in common], color=color,
            linewidth=2, label=f'{row} ({len(runs)} seeds)')
  ax.set_xlabel('iteration')
  ax.set_ylabel('domain FID (train folder)')
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def curves(rows, seeds):
  """{row: {seed: [[step, FID]]}} of the ada grid's runs of --steps that have scored, and
  'ada_p' {seed: [[step, p]]} of the 'ada' row's."""
  out = {}
  for row in rows:
    for seed in seeds:
      workdir = os.path.join(FLAGS.out, 'ada', f'{row}_{FLAGS.steps}_s{seed}')
      fid = curve(workdir, 'eval/domain_fid', 2, check=False) if os.path.isdir(workdir) else []
      if fid:
        out.setdefault(row, {})[seed] = fid
        if GRIDS['ada'][row][0] == SMALL:
          out.setdefault('ada_p', {})[seed] = curve(workdir, 'train/ada_p', 5, check=False)
  return out


def main(_):
  unknown = set(FLAGS.only) - set(GRIDS[FLAGS.grid])
  if unknown:
    raise app.UsageError(f'--only: no row {", ".join(sorted(unknown))} in the {FLAGS.grid} '
                         f'grid; its rows: {", ".join(GRIDS[FLAGS.grid])}')
  path = os.path.join(FLAGS.out, 'results.jsonl')
  if FLAGS.table:
    print(table(_results(path), FLAGS.grid))
    return
  if FLAGS.curves:
    if FLAGS.grid != 'ada':
      raise app.UsageError('--curves: the ada grid has them (its --eval_every)')
    found = curves(FLAGS.only or list(GRIDS['ada']), list(map(int, FLAGS.seeds)))
    print(curves_table(found))
    if found:
      plot_curves(found, os.path.join(FLAGS.out, f'ada_{FLAGS.steps}_curves.png'))
    return
  os.makedirs(FLAGS.out, exist_ok=True)
  folders = fashion_png(FLAGS.idx)
  classifier = domain_classifier(os.path.join(FLAGS.out, 'classifier'), folders['train'], SIZE)
  done = _results(path)
  for row in GRIDS[FLAGS.grid]:
    for seed in map(int, FLAGS.seeds):
      if ((FLAGS.grid, row, budget(FLAGS.grid), seed) in done
          or (FLAGS.only and row not in FLAGS.only)):
        continue
      result = run_row(FLAGS.grid, row, seed, folders, classifier)
      with open(path, 'a') as f:
        f.write(json.dumps(result) + '\n')
      print(json.dumps(result), flush=True)


if __name__ == '__main__':
  app.run(main)
