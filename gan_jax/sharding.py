"""Mesh and shardings for data parallelism: batch split on 'data', state replicated; with many
seeds (gan_jax/seeds.py) optionally a 'seeds' axis beside 'data' that splits the members."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def make_mesh(devices=None, seed_shards: int = 1) -> Mesh:
  """A 1-D mesh, axis name 'data', over `devices` (default: every device of every process);
  with `seed_shards` > 1 a 2-D one, ('seeds', 'data') of seed_shards x the rest."""
  devices = np.asarray(jax.devices() if devices is None else devices)
  if seed_shards == 1:
    return Mesh(devices, ('data',))
  return Mesh(devices.reshape(seed_shards, -1), ('seeds', 'data'))


def process_count(devices) -> int:
  """How many processes (hosts) `devices` belong to."""
  return len({d.process_index for d in devices})


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, leading: int = 1) -> NamedSharding:
  """A batch with `leading` axes before its batch axis B, B split over 'data': a call's
  [K, n_critic, B, ...] (leading=2), a batch of images [B, ...] (0). Members' batches
  ([K, N, n_critic, B, ...], leading=3) on a mesh with a 'seeds' axis are split on N over it
  too."""
  spec = [None] * leading + ['data']
  if 'seeds' in mesh.axis_names:
    spec[leading - 2] = 'seeds'
  return NamedSharding(mesh, P(*spec))


def example_sharding(mesh: Mesh) -> NamedSharding:
  """Rows of examples [B, ...] inside a step, B split over 'data' (under the vmap of several
  members, their axis over 'seeds': seeds.over_members)."""
  return NamedSharding(mesh, P('data'))


def member_sharding(mesh: Mesh) -> NamedSharding:
  """A seed-stacked leaf [N, ...]: split on N over the 'seeds' axis if the mesh has one, else
  replicated."""
  return NamedSharding(mesh, P('seeds') if 'seeds' in mesh.axis_names else P())


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
