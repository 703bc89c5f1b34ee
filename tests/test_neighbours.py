"""Nearest training images of samples (--mode=sample --neighbours=K): a copy of a training image
finds that image at distance 0, in chunks as over the whole set; the grid's rows are the
samples, each first, then its neighbours; the JSON's distances are the brute-force ones."""

import json

import numpy as np
from PIL import Image
import pytest

from conftest import load_config, run_main
from gan_jax import images, input_pipeline, neighbours


def _brute_force(queries, reference, k):
  distances = np.linalg.norm(queries[:, None, :] - reference[None], axis=-1)
  order = np.argsort(distances, axis=1, kind='stable')[:, :k]
  return order, np.take_along_axis(distances, order, axis=1)


@pytest.mark.parametrize('chunk', [7, 1000])
def test_nearest_finds_copies_at_distance_0_and_the_brute_force_neighbours(chunk):
  rng = np.random.default_rng(0)
  reference = rng.normal(size=(60, 5)) * 10.0
  queries = np.concatenate([reference[[3, 41, 59]], rng.normal(size=(4, 5)) * 10.0])
  chunks = ((start, reference[start:start + chunk]) for start in range(0, 60, chunk))
  indices, distances = neighbours.nearest(queries, chunks, k=4)
  assert indices.shape == distances.shape == (7, 4)
  assert indices[:3, 0].tolist() == [3, 41, 59]
  assert distances[:3, 0].tolist() == [0.0, 0.0, 0.0]   # exactly: |q - r| itself
  order, expected = _brute_force(queries, reference, 4)
  np.testing.assert_array_equal(indices, order)
  np.testing.assert_allclose(distances, expected, rtol=1e-12)
  assert np.all(np.diff(distances, axis=1) >= 0)


def _digits():
  config = load_config('dcgan.py:digits,runlocal,mlp')
  return config, input_pipeline.load(config.dataset)


def test_a_copied_training_image_is_its_own_neighbour_at_distance_0_in_pixel_space():
  _, data = _digits()
  samples = images.to_unit(images.to_signed(data.images[[5, 1500]]))   # as sampling writes
  indices, distances = neighbours.find(neighbours.pixel_space(), samples, data.images, k=3,
                                       chunk=400)
  assert indices[:, 0].tolist() == [5, 1500] and distances[:, 0].tolist() == [0.0, 0.0]
  reference = neighbours.pixel_space().of_data(data.images).astype(np.float64)
  order, expected = _brute_force(samples.reshape(2, -1).astype(np.float64), reference, 3)
  np.testing.assert_array_equal(indices, order)
  np.testing.assert_allclose(distances, expected, rtol=1e-9)


def test_the_grid_has_a_row_per_sample_the_sample_first_then_its_neighbours(tmp_path):
  config, data = _digits()
  rows = [10, 700, 1200]
  samples = images.to_unit(images.to_signed(data.images[rows]))
  samples[2] = 1.0 - samples[2]   # not a training image
  reference = neighbours.Reference(config, data.image_shape, 2)
  assert reference.space.name == 'pixel'
  summary = reference.write(str(tmp_path / 'samples.npz'), samples, np.array([0, 7, 9]))
  assert summary['png'] == str(tmp_path / 'samples_neighbours.png')
  assert summary['space'] == 'pixel' and summary['k'] == 2
  assert summary['nearest_distance_min'] == 0.0
  record = json.loads((tmp_path / 'samples_neighbours.json').read_text())
  assert record['reference'] == {'dataset': 'digits', 'split': 'train', 'count': len(data.images)}
  indices = np.array(record['indices'])
  assert indices[:2, 0].tolist() == rows[:2] and record['distances'][0][0] == 0.0
  assert record['distances'][2][0] > 1.0
  assert record['sample_labels'] == [0, 7, 9]
  assert record['neighbour_labels'] == data.labels[indices].tolist()
  with Image.open(summary['png']) as png:
    picture = np.asarray(png)
  height, width = data.image_shape[:2]
  assert picture.shape == (2 * (3 * (height + 1) + 1), 2 * (3 * (width + 1) + 1))
  for r in range(3):
    expected = [samples[r]] + [images.to_unit(images.to_signed(data.images[i]))
                               for i in indices[r]]
    for c, image in enumerate(expected):   # cell (r, c), upscaled twice
      top, left = 2 * (1 + r * (height + 1)), 2 * (1 + c * (width + 1))
      cell = picture[top:top + 2 * height:2, left:left + 2 * width:2]
      np.testing.assert_array_equal(cell, (image[..., 0] * 255).round().astype(np.uint8))


def test_the_domain_classifier_space_when_the_config_names_one(tmp_path):
  from test_scoring import _random_classifier  # pylint: disable=g-import-not-at-top
  _random_classifier(tmp_path / 'clf')
  config, data = _digits()
  config.eval.classifier = str(tmp_path / 'clf')
  reference = neighbours.Reference(config, data.image_shape, 1)
  assert reference.space.name == 'domain'
  samples = images.to_unit(images.to_signed(data.images[[42]]))
  indices, distances = neighbours.find(reference.space, samples, data.images, 1)
  # The same image in another batch: the same features up to float round-off.
  assert indices[0, 0] == 42 and distances[0, 0] < 1e-3


def test_sample_mode_writes_the_neighbours_and_refuses_bad_values(conditional_run, tmp_path):
  workdir, _ = conditional_run
  out = tmp_path / 's.npz'
  proc = run_main(f'--workdir={workdir}', '--mode=sample', '--num_samples=5', '--neighbours=3',
                  f'--out={out}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result['neighbours']['space'] == 'pixel' and result['neighbours']['k'] == 3
  record = json.loads((tmp_path / 's_neighbours.json').read_text())
  _, data = _digits()
  with np.load(out) as f:
    samples, labels = f['images'], f['labels']
  order, expected = _brute_force(samples.reshape(5, -1).astype(np.float64),
                                 neighbours.pixel_space().of_data(data.images), 3)
  np.testing.assert_array_equal(record['indices'], order)
  np.testing.assert_allclose(record['distances'], expected, rtol=1e-6)
  assert record['sample_labels'] == labels.tolist()
  assert result['neighbours']['nearest_distance_min'] == pytest.approx(expected[:, 0].min())
  with Image.open(tmp_path / 's_neighbours.png') as png:
    assert png.size == (2 * (4 * 29 + 1), 2 * (5 * 29 + 1))   # 4 columns, 5 rows of 28 + 1

  # Without the flag, the sample files are today's and no neighbours are written.
  plain = tmp_path / 'plain.npz'
  proc = run_main(f'--workdir={workdir}', '--mode=sample', '--num_samples=5', f'--out={plain}')
  assert proc.returncode == 0 and 'neighbours' not in proc.stdout, proc.stderr[-2000:]
  with np.load(plain) as f:
    np.testing.assert_array_equal(f['images'], samples)
  assert not (tmp_path / 'plain_neighbours.json').exists()

  for flags, message in ((['--mode=sample', '--neighbours=-1'], '--neighbours must be >= 0'),
                         (['--mode=eval', '--neighbours=2'], '--neighbours is for --mode=sample'),
                         (['--mode=sample', '--neighbours=1798'],
                          '--neighbours 1798 is more than the 1797 reference images')):
    bad = tmp_path / 'bad.npz'
    proc = run_main(f'--workdir={workdir}', *flags, f'--out={bad}')
    errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
    assert proc.returncode == 2 and len(errors) == 1 and message in errors[0], proc.stderr[-2000:]
    assert not bad.exists()   # refused before any write
