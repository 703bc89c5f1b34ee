"""Each evaluation's protocol card, and one table of several runs scored on the same protocol.

A score means something only with how it was measured. Every `--mode=eval` result carries, beside
its scores, what fixed them:
  * `extractors`: each feature network's kind, weights file, `weights_hash` (a content hash of
    the weights, which also names the cached reference statistics) and resize;
  * `reference`: the TFDS name (and data_dir) or the files' path, the split, the images used
    (`count`), and for a conditional GAN the images of each class (`class_counts`);
  * the samples: `num_samples`, `seed` (the run's seed, whose evaluation stream draws z and
    labels; a list with num_seeds > 1), `class_counts` (a conditional GAN's samples per class),
    `truncation` where z was truncated, the checkpoint `step` and the `generator` ('ema' or
    'raw').

`python main.py --workdir=A --mode=eval --compare=B,C` scores the runs A, B and C on one
protocol: B and C are scored with A's evaluation settings (A's config with the command's
overrides), after a check that their reference images are A's; a markdown table of the scores
comes before the JSON line.
"""

from typing import Any, Dict, List, Optional, Sequence

from gan_jax import extractors, files, input_pipeline, seeds

# The dataset fields that decide which images the reference statistics are of.
REFERENCE_FIELDS = ('name', 'path', 'data_dir', 'image_size', 'channels', 'float_range',
                    'image_key')


def reference_source(config) -> Dict[str, Any]:
  """The dataset fields that decide the reference images of `config`'s evaluations."""
  data = input_pipeline.settled(config.dataset)
  source = {field: data[field] for field in REFERENCE_FIELDS}
  for field in ('path', 'data_dir'):
    if source[field]:
      source[field] = files.absolute(source[field])
  return source


def with_eval_of(config, first):
  """A copy of `config` (another run's) with the `eval` settings of `first`."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.eval = first.eval.copy_and_resolve_references()
  return config


def mismatch(first, other) -> Optional[str]:
  """What differs between the reference images of two runs' configs, or None."""
  a, b = reference_source(first), reference_source(other)
  for field in REFERENCE_FIELDS:
    if a[field] != b[field]:
      return f'dataset.{field} {a[field]!r} against {b[field]!r}'
  return None


def _cell(result: Dict[str, Any], name: str) -> str:
  if name not in result:
    return '—'
  value = result[name]
  if isinstance(value, str):
    return value
  spread = result.get(name + seeds.SPREAD)
  return f'{value:.4g}' + (f' ± {spread:.2g}' if spread is not None else '')


def columns(results: Sequence[Dict[str, Any]]) -> List[str]:
  """The scores of the table: every metric (extractors.METRICS' order) some result has."""
  return [name for name in extractors.METRICS if any(name in r for r in results)]


def table(names: Sequence[str], results: Sequence[Dict[str, Any]]) -> str:
  """A markdown table: one row per run (`names`), its step, generator and scores (± the seed
  spread with num_seeds > 1; — where a run has no such score)."""
  metrics = columns(results)
  head = ['run', 'step', 'generator', *metrics]
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for name, result in zip(names, results):
    cells = [name, str(result.get('step', '—')), result.get('generator', '—')]
    lines.append('| ' + ' | '.join(cells + [_cell(result, m) for m in metrics]) + ' |')
  return '\n'.join(lines)
