"""--mode=eval: scores a checkpoint of a workdir (the trainer's restore, the evaluator's run)."""

from typing import Any, Dict, Optional

from gan_jax import evaluator as evaluator_lib, train


def evaluate(config, workdir: str, step: Optional[int] = None,
             best: bool = False) -> Dict[str, Any]:
  """Every metric of the checkpoint at `step` (default: latest; `best`: the best one)."""
  evaluator_lib.check(config)   # before the restore compiles anything
  run, state = train.restore_for_use(config, workdir, step, best)
  evaluator = evaluator_lib.Evaluator(config, run.data.image_shape)
  return {'step': int(state.step), **evaluator.run(train.eval_batches(config, run, state))}
