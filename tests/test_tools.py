"""The tools of gan_jax/tools/, run as `python -m gan_jax.tools.NAME`: what they write, and their
one-line refusals. The domain classifier on a folder (no test split) holds out a seeded,
stratified share, records it, and --mode=eval of a run on that folder names the folder."""

import json

import ml_collections
import numpy as np
import pytest
from PIL import Image

from conftest import run_main, run_tool
from gan_jax import classifier, input_pipeline
from test_input_pipeline import write_idx

CLASSES = {'a_square': 30, 'b_stripes': 10}   # uneven, so a stratified draw shows


def _folder(root, classes=CLASSES, side=16):
  """One subfolder of PNGs per class (grayscale, a square or stripes, noise): 40 images."""
  rng = np.random.default_rng(0)
  for k, (name, count) in enumerate(classes.items()):
    (root / name).mkdir(parents=True)
    for i in range(count):
      pixels = rng.integers(0, 60, (side, side))
      if k == 0:
        pixels[4:12, 4:12] += 180
      else:
        pixels[::2] += 180
      Image.fromarray(pixels.astype(np.uint8), 'L').save(root / name / f'{i:02d}.png')
  return root


def test_held_out_rows_are_stratified_seeded_and_leave_every_class_a_row():
  labels = np.repeat([0, 1, 2], [30, 10, 1])
  rows = classifier.held_out_rows(labels, len(labels), 0.1, seed=0)
  assert np.bincount(labels[rows], minlength=3).tolist() == [3, 1, 0]  # 10% of each class
  assert np.all(np.diff(rows) > 0)                                     # sorted, no repeats
  np.testing.assert_array_equal(rows, classifier.held_out_rows(labels, len(labels), 0.1, seed=0))
  others = [classifier.held_out_rows(labels, len(labels), 0.1, seed=s) for s in (1, 2)]
  assert not all(np.array_equal(rows, o) for o in others)
  unlabelled = classifier.held_out_rows(None, 40, 0.1, seed=3)
  assert len(unlabelled) == 4 and unlabelled.max() < 40
  np.testing.assert_array_equal(unlabelled, classifier.held_out_rows(None, 40, 0.1, seed=3))


@pytest.mark.slow   # several processes (main.py runs)
def test_classifier_on_a_folder_holds_out_rows_and_eval_names_the_folder(tmp_path):
  folder = _folder(tmp_path / 'photos')
  clf = tmp_path / 'clf'
  result = run_tool('train_classifier', '--dataset=digits', f'--path={folder}',
                    '--image_size=16', '--batch_size=8', '--epochs=1', '--seed=5',
                    f'--out={clf}')
  assert result.returncode == 0, result.stderr[-3000:]
  line = json.loads(result.stdout.strip().splitlines()[-1])
  source = {'path': str(folder), 'split': 'train', 'images': 40, 'image_shape': [16, 16, 1],
            'class_names': list(CLASSES)}
  assert line['source'] == source
  assert line['train_examples'] == 36 and line['test_examples'] == 4
  assert 0 <= line['test_accuracy'] <= 1
  assert line['test'] == {'held_out_rows': 'held_out.json', 'fraction': 0.1, 'seed': 5,
                          'stratified_by': 'label', 'images': 4, 'per_class': [3, 1]}
  assert json.loads((clf / 'meta.json').read_text())['test'] == line['test']
  held = json.loads((clf / 'held_out.json').read_text())
  labels = np.repeat([0, 1], list(CLASSES.values()))   # the folder's order: class by class
  assert held['rows'] == classifier.held_out_rows(labels, 40, 0.1, seed=5).tolist()
  assert held['source'] == source and held['per_class'] == [3, 1] and held['seed'] == 5

  # A run on the folder, scored against it with that classifier.
  workdir = tmp_path / 'run'
  train = run_main('--config=configs/dcgan.py:digits,runlocal,mlp', f'--workdir={workdir}',
                   f'--config.dataset.path={folder}', '--config.dataset.image_size=16',
                   '--config.num_steps=2')
  assert train.returncode == 0, train.stderr[-3000:]
  small = dict(classifier=clf, num_samples=20, kid_subsets=2, kid_subset_size=10,
               pr_samples=10, stats_dir=tmp_path / 'stats')
  result = run_main(f'--workdir={workdir}', '--mode=eval',
                    *[f'--config.eval.{k}={v}' for k, v in small.items()])
  assert result.returncode == 0, result.stderr[-3000:]
  scores = json.loads(result.stdout.strip().splitlines()[-1])
  assert scores['reference'] == {'path': str(folder), 'split': 'train', 'count': 40}
  domain = scores['extractors']['domain']
  assert domain['path'] == str(clf) and domain['test_accuracy'] == line['test_accuracy']
  assert domain['test']['held_out_rows'] == str(clf / 'held_out.json')
  assert np.isfinite(scores['domain_fid']) and scores['domain_fid'] > 0


@pytest.mark.parametrize('path, message', [
    ('{tmp}/no_such_folder', "dataset.path '{tmp}/no_such_folder' does not exist"),
    ('{tmp}/unlabelled', 'the classifier needs labelled images'),
])
def test_classifier_refuses_bad_data_in_one_line_with_exit_2(tmp_path, path, message):
  _folder(tmp_path / 'labelled')
  (tmp_path / 'unlabelled').mkdir()
  for png in sorted((tmp_path / 'labelled' / 'b_stripes').iterdir()):
    png.rename(tmp_path / 'unlabelled' / png.name)   # images directly in the folder: no labels
  result = run_tool('train_classifier', f'--path={path.format(tmp=tmp_path)}',
                    f'--out={tmp_path / "clf"}')
  assert result.returncode == 2, result.stderr[-2000:]
  errors = [l for l in result.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1 and message.format(tmp=tmp_path) in errors[0], result.stderr[-2000:]
  assert 'Traceback' not in result.stderr and not (tmp_path / 'clf').exists()


def test_idx_to_folder_writes_a_folder_that_loads_the_same_images(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
  labels = np.array([2, 0, 1, 2, 2, 0, 1, 1, 0, 2, 0, 1], np.uint8)
  idx = tmp_path / 'idx'
  idx.mkdir()
  write_idx(str(idx / 'train-images-idx3-ubyte.gz'), images)
  write_idx(str(idx / 'train-labels-idx1-ubyte.gz'), labels)
  result = run_tool('idx_to_folder', f'--idx_dir={idx}', f'--out={tmp_path / "png"}',
                    '--splits=train', '--class_names=T-shirt/top,Trouser,Ankle boot')
  assert result.returncode == 0, result.stderr[-2000:]
  line = json.loads(result.stdout.strip().splitlines()[-1])
  folder = str(tmp_path / 'png' / 'train')
  assert line['splits'] == {folder: {'0_t_shirt_top': 4, '1_trouser': 4, '2_ankle_boot': 4}}
  data = input_pipeline.load(ml_collections.ConfigDict(dict(
      name='fashion_mnist', path=folder, data_dir='', split='train', image_size=28, channels=1,
      download=False, float_range='unit', image_key='', label_key='', storage='auto')))
  order = np.argsort(labels, kind='stable')  # class by class, each in IDX order
  np.testing.assert_array_equal(data.images[..., 0], images[order])
  np.testing.assert_array_equal(data.labels, labels[order])
  assert data.class_names == ('0_t_shirt_top', '1_trouser', '2_ankle_boot')
