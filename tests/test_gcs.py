"""gs:// workdirs, data, classifier and statistics cache, against a local Cloud Storage emulator
(tests/gcs_emulator.py; its wheel is pinned in requirements-test.txt).

The emulator's environment must be set before TensorFlow or TensorStore is imported, so everything
that touches gs:// runs in subprocesses; they run in an empty directory, which must stay empty.
"""

import gzip
import io
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from conftest import ROOT, load_config, run_main, run_tool, subprocess_env
import gcs_emulator

pytestmark = pytest.mark.slow

CONFIG = f'--config={ROOT}/configs/dcgan.py:digits,runlocal,mlp'
SMALL_EVAL = dict(num_samples=20, kid_subsets=2, kid_subset_size=10, pr_samples=10)

# What a subprocess does with gs:// paths besides main.py: saves a (random) domain classifier,
# reads IDX files (.gz) through input_pipeline, and the writability check of gs:// workdirs.
HELPER = '''
import json, sys
import jax, jax.numpy as jnp
from gan_jax import classifier, input_pipeline, rundir
from gan_jax.errors import ConfigError
from conftest import load_config
params = classifier.Classifier(10).init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))['params']
classifier.save('gs://bucket/clf', params, {
    'dataset': 'digits', 'num_classes': 10, 'image_shape': [28, 28, 1],
    'feature_dim': classifier.FEATURE_DIM, 'test_accuracy': 0.1})
dataset = load_config('dcgan.py:digits,runlocal,mlp').dataset
dataset.path = 'gs://bucket/idx'
spec = input_pipeline.spec(dataset)
data = input_pipeline.load(dataset)
out = {'spec': [list(spec.image_shape), spec.num_classes], 'shape': list(data.images.shape),
       'pixel_sum': int(data.images.astype('int64').sum()), 'labels': data.labels.tolist()}
dataset.path, dataset.image_size, dataset.channels = 'gs://bucket/folder', 6, 3
folder_spec, folder = input_pipeline.spec(dataset), input_pipeline.load(dataset)
out['folder'] = [list(folder_spec.image_shape), list(folder_spec.class_names),
                 list(folder.images.shape), folder.labels.tolist(), int(folder.images[0, 0, 0, 0])]
rundir.check_writable('gs://bucket/new/run')
for workdir in ('gs://no-such-bucket/run', 'gs://bucket/data/train.npz/run'):
  try:
    rundir.check_writable(workdir)
    out[workdir] = 'accepted'
  except ConfigError as e:
    out[workdir] = str(e)
print(json.dumps(out))
'''


@pytest.fixture(scope='module')
def gcs(tmp_path_factory):
  try:
    emulator = gcs_emulator.Emulator(str(tmp_path_factory.mktemp('gcs'))).start()
  except ImportError as e:
    pytest.fail(f'{e}: pip install -r requirements-test.txt')
  yield emulator
  emulator.stop()


def _idx(array: np.ndarray) -> bytes:
  header = bytes([0, 0, 0x08, array.ndim]) + b''.join(int(n).to_bytes(4, 'big')
                                                      for n in array.shape)
  return gzip.compress(header + array.astype(np.uint8).tobytes())


def _listing(gcs) -> str:
  return '\n'.join(['bucket listing:'] + [f'  gs://bucket/{name}' for name in gcs.list()])


def _ok(result, gcs):
  assert result.returncode == 0, (f'exit {result.returncode}\n{result.stderr[-4000:]}\n'
                                  f'{_listing(gcs)}')
  return result


def test_train_resume_sample_eval_in_a_bucket_write_nothing_locally(gcs, tmp_path):
  from gan_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  digits = input_pipeline.load(load_config('dcgan.py:digits,runlocal,mlp').dataset)
  train = io.BytesIO()
  np.savez(train, images=digits.images[:256], labels=digits.labels[:256])
  gcs.upload('data/train.npz', train.getvalue())
  rng = np.random.default_rng(0)
  idx_images, idx_labels = rng.integers(0, 256, (12, 28, 28)), rng.integers(0, 10, 12)
  gcs.upload('idx/train-images-idx3-ubyte.gz', _idx(idx_images))
  gcs.upload('idx/train-labels-idx1-ubyte.gz', _idx(idx_labels))
  for name, size in (('a/1.png', (9, 6)), ('a/2.jpg', (6, 6)), ('b/deeper/3.png', (4, 8))):
    png = io.BytesIO()
    Image.new('RGB', size, (120, 0, 0)).save(png, format='PNG' if name.endswith('png') else 'JPEG')
    gcs.upload(f'folder/{name}', png.getvalue())
  gcs.upload('folder/b/broken.png', b'not a png')

  cwd, cache = tmp_path / 'cwd', tmp_path / 'cache'
  cwd.mkdir()
  cache.mkdir()
  # The user's cache (the statistics' default home) must stay empty; matplotlib's font cache,
  # which a library import writes, goes elsewhere.
  env = {**gcs.env(), 'XDG_CACHE_HOME': str(cache), 'MPLCONFIGDIR': str(tmp_path / 'mpl'),
         'PYTHONPATH': os.pathsep.join([ROOT, os.path.join(ROOT, 'tests')])}

  helper = _ok(subprocess.run([sys.executable, '-c', HELPER], cwd=cwd, capture_output=True,
                              text=True, timeout=300, env=subprocess_env(env)), gcs)
  found = json.loads(helper.stdout.strip().splitlines()[-1])
  assert found['spec'] == [[28, 28, 1], int(idx_labels.max()) + 1]
  assert found['shape'] == [12, 28, 28, 1] and found['pixel_sum'] == int(idx_images.sum())
  assert found['labels'] == idx_labels.tolist()
  assert found['folder'][:4] == [[6, 6, 3], ['a', 'b'], [3, 6, 6, 3], [0, 0, 1]]
  assert found['folder'][4] == 120
  assert 'bucket gs://no-such-bucket does not exist' in found['gs://no-such-bucket/run']
  assert 'gs://bucket/data/train.npz is a file' in found['gs://bucket/data/train.npz/run']

  run = ['--workdir=gs://bucket/run', '--config.dataset.path=gs://bucket/data/train.npz']
  first = _ok(run_main(CONFIG, *run, '--config.num_steps=4', env=env, cwd=cwd), gcs)
  assert 'Resumed' not in first.stderr
  resumed = _ok(run_main(CONFIG, *run, '--config.num_steps=6', env=env, cwd=cwd), gcs)
  assert 'Resumed from step 4 in gs://bucket/run' in resumed.stderr, resumed.stderr[-3000:]
  # sample and eval read the run's config.json from the bucket (no --config).
  sample = _ok(run_main('--workdir=gs://bucket/run', '--mode=sample', '--num_samples=20',
                        '--out=gs://bucket/run/samples.npz', env=env, cwd=cwd), gcs)
  written = json.loads(sample.stdout.strip().splitlines()[-1])
  assert written == {'out': 'gs://bucket/run/samples.npz', 'png': 'gs://bucket/run/samples.png',
                     'step': 6, 'num_samples': 20}
  evaluate = ['--workdir=gs://bucket/run', '--mode=eval', '--config.eval.classifier=gs://bucket/clf',
              '--config.eval.stats_dir=gs://bucket/stats',
              *[f'--config.eval.{k}={v}' for k, v in SMALL_EVAL.items()]]
  scores = json.loads(_ok(run_main(*evaluate, env=env, cwd=cwd), gcs).stdout.strip()
                      .splitlines()[-1])
  again = json.loads(_ok(run_main(*evaluate, env=env, cwd=cwd), gcs).stdout.strip()
                     .splitlines()[-1])   # from the cached statistics in the bucket

  gif = _ok(run_tool('make_gif', '--workdir=gs://bucket/run', cwd=cwd, env=env), gcs)
  animation = json.loads(gif.stdout.strip().splitlines()[-1])
  assert animation['out'] == 'gs://bucket/run/samples.gif' and animation['steps'] == [2, 4, 6]

  listing = gcs.list()
  print(_listing(gcs))
  assert scores['step'] == 6 and np.isfinite(scores['domain_fid'])
  assert scores['reference']['count'] == 256
  assert scores['extractors']['domain']['path'] == 'gs://bucket/clf'
  stats = scores['extractors']['domain']['stats']
  assert stats.startswith('gs://bucket/stats/digits_train_') and stats.endswith('.npz')
  assert again['domain_fid'] == pytest.approx(scores['domain_fid'], rel=1e-6)
  for name in ('run/config.json', 'run/data_spec.json', 'run/samples.npz', 'run/samples.png',
               'run/samples.gif',
               stats[len('gs://bucket/'):], 'clf/meta.json'):
    assert name in listing, _listing(gcs)
  for step in (4, 6):
    assert any(n.startswith(f'run/checkpoints/{step}/') for n in listing), _listing(gcs)
  assert any(n.startswith('clf/params/') for n in listing), _listing(gcs)
  events = [n for n in listing if n.startswith('run/events.out.tfevents.')]
  assert len(events) == 2, _listing(gcs)   # one per run: scalars and the sample grid
  for name in events:
    assert all(tag in gcs.download(name) for tag in (b'train/critic_loss', b'samples'))
  assert not [n for n in listing if n.endswith('.tmp') or '.tmp.' in n], _listing(gcs)
  with np.load(io.BytesIO(gcs.download('run/samples.npz'))) as f:
    assert f['images'].shape == (20, 28, 28, 1)
  assert json.loads(gcs.download('run/data_spec.json')) == {'image_shape': [28, 28, 1],
                                                             'num_classes': 10}
  # Nothing was written here: not in the working directory, the user's cache, or a 'gs:' folder.
  assert not os.listdir(cwd) and not os.listdir(cache)
  assert not os.path.exists(os.path.join(ROOT, 'gs:'))
  assert not gcs.refused   # no client asked for any other host


def test_compile_report_in_a_bucket(gcs, tmp_path):
  """--mode=compile with a gs:// workdir writes its report there, and nothing else."""
  from conftest import tpu_python  # pylint: disable=g-import-not-at-top
  cwd = tmp_path / 'cwd'
  cwd.mkdir()
  env = {**gcs.env(), 'JAX_COMPILATION_CACHE_DIR': None,
         'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': None}
  result = _ok(subprocess.run(
      [tpu_python(), os.path.join(ROOT, 'main.py'), '--mode=compile', CONFIG, '--target=v5e-4',
       '--config.batch_size=8', '--workdir=gs://bucket/compiled'],
      cwd=cwd, capture_output=True, text=True, timeout=600, env=subprocess_env(env)), gcs)
  report = json.loads(result.stdout)
  assert report['report'] == 'gs://bucket/compiled/compile_v5e-4.json' and report['fits']
  # (the directory's own marker, which a gs:// mkdir writes, aside)
  assert [n for n in gcs.list('compiled/') if not n.endswith('/')] == [
      'compiled/compile_v5e-4.json']
  saved = json.loads(gcs.download('compiled/compile_v5e-4.json'))
  assert saved == {k: v for k, v in report.items() if k != 'report'}
  assert os.listdir(cwd) == []
