"""Orbax checkpoints of the train state plus the data stream position and the state's format.

Checkpoints of earlier formats restore into today's TrainState through gan_jax/migration.py.
"""

from typing import Any, Optional, Tuple

import jax
import orbax.checkpoint as ocp

from gan_jax import files, migration
from gan_jax.errors import ConfigError
from gan_jax.updates import TrainState

LATEST, BEST = 'checkpoints', 'best_checkpoint'


def directory(workdir: str, kind: str = LATEST) -> str:
  """`workdir`/`kind`: absolute when local (as Orbax wants), a gs:// path as it is."""
  return str(files.path(files.absolute(workdir)) / kind)


def exists(workdir: str, kind: str = LATEST) -> bool:
  """Whether `workdir` has a checkpoint directory of `kind` (it may hold no checkpoint yet)."""
  return files.path(directory(workdir, kind)).is_dir()


def manager(workdir: str, keep: int, read_only: bool = False,
            best_metric: Optional[str] = None, best_mode: str = 'min') -> ocp.CheckpointManager:
  """An asynchronous CheckpointManager in `workdir/checkpoints` keeping the last `keep`, or,
  with `best_metric`, in `workdir/best_checkpoint` keeping the best one by that eval metric
  (`best_mode` 'min' or 'max': gan_jax/extractors.py's metric table says which).

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
  args = ocp.args.Composite(state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(
      {**data_state, 'format': migration.FORMAT}))
  mngr.save(step, args=args, metrics=metrics)


def _mismatch(e: Exception) -> bool:
  return 'gen_params' in str(e) or 'tree structures do not match' in str(e)


def _restore(mngr, step: int, abstract):
  return mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))


def _state_format(mngr: ocp.CheckpointManager, step: int) -> int:
  """The format of the state saved at `step`: recorded beside the data position, or (for
  checkpoints from before formats were recorded) known by the saved tree's names."""
  data = mngr.restore(step, args=ocp.args.Composite(data=ocp.args.JsonRestore())).data or {}
  if 'format' in data:
    return int(data['format'])
  path = files.path(mngr.directory) / str(step) / 'state'
  return migration.state_format(ocp.StandardCheckpointer().metadata(str(path)).item_metadata)


def restore(mngr: ocp.CheckpointManager, target: TrainState,
            step: Optional[int] = None) -> Tuple[TrainState, dict]:
  """Restores (state, data_state) at `step` (default: latest) with `target`'s structure,
  shapes and shardings; `target` may be concrete arrays or jax.ShapeDtypeStructs."""
  step = mngr.latest_step() if step is None else step
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  path = f'{mngr.directory}/{step}'
  try:
    fmt = _state_format(mngr, step)
    if not migration.can_hold(abstract, fmt) or fmt not in migration.LAYOUTS:
      raise ConfigError(f'checkpoint {path} holds a train state of format {fmt}, without the '
                        f'EMA, spectral norm or LeCam anchors this config asks for; use a new '
                        f'--workdir')
    restored = _restore(mngr, step, migration.layout(abstract, fmt))
    state = migration.upgrade(restored.state, fmt)
  except ConfigError:
    raise
  except Exception as e:  # pylint: disable=broad-except  (Orbax/TensorStore raise many types)
    if _mismatch(e):
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
    raise ConfigError(f'checkpoint {path} has no data position; it was not '
                      f'written by this version of gan_jax')
  data = {k: v for k, v in restored.data.items() if k != 'format'}
  return state, data


def restore_for_use(workdir: str, target: TrainState, step: Optional[int] = None,
                    best_metric: Optional[str] = None, best_mode: str = 'min') -> TrainState:
  """The state of a workdir's checkpoint at `step` (default: latest; with `best_metric`, from
  the best checkpoint), for sampling or evaluation; ConfigError when there is none."""
  best = best_metric is not None
  if not exists(workdir, BEST if best else LATEST):
    raise ConfigError(f'no {"best " if best else ""}checkpoint in {workdir}; ' +
                      ('train with eval_every > 0' if best else 'train first'))
  mngr = manager(workdir, 1, read_only=True, best_metric=best_metric, best_mode=best_mode)
  try:
    if mngr.latest_step() is None:
      raise ConfigError(f'no checkpoint in {workdir}; train first')
    if step is not None and step not in mngr.all_steps():
      raise ConfigError(f'no checkpoint at step {step} in {workdir}; '
                        f'steps there: {mngr.all_steps()}')
    return restore(mngr, target, step)[0]
  finally:
    mngr.close()
