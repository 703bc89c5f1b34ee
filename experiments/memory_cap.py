r"""A dataset larger than the memory a run may use: train and resume inside a memory cap.

  python experiments/memory_cap.py --out=/tmp/memory_cap --images=320000 --limit_gib=3
  python experiments/memory_cap.py --out=/tmp/memory_cap --images=320000 --limit_gib=3 --source=tfds

Writes --images random-content JPEGs of --image_size pixels (RGB) in 10 class folders (3.9 GB
decoded at 320,000 x 64 x 64 x 3), then runs main.py three times in a Linux memory cgroup
limited to --limit_gib (cgroup v1 or v2; needs a writable cgroup, e.g. as root in a container):
  straight: --steps iterations;
  half:     --steps / 2 iterations in another workdir,
  resumed:  the same workdir resumed to --steps.
--source=tfds trains on the same JPEGs as a TFDS dataset ('memory_cap_images', prepared once in
OUT/tfds as TFRecord files, outside the cap; main.py reads it by name from its data_dir): the
first run in the cap writes its ArrayRecord copy, then streams from it. Its workdirs and logs
are OUT/tfds_straight etc.
dataset.storage is left at 'auto', which streams here (OUT/straight.log etc. say so). Prints
one JSON line:
each run's exit status, seconds, peak resident memory (the largest process's) and the cgroup's
peak (page cache included), and whether 64 samples of the straight and the resumed run's final
checkpoints are bitwise equal (main.py --mode=sample, outside the cap).
"""

import json
import os
import resource
import subprocess
import sys
import time

from absl import app, flags
import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS
flags.DEFINE_string('out', '/tmp/memory_cap', 'Images, workdirs.')
flags.DEFINE_integer('images', 320000, 'Images to write (skipped when the folder has them).')
flags.DEFINE_integer('image_size', 64, 'Their side, and the training side.')
flags.DEFINE_float('limit_gib', 3.0, 'The memory cap.')
flags.DEFINE_integer('steps', 6, 'Training iterations of the straight run (even).')
flags.DEFINE_string('config', 'configs/dcgan.py:celeb_a', 'The config (64 px DCGAN).')
flags.DEFINE_multi_string('extra', [], 'More main.py flags.')
flags.DEFINE_enum('source', 'folder', ['folder', 'tfds'], 'The JPEG folder, or it as TFDS data.')


def make_folder(folder: str, count: int, size: int) -> None:
  rng = np.random.default_rng(0)
  for c in range(10):
    os.makedirs(os.path.join(folder, f'class_{c}'), exist_ok=True)
  for i in range(count):
    small = rng.integers(0, 256, (size // 8, size // 8, 3), np.uint8)
    image = Image.fromarray(small).resize((size, size), Image.BILINEAR)
    image.save(os.path.join(folder, f'class_{i % 10}', f'{i:07d}.jpg'), quality=90)


class Cgroup:
  """A child memory cgroup of this process's own, limited to `limit` bytes."""

  def __init__(self, limit: int):
    with open('/proc/self/cgroup') as f:
      lines = [l.split(':', 2) for l in f.read().splitlines()]
    v1 = [path for _, controllers, path in lines if 'memory' in controllers.split(',')]
    if v1:
      self.dir = f'/sys/fs/cgroup/memory{v1[0].rstrip("/")}/gan_jax_cap_{os.getpid()}'
      self.limit_file, self.peak_file = 'memory.limit_in_bytes', 'memory.max_usage_in_bytes'
    else:
      path = [p for _, c, p in lines if c == ''][0]
      self.dir = f'/sys/fs/cgroup{path.rstrip("/")}/gan_jax_cap_{os.getpid()}'
      self.limit_file, self.peak_file = 'memory.max', 'memory.peak'
    os.makedirs(self.dir)
    self._write(self.limit_file, str(limit))
    if v1 and os.path.exists(os.path.join(self.dir, 'memory.memsw.limit_in_bytes')):
      self._write('memory.memsw.limit_in_bytes', str(limit))  # no swap either

  def _write(self, name: str, value: str) -> None:
    with open(os.path.join(self.dir, name), 'w') as f:
      f.write(value)

  def peak(self) -> int:
    with open(os.path.join(self.dir, self.peak_file)) as f:
      return int(f.read())

  def reset_peak(self) -> None:
    if self.peak_file == 'memory.max_usage_in_bytes':
      self._write(self.peak_file, '0')

  def run(self, args, log: str):
    """Runs `args` inside the cgroup, its log to `log`: (exit status, seconds, the cgroup's
    peak bytes)."""
    self.reset_peak()
    t0 = time.time()
    command = f'echo $$ > {self.dir}/cgroup.procs && exec "$@"'
    proc = subprocess.run(['sh', '-c', command, 'sh', *args], cwd=ROOT,
                          env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'},
                          capture_output=True, text=True)
    with open(log, 'w') as f:
      f.write(proc.stderr)
    if proc.returncode:
      print(proc.stderr[-3000:], file=sys.stderr)
    return proc.returncode, round(time.time() - t0, 1), self.peak()

  def close(self) -> None:
    os.rmdir(self.dir)


def make_tfds(folder: str, data_dir: str) -> None:
  """The folder's JPEGs (their bytes, not decoded) as the TFDS dataset 'memory_cap_images'."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  class MemoryCapImages(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version('1.0.0')

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          'image': tfds.features.Image(shape=(None, None, 3), encoding_format='jpeg'),
          'label': tfds.features.ClassLabel(num_classes=10)}))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {'train': self._generate_examples()}

    def _generate_examples(self):
      for c in range(10):
        sub = os.path.join(folder, f'class_{c}')
        for name in sorted(os.listdir(sub)):
          yield f'{c}/{name}', {'image': os.path.join(sub, name), 'label': c}

  builder = MemoryCapImages(data_dir=data_dir)
  if not builder.is_prepared():
    t0 = time.time()
    builder.download_and_prepare()
    print(f'prepared the TFDS dataset in {time.time() - t0:.0f} s', flush=True)


def _train(workdir: str, steps: int, folder: str):
  if FLAGS.source == 'tfds':
    data = ['--config.dataset.name=tfds:memory_cap_images',
            f'--config.dataset.data_dir={os.path.join(FLAGS.out, "tfds")}']
  else:
    data = [f'--config.dataset.path={folder}']
  return [sys.executable, 'main.py', f'--config={FLAGS.config}', f'--workdir={workdir}',
          *data, f'--config.dataset.image_size={FLAGS.image_size}',
          f'--config.num_steps={steps}', f'--config.checkpoint_every={steps // 2}',
          '--config.sample_every=0', '--config.log_every=1', *FLAGS.extra]


def _samples(workdir: str) -> np.ndarray:
  """64 samples of the workdir's final checkpoint (main.py --mode=sample)."""
  out = os.path.join(workdir, 'final_samples.npz')
  subprocess.run([sys.executable, 'main.py', f'--workdir={workdir}', '--mode=sample',
                  '--num_samples=64', f'--out={out}'], cwd=ROOT, check=True,
                 capture_output=True, env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'})
  with np.load(out) as f:
    return f['images']


def main(argv):
  del argv
  folder = os.path.join(FLAGS.out, 'jpegs')
  have = sum(len(files) for _, _, files in os.walk(folder)) if os.path.isdir(folder) else 0
  if have < FLAGS.images:
    t0 = time.time()
    make_folder(folder, FLAGS.images, FLAGS.image_size)
    print(f'wrote {FLAGS.images} JPEGs in {time.time() - t0:.0f} s', flush=True)
  if FLAGS.source == 'tfds':
    make_tfds(folder, os.path.join(FLAGS.out, 'tfds'))
  prefix = '' if FLAGS.source == 'folder' else f'{FLAGS.source}_'
  decoded = FLAGS.images * FLAGS.image_size ** 2 * 3
  group = Cgroup(int(FLAGS.limit_gib * 2**30))
  result = {'images': FLAGS.images, 'decoded_gb': round(decoded / 1e9, 2),
            'limit_gib': FLAGS.limit_gib, 'config': FLAGS.config, 'steps': FLAGS.steps,
            'source': FLAGS.source}
  try:
    for name, workdir, steps in (('straight', 'straight', FLAGS.steps),
                                 ('half', 'resumed', FLAGS.steps // 2),
                                 ('resumed', 'resumed', FLAGS.steps)):
      status, seconds, peak = group.run(
          _train(os.path.join(FLAGS.out, prefix + workdir), steps, folder),
          os.path.join(FLAGS.out, f'{prefix}{name}.log'))
      rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
      result[name] = {'exit': status, 'seconds': seconds, 'cgroup_peak_gib': round(peak / 2**30, 2),
                      'max_rss_gib_so_far': round(rss / 2**30, 2)}
      print(json.dumps({name: result[name]}), flush=True)
  finally:
    group.close()
  result['samples_bitwise_equal'] = bool(np.array_equal(
      _samples(os.path.join(FLAGS.out, prefix + 'straight')),
      _samples(os.path.join(FLAGS.out, prefix + 'resumed'))))
  print(json.dumps(result), flush=True)


if __name__ == '__main__':
  app.run(main)
