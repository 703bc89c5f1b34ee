"""Many seeds at once (config.num_seeds = N > 1): N members, member k the run of seed
config.seed + k, trained as one seed-stacked TrainState by one compiled call.

A stacked state is a TrainState whose leaves carry a leading member axis [N, ...], all but
`step`: every member takes every step, so one step counts them all. The pure step of one run
(gan_jax/updates.py) is vmapped over that axis, so member k's parameters (from PRNGKey(seed + k)),
noise (its own state key) and real batches (a BatchStream of seed + k, `Streams`) are those of
a separate run with seed + k. num_seeds = 1 never comes here: its state is the one run's,
unstacked.
"""

import functools
from typing import Any, Dict, List, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import input_pipeline, updates
from gan_jax.updates import TrainState

# vmap axes of a stacked TrainState: the member axis of every leaf but the shared step.
STATE_AXES = TrainState(step=None, key=0, gen=0, critic=0, skipped=0, ema=0, lecam=0, ada=0,
                        path_length=0)
_STACKED = ('key', 'gen', 'critic', 'skipped', 'ema', 'lecam', 'ada', 'path_length')


def member_seeds(config) -> List[int]:
  """The members' seeds: config.seed, config.seed + 1, ..., config.seed + num_seeds - 1."""
  return [config.seed + k for k in range(config.num_seeds)]


def init(gan: updates.GAN, seeds: Sequence[int], image_shape) -> TrainState:
  """The stacked initial state: member k is updates.init_state(gan, seeds[k], image_shape)."""
  keys = jnp.stack([jax.random.PRNGKey(seed) for seed in seeds])  # [N, 2]
  init_one = functools.partial(updates.init_from_key, gan, image_shape=image_shape)
  return jax.vmap(init_one, out_axes=STATE_AXES)(keys)


def mapping(config, seed_shards: int, backend: str) -> str:
  """How a call runs its members: 'vmap' (one batched program) or 'loop' (one member after
  another inside the call, lax.map). config.seed_mapping, or for 'auto' a loop where vmap is
  slow: convolutional models on CPU with the members on every device (vmapped convolutions
  become grouped ones, which XLA:CPU runs several times slower than N plain ones); vmap
  otherwise (members sharded over devices run side by side, with no loop)."""
  if config.seed_mapping != 'auto':
    return config.seed_mapping
  loop = backend == 'cpu' and seed_shards == 1 and config.model.arch != 'mlp'
  return 'loop' if loop else 'vmap'


def over_members(fn, how: str = 'vmap', spmd_axis_name=None):
  """The training call of one run, `fn(state, batches) -> (state, metrics, health)` on batches
  [K, n_critic, B, ...] with metrics and health [K], as the call of a stacked state on batches
  with a member axis after K ([K, N, n_critic, B, ...]); metrics and health come back [K, N].
  `how`: 'vmap' or 'loop' (see `mapping`); both give each member the computation of a
  separate run. `spmd_axis_name`: the mesh axis the members are split over ('seeds'), which
  the sharding constraints inside `fn` then keep for the member axis vmap adds."""
  def call(state, batch):
    if how == 'vmap':
      return jax.vmap(fn, in_axes=(STATE_AXES, 1), out_axes=(STATE_AXES, 1, 1),
                      spmd_axis_name=spmd_axis_name)(state, batch)

    def one_member(inputs):
      parts, member_batch = inputs
      new, metrics, health = fn(state.replace(**parts), member_batch)
      return new.step, {name: getattr(new, name) for name in _STACKED}, metrics, health

    parts = {name: getattr(state, name) for name in _STACKED}
    batch = jax.tree.map(lambda x: jnp.moveaxis(x, 1, 0), batch)
    step, parts, metrics, health = jax.lax.map(one_member, (parts, batch))
    to_k_n = lambda tree: jax.tree.map(lambda x: jnp.moveaxis(x, 0, 1), tree)  # [N, K] -> [K, N]
    # Every member takes the same steps: step[k] is the same for all k.
    return state.replace(step=step[0], **parts), to_k_n(metrics), to_k_n(health)
  return call


def seed_shards(config, num_devices: int, num_processes: int = 1) -> int:
  """Devices along the mesh's 'seeds' axis (1: every member on every device, the state
  replicated): config.seed_shards, or for 0 (auto) num_seeds when it divides the device count,
  the device count when it divides num_seeds, else 1; always 1 with one seed or several
  processes (each process feeds every member's rows of its own share of the batch)."""
  if config.seed_shards:
    return config.seed_shards
  n = config.num_seeds
  if n == 1 or num_processes > 1:
    return 1
  return n if num_devices % n == 0 else num_devices if n % num_devices == 0 else 1


def state_shardings(state, member_sharding, shared_sharding):
  """The shardings of a stacked state's leaves: `member_sharding` for each member-stacked
  leaf, `shared_sharding` for the step."""
  return state.replace(step=shared_sharding, **{
      name: jax.tree.map(lambda _: member_sharding, getattr(state, name))
      for name in _STACKED})


def member(state: TrainState, k: int) -> TrainState:
  """Member k of a stacked state: the TrainState of the run with seed config.seed + k."""
  return state.replace(**{name: jax.tree.map(lambda x: x[k], getattr(state, name))
                          for name in _STACKED})


def stack(states: Sequence[TrainState]) -> TrainState:
  """The stacked state of separate runs' states (all at the same step)."""
  stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
  return stacked.replace(step=states[0].step)


class Streams:
  """The members' data: one BatchStream each (member k's of seed seeds[k], the stream a
  separate run with that seed walks), walked together, so they share one position."""

  def __init__(self, data: input_pipeline.Dataset, batch_size: int, seeds: Sequence[int],
               position: int = 0, shard=(0, 1)):
    self.streams = [input_pipeline.BatchStream(data, batch_size, seed, position, shard)
                    for seed in seeds]

  @property
  def position(self) -> int:
    return self.streams[0].position

  def next(self, n: int) -> Dict[str, np.ndarray]:
    """Every member's n batches: {'image': [N, n, B_local, H, W, C], 'label': [N, n, B_local]}."""
    parts = [stream.next(n) for stream in self.streams]
    return {key: np.stack([part[key] for part in parts]) for key in parts[0]}


def stream(data: input_pipeline.Dataset, config, position: int = 0, shard=(0, 1)):
  """The training data of a config: its BatchStream, or with num_seeds > 1 the members'."""
  if config.num_seeds == 1:
    return input_pipeline.BatchStream(data, config.batch_size, config.seed, position, shard)
  return Streams(data, config.batch_size, member_seeds(config), position, shard)


SPREAD = '_seed_std'  # the suffix of a value's standard deviation across the members
MEMBERS = '_members'  # the suffix of a combined score's list of the members' own values


def summary(values: Dict[str, Any], shared=()) -> Tuple[Dict[str, float],
                                                       List[Dict[str, float]]]:
  """(each name's mean across the members and their standard deviation as `name_seed_std`,
  each member's own scalars) of per-member values (name -> [N]); names in `shared` (the same
  for every member: the schedule) get no spread."""
  values = {name: np.asarray(v, np.float64) for name, v in values.items()}
  spread = {}
  for name, per_member in values.items():
    spread[name] = float(per_member.mean())
    if name not in shared:
      spread[name + SPREAD] = float(per_member.std())
  num = len(next(iter(values.values()))) if values else 0
  return spread, [{name: float(v[k]) for name, v in values.items()} for k in range(num)]


def combine(results: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
  """One evaluation result of the members' (one dict each): each score's mean, `score_seed_std`
  and `score_members` (the members' values, in order). A score's own within-run spread (an
  evaluator's `x_std`: Inception Score splits, KID subsets) comes as the members' mean and
  values; counts (a confusion matrix: a list) summed over the members; what is not a score (the
  step, the sample count) as the members share it; `member_scores` takes the members' values
  back out."""
  scores = [k for k, v in results[0].items() if isinstance(v, (int, float)) and
            not isinstance(v, bool) and k not in ('step', 'num_samples')]
  own_spreads = [k for k in scores if k.endswith('_std')]
  spread, _ = summary({k: [r[k] for r in results] for k in scores}, shared=own_spreads)
  out = {k: v for k, v in results[0].items() if k not in scores}
  for k, v in results[0].items():
    if isinstance(v, list):
      out[k] = np.sum([r[k] for r in results], axis=0).tolist()
  for k in scores:
    out[k] = spread[k]
    if k not in own_spreads:
      out[k + SPREAD] = spread[k + SPREAD]
    out[k + MEMBERS] = [float(r[k]) for r in results]
  return out


def member_scores(result: Dict[str, Any]) -> List[Dict[str, float]]:
  """Each member's own scores of a `combine`d result, in member order: [{score: value}]."""
  values = {name[:-len(MEMBERS)]: v for name, v in result.items() if name.endswith(MEMBERS)}
  num = len(next(iter(values.values()))) if values else 0
  return [{name: v[k] for name, v in values.items()} for k in range(num)]
