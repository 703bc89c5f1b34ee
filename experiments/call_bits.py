r"""Whether K iterations in one compiled call (lax.scan) give the bits of K calls of one.

  python experiments/call_bits.py --config=configs/wgan_gp.py:fashion_mnist \
      --config.batch_size=16 --lengths=8,13,16,25

For each K, trains from the same initial state on the same random uint8 batches (nothing is
downloaded: the dataset's shape comes from its registry entry), once as K calls of one iteration
and once as one call of K, and prints a JSON line per K: whether every parameter and optimizer
state is bitwise equal, and the largest difference relative to the leaf's largest magnitude.
XLA compiles a scan's body on its own, and may round some operation differently there.
"""

import json
import os
import sys

from absl import app, flags
import jax
import numpy as np
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gan_jax import checks, gans, input_pipeline  # pylint: disable=g-import-not-at-top
from gan_jax.stepper import Stepper  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)
flags.DEFINE_list('lengths', ['8', '16', '25'], 'Iterations per call to compare.')
flags.mark_flags_as_required(['config'])


def compare(config, length: int) -> dict:
  spec = input_pipeline.spec(config.dataset)
  stepper = Stepper(config, spec.image_shape, spec.num_classes)
  rng = np.random.default_rng(0)
  batches = []
  for step in range(length):
    n = gans.n_critic_at(step, config)
    batches.append({
        'image': rng.integers(0, 256, (n, config.batch_size, *spec.image_shape), dtype=np.uint8),
        'label': rng.integers(0, max(spec.num_classes, 1), (n, config.batch_size)).astype(
            np.int32)})
  singles = stepper.place(stepper.init())
  for batch in batches:
    singles, _, _ = stepper.train(singles, [batch])
  scanned, _, _ = stepper.train(stepper.place(stepper.init()), batches)
  worst, equal = 0.0, True
  for a, b in zip(jax.tree.leaves(singles), jax.tree.leaves(scanned), strict=True):
    a, b = np.asarray(a), np.asarray(b)
    equal &= bool(np.array_equal(a, b))
    if a.dtype.kind == 'f' and a.size:
      worst = max(worst, float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30)))
  return {'iterations': length, 'bitwise_equal': equal, 'max_relative_difference': worst}


def main(argv):
  del argv
  config = FLAGS.config
  checks.check_config(config, jax.device_count())
  for length in map(int, FLAGS.lengths):
    if gans.n_critic_at(0, config) != gans.n_critic_at(length - 1, config):
      raise SystemExit(f'n_critic changes within {length} iterations: one call cannot hold them')
    print(json.dumps({'config': config.gan, 'device': jax.devices()[0].device_kind,
                      **compare(config, length)}), flush=True)


if __name__ == '__main__':
  app.run(main)
