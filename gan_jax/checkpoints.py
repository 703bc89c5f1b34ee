"""Orbax checkpoints of the train state plus the data stream position."""

import os
from typing import Any, Optional, Tuple

import jax
import orbax.checkpoint as ocp

from gan_jax.errors import ConfigError


LATEST, BEST = 'checkpoints', 'best_checkpoint'


def directory(workdir: str, kind: str = LATEST) -> str:
  return os.path.join(os.path.abspath(workdir), kind)


def manager(workdir: str, keep: int, read_only: bool = False, best_metric: Optional[str] = None,
            best_mode: str = 'min') -> ocp.CheckpointManager:
  """An asynchronous CheckpointManager in `workdir/checkpoints` keeping the last `keep`, or,
  with `best_metric`, in `workdir/best_checkpoint` keeping the best one by that eval metric
  ('min' or 'max' `best_mode`: extractors.best_mode gives each metric's).

  Orbax writes each checkpoint into a tmp directory and renames it when complete, so a crash
  (even kill -9) mid-save leaves only a tmp directory, which restores ignore and a writing
  manager removes. `read_only` creates and removes nothing (for sampling and evaluation).
  """
  best = {}
  if best_metric:
    best = dict(best_fn=lambda metrics: metrics[best_metric], best_mode=best_mode)
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only,
                                         read_only=read_only, enable_async_checkpointing=True,
                                         cleanup_tmp_directories=not read_only, **best)
  return ocp.CheckpointManager(directory(workdir, BEST if best_metric else LATEST),
                               options=options)


def save(mngr: ocp.CheckpointManager, step: int, state: Any, data_state: dict,
         metrics: Optional[dict] = None) -> None:
  args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                            data=ocp.args.JsonSave(data_state))
  mngr.save(step, args=args, metrics=metrics)


def restore(mngr: ocp.CheckpointManager, target: Any,
            step: Optional[int] = None) -> Tuple[Any, dict]:
  """Restores (state, data_state) at `step` (default: latest) with `target`'s structure,
  shapes and shardings; `target` may be concrete arrays or jax.ShapeDtypeStructs."""
  step = mngr.latest_step() if step is None else step
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  try:
    restored = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))
  except Exception as e:  # pylint: disable=broad-except  (Orbax/TensorStore raise many types)
    path = os.path.join(str(mngr.directory), str(step))
    if 'tree structures do not match' in str(e):
      raise ConfigError(f'checkpoint {path} holds a train state of another structure: it was '
                        f'written by another version of gan_jax or another model config; '
                        f'use a new --workdir') from e
    earlier = [s for s in mngr.all_steps() if s < step]
    fix = (f'move it away to resume from step {max(earlier)}' if earlier else
           'move it away to start afresh')
    reason = ' '.join(str(e).split(' See ')[0].split(':')[0].split())[:120]
    raise ConfigError(f'checkpoint {path} cannot be restored ({reason}); '
                      f'{fix}, or use a new --workdir') from e
  if restored.data is None or 'position' not in restored.data:
    raise ConfigError(f'checkpoint {mngr.directory}/{step} has no data position; it was not '
                      f'written by this version of gan_jax')
  return restored.state, restored.data
