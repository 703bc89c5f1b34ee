"""A small domain classifier: the offline feature extractor for evaluation.

Where InceptionV3 weights cannot be had (offline machines, CI), a CNN trained by the project on
the real training data gives a domain FID (its penultimate layer as features), a classifier
score (the Inception Score formula on its class probabilities) and ACGAN's label accuracy.
Scores from it compare runs with each other, not with published Inception numbers.

  python -m gan_jax.tools.train_classifier --dataset=fashion_mnist \
      --path=/usr/share/datasets/fashion-mnist --out=classifiers/fashion_mnist

Where the data has no test split, `held_out_rows` picks the rows its test accuracy is measured on.
"""

import functools
import json
from typing import Any, Callable, Dict, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from gan_jax import files, images as images_lib, sharding
from gan_jax.errors import ConfigError

FEATURE_DIM = 128


class Classifier(nn.Module):
  """conv-conv-pool x 2, a 128-unit feature layer, and the class logits."""
  num_classes: int
  feature_dim: int = FEATURE_DIM

  @nn.compact
  def __call__(self, x) -> Tuple[jax.Array, jax.Array]:
    """Images [B, H, W, C] in [-1, 1] -> (logits [B, K], features [B, feature_dim])."""
    for width in (32, 64):
      x = nn.relu(nn.Conv(width, (3, 3))(x))
      x = nn.relu(nn.Conv(width, (3, 3))(x))
      x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    features = nn.relu(nn.Dense(self.feature_dim)(x.reshape(x.shape[0], -1)))
    return nn.Dense(self.num_classes)(features), features


def train(images, labels, num_classes: int, epochs: int = 3, batch_size: int = 128,
          learning_rate: float = 1e-3, seed: int = 0, log=print):
  """Adam on softmax cross-entropy; returns the parameters."""
  model = Classifier(num_classes)
  params = model.init(jax.random.PRNGKey(seed), images_lib.to_signed(images[:1]))['params']
  tx = optax.adam(learning_rate)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x, y):
    def loss_fn(p):
      logits, _ = model.apply({'params': p}, images_lib.to_signed(x))
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng(seed)
  for epoch in range(epochs):
    order = rng.permutation(len(images))
    losses = []
    for start in range(0, len(order) - batch_size + 1, batch_size):
      idx = order[start:start + batch_size]
      params, opt_state, loss = step(params, opt_state, images[idx], labels[idx])
      losses.append(loss)
    log(f'epoch {epoch + 1}: train loss {float(np.mean(jax.device_get(losses))):.4f}')
  return params


def held_out_rows(labels: Optional[np.ndarray], count: int, fraction: float,
                  seed: int) -> np.ndarray:
  """The rows (sorted) of a split of `count` images held out for the test: per class, a seeded
  random round(fraction * its size) of its rows (at least one, and never all of a class);
  without labels, round(fraction * count) rows drawn from all of them."""
  rng = np.random.default_rng(seed)
  if labels is None:
    return np.sort(rng.permutation(count)[:min(count - 1, max(1, round(fraction * count)))])
  rows = []
  for label in np.unique(labels):
    members = np.flatnonzero(labels == label)
    take = min(len(members) - 1, max(1, round(fraction * len(members))))
    rows.append(rng.permutation(members)[:take])
  return np.sort(np.concatenate(rows))


@functools.lru_cache()
def make_apply(num_classes: int):
  """jit-compiled (params, images in [-1, 1] or uint8) -> (class probabilities, features); one
  per class count, so it compiles once per shape."""
  model = Classifier(num_classes)

  @jax.jit
  def apply(params, images):
    logits, features = model.apply({'params': params}, images_lib.to_signed(images))
    return jax.nn.softmax(logits), features
  return apply


def predictor(params, num_classes: int, batch_size: int = 500,
              devices=None) -> Callable[[Any], Tuple[np.ndarray, np.ndarray]]:
  """images [N, H, W, C] (jax or numpy; [-1, 1] or uint8) -> (probs [N, K], features [N, D]) as
  numpy, in batches split over `devices` (default: this process's). The parameters are placed
  on the devices once, here."""
  mesh = sharding.make_mesh(jax.local_devices() if devices is None else devices)
  params, apply = sharding.replicate(params, mesh), make_apply(num_classes)
  return lambda images: sharding.map_batches(apply, params, images, batch_size, mesh)


def predict(params, num_classes: int, images, batch_size: int = 500):
  """(probs [N, K], features [N, D]) as numpy, in batches split over the local devices."""
  return predictor(params, num_classes, batch_size)(images)


def save(directory: str, params, meta: Dict[str, Any]) -> None:
  """Orbax checkpoint of the parameters plus meta.json (dataset, accuracy, shapes) in
  `directory` (local or gs://)."""
  directory = files.path(files.absolute(directory))
  directory.mkdir(parents=True, exist_ok=True)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(directory / 'params', params, force=True)
  files.write_text(directory / 'meta.json', json.dumps(meta, indent=2))


def load(directory: str) -> Tuple[Any, Dict[str, Any]]:
  """(params, meta) of a classifier saved by `save`; ConfigError when there is none."""
  directory = files.path(files.absolute(directory))
  meta_path = directory / 'meta.json'
  if not meta_path.exists():
    raise ConfigError(f'no classifier in {directory}: train one with '
                      f'python -m gan_jax.tools.train_classifier, or set eval.classifier')
  meta = json.loads(meta_path.read_text())
  target = jax.eval_shape(lambda: Classifier(meta['num_classes']).init(
      jax.random.PRNGKey(0), jnp.zeros((1, *meta['image_shape']), jnp.float32))['params'])
  # Onto this process's first device (the predictor places them on the others): the devices
  # that saved them may belong to another process, or not exist here.
  here = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=here), target)
  with ocp.StandardCheckpointer() as ckptr:
    params = ckptr.restore(directory / 'params', target)
  return params, meta
