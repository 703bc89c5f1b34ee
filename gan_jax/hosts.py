"""Decisions every process takes together: an error on one process is an error on all (none
is left waiting in a collective), and facts each process found are compared."""

from typing import Optional, Sequence

import jax
import numpy as np

from gan_jax.errors import DataError


def agree(error: Optional[Exception], what: str, facts: Sequence[int] = ()) -> np.ndarray:
  """Every process's `facts`, [processes, len(facts)], once all have come here. Raises on
  every process when any has an `error`: its own on that one, one line naming it on the
  others."""
  if jax.process_count() == 1:
    if error:
      raise error
    return np.asarray([facts], np.int64).reshape(1, len(facts))
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  gathered = np.asarray(multihost_utils.process_allgather(
      np.array([error is not None, *facts], np.int64)))
  if error:
    raise error
  if gathered[:, 0].any():
    raise DataError(f'{what} failed on process {int(np.argmax(gathered[:, 0]))} (its log says '
                    f'why)')
  return gathered[:, 1:]
