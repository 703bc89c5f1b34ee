"""One process of tests/test_multihost.py's TFDS check: joins jax.distributed, loads
'tfds:tiny_images' from the shared data_dir argv[3] (download on when argv[4] is 1) and prints the
images' sum, or the DataError."""

import sys

import jax
import ml_collections

jax.distributed.initialize(num_processes=int(sys.argv[1]), process_id=int(sys.argv[2]))

import tfds_tiny  # pylint: disable=g-import-not-at-top,unused-import
from gan_jax import input_pipeline  # pylint: disable=g-import-not-at-top

config = ml_collections.ConfigDict(dict(
    name='tfds:tiny_images', path='', data_dir=sys.argv[3], download=sys.argv[4] == '1',
    split='train', float_range='unit', image_size=8, channels=1, image_key='', label_key='',
    storage='auto'))
try:
  data = input_pipeline.load(config)
  print('images', data.images.shape, int(data.images.astype('int64').sum()), flush=True)
except input_pipeline.DataError as e:
  print('DataError', e, flush=True)
