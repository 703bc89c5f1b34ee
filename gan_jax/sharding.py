"""Mesh and shardings for data parallelism: batch split on 'data', state replicated."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh, axis name 'data', over `devices` (default: every device of every process)."""
  return Mesh(np.asarray(jax.devices() if devices is None else devices), ('data',))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, leading: int = 1) -> NamedSharding:
  """Iteration batches are [n_critic, B, ...] (leading=1), or [K, n_critic, B, ...] for K
  iterations per call (leading=2): the batch axis B is split over 'data' (leading=0: the first
  axis, pmap's device axis)."""
  return NamedSharding(mesh, P(*([None] * leading), 'data'))


def to_global(local_batch, sharding: NamedSharding):
  """Builds global arrays from this process's share of the batch."""
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)


def replicate(params, mesh: Mesh):
  """`params` placed on every device of `mesh` (once: map_batches reuses them)."""
  return jax.device_put(params, replicated(mesh))


def map_batches(fn, params, images, batch_size: int, mesh: Mesh):
  """Applies a jitted `fn(params, batch) -> tuple of [b, ...] arrays` to `images` in batches
  split over `mesh`, and returns the outputs concatenated as numpy.

  Args:
    fn: jitted; compiles once (the last batch is padded to the full size; sets smaller than a
      batch make one batch of their own size).
    params: already placed on `mesh` (see `replicate`): they are not sent again.
    images: [N, ...], numpy (sent batch by batch) or a jax.Array (resharded on the devices,
      never copied to the host).
    batch_size: the most images per call.
    mesh: a 1-D mesh ('data') of this process's devices.
  """
  size = -(-min(batch_size, len(images)) // mesh.size) * mesh.size
  sharding = NamedSharding(mesh, P('data'))
  xp = jnp if isinstance(images, jax.Array) else np
  outputs, counts = [], []
  for start in range(0, len(images), size):
    batch = images[start:start + size]
    n = len(batch)
    if n < size:
      batch = xp.concatenate([batch, xp.repeat(batch[-1:], size - n, axis=0)])
    outputs.append(fn(params, jax.device_put(batch, sharding)))
    counts.append(n)
  outputs = jax.device_get(outputs)   # only the outputs come back, once all calls are queued
  return tuple(np.concatenate([o[:n] for o, n in zip(parts, counts)])
               for parts in zip(*outputs))
