"""The TPU table of docs/tpu.md: every paper preset at its own batch, compiled for v4-8, v5e-8
and v5p-8 by `--mode=compile` (gan_jax/aot.py), with the largest batch per chip that fits.

  .venv-tpu/bin/python experiments/tpu_table.py --out=/tmp/tpu_table          # resumable
  .venv-tpu/bin/python experiments/tpu_table.py --out=/tmp/tpu_table --table  # the markdown

Each row is one aot.report, appended to OUT/results.jsonl as it finishes (the last row of a
preset and target counts); --fit=TARGETS searches the largest batch on those targets (a
compile per candidate, 5-10 per row: --fit=v5e-8,v4-8,v5p-8 for every row). Needs libtpu
(requirements-tpu.txt); no TPU.
"""

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PRESETS = ['wgan.py:cifar10', 'wgan_gp.py:mnist', 'wgan_gp.py:cifar10', 'dcgan.py:cifar10',
           'dcgan.py:celeb_a', 'acgan.py:cifar10', 'sngan.py:cifar10']
TARGETS = ['v5e-8', 'v4-8', 'v5p-8']


def _rows(path):
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _last(rows):
  """The last row of each (preset, target), in the order they first appear."""
  last = {}
  for r in rows:
    last[(r['preset'], r['target'])] = r
  return list(last.values())


def table(rows) -> str:
  lines = ['| preset | TPU | batch (per chip) | HBM per chip | largest batch per chip | '
           'GFLOP per iteration | roofline bound per iteration | compile |',
           '|---|---|---|---|---|---|---|---|']
  order = lambda r: (PRESETS.index(r['preset']) if r['preset'] in PRESETS else len(PRESETS),
                     TARGETS.index(r['target']) if r['target'] in TARGETS else len(TARGETS))
  for r in sorted(_last(rows), key=order):
    if 'refused' in r:
      lines.append(f"| {r['preset']} | {r['target']} | refused: {r['refused']} |||||| ")
      continue
    bound = r.get('roofline_seconds_per_iteration')
    largest = r.get('largest_batch_per_device', 'not searched')
    lines.append(
        f"| {r['preset']} | {r['target']} | {r['batch_size']} ({r['batch_per_device']}) | "
        f"{r['hbm_bytes_per_device'] / 2 ** 20:.0f} MiB | {largest} | "
        f"{r['flops_per_iteration'] / 1e9:.1f} | "
        f"{'%.2f ms' % (bound * 1e3) if bound else 'n/a'} | {r['compile_seconds']:.0f} s |")
  return '\n'.join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out', required=True)
  parser.add_argument('--table', action='store_true', help='print the table of OUT and stop')
  parser.add_argument('--only', default='', help='comma-separated preset@target rows')
  parser.add_argument('--fit', default='v5e-8',
                      help='comma-separated targets whose rows search the largest batch')
  args = parser.parse_args()
  results = os.path.join(args.out, 'results.jsonl')
  if args.table:
    print(table(_rows(results)))
    return
  from absl import logging  # pylint: disable=g-import-not-at-top
  from gan_jax import aot  # pylint: disable=g-import-not-at-top
  from gan_jax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  from configs import common  # pylint: disable=g-import-not-at-top,unused-import
  import importlib  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.INFO)
  os.makedirs(args.out, exist_ok=True)
  fit = set(filter(None, args.fit.split(',')))
  done = {(r['preset'], r['target']) for r in _rows(results)
          if r['target'] not in fit or 'largest_batch' in r}
  only = set(filter(None, args.only.split(',')))
  for target in TARGETS:
    for preset in PRESETS:
      if (preset, target) in done or (only and f'{preset}@{target}' not in only):
        continue
      module, arg = preset.split(':')
      config = importlib.import_module(f'configs.{module[:-3]}').get_config(arg)
      try:
        row = aot.report(config, target, find_batch=target in fit)
      except ConfigError as e:  # e.g. a batch that does not split over the slice's devices
        row = {'target': target, 'refused': str(e)}
      row['preset'] = preset
      with open(results, 'a') as f:
        f.write(json.dumps(row) + '\n')
      print(json.dumps(row), flush=True)
  print(table(_rows(results)))


if __name__ == '__main__':
  main()
