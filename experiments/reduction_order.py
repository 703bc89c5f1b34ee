r"""How much a gradient moves with the order of the batch mean alone, on one device.

One critic gradient on one batch, computed whole (one device's order) and as the mean of 8
sub-batch gradients (8 devices' order: the same noise and interpolation weights, each
sub-batch's mean, then the mean over them, as pmean does), both on this one device under
vmap; and the same with the other convolution form. Prints one JSON line per config: per
gradient leaf, max |whole - split| relative to the leaf's largest entry (the worst leaf), and
the leaf. Differences here come from float32 rounding only: the two are the same sum.

  python experiments/reduction_order.py --config=configs/wgan_gp.py:digits,runlocal,size128
"""

import dataclasses
import json
import os
import sys

from absl import app, flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gan_jax import images, input_pipeline, steps  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'A config (as main.py takes it).')
flags.DEFINE_integer('splits', 8, 'Sub-batches (devices) of the split mean.')


def _gradient(gan, state, batch, key, splits: int):
  """The critic's gradient (an SGD step of rate 1 from the state), whole, or split when `gan`
  was built with an axis name (batch norm then pools its statistics over the splits)."""
  gan = dataclasses.replace(gan, critic_tx=optax.sgd(1.0))
  critic = state.critic.replace(opt_state=gan.critic_tx.init(state.critic.params))
  if gan.axis_name is None:
    new, _ = steps.critic_update(gan, state.gen, critic, batch, key)
  else:
    rows = jax.tree.map(lambda x: x.reshape(splits, -1, *x.shape[1:]), batch)
    update = lambda b: steps.critic_update(gan, state.gen, critic, b, key)[0]
    new = jax.vmap(update, axis_name=gan.axis_name)(rows)
    new = jax.tree.map(lambda x: x[0], new)
  return jax.tree.map(lambda a, b: a - b, critic.params, new.params)


def _term(gan, state, batch):
  """The gradient of the WGAN loss's real term, mean(D(real)), alone: the scale of the sums
  that cancel (against the fake term) in a leaf whose gradient is small."""
  real = images.to_signed(batch['image'])
  score = lambda p: jnp.mean(steps._apply(  # pylint: disable=protected-access
      gan.critic, p, state.critic.stats, real, train=True)[0][0])
  return jax.grad(score)(state.critic.params)


def _worst(a, b, term=None):
  """The leaf where |a - b| is largest relative to the leaf's largest |a|: that ratio, the
  leaf, |a - b|, |a|, and (`term`) the real term's largest entry in the leaf."""
  rows = []
  terms = jax.tree.leaves(term) if term is not None else [None] * len(jax.tree.leaves(a))
  for (path, x), y, t in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b), terms):
    x, y = np.asarray(x), np.asarray(y)
    diff, scale = float(np.max(np.abs(x - y))), float(np.max(np.abs(x)))
    row = {'relative': diff / max(scale, 1e-30), 'leaf': jax.tree_util.keystr(path),
           'abs_diff': diff, 'leaf_max': scale}
    if t is not None:
      row['real_term_max'] = float(np.max(np.abs(np.asarray(t))))
    rows.append(row)
  return max(rows, key=lambda r: r['relative'])


def main(argv):
  del argv
  config = FLAGS.config
  data = input_pipeline.load(config.dataset)
  out, gradients = {'config': config_flags.get_config_filename(FLAGS['config'])}, {}
  for conv in ('hybrid', 'xla'):
    config.model.conv_impl = conv  # (an MLP has no convolutions: the two are the same)
    gan = steps.build_gan(config, data.image_shape, data.num_classes)
    state = steps.init_state(gan, config.seed, data.image_shape)
    batch = input_pipeline.BatchStream(data, config.batch_size, config.seed).next(1)
    batch = jax.tree.map(lambda x: jnp.asarray(x[0]), batch)
    key = jax.random.PRNGKey(1)
    whole = jax.jit(lambda s, b: _gradient(gan, s, b, key, 1))(state, batch)
    split_gan = steps.build_gan(config, data.image_shape, data.num_classes, axis_name='split')
    split = jax.jit(lambda s, b: _gradient(split_gan, s, b, key, FLAGS.splits))(state, batch)
    term = jax.jit(lambda s, b: _term(gan, s, b))(state, batch)
    out[f'{conv}_whole_vs_split'] = _worst(whole, split, term)
    gradients[conv] = whole
  if len(gradients) == 2:
    out['hybrid_vs_xla'] = _worst(gradients['hybrid'], gradients['xla'])
  print(json.dumps(out), flush=True)


if __name__ == '__main__':
  app.run(main)
