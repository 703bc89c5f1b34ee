"""What each evaluation metric costs on this machine: every extractor's seconds per 1000 images,
and each metric's seconds from features at the eval config's sizes (by default 10,000 samples,
KID's 100 subsets of 1000, precision/recall and density/coverage on 5000 per side, and
intra-FID over 10 classes).

  python experiments/eval_cost.py --image_shape=28,28,1 --classifier=classifiers/fashion_mnist
  python experiments/eval_cost.py --image_shape=28,28,1 --random_weights=/tmp/w   # Inception
      # and DINOv2 ViT-L/14 with random weights written there (the cost is the weights' shapes')

Prints one JSON line: `extract` (kind -> seconds per 1000 images, after a first batch that
compiles; `compile_seconds` beside it) and `metrics` (kind -> metric -> seconds, on random
features of the extractor's width: the metrics' cost depends on the sizes only). What an
evaluation costs is then about num_samples / 1000 times each extractor's rate (plus generating
the samples), the reference's statistics once (cached), and the metrics' seconds.
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _random_weights(directory: str) -> dict:
  """Inception and DINOv2 ViT-L/14 weight files of random values (their shapes: what costs)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from gan_jax import dinov2, inception  # pylint: disable=g-import-not-at-top
  os.makedirs(directory, exist_ok=True)
  paths = {'inception': os.path.join(directory, 'inception_random.npz'),
           'dinov2': os.path.join(directory, 'dinov2_vitl14_random.npz')}
  if not os.path.exists(paths['inception']):
    rng = np.random.default_rng(0)
    inception.save(paths['inception'], {
        k: rng.normal(size=s).astype(np.float32) * 0.01
        for k, s in inception._expected_shapes().items()})  # pylint: disable=protected-access
  if not os.path.exists(paths['dinov2']):
    arch = dinov2.VIT_L14
    variables = jax.device_get(dinov2.Dinov2(**arch).init(
        jax.random.PRNGKey(0), jnp.zeros((1, arch['patch'], arch['patch'], 3), jnp.float32)))
    dinov2.save(paths['dinov2'], variables, arch)
  return paths


def _seconds(fn, repeat: int = 1) -> float:
  start = time.perf_counter()
  for _ in range(repeat):
    fn()
  return (time.perf_counter() - start) / repeat


def time_extractors(config, image_shape, images: int, batch: int) -> dict:
  """kind -> {'seconds_per_1000', 'compile_seconds', 'feature_dim'} on random images."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from gan_jax import extractors  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  out = {}
  for ext in extractors.load_extractors(config, image_shape):
    x = rng.uniform(-1, 1, (batch, *image_shape)).astype(np.float32)
    first = _seconds(lambda: ext.predict(x))   # compiles
    rounds = max(1, images // batch)
    rate = _seconds(lambda: ext.predict(x), rounds) / batch
    out[ext.kind] = {'seconds_per_1000': round(rate * 1000, 3),
                     'compile_seconds': round(max(first - rate * batch, 0.0), 2),
                     'feature_dim': ext.feature_dim, 'images_timed': rounds * batch}
  return out


def time_metrics(ev, dims: dict, num_classes: int) -> dict:
  """kind -> metric -> seconds, each metric on random features of that width."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from gan_jax import evaluator, feature_metrics  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  keep = max(ev.kid_subset_size, ev.pr_samples)
  out = {}
  for kind, dim in dims.items():
    real = rng.normal(size=(ev.num_samples, dim)).astype(np.float32)
    fake = rng.normal(size=(ev.num_samples, dim)).astype(np.float32) + 0.1
    labels = rng.integers(0, num_classes, ev.num_samples)
    stats = {}
    for name, x in (('real', real), ('fake', fake)):
      stats[name] = feature_metrics.FeatureStats(dim)
      stats[name].update(x)
    classes = {}
    for name, x in (('real', real), ('fake', fake)):
      classes[name] = feature_metrics.ClassStats(dim, num_classes)
      classes[name].update(x, labels)
    costs = {
        'statistics_of_the_samples': _seconds(
            lambda: feature_metrics.FeatureStats(dim).update(fake)),  # pylint: disable=cell-var-from-loop
        'fid': _seconds(lambda: feature_metrics.fid(stats['real'], stats['fake'])),  # pylint: disable=cell-var-from-loop
        'kid': _seconds(lambda: feature_metrics.kid(  # pylint: disable=cell-var-from-loop
            real[:keep], fake[:keep], ev.kid_subsets, ev.kid_subset_size, seed=0)),
        'precision_recall_density_coverage': _seconds(
            lambda: feature_metrics.nearest_neighbour_metrics(  # pylint: disable=cell-var-from-loop
                real[:ev.pr_samples], fake[:ev.pr_samples], evaluator.K_NEAREST, ev.dc_k)),
        f'intra_fid_{num_classes}_classes': _seconds(
            lambda: feature_metrics.intra_fid(classes['real'], classes['fake'])),  # pylint: disable=cell-var-from-loop
    }
    out[kind] = {name: round(seconds, 3) for name, seconds in costs.items()}
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--image_shape', default='28,28,1', help='H,W,C of the images scored')
  parser.add_argument('--dataset', default='fashion_mnist', help="the classifier's dataset")
  parser.add_argument('--classifier', default='', help='a domain classifier directory')
  parser.add_argument('--inception', default='', help='Inception weights (.npz)')
  parser.add_argument('--dinov2', default='', help='DINOv2 weights (.npz)')
  parser.add_argument('--random_weights', default='',
                      help='write random Inception and DINOv2 ViT-L/14 weights here and use them')
  parser.add_argument('--kinds', default='inception,dinov2,domain',
                      help='the extractors to time, of those with weights')
  parser.add_argument('--images', type=int, default=200, help='images timed per extractor')
  parser.add_argument('--batch', type=int, default=50, help='images per predict call')
  parser.add_argument('--classes', type=int, default=10, help='classes of the intra-FID')
  for name in ('num_samples', 'kid_subsets', 'kid_subset_size', 'pr_samples'):
    parser.add_argument(f'--{name}', type=int, default=0, help=f"eval.{name} (0: the default)")
  args = parser.parse_args()
  import jax  # pylint: disable=g-import-not-at-top
  from configs import common  # pylint: disable=g-import-not-at-top
  image_shape = tuple(int(s) for s in args.image_shape.split(','))
  config = common.base_config('dcgan', args.dataset)
  weights = _random_weights(args.random_weights) if args.random_weights else {}
  kinds = set(args.kinds.split(','))
  if 'inception' in kinds:
    config.eval.inception_weights = args.inception or weights.get('inception', '')
  if 'dinov2' in kinds:
    config.eval.dinov2_weights = args.dinov2 or weights.get('dinov2', '')
  if 'domain' in kinds:
    config.eval.classifier = args.classifier
  for name in ('num_samples', 'kid_subsets', 'kid_subset_size', 'pr_samples'):
    if getattr(args, name):
      config.eval[name] = getattr(args, name)
  extract = time_extractors(config, image_shape, args.images, args.batch)
  dims = {kind: e['feature_dim'] for kind, e in extract.items()}
  metrics = time_metrics(config.eval, dims, args.classes)
  print(json.dumps({'image_shape': image_shape, 'backend': jax.default_backend(),
                    'devices': jax.device_count(), 'num_samples': config.eval.num_samples,
                    'kid_subsets': config.eval.kid_subsets,
                    'kid_subset_size': config.eval.kid_subset_size,
                    'pr_samples': config.eval.pr_samples, 'extract': extract,
                    'metrics': metrics}))


if __name__ == '__main__':
  main()
