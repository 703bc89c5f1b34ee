r"""Decoded, resized images per second: a folder of JPEGs, and a TFDS dataset.

  python experiments/input_speed.py --make=20000 --source_size=128 --image_size=64 \
      --out=/tmp/input_speed

--make writes that many random-content JPEGs of --source_size x (--source_size * 5 // 4) pixels
(not square: the crop is timed too) into OUT/jpegs in 10 class folders, and a TFDS dataset of
the same images (JPEG-encoded, built on this machine: nothing is downloaded) into OUT/tfds;
without --make the existing ones are read. Then, one JSON line each:
- `folder_stream`: dataset.storage 'stream' as the training loop reads it: BatchStream batches
  of --batch_size (random order over the whole folder) for --seconds;
- `folder_memory`: dataset.storage 'memory': the whole folder decoded once (load);
- `tfds_memory`: the TFDS dataset (TFRecord files) read through tf.data and fitted (load);
- `tfds_stream`: the TFDS dataset streamed as the loop reads it, like `folder_stream`, from a
  copy of it in OUT/tfds_array_record (made on first use: the files, then the ArrayRecord copy
  that dataset.storage 'stream' makes of them, timed as `copy_seconds`);
- `tfds_memory_array_record`: the dataset prepared as ArrayRecord files alone (in
  OUT/tfds_array_record_only) read whole into memory (random access, decoded on the thread
  pool; a dataset with TFRecord files is read in memory through tf.data).
Threads: the decoding pool's default (CPU count + 4, at most 32).
"""

import glob
import json
import os
import shutil
import sys
import time

from absl import app, flags
import ml_collections
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gan_jax import input_pipeline  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
flags.DEFINE_string('out', '/tmp/input_speed', 'Where the JPEG folder and TFDS data are.')
flags.DEFINE_integer('make', 0, 'Write this many images first (0: use the existing ones).')
flags.DEFINE_integer('source_size', 128, '--make: the images\' shorter side.')
flags.DEFINE_integer('image_size', 64, 'The side they are fitted to.')
flags.DEFINE_integer('batch_size', 512, 'folder_stream: images per batch.')
flags.DEFINE_float('seconds', 10.0, 'folder_stream: how long to read.')
flags.DEFINE_string('only', '', 'Comma-separated subset of folder_stream,folder_memory,tfds_memory,'
                    'tfds_stream,tfds_memory_array_record.')

CLASSES = 10


def _image(rng, size: int) -> Image.Image:
  """Smooth random content (JPEG-compressible like photos, unlike white noise)."""
  small = rng.integers(0, 256, (size // 8, size * 5 // 32, 3), np.uint8)
  return Image.fromarray(small).resize((size * 5 // 4, size), Image.BILINEAR)


import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top,wrong-import-position


class InputSpeedImages(tfds.core.GeneratorBasedBuilder):
  """'input_speed_images': the JPEG folder as a TFDS dataset (its files, JPEG-encoded)."""
  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(None, None, 3), encoding_format='jpeg'),
        'label': tfds.features.ClassLabel(num_classes=CLASSES)}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {'train': self._generate_examples()}

  def _generate_examples(self):
    jpegs = os.path.join(FLAGS.out, 'jpegs')
    for c in range(CLASSES):
      folder = os.path.join(jpegs, f'class_{c}')
      for name in sorted(os.listdir(folder)):
        yield f'{c}/{name}', {'image': os.path.join(folder, name), 'label': c}


def make(out: str, count: int, size: int) -> None:
  rng = np.random.default_rng(0)
  for i in range(count):
    folder = os.path.join(out, 'jpegs', f'class_{i % CLASSES}')
    os.makedirs(folder, exist_ok=True)
    _image(rng, size).save(os.path.join(folder, f'{i:07d}.jpg'), quality=90)
  InputSpeedImages(data_dir=os.path.join(out, 'tfds')).download_and_prepare()
  for copy in ('tfds_array_record', 'tfds_array_record_only'):
    shutil.rmtree(os.path.join(out, copy), ignore_errors=True)


def _config(**kw):
  c = dict(name='digits', path='', data_dir='', split='train', image_size=FLAGS.image_size,
           channels=3, download=False, float_range='unit', image_key='', label_key='',
           storage='auto')
  c.update(kw)
  return ml_collections.ConfigDict(c)


def _stream(config) -> dict:
  t0 = time.perf_counter()
  data = input_pipeline.load(config)
  loaded = time.perf_counter() - t0
  stream = input_pipeline.BatchStream(data, FLAGS.batch_size, seed=0)
  stream.next(1)  # threads started
  count, t0 = 0, time.perf_counter()
  while time.perf_counter() - t0 < FLAGS.seconds:
    count += stream.next(1)['image'].shape[1]
  seconds = time.perf_counter() - t0
  return {'images': count, 'seconds': round(seconds, 2), 'images_per_s': round(count / seconds),
          'load_seconds': round(loaded, 2)}


def _array_record_copy(out: str) -> dict:
  """The config of OUT/tfds_array_record, a copy of OUT/tfds with ArrayRecord files (made
  now when missing; the seconds it took)."""
  copy = os.path.join(out, 'tfds_array_record')
  config = _config(name='tfds:input_speed_images', data_dir=copy, storage='stream')
  if list(glob.glob(os.path.join(copy, '*', '*', '*.array_record-*'))):
    return config, {}
  shutil.rmtree(copy, ignore_errors=True)  # (an earlier copy that failed)
  shutil.copytree(os.path.join(out, 'tfds'), copy)
  t0 = time.perf_counter()
  input_pipeline.load(config)  # writes the ArrayRecord files
  return config, {'copy_seconds': round(time.perf_counter() - t0, 2)}


def tfds_stream(out: str) -> dict:
  config, made = _array_record_copy(out)
  return {**made, **_stream(config)}


def tfds_memory_array_record(out: str) -> dict:
  """The dataset prepared as ArrayRecord files alone (OUT/tfds_array_record_only, made on
  first use, as `tfds build --file_format=array_record` makes it) read whole into memory."""
  only = os.path.join(out, 'tfds_array_record_only')
  builder = InputSpeedImages(data_dir=only, file_format='array_record')
  if not builder.is_prepared():
    builder.download_and_prepare()
  return _load(_config(name='tfds:input_speed_images', data_dir=only, storage='memory'))


def _load(config) -> dict:
  t0 = time.perf_counter()
  data = input_pipeline.load(config)
  seconds = time.perf_counter() - t0
  n = len(data.images)
  return {'images': n, 'seconds': round(seconds, 2), 'images_per_s': round(n / seconds)}


def main(argv):
  del argv
  if FLAGS.make:
    make(FLAGS.out, FLAGS.make, FLAGS.source_size)
  runs = {
      'folder_stream': lambda: _stream(_config(path=os.path.join(FLAGS.out, 'jpegs'),
                                               storage='stream')),
      'folder_memory': lambda: _load(_config(path=os.path.join(FLAGS.out, 'jpegs'),
                                             storage='memory')),
      'tfds_memory': lambda: _load(_config(name='tfds:input_speed_images',
                                           data_dir=os.path.join(FLAGS.out, 'tfds'),
                                           storage='memory')),
      'tfds_stream': lambda: tfds_stream(FLAGS.out),
      'tfds_memory_array_record': lambda: tfds_memory_array_record(FLAGS.out),
  }
  only = FLAGS.only.split(',') if FLAGS.only else list(runs)
  for name in only:
    print(json.dumps({'source': name, 'image_size': FLAGS.image_size, 'cpus': os.cpu_count(),
                      **runs[name]()}), flush=True)


if __name__ == '__main__':
  app.run(main)
