"""The one way a GAN runs on devices: the mesh, jit or pmap, where state and batches live, and
one compiled call per group of iterations. Training, sampling, evaluation and
experiments/benchmark.py all go through a Stepper.

jit (default): a 1-D mesh 'data' over every device, state replicated, batches split on their
batch axis, the state donated. With num_seeds N > 1 the state is seed-stacked (gan_jax/seeds.py)
and each call vmaps the one-run step over its members; batches gain a member axis before
n_critic. pmap: the same step with gradients and metrics averaged by
lax.pmean over the local devices (synced batch norm); its state is one copy per local device.
"""

import functools
from typing import Dict, Optional, Sequence, Tuple

import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np

from gan_jax import flops, seeds, sharding, steps
from gan_jax.steps import TrainState


def _one_train_step(state, batch, *, gan):
  """steps.train_step with its metrics and health shaped as a call's ([1] each): reshaped
  inside the compiled call, so the loop dispatches nothing for them."""
  state, metrics, health = steps.train_step(state, batch, gan=gan)
  return (state, *jax.tree.map(lambda m: m[None], (metrics, health)))


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
    self.gan = steps.build_gan(config, self.image_shape, num_classes, platform=self.platform)
    self.pmap = config.parallelism == 'pmap'
    self.num_seeds = config.num_seeds
    self.seeds = seeds.member_seeds(config)
    self.mapping = None  # num_seeds > 1: 'vmap' or 'loop' (seeds.mapping)
    repl = sharding.replicated(self.mesh)
    self._repl = repl
    calls = ((1, _one_train_step), (2, steps.train_steps))  # leading batch axes -> call
    if self.num_seeds == 1:
      init = functools.partial(steps.init_state, self.gan, config.seed, self.image_shape)
      self._state_sharding = repl
    else:  # a member axis before n_critic: [N, n_critic, B, ...], [K, N, n_critic, B, ...]
      init = functools.partial(seeds.init, self.gan, self.seeds, self.image_shape)
      self.mapping = seeds.mapping(config, self.seed_shards, self.platform)
      calls = tuple((k + 1, seeds.over_members(fn, k - 1, self.mapping)) for k, fn in calls)
      self._state_sharding = seeds.state_shardings(
          jax.eval_shape(init), sharding.member_sharding(self.mesh), repl)
    self._flops = {}  # call shape -> FLOPs per device (call_flops)
    self._init = jax.jit(init, out_shardings=self._state_sharding)
    self._jit = {k: jax.jit(functools.partial(fn, gan=self.gan),
                            in_shardings=(self._state_sharding,
                                          sharding.batch_sharding(self.mesh, k)),
                            out_shardings=(self._state_sharding, repl, repl), donate_argnums=0)
                 for k, fn in calls}
    # Samples come from the generator's EMA when the run keeps one, unless `raw_generator`.
    self.uses_ema = config.ema.decay > 0 and not raw_generator
    self._generate = jax.jit(functools.partial(steps.generate, self.gan,
                                               use_ema=self.uses_ema))
    if self.pmap:
      pmap_gan = steps.build_gan(config, self.image_shape, num_classes, axis_name='data',
                                 platform=self.platform)
      # Metrics and health are pmean'd or computed from the synced state, equal on every
      # device: one copy comes back (out_axes None), with no device axis to drop afterwards.
      # This process's devices (one host: checks refuse pmap on several).
      local = [d for d in devices if d.process_index == jax.process_index()]
      self._pmap = {k: jax.pmap(functools.partial(fn, gan=pmap_gan), axis_name='data',
                                donate_argnums=0, out_axes=(0, None, None), devices=local)
                    for k, fn in ((1, _one_train_step), (2, steps.train_steps))}
      self.local_devices = len(local)
      # A batch with a leading device axis, one slice per local device: what pmap takes.
      self._local_split = sharding.batch_sharding(sharding.make_mesh(local), 0)

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

  def place(self, state: TrainState) -> TrainState:
    """One copy -> the layout `train` takes (pmap: one copy per local device)."""
    if not self.pmap:
      return state
    return jax.tree.map(lambda x: np.broadcast_to(x, (self.local_devices,) + x.shape),
                        jax.device_get(state))

  def unplace(self, state: TrainState) -> TrainState:
    """`train`'s layout -> one copy (to save, sample or evaluate)."""
    return jax.tree.map(lambda x: x[0], state) if self.pmap else state

  def put(self, host_batches: Sequence[Dict[str, np.ndarray]]):
    """This process's batches for one call, each {'image': [n_critic, B_local, ...], ...}, as the
    call's device input: [n_critic, B, ...] for one iteration, [K, n_critic, B, ...] for K, the
    batch axis split over the devices (pmap: a leading device axis). With num_seeds > 1 each
    has a member axis first ([N, n_critic, B_local, ...]), kept after K."""
    k = len(host_batches)
    batch = host_batches[0] if k == 1 else jax.tree.map(lambda *xs: np.stack(xs), *host_batches)
    leading = (1 if k == 1 else 2) + (self.num_seeds > 1)
    if self.pmap:
      split = lambda x: np.moveaxis(x.reshape(
          x.shape[:leading] + (self.local_devices, -1) + x.shape[leading + 1:]), leading, 0)
      # One process (checks refuse pmap on several): sent now, not when the call starts.
      return jax.device_put(jax.tree.map(split, batch), self._local_split)
    return sharding.to_global(batch, sharding.batch_sharding(self.mesh, leading))

  def abstract_batch(self, length: int, n_critic: int, batch_size: int,
                     image_dtype: str = 'uint8', labels: bool = False):
    """The device batch `put` makes of `length` iterations' host batches (global batch
    `batch_size`, n_critic critic batches each), as ShapeDtypeStructs: shapes, dtypes and
    shardings only."""
    lead = ((length,) if length > 1 else ()) + ((self.num_seeds,) if self.num_seeds > 1 else ())
    lead += (n_critic, batch_size)
    split = sharding.batch_sharding(self.mesh, len(lead) - 1)
    batch = {'image': jax.ShapeDtypeStruct(lead + self.image_shape, np.dtype(image_dtype),
                                           sharding=split)}
    if labels:
      batch['label'] = jax.ShapeDtypeStruct(lead, np.int32, sharding=split)
    return batch

  def trace(self, length: int, n_critic: int, batch_size: int, image_dtype: str = 'uint8',
            labels: bool = False) -> jax.stages.Traced:
    """The training call of `length` iterations (the jit one, whatever the parallelism), traced
    for the abstract state and batch: `.lower().compile()` compiles it for this Stepper's
    devices, which need not be this host's (gan_jax/targets.py); `.jaxpr` gives its FLOPs."""
    leading = (1 if length == 1 else 2) + (self.num_seeds > 1)
    return self._jit[leading].trace(
        self.abstract_state(),
        self.abstract_batch(length, n_critic, batch_size, image_dtype, labels))

  def lower(self, length: int, n_critic: int, batch_size: int, image_dtype: str = 'uint8',
            labels: bool = False) -> jax.stages.Lowered:
    """The training call of `length` iterations as `step` runs it (jit, or pmap), lowered for
    abstract inputs: `.compile()` compiles it for this Stepper's devices."""
    if not self.pmap:
      return self.trace(length, n_critic, batch_size, image_dtype, labels).lower()
    devices = self.local_devices
    state = jax.tree.map(lambda s: jax.ShapeDtypeStruct((devices,) + s.shape, s.dtype),
                         jax.eval_shape(self._init))
    lead = 1 if length == 1 else 2
    split = lambda s: jax.ShapeDtypeStruct(  # as `put` splits a batch: [D, ..., B / D, ...]
        (devices,) + s.shape[:lead] + (s.shape[lead] // devices,) + s.shape[lead + 1:], s.dtype)
    batch = jax.tree.map(split, self.abstract_batch(length, n_critic, batch_size, image_dtype,
                                                    labels))
    return self._pmap[lead].lower(state, batch)

  def call_flops(self, length: int, n_critic: int, batch_size: int, image_dtype: str = 'uint8',
                 labels: bool = False) -> float:
    """FLOPs per device of one training call of `length` iterations (gan_jax/flops.py: matrix
    products and convolutions); traced once per call shape. The devices share the global
    batch's work evenly, with jit or pmap alike."""
    key = (length, n_critic, batch_size, image_dtype, labels)
    if key not in self._flops:
      self._flops[key] = flops.count(self.trace(*key).jaxpr) / self.mesh.size
    return self._flops[key]

  def step(self, state: TrainState, batch):
    """One compiled call on a `put` batch.

    Args:
      state: in `place`'s layout (donated).
      batch: from `put`.

    Returns:
      (state, metrics, health): each metric and health flag [K], one value per iteration
      ([K, N] with num_seeds N > 1: one per iteration and member); left on the device.
    """
    # 1: [n_critic, B]; 2: [K, n_critic, B]; with members [N, n_critic, B] 2, [K, N, ...] 3
    leading = batch['image'].ndim - len(self.image_shape) - 1 - self.pmap
    compiled = self._pmap if self.pmap else self._jit
    return compiled[leading](state, batch)

  def train(self, state: TrainState, host_batches: Sequence[Dict[str, np.ndarray]]):
    """len(host_batches) iterations in one compiled call: `step(state, put(host_batches))`."""
    return self.step(state, self.put(host_batches))

  def generate(self, state: TrainState, z, labels=None):
    """Images in [-1, 1] from the generator of `state` (one copy, one run: a member's
    seeds.member of a stacked state): on the device with one
    process; with several, the rows split over every device of every process and all of them
    gathered back to each process (numpy)."""
    if jax.process_count() == 1:
      return self._generate(state, z, labels)
    n, size = z.shape[0], self.mesh.size
    padded = -(-n // size) * size
    split = sharding.batch_sharding(self.mesh, leading=0)

    def to_global(x):
      x = np.asarray(x)
      x = np.concatenate([x, np.repeat(x[-1:], padded - n, axis=0)]) if padded > n else x
      return jax.make_array_from_callback(x.shape, split, lambda index: x[index])
    images = self._generate(state, to_global(z), None if labels is None else to_global(labels))
    return multihost_utils.process_allgather(images, tiled=True)[:n]

  def noise(self, key, num: int) -> jax.Array:
    """[num, latent_dim] standard normal z."""
    return jax.random.normal(key, (num, self.gan.latent_dim), jnp.float32)
