"""--mode=eval: scores a checkpoint of a workdir (the trainer's restore, the evaluator's run)."""

from typing import Any, Dict, Optional

from gan_jax import evaluator as evaluator_lib, train
from gan_jax.errors import ConfigError


def evaluate(config, workdir: str, step: Optional[int] = None,
             best: bool = False) -> Dict[str, Any]:
  """Every metric of the checkpoint at `step` (default: latest; `best`: the best one)."""
  if config.eval.num_samples < 10:
    raise ConfigError(f'eval.num_samples must be >= 10, got {config.eval.num_samples}')
  evaluator_lib.check(config)
  run, state = train.restore_for_use(config, workdir, step, best)
  evaluator = evaluator_lib.Evaluator(config, run.data.image_shape)
  return {'step': int(state.step), **evaluator.run(train.eval_batches(config, run, state))}
