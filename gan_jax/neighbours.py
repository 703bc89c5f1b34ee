"""Nearest training images of samples: the memorisation check (--mode=sample --neighbours=K).

Each sample's K nearest images of the run's reference split (eval.reference_split, read by the
loader the evaluator uses: `evaluator.reference_data`), by Euclidean distance in one feature
space: the first extractor the eval config names (Inception with eval.inception_weights, else
the domain classifier with eval.classifier: the extractor of the default best metric), or the
pixels in [0, 1] when it names none. The reference images are read and embedded 1000 at a
time, and each chunk's distances folded into a running top K, so a split of any size never
needs its whole distance matrix (memory: samples x chunk).
"""

import dataclasses
import json
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import jax
import numpy as np

from gan_jax import evaluator, extractors, files, images, input_pipeline
from gan_jax.errors import ConfigError

CHUNK = 1000      # reference images read, embedded and compared at a time
GRID_ROWS = 32    # samples the PNG shows, in order (the JSON has every sample)
EXACT_BLOCK = 4_000_000   # float64 differences held at once for the candidates' distances


@dataclasses.dataclass(frozen=True)
class Space:
  """A feature space to measure distances in."""
  name: str                  # 'inception', 'domain' (an extractor's kind) or 'pixel'
  of_samples: Callable       # samples in [0, 1] [n, H, W, C] -> features [n, D]
  of_data: Callable          # the data's images (uint8, or float in [-1, 1]) -> [n, D]
  features: str              # what the distances are between, in words
  info: Dict[str, Any]       # the extractor's weights, reported with the distances


def pixel_space() -> Space:
  """The pixels in [0, 1] (the range of the sample .npz and the PNGs) as [n, H*W*C]."""
  return Space('pixel', lambda x: np.asarray(x, np.float32).reshape(len(x), -1),
               lambda x: images.to_unit(images.to_signed(np.asarray(x))).reshape(len(x), -1),
               'pixels in [0, 1]', {})


FEATURES = {'inception': "Inception's pool3 features",
            'domain': "the domain classifier's penultimate features"}


def extractor_space(ext: extractors.Extractor) -> Space:
  """The features of `ext` (those its FID takes)."""
  return Space(ext.kind, lambda x: ext.predict(images.from_unit(np.asarray(x, np.float32)))[1],
               lambda x: ext.predict(x)[1], FEATURES[ext.kind], dict(ext.info))


def space_of(config, image_shape) -> Space:
  """The first extractor the eval config names (extractors.load_extractors: Inception, then
  the domain classifier), else the pixels."""
  loaded = extractors.load_extractors(config, image_shape)
  return extractor_space(loaded[0]) if loaded else pixel_space()


def _embed(fn: Callable, images_: np.ndarray, batch: int = 256) -> np.ndarray:
  return np.concatenate([np.asarray(fn(images_[i:i + batch]), np.float64)
                         for i in range(0, len(images_), batch)])


def nearest(queries: np.ndarray, chunks: Iterable[Tuple[int, np.ndarray]],
            k: int) -> Tuple[np.ndarray, np.ndarray]:
  """The `k` nearest rows of a reference set, given in chunks, to each query.

  Args:
    queries: [n, D] features.
    chunks: (offset, features [m, D]) pairs: the reference rows offset, offset + 1, ...
    k: neighbours per query (the reference set has at least k rows).

  Returns:
    (indices [n, k] int64 into the reference set, Euclidean distances [n, k] float64), nearest
    first; equal distances in the order of the rows. Candidates come from the expanded
    |q|^2 + |r|^2 - 2 q.r, and their distances are then computed as |q - r| itself, so an exact
    copy is at distance 0.
  """
  queries = np.asarray(queries, np.float64)
  n = len(queries)
  best_index = np.zeros((n, 0), np.int64)
  best_distance = np.zeros((n, 0), np.float64)
  query_norms = np.einsum('nd,nd->n', queries, queries)
  for offset, features in chunks:
    features = np.asarray(features, np.float64)
    squared = (query_norms[:, None] + np.einsum('md,md->m', features, features)[None]
               - 2.0 * queries @ features.T)                               # [n, m]
    take = min(k, features.shape[0])
    rows = np.argpartition(squared, take - 1, axis=1)[:, :take]             # [n, take]
    block = max(1, EXACT_BLOCK // (take * features.shape[1]))   # [block, take, D] at a time
    distance = np.concatenate([
        np.linalg.norm(queries[i:i + block, None, :] - features[rows[i:i + block]], axis=-1)
        for i in range(0, n, block)])
    index = np.concatenate([best_index, rows + offset], axis=1)
    distance = np.concatenate([best_distance, distance], axis=1)
    order = np.lexsort((index, distance), axis=1)[:, :k]
    best_index = np.take_along_axis(index, order, axis=1)
    best_distance = np.take_along_axis(distance, order, axis=1)
  return best_index, best_distance


def find(space: Space, samples: np.ndarray, data_images, k: int,
         chunk: int = CHUNK) -> Tuple[np.ndarray, np.ndarray]:
  """`nearest` of `samples` (in [0, 1]) among `data_images` (an array, or a streamed one),
  embedded `chunk` at a time."""
  def chunks():
    for start in range(0, len(data_images), chunk):
      rows = np.arange(start, min(start + chunk, len(data_images)))
      yield start, _embed(space.of_data, data_images[rows])
  return nearest(_embed(space.of_samples, samples), chunks(), k)


def grid(samples: np.ndarray, data_images, indices: np.ndarray,
         rows: int = GRID_ROWS) -> np.ndarray:
  """A [H', W', C] grid in [0, 1]: one row per sample (the first `rows`), the sample first,
  then its neighbours, nearest first."""
  cells = []
  for sample, row in zip(samples[:rows], indices[:rows]):
    neighbours = images.to_unit(images.to_signed(np.asarray(data_images[np.asarray(row)])))
    cells += [sample, *neighbours]
  return images.make_grid(np.stack(cells), ncol=indices.shape[1] + 1)


class Reference:
  """The reference split and feature space of --neighbours; building one checks what can
  refuse (the extractor, the split, the shape, k against the image count) before any write."""

  def __init__(self, config, image_shape, k: int):
    self.k = k
    self.space = space_of(config, image_shape)
    data_config = evaluator.reference_data(config)
    input_pipeline.check_split(config.dataset, data_config.split, 'eval.reference_split')
    shape = tuple(input_pipeline.spec(data_config).image_shape)
    if shape != tuple(image_shape):
      raise ConfigError(f'the reference images (eval.reference_split {data_config.split!r}) '
                        f'have shape {shape}, the generator makes {tuple(image_shape)}')
    self.data = input_pipeline.load(data_config)
    count = len(self.data.images)
    if k > count:
      raise ConfigError(f'--neighbours {k} is more than the {count} reference images '
                        f'(eval.reference_split {data_config.split!r})')
    self.reference = evaluator.reference(config, count)

  def write(self, out: str, samples: np.ndarray, labels: Optional[np.ndarray]
            ) -> Dict[str, Any]:
    """Finds the neighbours of `samples` (in [0, 1]; `labels`: those they were asked for) and
    writes OUT_neighbours.png (`grid`) and OUT_neighbours.json beside `out` (the .npz): per
    sample (the .npz's rows), its neighbours' rows in the reference split (in the order the
    loader reads it), their distances and, where the data has them, their labels. Returns what
    the JSON line says of them."""
    indices, distances = find(self.space, samples, self.data.images, self.k)
    stem = files.path(out).with_suffix('')
    png, path = f'{stem}_neighbours.png', f'{stem}_neighbours.json'
    closest = distances[:, 0]
    summary = {'png': png, 'json': path, 'space': self.space.name, 'k': self.k,
               'nearest_distance_min': float(closest.min()),
               'nearest_distance_median': float(np.median(closest))}
    if jax.process_index() > 0:   # every process searched; process 0 writes
      return summary
    record = {'space': self.space.name,
              **({'extractor': self.space.info} if self.space.info else {}),
              'distance': f'Euclidean, between {self.space.features}', 'k': self.k,
              'reference': self.reference, 'samples': str(out),
              'png_rows': min(len(samples), GRID_ROWS),
              'indices': indices.tolist(), 'distances': distances.tolist()}
    if labels is not None:
      record['sample_labels'] = np.asarray(labels).tolist()
    if self.data.labels is not None:
      record['neighbour_labels'] = np.asarray(self.data.labels)[indices].tolist()
    images.save_png(grid(samples, self.data.images, indices), png, scale=2)
    files.write_text(path, json.dumps(record))
    return summary
