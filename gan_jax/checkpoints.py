"""Orbax checkpoints of the train state plus the data stream position."""

import os
from typing import Any, Optional, Tuple

import jax
import orbax.checkpoint as ocp


def directory(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'checkpoints')


def manager(workdir: str, keep: int, read_only: bool = False) -> ocp.CheckpointManager:
  """An asynchronous CheckpointManager in `workdir/checkpoints` keeping the last `keep`;
  `read_only` creates nothing (for sampling and evaluation)."""
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only,
                                         read_only=read_only, enable_async_checkpointing=True)
  return ocp.CheckpointManager(directory(workdir), options=options)


def save(mngr: ocp.CheckpointManager, step: int, state: Any, data_state: dict) -> None:
  mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                          data=ocp.args.JsonSave(data_state)))


def restore(mngr: ocp.CheckpointManager, target: Any,
            step: Optional[int] = None) -> Tuple[Any, dict]:
  """Restores (state, data_state) at `step` (default: latest) with `target`'s structure,
  shapes and shardings; `target` may be concrete arrays or jax.ShapeDtypeStructs."""
  step = mngr.latest_step() if step is None else step
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                        data=ocp.args.JsonRestore()))
  return restored.state, restored.data
