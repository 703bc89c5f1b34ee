"""What main.py's modes call: train, sample, evaluate (a thin layer over train and scoring)."""

from typing import Any, Dict, Optional

from gan_jax import scoring
from gan_jax import train as train_lib


def train(config, workdir: str) -> None:
  """--mode=train: trains (resuming the workdir's latest checkpoint if there is one)."""
  train_lib.train_and_evaluate(config, workdir)


def sample(config, workdir: str, num_samples: int, out: str, step: Optional[int] = None,
           best: bool = False) -> Dict[str, Any]:
  """--mode=sample: writes `num_samples` images of a checkpoint to `out` (.npz) and a PNG."""
  return train_lib.write_samples(config, workdir, num_samples, out, step, best)


def evaluate(config, workdir: str, step: Optional[int] = None,
             best: bool = False) -> Dict[str, Any]:
  """--mode=eval: scores a checkpoint; returns the named metrics."""
  return scoring.evaluate(config, workdir, step, best)
