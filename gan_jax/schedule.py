"""The run's schedule, a function of the step alone (the same on every host): when a periodic
action (log, sample, checkpoint, evaluation) is due, and how many iterations each compiled call
holds."""

from typing import Tuple

from gan_jax import gans


def is_time(every: int, step: int, config) -> bool:
  """Whether a periodic action (every `every` steps, 0 = never) is due after `step` steps."""
  return every > 0 and (step % every == 0 or step == config.num_steps)


def _periodic(config):
  return (config.log_every, config.sample_every, config.checkpoint_every, config.eval_every)


def call_length(step: int, config) -> int:
  """Iterations in the compiled call that starts at `step`; a call never spans a log, sample,
  eval or checkpoint step, nor a change of n_critic.

  config.steps_per_call = K > 0: K when that holds for all K iterations, otherwise 1.
  0 (auto): config.max_steps_per_call when that many fit before the next periodic action (or
  n_critic change, or the end), else the largest power of two that fits; so a run compiles at
  most a few lengths (default periods 100/500/1000, max 25: only 25). A call holds at most the
  critic batches of max_steps_per_call iterations at config.n_critic, so WGAN's boosted steps
  (100 critic updates) run one per call and the batches in flight stay that size.
  """
  if config.steps_per_call:
    k = config.steps_per_call
    if k <= 1 or step + k > config.num_steps:
      return 1
    n_critic = gans.n_critic_at(step, config)
    for j in range(1, k):
      if gans.n_critic_at(step + j, config) != n_critic or any(
          is_time(every, step + j, config) for every in _periodic(config)):
        return 1
    return k
  n_critic = gans.n_critic_at(step, config)
  batches = config.max_steps_per_call * config.n_critic  # critic batches a call may hold
  fits = min(config.max_steps_per_call, config.num_steps - step, max(1, batches // n_critic))
  for every in _periodic(config):
    if every > 0:
      fits = min(fits, every - step % every)  # the call may end at the action's step
  for j in range(1, fits):
    if gans.n_critic_at(step + j, config) != n_critic:
      fits = j
      break
  if fits >= config.max_steps_per_call:
    return config.max_steps_per_call
  return 1 << (max(fits, 1).bit_length() - 1)


def largest_call(config) -> Tuple[int, int]:
  """(iterations, n_critic) of the training call that holds the most critic batches (what
  fills HBM) among the calls the run's schedule makes (call_length)."""
  kinds, step = set(), 0
  while step < config.num_steps:
    length = call_length(step, config)
    kinds.add((length, gans.n_critic_at(step, config)))
    step += length
  return max(kinds, key=lambda kind: (kind[0] * kind[1], kind[0]))
