r"""Images per second of the FID InceptionV3 (gan_jax/inception.py) on this machine's devices.

  python experiments/time_inception.py [--size=32] [--batch=100] [--batches=3]

Random weights (the speed does not depend on them); the images are resized to 299x299 as in
evaluation. Prints one JSON line.
"""

import json
import os
import sys
import time

from absl import app, flags
import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gan_jax import inception  # pylint: disable=g-import-not-at-top

flags.DEFINE_integer('size', 32, 'Side of the square input images (resized to 299).')
flags.DEFINE_integer('batch', 100, 'Images per batch.')
flags.DEFINE_integer('batches', 3, 'Timed batches (after one for compilation).')
FLAGS = flags.FLAGS


def main(_):
  rng = np.random.default_rng(0)
  variables = {k: rng.normal(size=s).astype(np.float32) * 0.01
               for k, s in inception._expected_shapes().items()}  # pylint: disable=protected-access
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  variables = traverse_util.unflatten_dict(variables, sep='/')
  images = rng.uniform(size=(FLAGS.batch, FLAGS.size, FLAGS.size, 3)).astype(np.float32)
  start = time.perf_counter()
  inception.predict(variables, images, FLAGS.batch)
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(FLAGS.batches):
    inception.predict(variables, images, FLAGS.batch)
  seconds = time.perf_counter() - start
  print(json.dumps({'device': jax.devices()[0].device_kind, 'devices': jax.local_device_count(),
                    'batch': FLAGS.batch, 'first_batch_s': round(compile_s, 2),
                    'images_per_s': round(FLAGS.batches * FLAGS.batch / seconds, 2)}))


if __name__ == '__main__':
  app.run(main)
