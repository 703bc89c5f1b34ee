"""Mesh and shardings for data parallelism: batch split on 'data', state replicated."""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh, axis name 'data', over `devices` (default: every device of every process)."""
  return Mesh(np.asarray(jax.devices() if devices is None else devices), ('data',))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, leading: int = 1) -> NamedSharding:
  """Iteration batches are [n_critic, B, ...] (leading=1), or [K, n_critic, B, ...] for K
  iterations per call (leading=2): the batch axis B is split over 'data'."""
  return NamedSharding(mesh, P(*([None] * leading), 'data'))


def to_global(local_batch, sharding: NamedSharding):
  """Builds global arrays from this process's share of the batch."""
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)
