"""Orbax checkpoints of the train state plus the data stream position.

Workdirs of earlier versions restore into today's TrainState: `restore` reads them through their
layout and regroups it. Two older layouts: before the modern toolkit (no `ema` in the state, no
`spectral` in a player's), and before the per-player state (gen_params, gen_stats, ... as one
flat record).
"""

from typing import Any, Optional, Tuple

import jax
import orbax.checkpoint as ocp

from gan_jax import files
from gan_jax.errors import ConfigError
from gan_jax.steps import PlayerState, TrainState

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
  args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                            data=ocp.args.JsonSave(data_state))
  mngr.save(step, args=args, metrics=metrics)


_PARTS = ('params', 'stats', 'opt_state')


def _flat(state: TrainState) -> dict:
  """The layout of checkpoints written before per-player state (gan_jax 38d564f and older)."""
  flat = {'step': state.step, 'key': state.key, 'skipped': state.skipped}
  for player in ('gen', 'critic'):
    for part in _PARTS:
      flat[f'{player}_{part}'] = getattr(getattr(state, player), part)
  return flat


def _grouped(flat: dict) -> TrainState:
  player = lambda name: PlayerState(*(flat[f'{name}_{part}'] for part in _PARTS))
  return TrainState(step=flat['step'], key=flat['key'], gen=player('gen'),
                    critic=player('critic'), skipped=flat['skipped'])


def _pre_toolkit(state: TrainState) -> dict:
  """The layout before the generator's EMA and spectral norm (gan_jax 39feedf and older)."""
  player = lambda p: {part: getattr(p, part) for part in _PARTS}
  return {'step': state.step, 'key': state.key, 'gen': player(state.gen),
          'critic': player(state.critic), 'skipped': state.skipped}


def _from_pre_toolkit(tree: dict) -> TrainState:
  player = lambda p: PlayerState(*(p[part] for part in _PARTS))
  return TrainState(step=tree['step'], key=tree['key'], gen=player(tree['gen']),
                    critic=player(tree['critic']), skipped=tree['skipped'])


# Older layouts, newest first: (today's state -> that layout, that layout -> today's state).
# They hold no EMA and no spectral norm vectors, so only a target without them reads them.
_OLDER = ((_pre_toolkit, _from_pre_toolkit), (_flat, _grouped))


def _mismatch(e: Exception) -> bool:
  return 'gen_params' in str(e) or 'tree structures do not match' in str(e)


def _restore(mngr, step: int, abstract):
  return mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))


def restore(mngr: ocp.CheckpointManager, target: TrainState,
            step: Optional[int] = None) -> Tuple[TrainState, dict]:
  """Restores (state, data_state) at `step` (default: latest) with `target`'s structure,
  shapes and shardings; `target` may be concrete arrays or jax.ShapeDtypeStructs."""
  step = mngr.latest_step() if step is None else step
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  toolkit = abstract.ema or abstract.gen.spectral or abstract.critic.spectral
  layouts = ((lambda s: s, lambda s: s),) + (() if toolkit else _OLDER)
  try:
    for i, (to_layout, to_state) in enumerate(layouts):
      try:
        restored = _restore(mngr, step, to_layout(abstract))
        state = to_state(restored.state)
        break
      except Exception as e:  # pylint: disable=broad-except
        if not _mismatch(e) or i == len(layouts) - 1:
          raise
  except Exception as e:  # pylint: disable=broad-except  (Orbax/TensorStore raise many types)
    path = f'{mngr.directory}/{step}'
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
    raise ConfigError(f'checkpoint {mngr.directory}/{step} has no data position; it was not '
                      f'written by this version of gan_jax')
  return state, restored.data


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
