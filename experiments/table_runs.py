"""What the Fashion-MNIST table scripts (toolkit_table.py, conditional_table.py) share: running
main.py with its log in a file, and the domain classifier their evaluations score with."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDX = '/usr/share/datasets/fashion-mnist'   # apt-get install dataset-fashion-mnist


def run_main(args, log: str) -> str:
  """Runs `python main.py ARGS` from the repository root, its stderr into `log`; returns its
  stdout, or raises RuntimeError naming the log."""
  with open(log, 'w') as f:
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'main.py'), *args], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=f, text=True,
                          env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'})
  if proc.returncode:
    raise RuntimeError(f'main.py {" ".join(args)} failed ({proc.returncode}); see {log}')
  return proc.stdout


def domain_classifier(path: str, idx: str) -> str:
  """`path`, a Fashion-MNIST domain classifier trained on the IDX files in `idx` unless one is
  there already (gan_jax/tools/train_classifier.py; its output in PATH.log)."""
  if not os.path.exists(os.path.join(path, 'meta.json')):
    with open(path + '.log', 'w') as f:
      subprocess.run([sys.executable, '-m', 'gan_jax.tools.train_classifier',
                      '--dataset=fashion_mnist', f'--path={idx}', f'--out={path}'],
                     cwd=ROOT, stdout=f, stderr=f, check=True)
  return path
