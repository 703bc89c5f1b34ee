r"""docs/conditional.md's table: do conditional GANs draw the class they are asked for? Each
variant of ACGAN and projection on Fashion-MNIST, a run per seed for STEPS iterations, then
scored by --mode=eval with the domain classifier
(gan_jax/tools/train_classifier.py): its label accuracy (how often it sees the class each
sample was asked for, 5,000 class-balanced samples per run), per class, and the domain FID
against the 10,000 test images; and a grid of each run's samples, one class per row.

  python experiments/conditional_table.py --out=/tmp/conditional [--steps=1200 --seeds=0,1,2]
  python experiments/conditional_table.py --out=/tmp/conditional --table
  python experiments/conditional_table.py --out=/tmp/conditional --rescore  # the runs again

1,200 iterations is what configs/acgan.py:fashion_mnist trains in 300 s on a quiet 2-core CPU
(compile included). Each finished run is a line of OUT/results.jsonl, not run again; --only
runs some variants. --classifier reuses a trained domain classifier.
"""

import json
import os
import shutil
import time

from absl import app, flags

from table_runs import IDX, domain_classifier, run_main  # experiments/table_runs.py

flags.DEFINE_string('out', '/tmp/conditional', 'Directory for the classifier, runs and results.')
flags.DEFINE_integer('steps', 1200, 'Generator iterations of every run.')
flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds of every variant, a run each.')
flags.DEFINE_integer('samples', 5000, 'Generated samples per seed and evaluation.')
flags.DEFINE_string('idx', IDX, 'The Fashion-MNIST IDX directory.')
flags.DEFINE_string('classifier', '', 'A trained domain classifier (default: OUT/classifier).')
flags.DEFINE_string('grids', '', 'Copy each variant\'s class grid here (e.g. docs/samples).')
flags.DEFINE_list('only', [], 'Variants to run (names as in the table).')
flags.DEFINE_bool('table', False, 'Print the markdown table of OUT/results.jsonl and stop.')
flags.DEFINE_bool('rescore', False, 'Evaluate the finished runs of OUT/results.jsonl again (with '
                  "this version's metrics, e.g. the intra-FID) and update their lines; no training.")
FLAGS = flags.FLAGS

ACGAN = 'configs/acgan.py:fashion_mnist'
# name -> (config file argument, overrides, what it is)
VARIANTS = {
    'acgan_paper': (ACGAN + ',paper', {}, "ACGAN, the paper's class loss: the critic's class "
                    'head learns from real and generated images'),
    'acgan': (ACGAN, {}, "ACGAN, the preset: the critic's class head learns from real images "
              'only'),
    'acgan_tac': (ACGAN, {'loss.class_loss': 'tac'}, 'ACGAN with a TAC-GAN twin head'),
    'acgan_d2d': (ACGAN + ',reacgan', {}, "ACGAN with ReACGAN's data-to-data cross-entropy "
                  '(on real images, in the critic; on its samples, in the generator)'),
    'acgan_d2d_sn_hinge': (ACGAN + ',reacgan', {'loss.adversarial': 'hinge',
                                                'model.critic_norm': 'none',
                                                'model.spectral_norm': True},
                           "... with ReACGAN's critic: hinge loss, spectral norm, no batch norm"),
    'acgan_d2d_weight_1': (ACGAN + ',reacgan', {'loss.aux_weight': 1.0},
                           '... with the class loss weighted 1 (the preset\'s), not 0.5'),
    'projection': (ACGAN, {'model.conditional': 'projection'}, 'projection critic, conditional '
                   'batch norm in G (the ACGAN preset otherwise)'),
    'projection_no_bn': (ACGAN, {'model.conditional': 'projection', 'model.critic_norm': 'none'},
                         '... without batch norm in the critic'),
    'projection_sn_hinge': (ACGAN, {'model.conditional': 'projection', 'loss.adversarial': 'hinge',
                                    'model.critic_norm': 'none', 'model.spectral_norm': True},
                            '... with hinge loss and spectral norm, no batch norm, in the '
                            'critic (SNGAN\'s)'),
    # How the label enters the generator (model.gen_label_input)
    'projection_sn_hinge_embed_cbn': (
        ACGAN, {'model.conditional': 'projection', 'loss.adversarial': 'hinge',
                'model.critic_norm': 'none', 'model.spectral_norm': True,
                'model.gen_label_input': 'embed_cbn'},
        "... and z times a label embedding in G as well as its conditional batch norms"),
    'projection_embed_cbn': (ACGAN, {'model.conditional': 'projection',
                                     'model.gen_label_input': 'embed_cbn'},
                             'projection (the ACGAN preset otherwise), z times a label embedding '
                             'in G as well as its conditional batch norms'),
    'acgan_cbn': (ACGAN, {'model.gen_label_input': 'cbn'},
                  'ACGAN, the label entering G through conditional batch norm instead of z '
                  'times an embedding'),
    'acgan_concat': (ACGAN, {'model.gen_label_input': 'concat'},
                     'ACGAN, z concatenated with the one-hot label'),
}


SCORES = ('acgan_label_accuracy', 'domain_fid', 'domain_intra_fid')  # prefixes of the keys kept


def _run_flags(name, seed, classifier, steps):
  """(workdir, main.py's flags for every mode of variant `name`'s run)."""
  config, overrides, _ = VARIANTS[name]
  workdir = os.path.join(FLAGS.out, f'{name}_{steps}_s{seed}')
  return workdir, [
      f'--config={config}', f'--workdir={workdir}', f'--config.dataset.path={FLAGS.idx}',
      f'--config.seed={seed}', f'--config.eval.classifier={classifier}',
      '--config.eval.reference_split=test', f'--config.eval.num_samples={FLAGS.samples}',
      *[f'--config.{k}={v}' for k, v in overrides.items()]]


def _scores(common, workdir):
  """The eval line's label accuracies, domain FID and intra-FID, and confusion matrix."""
  scores = json.loads(run_main([*common, '--mode=eval'], workdir + '.eval.log').splitlines()[-1])
  return {**{k: scores[k] for k in scores if k.startswith(SCORES)},
          'label_confusion': scores.get('label_confusion')}


def rescore(results, classifier):
  """`results` with each run whose workdir is here evaluated again."""
  for key, r in results.items():
    workdir, common = _run_flags(r['variant'], r['seed'], classifier, r['steps'])
    if os.path.isdir(workdir) and 'domain_intra_fid' not in r:
      print(f'rescoring {workdir}', flush=True)
      results[key] = {**r, **_scores(common, workdir)}
  return results


def run_variant(name, seed, classifier):
  workdir, common = _run_flags(name, seed, classifier, FLAGS.steps)
  start = time.time()
  run_main([*common, f'--config.num_steps={FLAGS.steps}', '--config.sample_every=0'],
           workdir + '.train.log')
  seconds = round(time.time() - start)
  scores = _scores(common, workdir)
  grid = os.path.join(workdir, 'samples.npz')
  run_main([*common, '--mode=sample', '--num_samples=100', f'--out={grid}'],
           workdir + '.sample.log')
  if FLAGS.grids:
    os.makedirs(FLAGS.grids, exist_ok=True)
    shutil.copy(grid[:-4] + '.png',
                os.path.join(FLAGS.grids, f'conditional_{name}_{FLAGS.steps}_s{seed}.png'))
  return {'variant': name, 'steps': FLAGS.steps, 'seed': seed, 'samples': FLAGS.samples,
          'train_seconds': seconds, 'classifier_test_accuracy': _accuracy(classifier), **scores}


def _accuracy(classifier):
  with open(os.path.join(classifier, 'meta.json')) as f:
    return json.load(f)['test_accuracy']


def _results(path):
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return {(r['variant'], r['steps'], r['seed']): r for r in map(json.loads, f) if r}


def _mean_std(values):
  mean = sum(values) / len(values)
  return mean, (sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5


def table(results) -> str:
  """A line per variant and budget: label accuracy and domain FID as mean ± std over the seeds'
  runs, the class with the lowest mean label accuracy, and the domain intra-FID (the mean over
  the classes of each class's FID) where every seed's run has it."""
  acc, fid = 'acgan_label_accuracy', 'domain_fid'
  lines = ['| variant | iterations | label accuracy | lowest class | domain FID (test) | '
           'domain intra-FID (test) | seeds |', '|---|---|---|---|---|---|---|']
  groups = {}
  for (name, steps, _), r in results.items():
    groups.setdefault((name, steps), []).append(r)
  order = lambda key: (key[1], list(VARIANTS).index(key[0]) if key[0] in VARIANTS else 99)
  for (name, steps) in sorted(groups, key=order):
    runs = sorted(groups[name, steps], key=lambda r: r['seed'])
    per_class = [_mean_std([r[f'{acc}_class_{c}'] for r in runs])[0] for c in range(10)]
    low = min(range(10), key=per_class.__getitem__)
    (a, a_std), (f, f_std) = (_mean_std([r[k] for r in runs]) for k in (acc, fid))
    spread = lambda std, digits: f' ± {std:.{digits}f}' if len(runs) > 1 else ''
    intra = '—'
    if all('domain_intra_fid' in r for r in runs):
      i, i_std = _mean_std([r['domain_intra_fid'] for r in runs])
      intra = f'{i:.1f}{spread(i_std, 1)}'
    lines.append(f'| {name} | {steps} | {a:.3f}{spread(a_std, 3)} | {per_class[low]:.2f} (class '
                 f'{low}) | {f:.1f}{spread(f_std, 1)} | {intra} | '
                 f'{",".join(str(r["seed"]) for r in runs)} |')
  return '\n'.join(lines)


def main(_):
  path = os.path.join(FLAGS.out, 'results.jsonl')
  if FLAGS.table:
    print(table(_results(path)))
    return
  os.makedirs(FLAGS.out, exist_ok=True)
  classifier = FLAGS.classifier or os.path.join(FLAGS.out, 'classifier')
  domain_classifier(classifier, FLAGS.idx)
  done = _results(path)
  if FLAGS.rescore:
    with open(path + '.tmp', 'w') as f:
      f.writelines(json.dumps(r) + '\n' for r in rescore(done, classifier).values())
    os.replace(path + '.tmp', path)
    print(table(_results(path)))
    return
  for name in VARIANTS:
    for seed in map(int, FLAGS.seeds):
      if (name, FLAGS.steps, seed) in done or (FLAGS.only and name not in FLAGS.only):
        continue
      result = run_variant(name, seed, classifier)
      with open(path, 'a') as f:
        f.write(json.dumps(result) + '\n')
      print(json.dumps(result), flush=True)


if __name__ == '__main__':
  app.run(main)
