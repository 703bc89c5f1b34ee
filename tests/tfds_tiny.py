"""A TFDS dataset made on this machine ('tiny_images': 24 8x8x1 images, 3 classes), so that
download_and_prepare runs for real with no network. Each preparation leaves a file named
after its process in $TINY_IMAGES_MARKERS, so tests can count preparations."""

import os

import numpy as np
import tensorflow_datasets as tfds


class TinyImages(tfds.core.GeneratorBasedBuilder):
  """Registered as 'tiny_images' on import."""

  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(8, 8, 1)),
        'label': tfds.features.ClassLabel(num_classes=3)}))

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    return {'train': self._generate_examples()}

  def _generate_examples(self):
    markers = os.environ.get('TINY_IMAGES_MARKERS')
    if markers:
      with open(os.path.join(markers, f'prepared_by_{os.getpid()}'), 'w') as f:
        f.write('')
    rng = np.random.default_rng(0)
    for i in range(24):
      yield i, {'image': rng.integers(0, 256, (8, 8, 1), dtype=np.uint8), 'label': i % 3}
