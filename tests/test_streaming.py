"""Folders and TFDS datasets streamed (dataset.storage 'stream'): the batches of the same data
in memory, each process decoding only its rows, unreadable files replaced the same way every
time, the auto choice, the refusals, and a resumed run equal to an uninterrupted one."""

import logging

import ml_collections
import numpy as np
import pytest
from PIL import Image

from conftest import load_config
from gan_jax import image_files, input_pipeline as ip, modes, streaming, tfds_data, trainer
from gan_jax.errors import ConfigError, DataError
from gan_jax.stepper import Stepper


def _folder(root, n=24, corrupt=()):
  """n random images of mixed sizes in two class folders; `corrupt`: indices written as junk."""
  rng = np.random.default_rng(0)
  for i in range(n):
    path = root / ('a' if i % 2 else 'b') / f'{i:03d}.png'
    path.parent.mkdir(parents=True, exist_ok=True)
    if i in corrupt:
      path.write_bytes(b'not a png')
    else:
      side = int(rng.integers(6, 20))
      Image.fromarray(rng.integers(0, 256, (side, side + 3), np.uint8), 'L').save(path)
  return str(root)


def _config(path, storage, **kw):
  c = dict(name='digits', path=path, data_dir='', split='train', image_size=8, channels=1,
           download=False, float_range='unit', image_key='', label_key='', storage=storage)
  c.update(kw)
  return ml_collections.ConfigDict(c)


def test_a_streamed_folder_gives_the_batches_of_the_folder_in_memory(tmp_path):
  path = _folder(tmp_path / 'f')
  memory, streamed = ip.load(_config(path, 'memory')), ip.load(_config(path, 'stream'))
  assert isinstance(memory.images, np.ndarray)
  assert isinstance(streamed.images, streaming.OnDemand)
  assert streamed.image_shape == memory.image_shape == (8, 8, 1)
  assert streamed.class_names == memory.class_names == ('a', 'b')
  a, b = ip.BatchStream(memory, 5, seed=3), ip.BatchStream(streamed, 5, seed=3)
  for _ in range(7):  # over several epochs
    x, y = a.next(2), b.next(2)
    np.testing.assert_array_equal(x['image'], y['image'])
    np.testing.assert_array_equal(x['label'], y['label'])
  np.testing.assert_array_equal(streamed.images[3:11], memory.images[3:11])


def test_two_processes_decode_disjoint_shares_that_cover_an_epoch():
  reads = {0: [], 1: []}
  shards = {}
  for index in (0, 1):
    log = reads[index]
    read = lambda rows, log=log: [log.append(i) or np.full((2, 2, 1), i, np.uint8) for i in rows]
    images = streaming.OnDemand(read, 32, (2, 2, 1), str, workers=2)
    data = ip.Dataset(images, None, 0)
    stream = ip.BatchStream(data, 8, seed=1, shard=(index, 2))
    shards[index] = stream.next(4)['image'][..., 0, 0, 0]  # [4 batches, 4 rows]: the indices
  assert sorted(reads[0]) == sorted(shards[0].ravel().tolist())  # decoded its rows only
  assert sorted(reads[1]) == sorted(shards[1].ravel().tolist())
  assert not set(reads[0]) & set(reads[1])
  assert sorted(reads[0] + reads[1]) == list(range(32))  # one epoch, each image once


def test_an_unreadable_file_stands_in_by_the_next_readable_one(tmp_path, caplog):
  path = _folder(tmp_path / 'f', n=10, corrupt=(4,))
  images = ip.load(_config(path, 'stream')).images
  # sorted listing: a/001, a/003, a/005, a/007, a/009, b/000, b/002, b/004 (corrupt), ...
  with caplog.at_level(logging.WARNING):
    first = images[np.array([7, 7, 8])]
    again = images[np.array([7])]
  np.testing.assert_array_equal(first[0], images[8])
  np.testing.assert_array_equal(first[1], again[0])
  warnings = [r.getMessage() for r in caplog.records if 'cannot read' in r.getMessage()]
  assert len(warnings) == 1 and warnings[0].endswith(
      'b/004.png; the next readable image stands in for it')


def test_auto_streams_what_exceeds_a_quarter_of_memory(tmp_path, monkeypatch, caplog):
  path = _folder(tmp_path / 'f')  # 24 images of 8x8x1: 1536 bytes decoded
  monkeypatch.setattr(streaming, 'host_memory_bytes', lambda: 4 * 1536)
  with caplog.at_level(logging.INFO):
    assert isinstance(ip.load(_config(path, 'auto')).images, np.ndarray)
  monkeypatch.setattr(streaming, 'host_memory_bytes', lambda: 4 * 1535)
  with caplog.at_level(logging.INFO):
    assert isinstance(ip.load(_config(path, 'auto')).images, streaming.OnDemand)
  said = [r.getMessage() for r in caplog.records if 'dataset.storage auto' in r.getMessage()]
  assert said[0].endswith("within a quarter of this host's memory (0.00 GB): "
                          "dataset.storage auto -> 'memory'"), said
  assert said[1].endswith("dataset.storage auto -> 'stream'"), said


def test_host_memory_is_the_lower_of_ram_and_the_cgroup_limit(tmp_path, monkeypatch):
  limit = tmp_path / 'memory.limit_in_bytes'
  limit.write_text('3221225472\n')
  monkeypatch.setattr(streaming, '_cgroup_limit_files', lambda: [str(limit), '/no/such/file'])
  assert streaming.host_memory_bytes() == 3 * 2**30
  limit.write_text('max\n')  # cgroup v2's "no limit"
  assert streaming.host_memory_bytes() > 2**20


@pytest.mark.parametrize('kw, message', [
    (dict(storage='disk'), "dataset.storage must be one of 'auto', 'memory', 'stream', got 'disk'"),
    (dict(storage='stream'), "dataset.storage 'stream' reads folders of image files and TFDS "
                             "datasets; dataset 'digits' is loaded into memory"),
])
def test_storage_refusals_are_one_line(kw, message):
  for fn in (ip.load, ip.spec):
    with pytest.raises(ConfigError, match=message):
      fn(_config('', **kw))


def test_stream_refuses_an_npz(tmp_path):
  np.savez(tmp_path / 'x.npz', images=np.zeros((4, 8, 8), np.uint8))
  with pytest.raises(ConfigError, match=r"dataset.path .*x.npz is loaded into memory"):
    ip.load(_config(str(tmp_path / 'x.npz'), 'stream'))


@pytest.mark.parametrize('source', ['folder', 'tfds'])
def test_a_streamed_run_resumed_halfway_equals_an_uninterrupted_one(tmp_path, source):
  if source == 'folder':
    where = dict(dataset__path=_folder(tmp_path / 'f'))
  else:
    import tfds_tiny  # pylint: disable=g-import-not-at-top,unused-import  (registers tiny_images)
    where = dict(dataset__name='tfds:tiny_images', dataset__data_dir=str(tmp_path / 'tfds'),
                 dataset__download=True)
  overrides = dict(where, dataset__storage='stream', dataset__image_size=8,
                   dataset__channels=1, log_every=0, sample_every=0, checkpoint_every=2,
                   batch_size=8)  # 4 steps of 8: over an epoch of 24
  config = load_config('dcgan.py:digits,runlocal,mlp', num_steps=4, **overrides)
  data = ip.load(config.dataset)
  assert isinstance(data.images, streaming.OnDemand)
  stepper = Stepper(config, data.image_shape, data.num_classes)
  straight = trainer.train(config, str(tmp_path / 'straight'), stepper, data)
  half = load_config('dcgan.py:digits,runlocal,mlp', num_steps=2, **overrides)
  trainer.train(half, str(tmp_path / 'resumed'), stepper, data)
  resumed = trainer.train(config, str(tmp_path / 'resumed'), stepper, data)
  import jax  # pylint: disable=g-import-not-at-top
  for x, y in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_the_stand_in_comes_from_the_same_class(tmp_path):
  path = _folder(tmp_path / 'f', n=10, corrupt=(9,))  # a/009: the last of class a (index 4)
  data = ip.load(_config(path, 'stream'))
  assert data.labels.tolist() == [0] * 5 + [1] * 5
  np.testing.assert_array_equal(data.images[4], data.images[0])  # a/001, not b/000
  with pytest.raises(IndexError):
    data.images[np.array([10])]


def test_sixteen_bit_and_float_grayscale_are_scaled_to_eight_bits():
  from gan_jax import image_files  # pylint: disable=g-import-not-at-top
  from PIL import Image as PILImage  # pylint: disable=g-import-not-at-top,reimported
  wide = PILImage.fromarray(np.array([[0, 257 * 100, 65535, 65535]], np.uint16))  # I;16
  assert image_files.fit(wide.resize((4, 4)), 4, 1)[0, :, 0].tolist() == [0, 100, 255, 255]
  unit = PILImage.fromarray(np.array([[0.0, 0.5, 1.0, 1.0]], np.float32))  # F
  assert image_files.fit(unit.resize((4, 4)), 4, 1)[0, :, 0].tolist() == [0, 128, 255, 255]


@pytest.mark.parametrize('other, message', [
    ([0, 24, 0], None),  # (failed, images, streamed)
    ([0, 23, 0], r'different numbers of images \(24, 23\)'),
    ([0, 24, 1], "dataset.storage 'auto' chose differently"),
    ([1, 0, 0], 'loading the data failed on process 1'),
])
def test_processes_agree_on_the_data_they_hold(tmp_path, monkeypatch, other, message):
  """Two processes simulated: this one (process 0) loads 24 images in memory; the other's
  facts come through process_allgather."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(jax, 'process_count', lambda: 2)
  monkeypatch.setattr(multihost_utils, 'process_allgather',
                      lambda mine: np.stack([mine, np.array(other, np.int64)]))
  config = _config(_folder(tmp_path / 'f'), 'memory')
  if message is None:
    assert len(ip.load_on_every_process(config).images) == 24
  else:
    with pytest.raises(ip.DataError, match=message):
      ip.load_on_every_process(config)


def test_a_stand_in_comes_from_the_same_group_when_groups_interleave():
  labels = np.arange(9) % 3  # 0 1 2 0 1 2 0 1 2, as a TFDS dataset's labels come
  read = lambda rows: [None if i in (3, 6) else np.full((1, 1, 1), i, np.uint8) for i in rows]
  images = streaming.OnDemand(read, 9, (1, 1, 1), str, workers=1, groups=labels)
  # 3 and 6 (label 0) unreadable: 3 -> 6 -> 0 (wrapping around), 6 -> 0.
  assert images[np.array([3, 6, 4])].ravel().tolist() == [0, 0, 4]


def _tiny_tfds(data_dir, storage, image_size=8):
  import tfds_tiny  # pylint: disable=g-import-not-at-top,unused-import  (registers tiny_images)
  return _config('', storage, name='tfds:tiny_images', data_dir=str(data_dir), download=True,
                 image_size=image_size)


@pytest.mark.parametrize('image_size', [8, 4])  # its own size (PNGs as they are), and fitted
def test_a_streamed_tfds_dataset_gives_the_batches_of_it_in_memory(tmp_path, image_size):
  before = ip.load(_tiny_tfds(tmp_path, 'memory', image_size))  # TFRecord files, tf.data
  version_dir = next((tmp_path / 'tiny_images').iterdir())
  assert not list(version_dir.glob('*.array_record*'))
  streamed = ip.load(_tiny_tfds(tmp_path, 'stream', image_size))
  assert isinstance(streamed.images, streaming.OnDemand)
  assert list(version_dir.glob('*.tfrecord*')) and list(version_dir.glob('*.array_record-*'))
  assert not list(version_dir.glob('*.incomplete'))
  after = ip.load(_tiny_tfds(tmp_path, 'memory', image_size))  # the TFRecord files still
  assert isinstance(after.images, np.ndarray)
  only = tmp_path / 'array_record_only'  # prepared as ArrayRecord alone: memory reads those
  import tfds_tiny  # pylint: disable=g-import-not-at-top
  tfds_tiny.TinyImages(data_dir=str(only), file_format='array_record').download_and_prepare()
  from_array_record = ip.load(_tiny_tfds(only, 'memory', image_size))
  assert isinstance(from_array_record.images, np.ndarray)
  np.testing.assert_array_equal(from_array_record.images, before.images)
  np.testing.assert_array_equal(from_array_record.labels, before.labels)
  if image_size == 8:  # its own size: the pixels TFDS's own decoding gives (PNG)
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    own = tfds.builder('tiny_images', data_dir=str(tmp_path)).as_dataset('train',
                                                                          shuffle_files=False)
    np.testing.assert_array_equal(np.stack([e['image'] for e in tfds.as_numpy(own)]),
                                  before.images)
  assert streamed.image_shape == before.image_shape == (image_size, image_size, 1)
  assert streamed.num_classes == before.num_classes == 3
  np.testing.assert_array_equal(after.images, before.images)
  np.testing.assert_array_equal(after.labels, before.labels)
  np.testing.assert_array_equal(streamed.labels, before.labels)
  a, b = ip.BatchStream(before, 5, seed=3), ip.BatchStream(streamed, 5, seed=3)
  for _ in range(6):  # over several epochs
    x, y = a.next(2), b.next(2)
    np.testing.assert_array_equal(x['image'], y['image'])
    np.testing.assert_array_equal(x['label'], y['label'])


def test_a_tfds_copy_that_cannot_be_written_is_one_line(tmp_path, monkeypatch):
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  ip.load(_tiny_tfds(tmp_path, 'memory'))

  class Refusing:  # creates its file, then fails to write (a full or read-only disk)
    def __init__(self, path, options):
      del options
      open(path, 'wb').close()  # pylint: disable=consider-using-with

    def write(self, record):
      raise OSError(f'Read-only file system: {len(record)} bytes')

  monkeypatch.setattr(array_record_module, 'ArrayRecordWriter', Refusing)
  version_dir = next((tmp_path / 'tiny_images').iterdir())
  info_before = (version_dir / 'dataset_info.json').read_text()
  with pytest.raises(DataError) as e:
    ip.load(_tiny_tfds(tmp_path, 'stream'))
  assert '\n' not in str(e.value)
  assert str(e.value).startswith("dataset.storage stream reads TFDS datasets in the ArrayRecord "
                                 "format (random access), and the ArrayRecord copy of "
                                 "'tfds:tiny_images' could not be written in "), str(e.value)
  assert 'OSError: Read-only file system' in str(e.value)
  assert (version_dir / 'dataset_info.json').read_text() == info_before
  assert not [p.name for p in version_dir.iterdir() if 'array_record' in p.name], \
      list(version_dir.iterdir())  # the partial file removed
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  # pylint: disable=protected-access
  assert not tfds_data._random_access(tfds, tfds_data._prepared(tfds, _tiny_tfds(tmp_path, 'x')))


def test_a_run_lists_its_folder_once(tmp_path, monkeypatch):
  path = _folder(tmp_path / 'f')
  listed = []
  real = image_files._list  # pylint: disable=protected-access
  monkeypatch.setattr(image_files, '_list', lambda root: listed.append(root) or real(root))
  ip.spec(_config(path, 'stream'))
  ip.load(_config(path, 'stream'))
  assert len(listed) == 2  # each lists it on its own
  listed.clear()
  config = load_config('dcgan.py:digits,runlocal,mlp', num_steps=2, dataset__path=path,
                       dataset__image_size=8, dataset__channels=1, log_every=0,
                       sample_every=0, batch_size=8)
  modes.train(config, str(tmp_path / 'run'))
  assert listed == [path]  # the spec, the checks and the loader: one listing
  ip.spec(_config(path, 'stream'))
  assert listed == [path, path]  # after the run, listed afresh


def test_streamed_tfds_labels_are_checked_as_in_memory(tmp_path, monkeypatch):
  ip.load(_tiny_tfds(tmp_path, 'memory'))
  real = tfds_data._on_demand  # pylint: disable=protected-access

  def with_unlabelled(*args):
    images, labels = real(*args)
    labels[3] = -1  # as a TFDS test split without labels has them
    return images, labels

  monkeypatch.setattr(tfds_data, '_on_demand', with_unlabelled)
  with pytest.raises(DataError, match='tfds:tiny_images: labels must be integers >= 0'):
    ip.load(_tiny_tfds(tmp_path, 'stream'))
