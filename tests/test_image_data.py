"""Folders of image files and TFDS datasets by name: classes, crop and resize, channels, the
files that cannot be read, and the one-line refusals."""

import json
import logging

import ml_collections
import numpy as np
import pytest
from PIL import Image

from configs import dcgan, wgan_gp
from gan_jax import image_files, input_pipeline as ip, rundir
from gan_jax.errors import ConfigError, DataError


def _config(**kw):
  c = dict(name='mnist', path='', data_dir='', split='train', image_size=8, channels=3,
           download=False, float_range='unit', image_key='', label_key='', storage='auto')
  c.update(kw)
  return ml_collections.ConfigDict(c)


def _same_spec(config):
  spec, data = ip.spec(config), ip.load(config)
  assert spec == ip.DataSpec(tuple(data.image_shape), data.num_classes, data.class_names)
  return data


def test_fit_takes_the_centre_square_and_resizes_it():
  wide = np.zeros((20, 40, 3), np.uint8)
  wide[:] = (0, 0, 255)
  wide[:, 10:30] = (255, 0, 0)  # the centred 20 x 20 square
  out = image_files.fit(Image.fromarray(wide), 10, 3)
  assert out.shape == (10, 10, 3) and out.dtype == np.uint8
  np.testing.assert_allclose(out[:, 2:8], np.broadcast_to([255, 0, 0], (10, 6, 3)), atol=1)
  assert out[..., 0].min() > 230 and out[..., 2].max() < 25  # the sides are cropped away
  tall = np.transpose(wide, (1, 0, 2))
  np.testing.assert_allclose(image_files.fit(Image.fromarray(tall), 10, 3),
                             np.transpose(out, (1, 0, 2)), atol=1)
  gray = image_files.fit(Image.fromarray(wide), 10, 1)
  assert gray.shape == (10, 10, 1) and gray[5, 5, 0] == 76  # ITU-R 601 luma of red
  # An image of the wanted shape is not touched (a dataset at its own size loads bit for bit).
  pixels = np.random.default_rng(0).integers(0, 256, (10, 10, 3), dtype=np.uint8)
  assert image_files.fit_array(pixels, 10, 3) is pixels
  np.testing.assert_array_equal(image_files.fit(Image.fromarray(pixels), 10, 3), pixels)


def _save(path, image, fmt=None):
  path.parent.mkdir(parents=True, exist_ok=True)
  image.save(path, format=fmt, **({'lossless': True} if fmt == 'WEBP' else {}))


def _folder(root):
  """Two classes of mixed sizes, modes and formats (one corrupt file, a nested folder, a hidden
  file); every image a solid colour, so the fitted pixels are known."""
  red, blue = (200, 10, 10), (10, 10, 200)
  _save(root / 'cat' / 'a.png', Image.new('RGB', (30, 20), red))
  _save(root / 'cat' / 'b.jpg', Image.new('RGB', (9, 17), red), 'JPEG')
  _save(root / 'cat' / 'c.webp', Image.new('RGBA', (12, 12), red + (255,)), 'WEBP')
  palette = Image.new('P', (16, 10), 0)
  palette.putpalette(list(red) + [0] * 765)
  _save(root / 'cat' / 'd.gif', palette, 'GIF')
  _save(root / 'dog' / 'e.bmp', Image.new('RGB', (8, 8), blue), 'BMP')
  _save(root / 'dog' / 'puppies' / 'f.PNG', Image.new('RGB', (64, 40), blue))
  _save(root / 'dog' / 'g.png', Image.new('L', (5, 7), 200))
  (root / 'dog' / 'broken.png').write_bytes(b'\x89PNG not really')
  (root / 'dog' / '.DS_Store').write_bytes(b'\0\0')
  (root / 'dog' / 'notes.txt').write_text('not an image')
  (root / 'empty_class').mkdir()
  return red, blue


def test_a_folder_of_mixed_images_with_classes(tmp_path, caplog):
  red, blue = _folder(tmp_path)
  with caplog.at_level(logging.INFO):
    data = _same_spec(_config(path=str(tmp_path), image_size=8, channels=3))
  assert data.images.shape == (7, 8, 8, 3) and data.images.dtype == np.uint8
  assert data.class_names == ('cat', 'dog') and data.num_classes == 2
  np.testing.assert_array_equal(data.labels, [0, 0, 0, 0, 1, 1, 1])  # e.bmp, g.png, puppies/f.PNG
  for i in range(3):  # PNG, WebP (RGBA), GIF (palette): exact; the JPEG close
    np.testing.assert_array_equal(data.images[[0, 2, 3][i]], np.broadcast_to(red, (8, 8, 3)))
  assert np.abs(data.images[1].astype(int) - red).max() <= 8
  np.testing.assert_array_equal(data.images[4], np.broadcast_to(blue, (8, 8, 3)))
  np.testing.assert_array_equal(data.images[5], np.full((8, 8, 3), 200))  # L -> RGB
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert len(warnings) == 1 and 'skipped 1 unreadable' in warnings[0]
  assert 'broken.png' in warnings[0]
  assert any('0 cat (4), 1 dog (3)' in r.getMessage() for r in caplog.records)

  gray = _same_spec(_config(path=str(tmp_path), image_size=5, channels=1))
  assert gray.images.shape == (7, 5, 5, 1)
  assert gray.images[0, 2, 2, 0] == round(0.299 * 200 + 0.587 * 10 + 0.114 * 10)


def test_a_folder_without_subfolders_is_unlabelled(tmp_path):
  for i, size in enumerate([(10, 6), (6, 10), (4, 4)]):
    Image.new('RGB', size, (i, i, i)).save(tmp_path / f'{i}.png')
  data = _same_spec(_config(path=str(tmp_path), image_size=4))
  assert data.labels is None and data.num_classes == 0 and data.class_names == ()
  assert [int(im.max()) for im in data.images] == [0, 1, 2]


def test_a_directory_with_idx_files_stays_idx(tmp_path):
  from test_input_pipeline import write_idx  # pylint: disable=g-import-not-at-top
  images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
  write_idx(str(tmp_path / 'train-images-idx3-ubyte'), images)
  Image.new('RGB', (8, 8)).save(tmp_path / 'stray.png')
  data = _same_spec(_config(path=str(tmp_path), image_size=8, channels=3))
  np.testing.assert_array_equal(data.images[..., 0], images)  # as they are: not fitted


def test_bad_folders_and_files_are_one_line_errors(tmp_path):
  (tmp_path / 'empty').mkdir()
  with pytest.raises(DataError, match='no IDX files and no images') as err:
    ip.spec(_config(path=str(tmp_path / 'empty')))
  assert '\n' not in str(err.value)
  (tmp_path / 'junk' / 'x').mkdir(parents=True)
  (tmp_path / 'junk' / 'x' / 'a.png').write_bytes(b'no')
  (tmp_path / 'junk' / 'x' / 'b.jpg').write_bytes(b'')
  with pytest.raises(DataError, match=r'none of its 2 image files could be read \(first: .*a.png'):
    ip.load(_config(path=str(tmp_path / 'junk')))
  mixed = tmp_path / 'mixed'
  (mixed / 'a').mkdir(parents=True)
  Image.new('L', (4, 4)).save(mixed / 'top.png')
  Image.new('L', (4, 4)).save(mixed / 'a' / 'in.png')
  with pytest.raises(DataError, match='1 images sit directly in it'):
    ip.spec(_config(path=str(mixed)))
  (tmp_path / 'notes.txt').write_text('hello')
  with pytest.raises(DataError, match='is a file but not an .npz'):
    ip.load(_config(path=str(tmp_path / 'notes.txt')))
  with pytest.raises(ConfigError, match=r'dataset.channels must be 1 .*, 3 .* or 0 .*, got 2'):
    ip.spec(_config(path=str(mixed), channels=2))
  with pytest.raises(DataError, match="must be 'train' for a folder of images"):
    ip.load(_config(path=str(mixed / 'a'), split='test'))


def test_tfds_dataset_of_another_shape_is_cropped_and_resized():
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  config = _config(name='celeb_a', image_size=16, channels=3, download=True)
  with tfds.testing.mock_data(num_examples=5):
    builder = tfds.builder('celeb_a')
    raw = [e['image'] for e in tfds.as_numpy(builder.as_dataset(split='train'))]
    encoded = [e['image'] for e in tfds.as_numpy(builder.as_dataset(
        split='train', decoders={'image': tfds.decode.SkipDecoding()}))]
    data = _same_spec(config)
    gray = ip.load(_config(name='celeb_a', image_size=12, channels=1, download=True))
  assert raw[0].shape == (218, 178, 3)
  assert data.images.shape == (5, 16, 16, 3) and data.labels is None and data.num_classes == 0
  # Decoded by PIL as folders are (JPEGs at a reduced scale), then fitted.
  np.testing.assert_array_equal(data.images, np.stack([image_files.fit_encoded(e, 16, 3)
                                                       for e in encoded]))
  fitted_after_tf = np.stack([image_files.fit_array(r, 16, 3) for r in raw])
  assert np.abs(data.images.astype(int) - fitted_after_tf).mean() < 8  # the same pictures
  assert gray.images.shape == (5, 12, 12, 1)


def test_any_tfds_name_with_its_features():
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  config = _config(name='tfds:cifar100', image_size=32, channels=3, download=True)
  with tfds.testing.mock_data(num_examples=6):
    raw = list(tfds.as_numpy(tfds.builder('cifar100').as_dataset(split='train')))
    data = _same_spec(config)
    coarse = _same_spec(_config(name='tfds:cifar100', image_size=32, channels=3, download=True,
                                label_key='coarse_label'))
    unlabelled = _same_spec(_config(name='tfds:cifar100', image_size=32, channels=3,
                                    download=True, label_key='none'))
  np.testing.assert_array_equal(data.images, np.stack([e['image'] for e in raw]))  # untouched
  np.testing.assert_array_equal(data.labels, [e['label'] for e in raw])
  assert data.num_classes == 100 and coarse.num_classes == 20 and unlabelled.labels is None
  with pytest.raises(DataError, match='label_key must be .* ClassLabel features '
                     r'\(label, coarse_label\), got .id.'):
    ip.spec(_config(name='tfds:cifar100', label_key='id'))
  with pytest.raises(DataError, match="no TFDS dataset named 'celeba'; did you mean tfds:celeb_a"):
    ip.spec(_config(name='tfds:celeba'))


def test_dataset_names_in_configs():
  celeb_a = dcgan.get_config('celeb_a')
  assert (celeb_a.dataset.image_size, ip.own_channels(celeb_a.dataset)[0]) == (64, 3)
  assert ip.spec(celeb_a.dataset) == ip.DataSpec((64, 64, 3), 0)
  assert ip.spec(dcgan.get_config('lsun/bedroom,runlocal').dataset).image_shape == (64, 64, 3)
  for name in ('mnist', 'fashion_mnist', 'cifar10', 'digits'):  # the presets' shapes
    dataset = wgan_gp.get_config(name).dataset
    assert ip.spec(dataset) == ip.DataSpec(ip.DATASETS[name].image_shape, 10)
  flowers = dcgan.get_config('tfds:oxford_flowers102').dataset  # sizes vary: 64 x 64 x 3
  assert ip.spec(flowers) == ip.DataSpec((64, 64, 3), 102)
  assert (dcgan.get_config('tfds:cifar100').dataset.image_size, flowers.image_size) == (32, 64)
  with pytest.raises(ValueError, match="unknown dataset 'celeba'; did you mean 'celeb_a'"):
    dcgan.get_config('celeba')


def test_data_spec_keeps_class_names_and_reads_old_files(tmp_path):
  spec = ip.DataSpec((8, 8, 3), 2, ('cat', 'dog'))
  rundir.write_spec(str(tmp_path), spec)
  assert rundir.read_spec(str(tmp_path)) == spec
  (tmp_path / 'data_spec.json').write_text(json.dumps({'image_shape': [28, 28, 1],
                                                       'num_classes': 10}))
  assert rundir.read_spec(str(tmp_path)) == ip.DataSpec((28, 28, 1), 10)


def test_a_tfds_dataset_with_several_image_features_is_configured_by_image_key():
  """div2k has 'hr' and 'lr' images: the config builds (64 px by default), a spec without
  dataset.image_key is refused in one line naming them, and with it the spec is had."""
  from conftest import load_config  # pylint: disable=g-import-not-at-top
  config = load_config('dcgan.py:tfds:div2k')
  assert (config.dataset.image_size, ip.own_channels(config.dataset)[0]) == (64, 3)
  with pytest.raises(DataError, match='set dataset.image_key to one of its image features '
                                      r'\(lr, hr\)'):
    ip.spec(config.dataset)
  config.dataset.image_key = 'hr'
  assert ip.spec(config.dataset) == ip.DataSpec((64, 64, 3), 0, ())


def test_a_tfds_dataset_found_only_in_its_data_dir_trains_and_its_workdir_samples(tmp_path):
  """A dataset prepared elsewhere ('tfds build' of one's own builder), unknown to this process:
  the config file cannot see it (dataset.data_dir comes later), so it takes the 64x64x3
  default; loading finds it in data_dir, and a workdir's config.json that names it loads."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from configs import workdir as workdir_config  # pylint: disable=g-import-not-at-top

  class UnlistedImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version('1.0.0')

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          'image': tfds.features.Image(shape=(6, 10, 1)),
          'label': tfds.features.ClassLabel(num_classes=2)}))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {'train': self._generate_examples()}

    def _generate_examples(self):
      rng = np.random.default_rng(0)
      for i in range(10):
        yield i, {'image': rng.integers(0, 256, (6, 10, 1), np.uint8), 'label': i % 2}

  UnlistedImages(data_dir=str(tmp_path / 'tfds')).download_and_prepare()
  with pytest.raises(DataError, match="no TFDS dataset named 'unlisted_images'"):
    ip.load(_config(name='tfds:unlisted_images', download=True))  # not in the default data_dir
  config = wgan_gp.get_config('tfds:unlisted_images,runlocal')
  assert (config.dataset.image_size, ip.own_channels(config.dataset)[0]) == (64, 3)
  config.dataset.update(dict(data_dir=str(tmp_path / 'tfds'), image_size=8, channels=1,
                             download=False))
  data = _same_spec(config.dataset)
  assert data.images.shape == (10, 8, 8, 1) and data.num_classes == 2
  run = tmp_path / 'run'
  run.mkdir()
  rundir.write_config(config, str(run))
  again = workdir_config.get_config(str(run))
  assert again.dataset.to_dict() == config.dataset.to_dict()


@pytest.mark.slow   # several processes, over a minute on 2 cores
def test_a_folder_trains_at_its_own_channels_and_the_log_says_the_shape(tmp_path):
  """A preset's dataset name sets the size of a user's folder, never its channels: a colour
  folder trains in RGB under the digits preset (1 channel), unless dataset.channels says
  otherwise; the log names the shape and where it comes from; a resume keeps the run's shape
  and refuses another."""
  from conftest import run_main  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  colour, gray = tmp_path / 'colour', tmp_path / 'gray'
  for folder, mode in ((colour, 'RGB'), (gray, 'L')):
    folder.mkdir()
    for i in range(12):
      pixels = rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)
      Image.fromarray(pixels).convert(mode).save(folder / f'{i}.png')
  common = ('--config=configs/dcgan.py:digits,runlocal,mlp', '--config.num_steps=2',
            '--config.dataset.image_size=8')

  def train(workdir, *extra):
    result = run_main(*common, f'--workdir={workdir}', *extra)
    assert result.returncode == 0, result.stderr[-2000:]
    with open(workdir / 'data_spec.json') as f:
      return json.load(f)['image_shape'], result.stderr

  shape, log = train(tmp_path / 'run_colour', f'--config.dataset.path={colour}')
  assert shape == [8, 8, 3]
  assert (f'Training on 8x8x3 images: side 8 from dataset.image_size (digits\'s size unless '
          f'set: --config.dataset.image_size changes it), 3 channels from the images in '
          f'{colour}.') in log
  shape, _ = train(tmp_path / 'run_gray', f'--config.dataset.path={gray}')
  assert shape == [8, 8, 1]
  shape, log = train(tmp_path / 'run_asked', f'--config.dataset.path={colour}',
                     '--config.dataset.channels=1')
  assert shape == [8, 8, 1] and '1 channel from dataset.channels.' in log
  # Resumed: the run's own channels (0 reads them from its data_spec.json); another refused.
  shape, log = train(tmp_path / 'run_asked', f'--config.dataset.path={colour}',
                     '--config.num_steps=4')
  assert shape == [8, 8, 1] and f'1 channel from the run in {tmp_path / "run_asked"}' in log
  refused = run_main(*common, f'--workdir={tmp_path / "run_asked"}', '--config.num_steps=6',
                     f'--config.dataset.path={colour}', '--config.dataset.channels=3')
  assert refused.returncode == 2
  assert (f'holds a run trained on 8x8x1 images; this config gives 8x8x3: set '
          f'dataset.image_size and dataset.channels as the run had them') in refused.stderr
