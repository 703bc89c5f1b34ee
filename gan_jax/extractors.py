"""Feature extractors for evaluation, and the one table of the metrics they give.

Three extractors, any of them:
  * InceptionV3 (gan_jax/inception.py, `eval.inception_weights`): the standard `fid`,
    `inception_score`, `kid`, `precision`, `recall`, `density`, `coverage` and, for a
    conditional GAN, `intra_fid`, comparable with published numbers;
  * DINOv2 ViT-L/14 (gan_jax/dinov2.py, `eval.dinov2_weights`): `fd_dinov2` (Stein et al.
    2023's FD_DINOv2), `dinov2_kid`, `dinov2_precision`, `dinov2_recall`, `dinov2_density`,
    `dinov2_coverage` and `dinov2_intra_fid` in its feature space; it has no classes, so no
    score;
  * the project's domain classifier (gan_jax/classifier.py, `eval.classifier`): its penultimate
    layer gives `domain_fid`, `domain_kid`, `domain_precision`, `domain_recall`,
    `domain_density`, `domain_coverage` and `domain_intra_fid`, its class probabilities the
    `classifier_score` (the Inception Score formula) and ACGAN's `acgan_label_accuracy`. Works
    offline, where no Inception weights exist.
"""

import dataclasses
import hashlib
from typing import Any, Callable, Dict, List

import jax
import numpy as np

from gan_jax import classifier, dinov2, files, inception
from gan_jax.errors import ConfigError

# Metric names per extractor kind, by role: FID, the Inception Score formula (extractors with
# classes), KID, precision, recall, density, coverage, and the intra-FID (conditional GANs only:
# CONDITIONAL_ROLES).
NAMES = {
    'inception': dict(fid='fid', score='inception_score', kid='kid', precision='precision',
                      recall='recall', density='density', coverage='coverage',
                      intra_fid='intra_fid'),
    'dinov2': dict(fid='fd_dinov2', kid='dinov2_kid', precision='dinov2_precision',
                   recall='dinov2_recall', density='dinov2_density', coverage='dinov2_coverage',
                   intra_fid='dinov2_intra_fid'),
    'domain': dict(fid='domain_fid', score='classifier_score', kid='domain_kid',
                   precision='domain_precision', recall='domain_recall',
                   density='domain_density', coverage='domain_coverage',
                   intra_fid='domain_intra_fid'),
}
CONDITIONAL_ROLES = ('intra_fid',)        # per class: only a conditional GAN's samples have one
LABEL_ACCURACY = 'acgan_label_accuracy'   # the domain classifier's, on ACGAN's labels
# The distances; scores, precision, recall, density and coverage go up.
LOWER_IS_BETTER_ROLES = ('fid', 'kid', 'intra_fid')

# The one table of metrics: name -> whether lower is better (the best checkpoint's direction).
METRICS = {**{name: role in LOWER_IS_BETTER_ROLES
              for names in NAMES.values() for role, name in names.items()},
           LABEL_ACCURACY: False}


# Which field names each extractor's weights, in the order the extractors run.
WEIGHTS_FIELDS = {'inception': 'inception_weights', 'dinov2': 'dinov2_weights',
                  'domain': 'classifier'}


def configured(eval_config) -> List[str]:
  """The kinds of the extractors `eval_config` names, in WEIGHTS_FIELDS' order."""
  return [kind for kind, field in WEIGHTS_FIELDS.items() if eval_config[field]]


def best_metric(eval_config) -> str:
  """eval.best_metric, or by default the FID of the first extractor configured: Inception's
  when there are weights, else DINOv2's, else the domain classifier's."""
  if eval_config.best_metric:
    return eval_config.best_metric
  return NAMES[(configured(eval_config) or ['domain'])[0]]['fid']


def best_mode(name: str) -> str:
  """'min' or 'max': which way metric `name` improves; ConfigError for an unknown name."""
  if name not in METRICS:
    raise ConfigError(f'eval.best_metric {name!r} is not a metric; choose one of '
                      f'{", ".join(METRICS)}')
  return 'min' if METRICS[name] else 'max'


def computed_metrics(eval_config, conditional: bool = True) -> List[str]:
  """The metrics the extractors that `eval_config` names compute (without loading them); the
  label accuracy only for a `conditional` GAN."""
  names = [n for kind in configured(eval_config) for role, n in NAMES[kind].items()
           if conditional or role not in CONDITIONAL_ROLES]
  return names + ([LABEL_ACCURACY] if eval_config.classifier and conditional else [])


@dataclasses.dataclass(frozen=True)
class Extractor:
  """A feature network, and what its scores are reported with."""
  kind: str                 # a key of NAMES
  predict: Callable         # images [N, H, W, C] in [-1, 1] (or uint8), jax arrays on the
                            # device or numpy -> (probs [N, K], features [N, D]) as numpy
  feature_dim: int
  num_classes: int
  cache_key: str            # content hash of the weights: names the cached reference statistics
  info: Dict[str, Any]      # reported with every score
  resize: str = ''          # eval.resize of an extractor that resizes ('': takes images as
                            # they are): names the cached reference statistics too


def weights_hash(params) -> str:
  """Short content hash of a parameter tree (names, shapes, dtypes, values). Not of the files:
  Orbax writes timestamps and random chunk names, so each save of the same weights differs."""
  digest = hashlib.sha1()
  for path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(params))[0]:
    leaf = np.ascontiguousarray(leaf)
    digest.update(f'{jax.tree_util.keystr(path)} {leaf.dtype} {leaf.shape};'.encode())
    digest.update(leaf.tobytes())
  return digest.hexdigest()[:10]


def domain_extractor(config, image_shape) -> Extractor:
  """The domain classifier named by config.eval.classifier, checked against the data."""
  directory = config.eval.classifier
  params, meta = classifier.load(directory)
  if tuple(meta['image_shape']) != tuple(image_shape):
    raise ConfigError(f'the classifier in {directory} takes images of shape '
                      f'{tuple(meta["image_shape"])}, the data has {tuple(image_shape)}')
  # A run on files (dataset.path) has a name only for its defaults: the shape decides.
  if meta['dataset'] != config.dataset.name and not config.dataset.path:
    raise ConfigError(f'the classifier in {directory} was trained on '
                      f'{meta["dataset"]}, the run uses {config.dataset.name}')
  # What its test accuracy was measured on: a test split, or rows held out of the training
  # split (listed in a file beside it). A meta.json without 'test' does not say.
  path, test = files.absolute(directory), {}
  if 'test' in meta:
    rows = meta['test'].get('held_out_rows')   # only a held-out test has the file
    test = {'test': {**meta['test'], **({'held_out_rows': str(files.path(path) / rows)}
                                         if rows else {})}}
  return Extractor(
      'domain', classifier.predictor(params, meta['num_classes']),
      meta['feature_dim'], meta['num_classes'], weights_hash(params),
      {'path': path, 'test_accuracy': meta['test_accuracy'], **test})


def inception_extractor(config, image_shape) -> Extractor:
  """InceptionV3 with the weights file config.eval.inception_weights."""
  if image_shape[-1] not in (1, 3):
    raise ConfigError(f'Inception takes 1- or 3-channel images, the data has {image_shape}')
  path, method = config.eval.inception_weights, config.eval.resize
  variables, digest = inception.load(path)
  size = f'{inception.SIZE}x{inception.SIZE}'
  how = {'legacy': f'bilinear to {size}',
         'clean': f'bicubic, antialiased (PIL, clean-fid) to {size}'}[method]
  return Extractor(
      'inception', inception.predictor(variables, resize=method),
      inception.FEATURE_DIM, inception.NUM_CLASSES, digest,
      {'path': files.absolute(path), 'resize': how, 'resize_mode': method}, method)


def dinov2_extractor(config, image_shape) -> Extractor:
  """DINOv2 with the weights file config.eval.dinov2_weights."""
  if image_shape[-1] not in (1, 3):
    raise ConfigError(f'DINOv2 takes 1- or 3-channel images, the data has {image_shape}')
  path = config.eval.dinov2_weights
  variables, arch, digest = dinov2.load(path)
  return Extractor(
      'dinov2', dinov2.predictor(variables, arch), arch['width'], 0, digest,
      {'path': files.absolute(path), 'arch': dinov2.arch_name(arch),
       'features': 'CLS token after the final layer norm',
       'resize': f'bicubic (PIL) to {dinov2.SIZE}x{dinov2.SIZE}, ImageNet mean/std'})


def load_extractors(config, image_shape) -> List[Extractor]:
  """The extractors the eval config names, in WEIGHTS_FIELDS' order: Inception, DINOv2, the
  domain classifier."""
  load = {'inception': inception_extractor, 'dinov2': dinov2_extractor,
          'domain': domain_extractor}
  return [load[kind](config, image_shape) for kind in configured(config.eval)]
