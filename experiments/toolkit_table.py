r"""What each modern technique does to DCGAN and WGAN-GP on Fashion-MNIST: every
technique added alone to each base GAN, the modern DCGAN combination and the SNGAN preset (its
conv model at 28x28), on the whole training set and on a fixed 10 % of it (dataset.subset);
SEEDS seeds of each trained at once (num_seeds), for a fixed number of iterations, then scored
by --mode=eval (each member: domain FID and classifier score against the 60,000 training
images, with the domain classifier of gan_jax/tools/train_classifier.py).

  python experiments/toolkit_table.py --out=/tmp/toolkit [--steps=400 --seeds=3 --samples=5000]
  python experiments/toolkit_table.py --out=/tmp/toolkit --table     # docs/toolkit.md's table

Each finished run is a line of OUT/results.jsonl, and a run already there is not run again, so
the command resumes an interrupted grid (a half-trained workdir resumes too). --only=NAME,...
runs some rows (names as in the table: 'dcgan/ema/10%').

Settings fitted to the short budget (400 iterations, not the presets' 50,000+): the EMA rows
average with decay 0.99 from step 100 (the presets' 0.999 from step 1000 would still be a copy
at 400); R1 takes the config's gamma (loss.r1_weight, 10) and, on DCGAN, a critic without batch
norm (R1 is per example); WGAN-GP's R1 row puts R1 in place of the gradient penalty.
"""

import json
import os
import time

from absl import app, flags

from table_runs import IDX, domain_classifier, run_main  # experiments/table_runs.py

flags.DEFINE_string('out', '/tmp/toolkit', 'Directory for the classifier, runs and results.')
flags.DEFINE_integer('steps', 400, 'Generator iterations of every run.')
flags.DEFINE_integer('seeds', 3, 'Seeds of every row, trained at once (num_seeds).')
flags.DEFINE_integer('samples', 5000, 'Generated samples per member and evaluation.')
flags.DEFINE_string('idx', IDX, 'The Fashion-MNIST IDX directory.')
flags.DEFINE_list('only', [], 'Rows to run (e.g. dcgan/base/all); default: all of them.')
flags.DEFINE_bool('table', False, 'Print the markdown table of OUT/results.jsonl and stop.')
FLAGS = flags.FLAGS

EMA = {'ema.decay': 0.99, 'ema.start_step': 100}
# technique -> overrides of each base GAN's config ({} for a base it does not apply to: None)
TECHNIQUES = {
    'base': {'dcgan': {}, 'wgan_gp': {}, 'sngan': {}},   # sngan: the preset, for comparison
    'ema': {'dcgan': EMA, 'wgan_gp': EMA},
    'spectral_norm': {'dcgan': {'model.spectral_norm': True},
                      'wgan_gp': {'model.spectral_norm': True}},
    'hinge': {'dcgan': {'loss.adversarial': 'hinge'}, 'wgan_gp': {'loss.adversarial': 'hinge'}},
    'least_squares': {'dcgan': {'loss.adversarial': 'least_squares'},
                      'wgan_gp': {'loss.adversarial': 'least_squares'}},
    'r1': {'dcgan': {'loss.lipschitz': 'r1', 'model.critic_norm': 'none'},
           'wgan_gp': {'loss.lipschitz': 'r1'}},
    'diffaugment': {'dcgan': {'augment.policy': 'color,translation,cutout'},
                    'wgan_gp': {'augment.policy': 'color,translation,cutout'}},
    'projection': {'dcgan': {'model.conditional': 'projection'},
                   'wgan_gp': {'model.conditional': 'projection'}},
    'modern': {'dcgan': EMA},   # configs/dcgan.py's 'modern' option, EMA fitted to the budget
}
GANS = ('dcgan', 'wgan_gp', 'sngan')
DATA = {'all': 1.0, '10%': 0.1}
SCORES = ('domain_fid', 'classifier_score')


def rows():
  """(name, config file argument, overrides) of every row, in the order they run."""
  for gan in GANS:
    for data, fraction in DATA.items():
      for technique, per_gan in TECHNIQUES.items():
        if gan not in per_gan:
          continue
        option = ',modern' if technique == 'modern' else ''
        overrides = {**per_gan[gan], 'dataset.subset': fraction}
        yield f'{gan}/{technique}/{data}', f'configs/{gan}.py:fashion_mnist{option}', overrides


def run_row(name, config, overrides, classifier):
  workdir = os.path.join(FLAGS.out, name.replace('/', '_').replace('%', 'pct'))
  common = [f'--config={config}', f'--workdir={workdir}', f'--config.dataset.path={FLAGS.idx}',
            f'--config.num_seeds={FLAGS.seeds}', f'--config.eval.classifier={classifier}',
            '--config.eval.reference_split=train', f'--config.eval.num_samples={FLAGS.samples}',
            *[f'--config.{k}={v}' for k, v in overrides.items()]]
  start = time.time()
  run_main([*common, f'--config.num_steps={FLAGS.steps}'], workdir + '.train.log')
  seconds = round(time.time() - start)
  scores = json.loads(run_main([*common, '--mode=eval'], workdir + '.eval.log').splitlines()[-1])
  return {'row': name, 'config': config, 'overrides': overrides, 'steps': FLAGS.steps,
          'seeds': FLAGS.seeds, 'samples': FLAGS.samples, 'train_seconds': seconds,
          **{k + s: scores[k + s] for k in SCORES for s in ('', '_seed_std', '_members')}}


def _results(path):
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return {r['row']: r for r in map(json.loads, f) if r}


def table(results) -> str:
  """The markdown table: a line per base GAN and technique, FID and classifier score as mean
  ± std over the seeds, on all of the data and on 10 % of it."""
  lines = ['| GAN | technique | domain FID, all data | domain FID, 10 % | classifier score, '
           'all data | classifier score, 10 % |', '|---|---|---|---|---|---|']
  for gan in GANS:
    for technique, per_gan in TECHNIQUES.items():
      if gan not in per_gan:
        continue
      cells = []
      for score, digits in (('domain_fid', 1), ('classifier_score', 2)):
        for data in DATA:
          r = results.get(f'{gan}/{technique}/{data}')
          cells.append(f'{r[score]:.{digits}f} ± {r[score + "_seed_std"]:.{digits}f}' if r
                       else 'not run')
      lines.append(f'| {gan} | {technique} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def main(_):
  path = os.path.join(FLAGS.out, 'results.jsonl')
  if FLAGS.table:
    print(table(_results(path)))
    return
  os.makedirs(FLAGS.out, exist_ok=True)
  classifier = os.path.join(FLAGS.out, 'classifier')
  domain_classifier(classifier, FLAGS.idx)
  done = _results(path)
  for name, config, overrides in rows():
    if name in done or (FLAGS.only and name not in FLAGS.only):
      continue
    result = run_row(name, config, overrides, classifier)
    with open(path, 'a') as f:
      f.write(json.dumps(result) + '\n')
    print(json.dumps(result), flush=True)


if __name__ == '__main__':
  app.run(main)
