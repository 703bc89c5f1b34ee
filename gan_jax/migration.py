"""Workdirs of every earlier format, read as today's: the one place that knows old layouts.

A checkpoint records the format of its train state (`FORMAT`, in its data item beside the
stream position). Checkpoints written before formats were recorded are known by their tree:

  1  one flat record: step, key, skipped, gen_params, gen_stats, gen_opt_state, critic_...
  2  per-player state (gen, critic: params, stats, opt_state), no EMA, no spectral vectors
  3  a player's `spectral` vectors and the generator's `ema` ({} if unused), no LeCam anchors
  4  format 3 and the LeCam anchors `lecam` ({} if unused)
  5  today's TrainState: format 4, ADA's `ada` (p and its sign sums) and the path length
     penalty's `path_length` (pl_mean) ({} if unused)

A run's config.json from before the GAN grid (no loss.adversarial) named its GAN by `gan` (and
ACGAN's acgan_adversarial) alone: `upgrade_config` clears the grid fields it lacks, so the
preset decides. Fields added since a run began are the field table's business
(gan_jax/fields.py: absent_is_default).
"""

from typing import Any, Dict, Mapping

from gan_jax.updates import PlayerState, TrainState

FORMAT = 5  # what this version writes
_PARTS = ('params', 'stats', 'opt_state')


def state_format(tree: Mapping[str, Any]) -> int:
  """The format of a saved train state from its tree of names (a checkpoint's metadata)."""
  if 'gen_params' in tree:
    return 1
  return 3 if 'ema' in tree else 2


def _as_1(state: TrainState) -> dict:
  flat = {'step': state.step, 'key': state.key, 'skipped': state.skipped}
  for player in ('gen', 'critic'):
    for part in _PARTS:
      flat[f'{player}_{part}'] = getattr(getattr(state, player), part)
  return flat


def _from_1(flat: dict) -> TrainState:
  player = lambda name: PlayerState(*(flat[f'{name}_{part}'] for part in _PARTS))
  return TrainState(step=flat['step'], key=flat['key'], gen=player('gen'),
                    critic=player('critic'), skipped=flat['skipped'])


def _as_2(state: TrainState) -> dict:
  player = lambda p: {part: getattr(p, part) for part in _PARTS}
  return {'step': state.step, 'key': state.key, 'gen': player(state.gen),
          'critic': player(state.critic), 'skipped': state.skipped}


def _from_2(tree: dict) -> TrainState:
  player = lambda p: PlayerState(*(p[part] for part in _PARTS))
  return TrainState(step=tree['step'], key=tree['key'], gen=player(tree['gen']),
                    critic=player(tree['critic']), skipped=tree['skipped'])


_KEPT_3 = ('step', 'key', 'gen', 'critic', 'skipped', 'ema')  # TrainState's fields in format 3


def _as_3(state: TrainState) -> dict:
  return {name: getattr(state, name) for name in _KEPT_3}


def _from_3(tree: dict) -> TrainState:
  return TrainState(**{name: tree[name] for name in _KEPT_3})


_KEPT_4 = _KEPT_3 + ('lecam',)  # ... and in format 4


def _as_4(state: TrainState) -> dict:
  return {name: getattr(state, name) for name in _KEPT_4}


def _from_4(tree: dict) -> TrainState:
  return TrainState(**{name: tree[name] for name in _KEPT_4})


_same = lambda state: state
# format -> (today's state -> that layout, that layout -> today's state)
LAYOUTS: Dict[int, tuple] = {1: (_as_1, _from_1), 2: (_as_2, _from_2), 3: (_as_3, _from_3),
                             4: (_as_4, _from_4), 5: (_same, _same)}


def can_hold(target: TrainState, fmt: int) -> bool:
  """Whether a state of format `fmt` restores into `target`: formats 1 and 2 hold no EMA and no
  spectral vectors, format 3 no LeCam anchors, format 4 no ADA state and no pl_mean, so only a
  target without them reads them."""
  if fmt == FORMAT:
    return True
  return not (target.ada or target.path_length or (fmt < 4 and target.lecam) or
              (fmt < 3 and (target.ema or target.gen.spectral or target.critic.spectral)))


def layout(target, fmt: int):
  """`target` (today's TrainState of arrays or ShapeDtypeStructs) in the layout of `fmt`."""
  return LAYOUTS[fmt][0](target)


def upgrade(restored, fmt: int) -> TrainState:
  """A state restored in the layout of `fmt`, as today's TrainState."""
  return LAYOUTS[fmt][1](restored)


def upgrade_config(config, saved: Mapping[str, Any]) -> None:
  """Brings `config` (a run's config.json over its preset's defaults) to today's meaning, given
  the saved config.json `saved`."""
  if 'adversarial' not in saved.get('loss', {}):  # before the GAN grid
    config.loss.adversarial = config.loss.lipschitz = config.model.conditional = ''

