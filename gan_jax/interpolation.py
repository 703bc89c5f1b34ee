"""Interpolation videos (--mode=interpolate): a grid of latent walks written as a GIF and an MP4.

Each walk passes through `keyframes` latents z_0, ..., z_{K-1} and back to z_0 (the video
loops), along great circles: spherical interpolation (slerp; Shoemake 1985, White 2016 for GAN
latents), which keeps an N(0, I) latent's norm where a straight line would pass through
lower-norm points the generator rarely saw. `frames_between` frames lead from one keyframe to
the next, the keyframe first: K * frames_between frames in all.

A conditional generator keeps each row's class and walks z within it: one class per row, every
row walking the same z, so each column shows one walk under every class. Changing the class
itself is not interpolated: the classes enter the generators here through an embedding, a
one-hot input or conditional batch norm, and only a walk in z is the same for all of them.

The images come from Stepper.generate, the path of every sample (the devices of every process).
"""

import math
import os
import tempfile
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import files, images, sampling
from gan_jax.stepper import Stepper

SCALE = 2          # nearest-neighbour upscaling of the frames, as the sample PNGs
MP4_QUALITY = 8    # imageio-ffmpeg's quality, 0 to 10 (its default: 5)
BATCH = 256        # images per generator call


def slerp(z0, z1, t) -> np.ndarray:
  """Spherical interpolation from `z0` to `z1` ([..., D]) at `t` (broadcast against their
  leading axes): sin((1 - t) w) / sin(w) z0 + sin(t w) / sin(w) z1, with w the angle between
  them. t = 0 gives z0 and t = 1 gives z1; between two vectors of one norm every point has that
  norm. Vectors (nearly) parallel or opposite, where w does not define one arc, are
  interpolated linearly."""
  z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
  t = np.asarray(t, np.float64)
  norms = np.linalg.norm(z0, axis=-1) * np.linalg.norm(z1, axis=-1)
  cos = np.clip(np.sum(z0 * z1, axis=-1) / np.where(norms > 0, norms, 1.0), -1.0, 1.0)
  omega = np.arccos(cos)
  sin = np.sin(omega)
  arc = sin > 1e-6
  safe = np.where(arc, sin, 1.0)
  a = np.where(arc, np.sin((1.0 - t) * omega) / safe, 1.0 - t)
  b = np.where(arc, np.sin(t * omega) / safe, t)
  return a[..., None] * z0 + b[..., None] * z1


def walk(keyframes: np.ndarray, frames_between: int) -> np.ndarray:
  """[K * frames_between, ...] latents from keyframes [K, ..., D]: slerp from each keyframe to
  the next, and from the last back to the first; frame s * frames_between is keyframe s."""
  steps = np.arange(frames_between) / frames_between
  segments = [slerp(keyframes[s][None], keyframes[(s + 1) % len(keyframes)][None],
                    steps.reshape((-1,) + (1,) * (keyframes.ndim - 2)))
              for s in range(len(keyframes))]
  return np.concatenate(segments).astype(np.float32)


def layout(num_classes: int, num_walks: int) -> Tuple[int, int]:
  """(distinct walks, columns) of the grid: `num_walks` walks in a square-ish grid; for a
  conditional generator one class per row and num_walks // num_classes (at least 1) walks,
  the columns."""
  if num_classes:
    ncol = max(1, num_walks // num_classes)
    return ncol, ncol
  return num_walks, int(math.ceil(math.sqrt(num_walks)))


def keyframe_noise(stepper: Stepper, seed: int, keyframes: int, walks: int,
                   truncation: Optional[float] = None) -> np.ndarray:
  """[keyframes, walks, latent_dim] z of `seed`'s INTERPOLATE_STREAM (truncated at
  `truncation`, if given: sampling.latents)."""
  key = sampling.stream_key(seed, sampling.INTERPOLATE_STREAM)
  num = keyframes * walks
  z = sampling.latents(stepper, key, num, truncation)
  return np.asarray(z).reshape(keyframes, walks, stepper.latent_dim)


def render(stepper: Stepper, state, latents: np.ndarray, ncol: int,
           class_names: Sequence[str] = (), truncation: Optional[float] = None
           ) -> List[np.ndarray]:
  """uint8 frames [H', W', C] of latents [T, walks, D]: each frame a grid of the walks' images
  (a conditional generator: one row per class, every row the same walks), upscaled SCALE
  times, rows named by `class_names` when there is one per class; a generator with ws pulls
  them toward w_avg with psi `truncation` (sampling.psi)."""
  classes = stepper.num_classes
  cells = latents.shape[1] * (classes or 1)
  labels = (np.repeat(np.arange(classes, dtype=np.int32), latents.shape[1]) if classes
            else None)
  per_call = max(1, BATCH // cells)   # frames per generator call
  frames = []
  for start in range(0, len(latents), per_call):
    z = latents[start:start + per_call]                                  # [f, walks, D]
    if classes:
      z = np.tile(z, (1, classes, 1))                                    # [f, cells, D]
    f = len(z)
    made = np.asarray(images.to_unit(np.asarray(stepper.generate(
        state, jnp.asarray(z.reshape(f * cells, -1)),
        None if labels is None else jnp.asarray(np.tile(labels, f)),
        **sampling.psi(stepper, truncation)))))
    for picture in made.reshape((f, cells) + made.shape[1:]):
      grid = images.make_grid(picture, ncol)
      grid = np.repeat(np.repeat(grid, SCALE, axis=0), SCALE, axis=1)
      if classes and len(class_names) == classes:
        grid = images.label_rows(grid, class_names)
      frames.append((np.clip(grid, 0, 1) * 255).round().astype(np.uint8))
  return frames


def _even(frame: np.ndarray) -> np.ndarray:
  """An RGB frame padded with white to even sides (H.264's 4:2:0 chroma needs them)."""
  if frame.shape[-1] == 1:
    frame = np.repeat(frame, 3, axis=-1)
  pad = ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0))
  return np.pad(frame, pad, constant_values=255)


def write_mp4(frames: Sequence[np.ndarray], path: str, fps: float) -> None:
  """uint8 frames as an H.264 MP4 (imageio's ffmpeg plugin, the imageio-ffmpeg binary); local
  or gs:// (written here, then copied)."""
  import imageio.v2 as imageio  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
    # imageio-ffmpeg starts ffmpeg as a subprocess: a fork the child leaves at once for exec,
    # not the forked JAX process JAX's warning is about.
    warnings.filterwarnings('ignore', r'os\.fork\(\) was called', RuntimeWarning)
    local = os.path.join(tmp, 'video.mp4')
    imageio.mimwrite(local, [_even(f) for f in frames], format='FFMPEG', fps=fps,
                     macro_block_size=2, quality=MP4_QUALITY, ffmpeg_log_level='error')
    with open(local, 'rb') as f:
      files.write_bytes(path, f.read())


def check_video_writer() -> Optional[str]:
  """Why an MP4 cannot be written here, or None."""
  try:
    import imageio  # pylint: disable=g-import-not-at-top,unused-import
    import imageio_ffmpeg  # pylint: disable=g-import-not-at-top
    imageio_ffmpeg.get_ffmpeg_exe()
  except (ImportError, RuntimeError) as e:
    return (f'--mode=interpolate writes MP4s through imageio and imageio-ffmpeg ({e}): '
            f'pip install -r requirements.txt')
  return None


def write_interpolation(stepper: Stepper, state, seed: int, num_walks: int, out: str,
                        keyframes: int, frames_between: int, fps: float,
                        class_names: Sequence[str] = (),
                        truncation: Optional[float] = None) -> Dict[str, Any]:
  """Writes OUT.gif and OUT.mp4 (`out` with either suffix, or none): `num_walks` walks of
  `seed`'s keyframes (`layout`), keyframes * frames_between frames at `fps`. Returns the JSON
  line's fields."""
  walks, ncol = layout(stepper.num_classes, num_walks)
  latents = walk(keyframe_noise(stepper, seed, keyframes, walks, truncation), frames_between)
  frames = render(stepper, state, latents, ncol, class_names, truncation)
  stem = files.path(out).with_suffix('') if files.path(out).suffix in ('.gif', '.mp4') else out
  gif, mp4 = f'{stem}.gif', f'{stem}.mp4'
  height, width = frames[0].shape[:2]
  result = {'gif': gif, 'mp4': mp4, 'step': int(state.step), 'frames': len(frames),
            'keyframes': keyframes, 'frames_between': frames_between, 'fps': fps,
            'walks': walks, 'size': [width, height]}
  if stepper.num_classes:
    result['classes'] = 'one per row, z walked within each'
  if truncation is not None:
    result['truncation'] = truncation
  if jax.process_index() == 0:   # every process generated the frames; process 0 writes
    images.save_gif(frames, gif, 1.0 / fps)
    write_mp4(frames, mp4, fps)
  return result
