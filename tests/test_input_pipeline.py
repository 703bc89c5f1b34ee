"""Loaders on files the tests write, the TFDS path on mock data, and the batch stream."""

import gzip
import os

import ml_collections
import numpy as np
import pytest

from gan_jax import input_pipeline as ip
from gan_jax.errors import ConfigError


def write_idx(path, array):
  """Writes an IDX file (uint8), gzipped when path ends in .gz."""
  header = bytes([0, 0, 0x08, array.ndim]) + b''.join(
      int(s).to_bytes(4, 'big') for s in array.shape)
  opener = gzip.open if path.endswith('.gz') else open
  with opener(path, 'wb') as f:
    f.write(header + array.astype(np.uint8).tobytes())


def _config(**kw):
  c = dict(name='mnist', path='', data_dir='', split='train', image_size=28, channels=1,
           download=False, float_range='unit', image_key='', label_key='', storage='auto')
  c.update(kw)
  return ml_collections.ConfigDict(c)


@pytest.mark.parametrize('suffix', ['', '.gz'])
def test_idx_directory(tmp_path, suffix):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
  labels = rng.integers(0, 10, 12).astype(np.uint8)
  write_idx(str(tmp_path / f'train-images-idx3-ubyte{suffix}'), images)
  write_idx(str(tmp_path / f'train-labels-idx1-ubyte{suffix}'), labels)
  data = ip.load(_config(path=str(tmp_path)))
  np.testing.assert_array_equal(data.images[..., 0], images)
  np.testing.assert_array_equal(data.labels, labels)
  assert data.images.dtype == np.uint8 and data.num_classes == int(labels.max()) + 1


def test_truncated_idx_file_is_a_clear_error(tmp_path):
  path = tmp_path / 'train-images-idx3-ubyte'
  write_idx(str(path), np.zeros((4, 28, 28), np.uint8))
  path.write_bytes(path.read_bytes()[:-100])
  with pytest.raises(ip.DataError, match='truncated'):
    ip.load(_config(path=str(tmp_path)))


def test_missing_path_is_a_clear_error(tmp_path):
  with pytest.raises(ip.DataError, match='does not exist'):
    ip.load(_config(path=str(tmp_path / 'nope')))


def test_npz_uint8_and_float(tmp_path):
  images = np.arange(5 * 8 * 8, dtype=np.uint8).reshape(5, 8, 8)
  np.savez(tmp_path / 'a.npz', images=images, labels=np.array([0, 1, 2, 1, 0]))
  data = ip.load(_config(path=str(tmp_path / 'a.npz')))
  assert data.images.shape == (5, 8, 8, 1) and data.num_classes == 3
  floats = np.linspace(0, 1, 4 * 6 * 6 * 3).reshape(4, 6, 6, 3)
  np.savez(tmp_path / 'b.npz', images=floats)
  data = ip.load(_config(path=str(tmp_path / 'b.npz')))
  assert data.labels is None and data.images.dtype == np.float32
  np.testing.assert_allclose(data.images, floats * 2 - 1, atol=1e-6)  # [0, 1] -> [-1, 1]


def test_float_range_is_declared_not_guessed(tmp_path):
  # [-1, 1] data that happens to have no negative values: taken as it is under 'signed'.
  signed = np.linspace(0, 0.5, 3 * 4 * 4).reshape(3, 4, 4)
  np.savez(tmp_path / 's.npz', images=signed)
  data = ip.load(_config(path=str(tmp_path / 's.npz'), float_range='signed'))
  np.testing.assert_allclose(data.images[..., 0], signed, atol=1e-7)
  data = ip.load(_config(path=str(tmp_path / 's.npz'), float_range='unit'))
  np.testing.assert_allclose(data.images[..., 0], signed * 2 - 1, atol=1e-6)
  # Values outside the declared range: one line naming the field.
  np.savez(tmp_path / 'n.npz', images=np.linspace(-1, 1, 3 * 4 * 4).reshape(3, 4, 4))
  with pytest.raises(ip.DataError, match=r"outside \[0, 1\] \(dataset.float_range='unit'\); "
                     r"for \[-1, 1\] data set dataset.float_range='signed'") as err:
    ip.load(_config(path=str(tmp_path / 'n.npz'), float_range='unit'))
  assert '\n' not in str(err.value)
  data = ip.load(_config(path=str(tmp_path / 'n.npz'), float_range='signed'))
  assert data.images.min() == -1 and data.images.max() == 1
  np.savez(tmp_path / 'big.npz', images=np.full((2, 4, 4), 1.5))
  with pytest.raises(ip.DataError, match=r"outside \[-1, 1\] \(dataset.float_range='signed'\)"):
    ip.load(_config(path=str(tmp_path / 'big.npz'), float_range='signed'))
  with pytest.raises(ConfigError, match="dataset.float_range must be 'unit' or 'signed'"):
    ip.load(_config(path=str(tmp_path / 's.npz'), float_range='auto'))


def test_labels_are_whole_numbers(tmp_path):
  """Float labels that are whole numbers are class indices; fractions are refused by load as
  by spec, never truncated."""
  np.savez(tmp_path / 'whole.npz', images=np.zeros((3, 8, 8), np.uint8), labels=[0.0, 2.0, 1.0])
  assert list(ip.load(_config(path=str(tmp_path / 'whole.npz'))).labels) == [0, 2, 1]
  np.savez(tmp_path / 'fractions.npz', images=np.zeros((3, 8, 8), np.uint8),
           labels=[0.0, 0.25, 1.0])
  with pytest.raises(ip.DataError, match='whole numbers'):
    ip.load(_config(path=str(tmp_path / 'fractions.npz')))


@pytest.mark.parametrize('arrays,message', [
    (dict(images=np.zeros((3, 8, 8), np.uint8), labels=np.array([0.0, 0.5, 1.0])),
     r'labels must be whole numbers .* got 0.5 \(float64\)'),
    (dict(pictures=np.zeros((2, 8, 8))), 'no array named "images"'),
    (dict(images=np.zeros((8, 8))), 'N x H x W'),
    (dict(images=np.full((2, 8, 8), 5.0)), r"outside \[0, 1\] \(dataset.float_range='unit'\)"),
    (dict(images=np.array([np.zeros((8, 8)), np.full((8, 8), np.nan)])), 'NaN'),
    (dict(images=np.zeros((2, 8, 8), np.uint8), labels=np.zeros(3)), '3 labels for 2 images'),
])
def test_bad_npz_is_a_clear_error(tmp_path, arrays, message):
  np.savez(tmp_path / 'bad.npz', **arrays)
  with pytest.raises(ip.DataError, match=message):
    ip.load(_config(path=str(tmp_path / 'bad.npz')))


def test_digits_need_no_download():
  data = ip.load(_config(name='digits', image_size=28))
  assert data.images.shape == (1797, 28, 28, 1) and data.num_classes == 10
  assert data.images.dtype == np.uint8 and data.images.max() > 200


def test_tfds_path_on_mock_data():
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  with tfds.testing.mock_data(num_examples=20):
    data = ip.load(_config(name='fashion_mnist', download=True))
  assert data.images.shape == (20, 28, 28, 1) and data.labels.shape == (20,)


def test_tfds_not_prepared_is_one_clear_line(tmp_path):
  with pytest.raises(ip.DataError) as err:
    ip.load(_config(name='cifar10', data_dir=str(tmp_path), download=False))
  message = str(err.value)
  assert "'cifar10'" in message and 'dataset.path' in message and '\n' not in message


def test_tfds_download_retries_are_cut_only_for_the_download(tmp_path, monkeypatch):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core.download import downloader  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(downloader, 'MAX_RETRIES', 10)
  during = []

  def offline_download(builder, *args, **kwargs):
    during.append(downloader.MAX_RETRIES)
    raise OSError('Name or service not known')

  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', offline_download)
  with pytest.raises(ip.DataError, match="cannot load TFDS dataset 'cifar10'"):
    ip.load(_config(name='cifar10', data_dir=str(tmp_path), download=True))
  assert during == [1]  # fail fast offline ...
  assert downloader.MAX_RETRIES == 10  # ... without changing TFDS for the rest of the process


def test_unknown_dataset_names_the_choices():
  with pytest.raises(ip.DataError, match='digits'):
    ip.load(_config(name='imagenet'))


def test_stream_is_deterministic_and_resumable():
  data = ip.Dataset(np.arange(10)[:, None, None, None].astype(np.uint8), np.arange(10), 10)
  stream = ip.BatchStream(data, batch_size=3, seed=0)
  first = [stream.next(2)['image'] for _ in range(4)]  # 24 examples: crosses 2 epochs
  assert first[0].shape == (2, 3, 1, 1, 1)
  seen = np.concatenate([f.reshape(-1) for f in first])
  assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:20]) == list(range(10))
  resumed = ip.BatchStream(data, batch_size=3, seed=0, position=12)
  np.testing.assert_array_equal(resumed.next(2)['image'], first[2])
  other_seed = ip.BatchStream(data, batch_size=3, seed=1)
  assert not np.array_equal(other_seed.next(2)['image'], first[0])


def _same_spec(config):
  """spec(config) equals the shape, classes and dtype of load(config); returns it."""
  spec = ip.spec(config)
  data = ip.load(config)
  assert spec == ip.DataSpec(tuple(data.image_shape), data.num_classes, data.class_names,
                             str(data.images.dtype))
  return spec


def test_spec_of_named_datasets_needs_no_data():
  assert _same_spec(_config(name='digits', image_size=28)) == ip.DataSpec((28, 28, 1), 10)
  assert ip.spec(_config(name='digits', image_size=16)) == ip.DataSpec((16, 16, 1), 10)
  # Neither prepared nor downloadable (download=False, an empty data_dir): the registry answers.
  assert ip.spec(_config(name='cifar10', data_dir='/no/tfds', channels=3,
                         image_size=32)) == ip.DataSpec((32, 32, 3), 10)
  for name, info in ip.DATASETS.items():  # at the defaults a config takes from the registry
    size, _, channels = info.image_shape
    assert ip.spec(_config(name=name, image_size=size, channels=channels)) == ip.DataSpec(
        info.image_shape, info.num_classes)
  with pytest.raises(ip.DataError, match='digits'):
    ip.spec(_config(name='imagenet'))


@pytest.mark.parametrize('suffix', ['', '.gz'])
@pytest.mark.parametrize('with_labels', [True, False])
def test_spec_of_an_idx_directory(tmp_path, suffix, with_labels):
  rng = np.random.default_rng(0)
  write_idx(str(tmp_path / f'train-images-idx3-ubyte{suffix}'),
            rng.integers(0, 256, (12, 20, 24), dtype=np.uint8))
  if with_labels:
    write_idx(str(tmp_path / f'train-labels-idx1-ubyte{suffix}'), np.arange(12) % 7)
  expected = ip.DataSpec((20, 24, 1), 7 if with_labels else 0)
  assert _same_spec(_config(path=str(tmp_path))) == expected


def test_spec_reads_only_the_idx_header(tmp_path):
  # A header claiming a million images, and no data: load refuses it, spec does not read it.
  write_idx(str(tmp_path / 'train-images-idx3-ubyte'), np.zeros((0, 28, 28), np.uint8))
  path = tmp_path / 'train-images-idx3-ubyte'
  raw = bytearray(path.read_bytes())
  raw[4:8] = (10**6).to_bytes(4, 'big')
  path.write_bytes(bytes(raw))
  assert ip.spec(_config(path=str(tmp_path))) == ip.DataSpec((28, 28, 1), 0)
  with pytest.raises(ip.DataError, match='truncated'):
    ip.load(_config(path=str(tmp_path)))


@pytest.mark.parametrize('save', [np.savez, np.savez_compressed])
def test_spec_of_npz_with_and_without_labels(tmp_path, save):
  save(tmp_path / 'l.npz', images=np.zeros((6, 8, 10, 3), np.uint8), labels=[0, 4, 1, 1, 2, 0])
  assert _same_spec(_config(path=str(tmp_path / 'l.npz'))) == ip.DataSpec((8, 10, 3), 5)
  save(tmp_path / 'u.npz', images=np.linspace(0, 1, 4 * 6 * 6).reshape(4, 6, 6))
  assert _same_spec(_config(path=str(tmp_path / 'u.npz'))) == ip.DataSpec((6, 6, 1), 0,
                                                                       image_dtype='float32')


@pytest.mark.parametrize('arrays,message', [
    (dict(images=np.zeros((3, 8, 8), np.uint8), labels=np.array([0.0, 0.5, 1.0])),
     r'labels must be whole numbers .* got 0.5 \(float64\)'),
    (dict(pictures=np.zeros((2, 8, 8))), 'no array named "images"'),
    (dict(images=np.zeros((8, 8))), 'N x H x W'),
    (dict(images=np.zeros((2, 8, 8), np.int64)), 'uint8 or float'),
    (dict(images=np.zeros((2, 8, 8), np.uint8), labels=np.zeros(3)), '3 labels for 2 images'),
])
def test_spec_refuses_what_the_header_shows(tmp_path, arrays, message):
  np.savez(tmp_path / 'bad.npz', **arrays)
  with pytest.raises(ip.DataError, match=message):
    ip.spec(_config(path=str(tmp_path / 'bad.npz')))
  (tmp_path / 'junk.npz').write_bytes(b'not a zip file')
  with pytest.raises(ip.DataError, match='cannot read .npz'):
    ip.spec(_config(path=str(tmp_path / 'junk.npz')))


FASHION_MNIST = '/usr/share/datasets/fashion-mnist'


@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST), reason='dataset-fashion-mnist not installed')
@pytest.mark.parametrize('split', ['train', 'test'])
def test_spec_of_the_fashion_mnist_idx_files(split):
  spec = _same_spec(_config(name='fashion_mnist', path=FASHION_MNIST, split=split))
  assert spec == ip.DataSpec((28, 28, 1), 10) == ip.spec(_config(name='fashion_mnist'))
