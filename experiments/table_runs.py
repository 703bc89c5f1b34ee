"""What the Fashion-MNIST table scripts (toolkit_table.py, conditional_table.py,
stylegan2_table.py) share: running main.py with its log in a file (for a wall-clock budget if
asked), and the domain classifier their evaluations score with."""

import os
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDX = '/usr/share/datasets/fashion-mnist'   # apt-get install dataset-fashion-mnist


def run_main(args, log: str, seconds: float = 0) -> str:
  """Runs `python main.py ARGS` from the repository root, its stderr into `log`; returns its
  stdout, or raises RuntimeError naming the log. With `seconds`, sends it SIGTERM that long
  after its start, and main.py checkpoints and exits 0 (docs/training.md, 'Preemption').
  The log's directory is made if missing."""
  os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
  with open(log, 'w') as f:
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, 'main.py'), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=f, text=True,
                            env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'})
    try:
      stdout, _ = proc.communicate(timeout=seconds or None)
    except subprocess.TimeoutExpired:
      proc.send_signal(signal.SIGTERM)
      stdout, _ = proc.communicate()
  if proc.returncode:
    raise RuntimeError(f'main.py {" ".join(args)} failed ({proc.returncode}); see {log}')
  return stdout


def cpu() -> str:
  """'AMD EPYC (family 25, model 1), 2 cores': this machine's CPU as Linux's /proc/cpuinfo names
  it (a timed run's line records it: its iterations are that machine's); 'unknown' elsewhere."""
  fields = {}
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        key, _, value = line.partition(':')
        fields.setdefault(key.strip(), value.strip())
  except OSError:
    pass
  name = fields.get('model name', 'unknown')
  if 'cpu family' in fields:
    name += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
  return f'{name}, {os.cpu_count()} cores'


def domain_classifier(path: str, data: str, image_size: int = 0) -> str:
  """`path`, a Fashion-MNIST domain classifier trained on `data` (the IDX directory, or a folder
  of its images) unless one is there already (gan_jax/tools/train_classifier.py, at
  `image_size` where not 0; its output in PATH.log)."""
  if not os.path.exists(os.path.join(path, 'meta.json')):
    size = [f'--image_size={image_size}'] if image_size else []
    with open(path + '.log', 'w') as f:
      subprocess.run([sys.executable, '-m', 'gan_jax.tools.train_classifier',
                      '--dataset=fashion_mnist', f'--path={data}', f'--out={path}', *size],
                     cwd=ROOT, stdout=f, stderr=f, check=True)
  return path
