"""Weight files of the ported feature networks (Inception, DINOv2): a file's parameter tree
checked against the module's, shape for shape, so a wrong file is one line, not a traceback."""

from typing import Any

import flax.linen as nn
import jax
from flax import traverse_util
import numpy as np


def _shapes(tree) -> dict:
  return {k: tuple(np.shape(v)) for k, v in traverse_util.flatten_dict(tree, sep='/').items()}


def shapes_of(module: nn.Module, example: Any) -> dict:
  """{'params/.../kernel': shape} of `module` initialised on `example` (no values computed)."""
  return _shapes(jax.eval_shape(module.init, jax.random.PRNGKey(0), example))


def check_shapes(variables, want: dict, what: str) -> None:
  """ValueError unless `variables` have exactly the shapes `want` (`shapes_of`); the message
  says they are not `what` and names what is missing, unexpected or misshapen."""
  got = _shapes(variables)
  missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
  wrong = sorted(k for k in set(want) & set(got) if tuple(want[k]) != got[k])
  if missing or extra or wrong:
    raise ValueError(f'not {what}: {len(missing)} missing (e.g. {missing[:2]}), {len(extra)} '
                     f'unexpected (e.g. {extra[:2]}), {len(wrong)} of the wrong shape (e.g. '
                     f'{wrong[:2]})')
