r"""XLA:CPU flags against the default, on this machine: benchmark.py's bare step under each
candidate XLA_FLAGS set, the sets run in turn (A B C A B C ...) so that a drift of the machine's
speed falls on every set alike. Run it with nothing else on the machine.

  python experiments/xla_cpu_flags.py --config=configs/dcgan.py:cifar10 --batch_size=64 --rounds=3
  python experiments/xla_cpu_flags.py --config=configs/wgan_gp.py:mnist --batch_size=64 \
      --candidates=onednn,ynn_dot

Prints a markdown table (set, flags, median seconds per iteration, its ratio to the default:
above 1 is faster) and then one JSON line with every timing. A set that fails to compile or run
is reported as such, not dropped. CANDIDATES holds the sets (flags of the pinned jaxlib's
XLA:CPU; an unknown flag makes XLA abort, which shows as a failed set).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CANDIDATES = {
    'default': '',
    'onednn': '--xla_cpu_use_onednn=true',
    'xnn_greedy': '--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY',
    'vector_512': '--xla_cpu_prefer_vector_width=512',
    'onednn_dot': '--xla_cpu_experimental_onednn_fusion_type=dot',
    'xnn_dot': '--xla_cpu_experimental_xnn_fusion_type=dot',
    'ynn_dot': '--xla_cpu_experimental_ynn_fusion_type=dot',
}


def time_once(config: str, batch_size: int, steps: int, flags: str, extra) -> dict:
  """benchmark.py's JSON line under XLA_FLAGS=flags, or {'error': its last stderr line}."""
  env = {**os.environ, 'XLA_FLAGS': ' '.join(filter(None, [os.environ.get('XLA_FLAGS', ''),
                                                           flags]))}
  cmd = [sys.executable, os.path.join(ROOT, 'experiments', 'benchmark.py'), f'--config={config}',
         f'--config.batch_size={batch_size}', f'--steps={steps}', *extra]
  proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('{')]
  if proc.returncode != 0 or not lines:
    tail = (proc.stderr.strip().splitlines() or ['no output'])[-1]
    return {'error': f'exit {proc.returncode}: {tail[:200]}'}
  return json.loads(lines[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='configs/dcgan.py:cifar10')
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--steps', type=int, default=10, help="benchmark.py's timed iterations")
  parser.add_argument('--rounds', type=int, default=3, help='times each set is run')
  parser.add_argument('--candidates', default=','.join(c for c in CANDIDATES if c != 'default'),
                      help='comma-separated names of CANDIDATES, timed against the default')
  args, extra = parser.parse_known_args()
  names = ['default'] + [n for n in args.candidates.split(',') if n and n != 'default']
  unknown = [n for n in names if n not in CANDIDATES]
  if unknown:
    sys.exit(f'error: unknown candidates {unknown}; choose from {", ".join(CANDIDATES)}')
  runs = {name: [] for name in names}
  for _ in range(args.rounds):
    for name in names:
      runs[name].append(time_once(args.config, args.batch_size, args.steps, CANDIDATES[name],
                                  extra))
  medians = {name: statistics.median(r['seconds_per_iter'] for r in rs)
             for name, rs in runs.items() if all('seconds_per_iter' in r for r in rs)}
  print('| set | XLA_FLAGS | s per iteration (median) | speed against the default |')
  print('|---|---|---|---|')
  for name in names:
    if name not in medians:
      errors = [r['error'] for r in runs[name] if 'error' in r]
      print(f'| {name} | `{CANDIDATES[name]}` | failed: {errors[0]} | |')
      continue
    ratio = (f'{medians["default"] / medians[name]:.3f}x' if 'default' in medians else '')
    print(f'| {name} | `{CANDIDATES[name] or "(none)"}` | {medians[name]:.4f} | {ratio} |')
  print(json.dumps({'config': args.config, 'batch_size': args.batch_size, 'steps': args.steps,
                    'rounds': args.rounds, 'medians': medians,
                    'runs': {n: [r.get('seconds_per_iter', r.get('error')) for r in rs]
                             for n, rs in runs.items()}}))


if __name__ == '__main__':
  main()
