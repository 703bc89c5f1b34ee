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


def map_batches(fn, params, images, batch_size: int, devices=None):
  """Applies a jitted `fn(params, batch) -> tuple of [b, ...] arrays` to `images` in batches
  split over `devices` (default: this process's; `params` replicated on them), and returns the
  outputs concatenated as numpy. The last batch is padded to the full size, so `fn` compiles
  once (sets smaller than a batch make one batch of their own size)."""
  mesh = make_mesh(jax.local_devices() if devices is None else devices)
  params = jax.device_put(params, replicated(mesh))
  size = -(-min(batch_size, len(images)) // mesh.size) * mesh.size
  sharding = NamedSharding(mesh, P('data'))
  outputs = []
  for start in range(0, len(images), size):
    batch = np.asarray(images[start:start + size])
    n = len(batch)
    if n < size:
      batch = np.concatenate([batch, np.repeat(batch[-1:], size - n, axis=0)])
    out = fn(params, jax.device_put(batch, sharding))
    outputs.append([np.asarray(o)[:n] for o in out])
  return tuple(np.concatenate(parts) for parts in zip(*outputs))
