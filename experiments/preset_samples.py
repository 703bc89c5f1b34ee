"""Samples of every paper preset after a few iterations, to compare two versions of gan_jax.

The promise: the same config and seed give the same samples. This trains each preset (its
runlocal config, and with --full the full one for two iterations) through a tree's own main.py,
samples 16 images from the checkpoint, and compares two such directories:

  git worktree add /tmp/old REV       # the revision to compare with
  python experiments/preset_samples.py --repo=/tmp/old --out=/tmp/presets_old
  python experiments/preset_samples.py --out=/tmp/presets_new
  python experiments/preset_samples.py --compare=/tmp/presets_old,/tmp/presets_new

Where the two trees draw their sampling noise differently (named PRNG streams, in one and not
the other), sample the old tree's workdirs with this tree, so that only the trained parameters
differ, if at all:

  python experiments/preset_samples.py --repo=/tmp/old --sample_repo=. --reuse --out=/tmp/presets_old

Data needs no download: scikit-learn's digits, the Fashion-MNIST IDX files
(`apt-get install dataset-fashion-mnist`), and a random 32x32x3 .npz standing in for CIFAR-10.
"""

import argparse
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION = '/usr/share/datasets/fashion-mnist'

RUNLOCAL = [
    'wgan.py:digits,runlocal', 'wgan.py:digits,runlocal,mlp',
    'wgan_gp.py:digits,runlocal', 'wgan_gp.py:digits,runlocal,mlp',
    'wgan_gp.py:digits,runlocal,layernorm', 'wgan_gp.py:cifar10,runlocal',
    'wgan_gp.py:cifar10,runlocal,conv',
    'dcgan.py:digits,runlocal', 'dcgan.py:digits,runlocal,mlp', 'dcgan.py:cifar10,runlocal',
    'acgan.py:digits,runlocal', 'acgan.py:digits,runlocal,wasserstein_clip',
    'acgan.py:digits,runlocal,wasserstein_gp', 'acgan.py:digits,runlocal,mlp',
    # the modern presets
    'sngan.py:digits,runlocal', 'sngan.py:digits,runlocal,conditional',
    'sngan.py:cifar10,runlocal', 'dcgan.py:digits,runlocal,modern',
]
FULL = [
    'wgan.py:fashion_mnist', 'wgan.py:fashion_mnist,mlp',
    'wgan_gp.py:fashion_mnist', 'wgan_gp.py:cifar10', 'wgan_gp.py:cifar10,conv',
    'wgan_gp.py:digits,demo',
    'dcgan.py:fashion_mnist', 'dcgan.py:cifar10',
    'acgan.py:fashion_mnist', 'acgan.py:fashion_mnist,wasserstein_clip',
    'acgan.py:fashion_mnist,wasserstein_gp',
    'sngan.py:fashion_mnist', 'dcgan.py:fashion_mnist,modern',
]


def _cifar_like(path: str) -> str:
  if not os.path.exists(path):
    rng = np.random.default_rng(0)
    np.savez(path, images=rng.integers(0, 256, (512, 32, 32, 3), dtype=np.uint8),
             labels=rng.integers(0, 10, 512))
  return path


def _data_flags(spec: str, out: str):
  dataset = spec.split(':')[1].split(',')[0]
  if dataset == 'cifar10':
    return [f'--config.dataset.path={_cifar_like(os.path.join(out, "cifar_like.npz"))}']
  if dataset == 'fashion_mnist':
    return [f'--config.dataset.path={FASHION}']
  return []


def run_preset(repo: str, sample_repo: str, spec: str, out: str, full: bool,
               reuse: bool) -> str:
  """Trains `spec` with `repo`'s main.py (unless `reuse` finds its workdir), then samples 16
  images with `sample_repo`'s."""
  name = spec.replace('.py:', '_').replace(',', '_')
  workdir = os.path.join(out, name)
  steps = ['--config.num_steps=2', '--config.checkpoint_every=2'] if full else []
  cmd = [sys.executable, os.path.join(repo, 'main.py'), f'--config={repo}/configs/{spec}',
         f'--workdir={workdir}', *_data_flags(spec, out), *steps]
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'}
  sample = [sys.executable, os.path.join(sample_repo, 'main.py'), f'--workdir={workdir}',
            '--mode=sample', '--num_samples=16', f'--out={os.path.join(workdir, "samples.npz")}']
  steps = [] if reuse and os.path.isdir(workdir) else [(cmd, repo)]
  for command, cwd in steps + [(sample, sample_repo)]:
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode:
      raise SystemExit(f'{spec}: {command[2:]}: exit {proc.returncode}\n{proc.stderr[-2000:]}')
  return name


def compare(a: str, b: str) -> bool:
  same = True
  for name in sorted(os.listdir(a)):
    path_a, path_b = (os.path.join(d, name, 'samples.npz') for d in (a, b))
    if not os.path.exists(path_a):
      continue
    if not os.path.exists(path_b):
      print(f'{name:45s} missing in {b}')
      same = False
      continue
    with np.load(path_a) as fa, np.load(path_b) as fb:
      x, y = fa['images'], fb['images']
      labels_equal = ('labels' in fa) == ('labels' in fb) and (
          'labels' not in fa or np.array_equal(fa['labels'], fb['labels']))
    diff = float(np.max(np.abs(x - y)))
    bitwise = np.array_equal(x, y) and labels_equal
    same &= bitwise
    print(f'{name:45s} {"bitwise equal" if bitwise else "DIFFERENT"}  max |diff| {diff:.3g}')
  return same


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--repo', default=ROOT, help='the gan_jax tree whose main.py trains')
  parser.add_argument('--sample_repo', help='the tree whose main.py samples (default: --repo)')
  parser.add_argument('--reuse', action='store_true', help='keep existing workdirs; only sample')
  parser.add_argument('--out', help='directory for the runs and their samples')
  parser.add_argument('--full', action='store_true', help='also the full presets (2 iterations)')
  parser.add_argument('--only', default='', help='comma-separated substrings of presets to run')
  parser.add_argument('--compare', help='DIR_A,DIR_B: compare two --out directories')
  args = parser.parse_args()
  if args.compare:
    sys.exit(0 if compare(*args.compare.split(',')) else 1)
  os.makedirs(args.out, exist_ok=True)
  presets = [(s, False) for s in RUNLOCAL] + ([(s, True) for s in FULL] if args.full else [])
  for spec, full in presets:
    if args.only and not any(o in spec for o in args.only.split(',')):
      continue
    print(spec, run_preset(os.path.abspath(args.repo),
                           os.path.abspath(args.sample_repo or args.repo), spec, args.out, full,
                           args.reuse), flush=True)


if __name__ == '__main__':
  main()
