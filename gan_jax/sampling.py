"""Images from a generator: the fixed grid of a run, batches of samples (for files and
evaluators), and the sample files of --mode=sample. Everything here takes a Stepper and a state;
nothing needs training data.
"""

import io
import time
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import files, images, seeds, updates
from gan_jax.stepper import Stepper

# Named PRNG streams of a run's seed that are not training: the TensorBoard grid's fixed z,
# --mode=sample's samples, the evaluators' samples, and --mode=interpolate's keyframes.
# Training splits PRNGKey(seed) itself (gan_jax/updates.py); these are folded in, so no stream
# of one seed is a stream of another.
GRID_STREAM, SAMPLE_STREAM, EVAL_STREAM, INTERPOLATE_STREAM = 1, 2, 3, 4


def stream_key(seed: int, stream: int):
  """The key of a named stream of `seed`."""
  return jax.random.fold_in(jax.random.PRNGKey(seed), stream)


def balanced_labels(num: int, num_classes: int, interleaved: bool = False) -> np.ndarray:
  """`num` labels as balanced over the classes as `num` allows: in blocks 0, 0, ..., 1, 1, ...
  (a grid with one class per row), or `interleaved` 0, 1, 2, ..., 0, 1, ... (every contiguous
  run of samples balanced: what the Inception Score's splits and KID's subsets need)."""
  if interleaved:
    return (np.arange(num) % num_classes).astype(np.int32)
  return (np.arange(num) * num_classes // num).astype(np.int32)


def grid_inputs(stepper: Stepper, seed: int, num: int):
  """(z, labels or None, columns) of the fixed grid behind every TensorBoard sample grid of a
  run: `num` samples, or for a conditional GAN 10 per class, one class per row."""
  if stepper.num_classes:
    labels = jnp.repeat(jnp.arange(stepper.num_classes, dtype=jnp.int32), 10)
    num, ncol = labels.shape[0], 10
  else:
    labels, ncol = None, int(np.ceil(np.sqrt(num)))
  return stepper.noise(stream_key(seed, GRID_STREAM), num), labels, ncol


def grid(stepper: Stepper, state, inputs, class_names: Sequence[str] = ()) -> np.ndarray:
  """The [H', W', C] grid in [0, 1] of `grid_inputs`; a conditional GAN's rows named by
  `class_names` when the data has them."""
  z, labels, ncol = inputs
  picture = images.make_grid(np.asarray(images.to_unit(stepper.generate(state, z, labels))),
                             ncol)
  if labels is not None and len(class_names) == stepper.num_classes:
    picture = images.label_rows(picture, class_names)
  return picture


def member_grids(stepper: Stepper, state, inputs: Sequence, class_names: Sequence[str] = ()
                 ) -> np.ndarray:
  """The grids of the first len(`inputs`) members of a stacked state (member k's of
  `inputs[k]`, its seed's grid_inputs), side by side with a white gap: member 0 on the left.
  One member's is the grid of the separate run of its seed."""
  pictures = [grid(stepper, seeds.member(state, k), member_inputs, class_names)
              for k, member_inputs in enumerate(inputs)]
  if len(pictures) == 1:
    return pictures[0]
  return images.make_grid(np.stack(pictures), ncol=len(pictures), pad=4)


def truncated_noise(key, num: int, latent_dim: int, threshold: float) -> jax.Array:
  """[num, latent_dim] z for the truncation trick (Brock et al. 2019, BigGAN): z ~ N(0, I) with
  every component whose |z_i| exceeds `threshold` drawn again until it does not. That is each
  component independently from N(0, 1) conditioned on |z_i| <= threshold, which
  jax.random.truncated_normal draws without a loop (by the inverse CDF: one uniform per
  component, so the same key gives the same uniforms at every threshold)."""
  return jax.random.truncated_normal(key, -threshold, threshold, (num, latent_dim), jnp.float32)


def latents(stepper: Stepper, key, num: int, truncation: Optional[float] = None) -> jax.Array:
  """[num, latent_dim] z of `key` for samples truncated at `truncation` (None: none): for a
  generator with ws (stepper.truncates_w) N(0, I) z, `truncation` being psi toward w_avg
  (`psi`); for the others truncated_noise's z at that threshold."""
  if truncation is None or stepper.truncates_w:
    return stepper.noise(key, num)
  return truncated_noise(key, num, stepper.latent_dim, truncation)


def psi(stepper: Stepper, truncation: Optional[float] = None) -> Dict[str, float]:
  """Stepper.generate's truncation argument for samples truncated at `truncation`: StyleGAN's
  truncation (Karras et al. 2019), w = w_avg + psi (w - w_avg) with psi = `truncation`, for
  a generator with ws; none for the others (their z is truncated: `latents`)."""
  if truncation is None or not stepper.truncates_w:
    return {}
  return {'truncation_psi': truncation}


def batches(stepper: Stepper, state, num_samples: int, key, batch_size: int = 256,
            interleaved: bool = False, progress: str = '', truncation: Optional[float] = None
            ) -> Iterator[Tuple[jax.Array, Optional[np.ndarray]]]:
  """Yields (images in [-1, 1] on the device [b, H, W, C], labels [b] or None) for
  `num_samples` samples; a conditional GAN's labels are balanced over the classes. With
  `progress` ('Sampling', 'Evaluating'), long runs log how far they are (`logged`); with
  `truncation` (> 0), z is truncated_noise's at that threshold, or a generator with ws pulls
  them toward w_avg with psi `truncation` (`latents`, `psi`)."""
  labels = (balanced_labels(num_samples, stepper.num_classes, interleaved)
            if stepper.num_classes else None)

  def generate():
    nonlocal key
    for start in range(0, num_samples, batch_size):
      key, z_key = jax.random.split(key)
      n = min(batch_size, num_samples - start)
      chunk = None if labels is None else labels[start:start + n]
      z = latents(stepper, z_key, n, truncation)
      # a generator with noise inputs: each batch's from its z key (so from `key` alone)
      noise_key = jax.random.fold_in(z_key, updates.NOISE_STREAM)
      yield stepper.generate(state, z, None if chunk is None else jnp.asarray(chunk),
                             noise_key, **psi(stepper, truncation)), chunk
  return logged(generate(), num_samples, progress) if progress else generate()


PROGRESS_SECONDS = 10.0  # a long sampling or evaluation logs its progress this often


def logged(parts: Iterator, total: int, what: str, every: float = PROGRESS_SECONDS,
           clock=time.monotonic) -> Iterator:
  """`parts` ((images [b, ...], labels) pairs totalling `total` images) as they are, logging
  '{what}: done/total samples (%), elapsed, about T left' once `every` seconds have passed
  since the last line (none for work shorter than that). The time is the consumer's: it
  includes scoring the images it has taken."""
  start = last = clock()
  done = 0
  for part in parts:
    yield part
    done += len(part[0])
    now = clock()
    if now - last >= every and done < total:
      last = now
      left = (now - start) / done * (total - done)
      logging.info('%s: %d/%d samples (%.0f%%), %s, about %s left.', what, done, total,
                   100.0 * done / total, _duration(now - start), _duration(left))
  elapsed = clock() - start
  if elapsed >= every:
    logging.info('%s: %d samples in %s.', what, done, _duration(elapsed))


def _duration(seconds: float) -> str:
  minutes, seconds = divmod(int(round(seconds)), 60)
  return f'{minutes}m{seconds:02d}s' if minutes else f'{seconds}s'


def draw(stepper: Stepper, state, seed: int, num_samples: int,
         truncation: Optional[float] = None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
  """--mode=sample's `num_samples` samples of `seed` (SAMPLE_STREAM), on the host: (images in
  [0, 1] [N, H, W, C], labels [N] balanced in blocks for a conditional GAN, else None); with
  `truncation`, truncated (`batches`)."""
  # Each batch comes to the host as it is made: the progress log times finished samples.
  parts = [(np.asarray(images.to_unit(np.asarray(b))), l) for b, l in batches(
      stepper, state, num_samples, stream_key(seed, SAMPLE_STREAM), progress='Sampling',
      truncation=truncation)]
  samples = np.concatenate([b for b, _ in parts])
  labels = None if parts[0][1] is None else np.concatenate([l for _, l in parts])
  return samples, labels


def write_samples(out: str, samples: np.ndarray, labels: Optional[np.ndarray], step: int,
                  num_classes: int, class_names: Sequence[str] = (),
                  truncation: Optional[float] = None) -> Dict[str, Any]:
  """Writes `out` (.npz: `draw`'s images in [0, 1], labels for a conditional GAN, with
  `class_names` when the data has them) and a PNG grid beside it (100 samples, or 10 per class
  one class per row, named on the left); the result names the checkpoint's `step` and the
  `truncation` threshold, if any."""
  png = str(files.path(out).with_suffix('.png'))
  result = {'out': out, 'png': png, 'step': step, 'num_samples': len(samples)}
  if truncation is not None:
    result['truncation'] = truncation
  if jax.process_index() > 0:   # every process generated its share; process 0 writes
    return result
  arrays = {'images': samples, **({} if labels is None else {'labels': labels})}
  named = labels is not None and len(class_names) == num_classes
  if named:
    arrays['class_names'] = np.array(class_names)
  npz = io.BytesIO()
  np.savez(npz, **arrays)
  files.write_bytes(out, npz.getvalue())
  if labels is not None:  # one class per row
    rows = [samples[labels == c][:10] for c in range(num_classes)]
    ncol = max(len(r) for r in rows)
    rows = [np.concatenate([r, np.ones((ncol - len(r),) + r.shape[1:], r.dtype)]) for r in rows]
    picture = images.make_grid(np.concatenate(rows), ncol)
  else:
    picture = images.make_grid(samples[:100])
  images.save_png(picture, png, scale=2, row_labels=class_names if named else ())
  return result
