"""The one way a GAN runs on devices: the mesh, where state and batches live, and one compiled
call per group of iterations. Training, sampling, evaluation, --mode=compile and
experiments/benchmark.py all go through a Stepper.

The training call is one function of (state, batch), whatever the parallelism, seed count or
iterations per call: K iterations of the one-run step (updates.train_steps), jitted over a mesh
('data' over every device), the state replicated and donated, the batch [K, n_critic, B, ...]
split on B. Two seams wrap the step, each chosen once from the config:
- num_seeds N > 1: the state is seed-stacked (gan_jax/seeds.py) and the call maps the step over
  its members; batches gain a member axis after K: [K, N, n_critic, B, ...].
- parallelism 'pmap': the per-device SPMD mode. The step runs under shard_map on each device's
  rows, gradients and metrics averaged with lax.pmean over 'data' and batch norm synced, with
  the state and batch layouts of the jit mode.
"""

import functools
from typing import Dict, Optional, Sequence

import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from gan_jax import flops, models, seeds, sharding, updates
from gan_jax.updates import TrainState


class Stepper:
  """Compiled functions of a checked config's GAN for images of `image_shape`."""

  def __init__(self, config, image_shape: Sequence[int], num_classes: int, devices=None,
               raw_generator: bool = False):
    """`devices`: every device of the run (default: jax.devices()); a TPU slice's devices from
    gan_jax/targets.py compile this host's programs for that slice instead (`lower`)."""
    devices = list(jax.devices() if devices is None else devices)
    self.platform = devices[0].platform   # 'cpu', 'gpu', 'tpu': picks conv_impl 'auto'
    self.num_processes = sharding.process_count(devices)
    # num_seeds > 1: the members split over a 'seeds' mesh axis, or replicated (1).
    self.seed_shards = seeds.seed_shards(config, len(devices), self.num_processes)
    self.mesh = sharding.make_mesh(devices, self.seed_shards)
    self.image_shape = tuple(int(s) for s in image_shape)
    self.pmap = config.parallelism == 'pmap'
    # jit over several devices: each device draws and computes its own examples
    batch_split = not self.pmap and self.mesh.shape['data'] > 1
    self.gan = updates.build_gan(
        config, self.image_shape, num_classes, platform=self.platform,
        axis_name='data' if self.pmap else None,
        batch_sharding=sharding.example_sharding(self.mesh) if batch_split else None)
    self.num_seeds = config.num_seeds
    self.seeds = seeds.member_seeds(config)
    self.mapping = None  # num_seeds > 1: 'vmap' or 'loop' (seeds.mapping)
    self._repl = sharding.replicated(self.mesh)
    call = functools.partial(updates.train_steps, gan=self.gan)
    # Axes before n_critic in a call's batch: K, then the members' N.
    self._leading = 1
    if self.num_seeds == 1:
      init = functools.partial(updates.init_state, self.gan, config.seed, self.image_shape)
      self._state_sharding = self._repl
    else:
      init = functools.partial(seeds.init, self.gan, self.seeds, self.image_shape)
      self.mapping = seeds.mapping(config, self.seed_shards, self.platform)
      call = seeds.over_members(call, self.mapping, 'seeds' if self.seed_shards > 1 else None)
      self._leading = 2
      self._state_sharding = seeds.state_shardings(
          jax.eval_shape(init), sharding.member_sharding(self.mesh), self._repl)
    self._batch_sharding = sharding.batch_sharding(self.mesh, self._leading + 1)
    if self.pmap:  # checks: one seed; each device steps on its rows of the batch
      # pmap's semantics: each device's gradients are its own until the step's pmean (with
      # check_vma, JAX would sum the gradients of replicated parameters itself), and the
      # pmean'd state leaves every device equal, returned once (out_specs P()).
      call = jax.shard_map(call, mesh=self.mesh, in_specs=(P(), self._batch_sharding.spec),
                           out_specs=(P(), P(), P()), check_vma=False)
    self._flops = {}  # call shape -> FLOPs per device (call_flops)
    self._init = jax.jit(init, out_shardings=self._state_sharding)
    self._call = jax.jit(call, in_shardings=(self._state_sharding, self._batch_sharding),
                         out_shardings=(self._state_sharding, self._repl, self._repl),
                         donate_argnums=0)
    # Samples come from the generator's EMA when the run keeps one, unless `raw_generator`.
    self.uses_ema = config.ema.decay > 0 and not raw_generator
    self._generate = jax.jit(functools.partial(updates.generate, self.gan,
                                               use_ema=self.uses_ema),
                             static_argnames='truncation_psi')
    # Sampling's truncation: psi toward w_avg for a generator with ws, else a threshold on z
    self.truncates_w = models.ARCHITECTURES[config.model.arch].styles

  @property
  def latent_dim(self) -> int:
    return self.gan.latent_dim

  @property
  def num_classes(self) -> int:
    """Classes the generator is conditioned on (0: unconditional)."""
    return self.gan.num_classes

  def init(self) -> TrainState:
    """A fresh state (one copy, replicated over the mesh; seed-stacked when num_seeds > 1)."""
    return self._init()

  def abstract_state(self) -> TrainState:
    """The state's shapes, dtypes and shardings, without computing it (a restore target)."""
    shapes = jax.eval_shape(self._init)
    if self.num_seeds == 1:
      return jax.tree.map(
          lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=self._repl), shapes)
    return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                        shapes, self._state_sharding)

  def put(self, host_batches: Sequence[Dict[str, np.ndarray]]):
    """This process's batches of one call's K iterations, each {'image': [n_critic, B_local,
    ...], ...} ([N, n_critic, B_local, ...] with num_seeds N > 1), as the call's device input
    [K, n_critic, B, ...] ([K, N, ...]), the batch axis split over the devices."""
    if len(host_batches) == 1:
      batch = jax.tree.map(lambda x: x[None], host_batches[0])
    else:
      batch = jax.tree.map(lambda *xs: np.stack(xs), *host_batches)
    return sharding.to_global(batch, self._batch_sharding)

  def abstract_batch(self, length: int, n_critic: int, batch_size: int,
                     image_dtype: str = 'uint8', labels: bool = False):
    """The device batch `put` makes of `length` iterations' host batches (global batch
    `batch_size`, n_critic critic batches each), as ShapeDtypeStructs: shapes, dtypes and
    shardings only."""
    lead = (length,) + ((self.num_seeds,) if self.num_seeds > 1 else ()) + (n_critic, batch_size)
    batch = {'image': jax.ShapeDtypeStruct(lead + self.image_shape, np.dtype(image_dtype),
                                           sharding=self._batch_sharding)}
    if labels:
      batch['label'] = jax.ShapeDtypeStruct(lead, np.int32, sharding=self._batch_sharding)
    return batch

  def trace(self, length: int, n_critic: int, batch_size: int, image_dtype: str = 'uint8',
            labels: bool = False) -> jax.stages.Traced:
    """The training call of `length` iterations, traced for the abstract state and batch:
    `.lower().compile()` compiles it for this Stepper's devices, which need not be this
    host's (gan_jax/targets.py); `.jaxpr` gives its FLOPs."""
    return self._call.trace(
        self.abstract_state(),
        self.abstract_batch(length, n_critic, batch_size, image_dtype, labels))

  def lower(self, length: int, n_critic: int, batch_size: int, image_dtype: str = 'uint8',
            labels: bool = False) -> jax.stages.Lowered:
    """The training call of `length` iterations lowered for abstract inputs: `.compile()`
    compiles it for this Stepper's devices."""
    return self.trace(length, n_critic, batch_size, image_dtype, labels).lower()

  def call_flops(self, length: int, n_critic: int, batch_size: int, image_dtype: str = 'uint8',
                 labels: bool = False) -> float:
    """FLOPs per device of one training call of `length` iterations (gan_jax/flops.py: matrix
    products and convolutions); traced once per call shape. The devices share the global
    batch's work evenly."""
    key = (length, n_critic, batch_size, image_dtype, labels)
    if key not in self._flops:
      self._flops[key] = flops.count(self.trace(*key).jaxpr) / self.mesh.size
    return self._flops[key]

  def step(self, state: TrainState, batch):
    """One compiled call on a `put` batch.

    Args:
      state: from `init` or a restore (donated).
      batch: from `put`.

    Returns:
      (state, metrics, health): each metric and health flag [K], one value per iteration
      ([K, N] with num_seeds N > 1: one per iteration and member); left on the device.
    """
    return self._call(state, batch)

  def train(self, state: TrainState, host_batches: Sequence[Dict[str, np.ndarray]]):
    """len(host_batches) iterations in one compiled call: `step(state, put(host_batches))`."""
    return self.step(state, self.put(host_batches))

  def generate(self, state: TrainState, z, labels=None, noise_key=None,
               truncation_psi: Optional[float] = None):
    """Images in [-1, 1] from the generator of `state` (one copy, one run: a member's
    seeds.member of a stacked state): on the device with one
    process; with several, the rows split over every device of every process and all of them
    gathered back to each process (numpy). `noise_key`: the draws of a generator with noise
    inputs (updates.generate; None: a fixed key); `truncation_psi`: a generator with ws
    (truncates_w) pulls them toward w_avg (one compiled function per psi)."""
    if not self.gan.gen_noise:
      noise_key = None   # other generators draw nothing: one compiled function as before
    kwargs = {'noise_key': noise_key}
    if truncation_psi is not None:
      kwargs['truncation_psi'] = float(truncation_psi)
    if jax.process_count() == 1:
      return self._generate(state, z, labels, **kwargs)
    n, size = z.shape[0], self.mesh.size
    padded = -(-n // size) * size
    split = sharding.batch_sharding(self.mesh, leading=0)

    def to_global(x):
      x = np.asarray(x)
      x = np.concatenate([x, np.repeat(x[-1:], padded - n, axis=0)]) if padded > n else x
      return jax.make_array_from_callback(x.shape, split, lambda index: x[index])
    images = self._generate(state, to_global(z), None if labels is None else to_global(labels),
                            **kwargs)
    return multihost_utils.process_allgather(images, tiled=True)[:n]

  def noise(self, key, num: int) -> jax.Array:
    """[num, latent_dim] standard normal z."""
    return jax.random.normal(key, (num, self.gan.latent_dim), jnp.float32)
