"""Run by test_multidevice.py with 8 simulated CPU devices: 1-device training against 8 devices
with jit over a mesh, with pmap, and with several iterations per call; and N seeds at once on 8
devices (mode seeds_N) against N separate 1-device runs.

Prints one line per config and mode: 'SPEC MODE max_abs_diff max_abs_gen_param
max_leafwise_relative_diff'.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from conftest import load_config  # pylint: disable=g-import-not-at-top
from gan_jax import gans, input_pipeline, schedule, seeds  # pylint: disable=g-import-not-at-top
from gan_jax.stepper import Stepper  # pylint: disable=g-import-not-at-top


def train_on(devices, config, steps):
  """`steps` iterations the way the training loop runs them (schedule.call_length)."""
  data = input_pipeline.load(config.dataset)
  stepper = Stepper(config, data.image_shape, data.num_classes, devices=devices)
  stream = seeds.stream(data, config)
  state, done = stepper.init(), 0
  while done < steps:
    k = schedule.call_length(done, config)
    n = gans.n_critic_at(done, config)
    state, metrics, _ = stepper.train(state, [stream.next(n) for _ in range(k)])
    assert metrics['critic_loss'].shape == (k,) + ((config.num_seeds,) if config.num_seeds > 1
                                                   else ())
    done += k
  return state


MODES = {  # name -> config overrides, on all 8 devices
    'jit': {},
    'pmap': {'parallelism': 'pmap'},
    'jit_steps_per_call_2': {'steps_per_call': 2},
}
BASE = {'log_every': 4, 'steps_per_call': 1}  # the 1-device run: one iteration per call
# Overrides of both runs, by a suffix of the mode. 'tiny_lr': Adam's first updates are +-lr
# whatever a gradient's size, so rounding-level gradients (a bias before batch norm, whose
# gradient is zero but for rounding) move parameters by up to 2 lr either way, and the next
# gradients are taken elsewhere; a tiny lr keeps both runs at one point, so what is compared
# is the gradients of 1 and 8 devices.
TINY_LR = {'gen_optimizer__learning_rate': 1e-7, 'critic_optimizer__learning_rate': 1e-7}
BOTH = {'tiny_lr': TINY_LR,
        # ... from seed 1: seed 0's BigGAN runlocal puts an input of one of G's ReLUs at its
        # kink, which 1 and 8 devices' float32 sums put on either side; batch norm carries
        # that unit into every gradient (G's Adam moments 4.4e-3 apart under pmap; 1e-6 from
        # seeds 1 and 2)
        'tiny_lr_seed1': {**TINY_LR, 'seed': 1},
        # The modern toolkit: every option at once, and R1 (lazy) with the rest.
        'toolkit': {'model__conditional': 'projection', 'loss__adversarial': 'hinge',
                    'model__spectral_norm': True, 'model__gen_spectral_norm': True,
                    'model__critic_norm': 'none', 'ema__decay': 0.9,
                    'augment__policy': 'color,translation,cutout',
                    'loss__lecam_weight': 0.3, 'loss__lecam_start_step': 0},
        'r1': {'loss__lipschitz': 'r1', 'loss__r1_every': 2, 'n_critic': 2,
               'loss__adversarial': 'least_squares', 'augment__policy': 'translation,cutout'},
        # StyleGAN2 under pmap: G's noise inputs fixed (each device draws its own otherwise),
        # and minibatch std over groups of 1 (a constant): its groups are of a device's rows
        # under pmap, as the official code's are of a GPU's, so 8 devices take other groups
        'sg2_pmap': {'model__noise_mode': 'const', 'model__mbstd_group_size': 1},
        # ReACGAN's data-to-data cross-entropy: a loss of the whole batch (gathered under pmap)
        'd2d': {'loss__class_loss': 'd2d', 'model__class_embed_dim': 16},
        # The bfloat16 products: oneMKL's (gan_jax/mkl_gemm.py, a custom call with no sharding
        # rule, which jit over the mesh runs on whole, gathered, operands) and XLA's own
        # (layers.xla_bf16_matmul, plain dots that the mesh shards). Where the float32 rest of
        # the step differs between 1 and 8 devices in its last bits (on an AMD EPYC: 5e-7),
        # rounding the products' operands to bfloat16 turns that into whole bfloat16 units, and
        # Adam's first updates (+-lr) carry them on: hence tiny_lr's learning rates here too.
        'mkl': {**TINY_LR, 'model__conv_impl': 'mkl'},
        'bf16': {**TINY_LR, 'model__conv_impl': 'bf16'},
        # ADA with R1: p from 0.5 moving by 0.1 after every 2nd critic update (signs pmean'd)
        'ada': {'loss__lipschitz': 'r1', 'loss__r1_every': 2, 'n_critic': 2,
                'loss__adversarial': 'nonsaturating', 'augment__ada': 'bgc',
                'augment__ada_p': 0.5, 'augment__ada_interval': 2, 'augment__ada_kimg': 0.32}}


def main():
  assert jax.device_count() == 8, jax.devices()
  spec_modes = [arg.split('@', 1) for arg in sys.argv[1:]]  # 'SPEC@mode,mode[@both]'
  ones = {}  # (spec, both, seed) -> the 1-device run, trained once for every mode

  def one_run(spec, both, seed):
    if (spec, both, seed) not in ones:
      base = {**BASE, **BOTH.get(both, {}), 'seed': seed}
      ones[spec, both, seed] = train_on(jax.devices()[:1], load_config(spec, **base), 2)
    return ones[spec, both, seed]

  for spec, modes in spec_modes:
    for token in modes.split(','):
      mode, _, both = token.partition('@')
      base = {**BASE, **BOTH.get(both, {})}
      first = base.get('seed', 0)  # member k's seed is first + k (seeds.member_seeds)
      if mode.startswith('seeds_'):  # N members on 8 devices against N separate 1-device runs
        n = int(mode.split('_')[1])
        one = seeds.stack([one_run(spec, both, first + k) for k in range(n)])
        eight = train_on(jax.devices(), load_config(spec, **base, num_seeds=n), 2)
        kernel = max(jax.tree.leaves(eight.gen.params), key=lambda x: x.size)  # [N, ...]
        shards = 8 if n == 8 else n if n == 4 else 1   # auto: N when it divides 8
        assert len(kernel.sharding.device_set) == 8
        assert len({tuple(map(str, i)) for i in kernel.sharding.devices_indices_map(
            kernel.shape).values()}) == shards, kernel.sharding
      else:
        one = one_run(spec, both, first)
        eight = train_on(jax.devices(), load_config(spec, **{**base, **MODES[mode]}), 2)
      for run in (one, eight):  # NaN would compare as no difference
        assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(run)
                   if np.issubdtype(np.asarray(x).dtype, np.inexact)), (spec, token)
      scale = max(float(np.max(np.abs(np.asarray(a)))) for a in jax.tree.leaves(one.gen.params))
      if mode == 'jit':
        assert len(jax.tree.leaves(eight.gen.params)[0].sharding.device_set) == 8
      assert int(eight.step) == 2
      diffs = [float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
               for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(eight), strict=True)]
      # Leafwise, relative to the leaf's scale (Adam's second moments of penalised critics
      # reach ~100, where float32 sums that differ by an ulp differ by ~1e-3).
      relative = [d / max(1.0, float(np.max(np.abs(np.asarray(a))))) for d, a in
                  zip(diffs, jax.tree.leaves(one), strict=True)]
      # LeCam's anchors, means of the critic's outputs, are near 0 early on: relative to their
      # own size (a device's mean in place of the global batch's shows there, not above).
      relative += [float(np.max(np.abs(np.asarray(a) - np.asarray(b)) /
                                np.maximum(np.abs(np.asarray(a)), 1e-6)))
                   for a, b in zip(jax.tree.leaves((one.lecam, one.ada)),
                                   jax.tree.leaves((eight.lecam, eight.ada)),
                                   strict=True)]
      print(spec, token, max(diffs), scale, max(relative), flush=True)


if __name__ == '__main__':
  main()
