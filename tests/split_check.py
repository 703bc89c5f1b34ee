"""Run by test_multidevice.py with 8 simulated CPU devices: the FLOPs per device of a config's
compiled training call (XLA's cost analysis) on 1 device and on the 8 of a jit mesh, to show
that the 8 split the batch's work (a pass computed whole on every device would not).

Arguments: SPEC@BATCH[@KEY=VALUE,...] (load_config's overrides: integers, else strings). Prints one line per
argument: 'SPEC FLOPS_1 FLOPS_8'.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # pylint: disable=g-import-not-at-top

from conftest import load_config  # pylint: disable=g-import-not-at-top
from gan_jax import input_pipeline, schedule  # pylint: disable=g-import-not-at-top
from gan_jax.stepper import Stepper  # pylint: disable=g-import-not-at-top


def call_flops(config, devices) -> float:
  spec = input_pipeline.spec(config.dataset)
  stepper = Stepper(config, spec.image_shape, spec.num_classes, devices=devices)
  length, n_critic = schedule.largest_call(config)
  compiled = stepper.lower(length, n_critic, config.batch_size, spec.image_dtype,
                           spec.num_classes > 0).compile()
  return compiled.cost_analysis()['flops']


def main():
  assert jax.device_count() == 8, jax.devices()
  for arg in sys.argv[1:]:
    spec, batch, *overrides = arg.split('@')
    pairs = [kv.split('=') for o in overrides for kv in o.split(',')]
    config = load_config(spec, batch_size=int(batch),
                         **{k: int(v) if v.isdigit() else v for k, v in pairs})
    one = config.copy_and_resolve_references()
    one.seed_shards = 0   # one device: its members all on it
    print(spec, call_flops(one, jax.devices()[:1]), call_flops(config, jax.devices()),
          flush=True)


if __name__ == '__main__':
  main()
