"""Run by test_multidevice.py with 8 simulated CPU devices: 1-device vs 8-device training.

Prints one line per config: 'SPEC max_abs_diff max_abs_param'.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from conftest import load_config  # pylint: disable=g-import-not-at-top
from gan_jax import input_pipeline, sharding, train, variants  # pylint: disable=g-import-not-at-top


def train_on(devices, config, steps):
  run = train.Run(config, '/unused', devices=devices)
  stream = input_pipeline.BatchStream(run.data, config.batch_size, config.seed)
  state = run.init_fn()
  batch_sh = sharding.batch_sharding(run.mesh)
  for _ in range(steps):
    n = variants.n_critic_at(int(state.step), config)
    state, _ = run.step_fn(state, sharding.to_global(stream.next(n), batch_sh))
  return state


def main():
  assert jax.device_count() == 8, jax.devices()
  for spec in sys.argv[1:]:
    config = load_config(spec)
    one = train_on(jax.devices()[:1], config, 2)
    eight = train_on(jax.devices(), config, 2)
    assert len(eight.gen_params['Dense_0']['kernel'].sharding.device_set) == 8
    diffs = [float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
             for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(eight))]
    scale = max(float(np.max(np.abs(np.asarray(a)))) for a in jax.tree.leaves(one.gen_params))
    print(spec, max(diffs), scale, flush=True)


if __name__ == '__main__':
  main()
