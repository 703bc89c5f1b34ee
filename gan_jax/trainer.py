"""The training loop: resume, preemption, non-finite checks, periodic actions (logs, grids,
evaluations, checkpoints) and the writers. It gets everything built and checked (gan_jax/modes.py
does that): a Stepper, the data, and optionally an evaluation function.
"""

import collections
import dataclasses
import os
import signal
import threading
import time
from typing import Any, Callable, Dict, Optional

from absl import logging
import jax
import numpy as np

from gan_jax import (checkpoints, files, gans, hardware, input_pipeline, platforms, prefetch,
                     rundir, sampling, schedule, seeds)
from gan_jax.errors import NonFiniteError
from gan_jax.stepper import Stepper
from gan_jax.updates import TrainState


@dataclasses.dataclass
class Evaluation:
  """What eval_every runs: `run(state) -> metrics`, and the metric that keeps the best
  checkpoint ('min' or 'max' is better)."""
  run: Callable[[TrainState], Dict[str, Any]]
  best_metric: str
  best_mode: str


class StopSignals:
  """Turns SIGTERM / SIGINT into a request to stop after the calls dispatched (preemption).

  With several processes, SIGTERM stays with JAX's preemption notifier (jax.distributed
  installs it), which makes every process agree on the step to stop at (`stop_now`); SIGINT is
  passed on to it as a SIGTERM.
  """

  def __init__(self, multi_process: bool = False):
    self.received = None
    self.multi_process = multi_process
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      signals = (signal.SIGINT,) if self.multi_process else (signal.SIGTERM, signal.SIGINT)
      for sig in signals:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, _):
    if self.multi_process:  # to JAX's notifier, which tells the other processes
      os.kill(os.getpid(), signal.SIGTERM)
    else:
      self.received = signal.Signals(signum).name

  def stop_now(self, mngr, calls: int) -> bool:
    """Whether to save and stop after the `calls`-th compiled call: a signal here, or (several
    processes) the step JAX's preemption sync chose, the same on every process."""
    if self.multi_process and mngr.reached_preemption(calls):
      self.received = self.received or 'preemption notice'
    return self.received is not None

  def __exit__(self, *_):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def restore_or_init(stepper: Stepper, workdir: str):
  """(state, data_state) from the newest checkpoint in `workdir`, else fresh; writes nothing."""
  if not checkpoints.exists(workdir):
    return stepper.init(), {'position': 0}
  mngr = checkpoints.manager(workdir, 1, read_only=True)
  try:
    if mngr.latest_step() is None:
      return stepper.init(), {'position': 0}
    return checkpoints.restore(mngr, stepper.abstract_state())
  finally:
    mngr.close()


def _unhealthy(last_step: int, metrics, health, member_seeds=None) -> list:
  """[(step, 'what was not finite')] of a call's iterations (stacked [K], ending at
  `last_step`) whose health flags are not all true; with `member_seeds` (num_seeds > 1: flags
  [K, N]) one entry per member, which it names."""
  flags = jax.device_get(health)                      # name -> [K] (or [K, N]) bools
  ok = np.all(np.stack(list(flags.values())), axis=0)  # [K] (or [K, N])
  if ok.all():
    return []
  values = jax.device_get(metrics)
  out = []
  for index in map(tuple, np.argwhere(~ok)):          # (i,) or (i, member)
    names = [f'train/{k}' for k, v in values.items() if not np.isfinite(v[index])]
    names += [name for name, flag in flags.items() if name != 'metrics' and not flag[index]]
    what = ', '.join(names)
    if member_seeds is not None:
      what += f' in member {index[1]} (seed {member_seeds[index[1]]})'
    out.append((last_step - len(ok) + 1 + int(index[0]), what))
  return out


class _HealthCheck:
  """Checks each call's finite flags once: warns for skipped iterations (skip_nonfinite), else
  raises NonFiniteError naming the step and the values.

  A call is checked once the next one is dispatched, or at `flush` (log, checkpoint,
  evaluation and the end, before anything is saved), so the host never waits for the call it
  just dispatched, and is at most one call ahead of the devices (a stop request waits for two
  calls at most); where it checks depends on the steps alone, the same on every host.
  """

  def __init__(self, mngr, skip: bool, member_seeds=None,
               on_finished: Optional[Callable[[int], None]] = None):
    self.mngr, self.skip, self.member_seeds = mngr, skip, member_seeds
    self.on_finished = on_finished  # called with a checked call's last step: it has finished
    self.pending = collections.deque()  # (last_step, metrics, health) of unchecked calls

  def add(self, last_step: int, metrics, health) -> None:
    """Keeps this call for later; checks the one dispatched before it."""
    self.pending.append((last_step, metrics, health))
    while len(self.pending) > 1:
      self._check(self.pending.popleft())

  def flush(self) -> None:
    while self.pending:
      self._check(self.pending.popleft())

  def _check(self, pending) -> None:
    for step, what in _unhealthy(*pending, self.member_seeds):
      if self.skip:  # with members: that member's iteration; the others went on
        logging.warning('step %d: skipped an iteration with non-finite %s', step, what)
        continue
      self.pending.clear()
      self.mngr.wait_until_finished()
      last = self.mngr.latest_step()
      kept = f'the last checkpoint (step {last}) is intact' if last else 'no checkpoint was written'
      raise NonFiniteError(f'step {step}: non-finite {what}; {kept}. Lower the learning rates, '
                           f'or set --config.skip_nonfinite=True to skip such iterations')
    if self.on_finished:
      self.on_finished(pending[0])


@dataclasses.dataclass(frozen=True)
class _Call:
  """One compiled call's input, made ahead of it."""
  step: int       # the step it starts at
  length: int     # iterations (call_length)
  n_critic: int
  batch: Any      # stepper.put's device batch
  position: int   # the data stream's position after its batches: what a checkpoint after it saves


def _calls(stepper: Stepper, stream, config, step: int):
  """The calls from `step` to the end, in order (the schedule depends on the step alone)."""
  while step < config.num_steps:
    k, n_critic = schedule.call_length(step, config), gans.n_critic_at(step, config)
    batch = stepper.put([stream.next(n_critic) for _ in range(k)])
    yield _Call(step, k, n_critic, batch, stream.position)
    step += k


def _member_writers(workdir: str, config, metric_writers) -> list:
  """num_seeds > 1: a TensorBoard writer per member, WORKDIR/members/seed_S, so that each
  member is a run of its own beside the mean (process 0; the others write nothing)."""
  if config.num_seeds == 1 or jax.process_index() > 0:
    return []
  return [metric_writers.AsyncWriter(metric_writers.SummaryWriter(
      str(files.path(workdir) / 'members' / f'seed_{seed}')))
          for seed in seeds.member_seeds(config)]


# Metrics every member has the same value of (the schedule): no spread to write.
_SHARED = ('train/n_critic', 'train/gen_learning_rate', 'train/critic_learning_rate')


def _write_members(writer, members: list, step: int, values, scalars=None) -> None:
  """Writes `scalars` and per-run values (name -> a scalar, or [N] with num_seeds N > 1: then
  the members' mean, their standard deviation as `name_seed_std`, and each member's own value to its
  writer in `members`) in one line."""
  scalars = scalars or {}
  if not values or np.ndim(next(iter(values.values()))) == 0:
    writer.write_scalars(step, {**{k: float(v) for k, v in values.items()}, **scalars})
    return
  spread, each = seeds.summary(values, shared=_SHARED)
  writer.write_scalars(step, {**spread, **scalars})  # CLU's writer also prints them
  for member_writer, member_values in zip(members, each):
    member_writer.write_scalars(step, member_values)


def _write_log(writer, members: list, health: _HealthCheck, step: int, metrics,
               scalars) -> None:
  """Writes a log step's train/ scalars (`metrics` of its call's last iteration, and
  `scalars`), then checks the calls up to it: they are done, as its metrics are."""
  values = {f'train/{k}': v[-1] for k, v in jax.device_get(metrics).items()}
  _write_members(writer, members, step, values, scalars)
  health.flush()


def train(config, workdir: str, stepper: Stepper, data: input_pipeline.Dataset,
          evaluation: Optional[Evaluation] = None) -> TrainState:
  """Trains in `workdir`, resuming from its newest checkpoint if there is one.

  Everything given must be checked already: the first thing this does is restore (which may
  still refuse a damaged checkpoint), then it writes. SIGTERM or SIGINT ends the run once the
  compiled calls already dispatched are done, with a checkpoint at their last step.
  """
  state, data_state = restore_or_init(stepper, workdir)
  with StopSignals(multi_process=jax.process_count() > 1) as stop:
    return _loop(_Run(config, workdir, stepper, data, evaluation), state, data_state, stop)


@dataclasses.dataclass(frozen=True)
class _Run:
  """What `train` was given: the same for the whole loop."""
  config: Any
  workdir: str
  stepper: Stepper
  data: input_pipeline.Dataset
  evaluation: Optional[Evaluation]


class _Progress:
  """The progress line and steps_per_sec, at log steps, from the iterations that have finished
  (a call's health flags were read), never from those dispatched: the first finished call
  (compile included) only starts the clock, so the first line measures a real interval; the
  ETA is the rest of the run at that rate, periodic work included."""

  def __init__(self, config, writer):
    self.config, self.writer = config, writer
    self.since = None  # (step, time) the rate is measured from

  def __call__(self, step: int) -> None:
    now = time.monotonic()
    if self.since is None:
      self.since = (step, now)
      return
    if not schedule.is_time(self.config.log_every, step, self.config):
      return
    rate = (step - self.since[0]) / max(now - self.since[1], 1e-9)
    left = (self.config.num_steps - step) / rate
    logging.info('step %d of %d (%.1f%%), %.3g steps/s, ETA %dm%02ds', step,
                 self.config.num_steps, 100 * step / self.config.num_steps, rate,
                 left // 60, left % 60)
    self.writer.write_scalars(step, {'steps_per_sec': rate})
    self.since = (step, now)


class _Rates:
  """What the calls dispatched since the last log step waited and made, as a log step's train/
  scalars: the wait for data per step, real images per second, and FLOPs (Stepper.call_flops,
  per device) per second: train/tflops_per_second and, where the device's peak is known
  (gan_jax/hardware.py), train/mfu."""

  def __init__(self, run: _Run, step: int):
    self.stepper, self.config = run.stepper, run.config
    self.image_dtype = str(getattr(run.data.images, 'dtype', 'uint8'))
    self.labels = run.data.labels is not None
    self.peak = hardware.peak_flops(jax.devices()[0].device_kind, run.config.dtype)
    self._start(step, time.time())

  def _start(self, step: int, now: float) -> None:
    self.since = (step, now)
    self.data_seconds, self.real_images, self.flops = 0.0, 0, 0.0

  def add(self, call: _Call, data_seconds: float) -> None:
    """Counts a dispatched call, which waited `data_seconds` for its batches."""
    config = self.config
    self.data_seconds += data_seconds
    self.real_images += call.length * call.n_critic * config.batch_size * config.num_seeds
    self.flops += self.stepper.call_flops(call.length, call.n_critic, config.batch_size,
                                          self.image_dtype, self.labels)

  def scalars(self, step: int) -> Dict[str, float]:
    """The scalars of the calls up to `step`, the log step; counting starts again from it."""
    now = time.time()
    seconds = now - self.since[1]
    rate = self.flops / seconds if seconds > 0 else 0.0
    out = {'train/data_seconds_per_step': self.data_seconds / (step - self.since[0]),
           'train/images_per_sec': self.real_images / seconds,
           'train/tflops_per_second': rate / 1e12}
    if self.peak:
      out['train/mfu'] = rate / self.peak
    self._start(step, now)
    return out


class _Checkpoints:
  """The run's checkpoint managers: WORKDIR/checkpoints (the last config.keep_checkpoints) and,
  when it evaluates, WORKDIR/best_checkpoint (the best by the evaluation's metric)."""

  def __init__(self, run: _Run):
    self.run = run
    self.latest = checkpoints.manager(run.workdir, run.config.keep_checkpoints)
    self._best = None

  def save(self, step: int, state: TrainState, position: int) -> None:
    checkpoints.save(self.latest, step, state, {'position': position})

  def keep_best(self, step: int, state: TrainState, position: int, result) -> None:
    """Offers `state` to the best checkpoint, which keeps it when its score in `result` beats
    the one kept."""
    metric = self.run.evaluation.best_metric
    checkpoints.save(self._best_manager(), step, state, {'position': position},
                     metrics={metric: result[metric]})

  def _best_manager(self):
    # Made at the first best save, not up front: Orbax creates a manager's directory when it
    # makes the manager, and best_checkpoint/ exists only once it holds a checkpoint (--best,
    # checkpoints.restore_for_use, tells a run that never evaluated by its absence).
    if self._best is None:
      self._best = checkpoints.manager(self.run.workdir, 1,
                                       best_metric=self.run.evaluation.best_metric,
                                       best_mode=self.run.evaluation.best_mode)
    return self._best

  def close(self) -> None:
    """Waits for the saves under way, then closes the managers."""
    for mngr in (self.latest, self._best):
      if mngr is not None:
        mngr.wait_until_finished()
        mngr.close()


def _clu_writers():
  """CLU's metric_writers module, imported once a run writes: it loads TensorFlow (~2.5 s),
  which a refused run never needs, and which must keep off the accelerators first."""
  platforms.keep_tf_off_accelerators()
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  return metric_writers


def _write_run_files(run: _Run) -> None:
  """Creates the workdir; process 0 writes the run's config and data spec into it."""
  files.path(run.workdir).mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    rundir.write_config(run.config, run.workdir)
    rundir.write_spec(run.workdir, input_pipeline.DataSpec(
        tuple(run.data.image_shape), run.data.num_classes, run.data.class_names))


def _grid_inputs(run: _Run) -> list:
  """The sample grid's inputs: num_seeds > 1, member 0's (a run of config.seed's) or every
  member's (its seed's z)."""
  stepper, config = run.stepper, run.config
  grid_seeds = stepper.seeds if config.grid_members == 'all' else stepper.seeds[:1]
  return [sampling.grid_inputs(stepper, seed, config.num_grid) for seed in grid_seeds]


def _write_grid(run: _Run, writer, inputs: list, state: TrainState, step: int) -> None:
  """Writes the `samples` image: the grid of `state` (members: side by side) from `inputs`."""
  if run.stepper.num_seeds == 1:
    picture = sampling.grid(run.stepper, state, inputs[0], run.data.class_names)
  else:
    picture = sampling.member_grids(run.stepper, state, inputs, run.data.class_names)
  writer.write_images(step, {'samples': picture[None]})


def _evaluate(run: _Run, state: TrainState, step: int) -> Dict[str, Any]:
  """The evaluation of `state` at `step` (members: seeds.combine's result)."""
  config = run.config
  logging.info('Evaluating step %d on %d samples%s.', step, config.eval.num_samples,
               f' of each of {config.num_seeds} members' if config.num_seeds > 1 else '')
  return run.evaluation.run(state)


def _write_eval(writer, members: list, step: int, result: Dict[str, Any]) -> None:
  """Writes an evaluation's scores as eval/ scalars (members: their mean and spread), and each
  member's own scores to its writer in `members`."""
  writer.write_scalars(step, {f'eval/{k}': v for k, v in result.items()
                              if isinstance(v, (int, float)) and
                              k not in ('step', 'num_samples', 'truncation')})
  for member_writer, scores in zip(members, seeds.member_scores(result)):
    member_writer.write_scalars(step, {f'eval/{k}': v for k, v in scores.items()})


def _close(calls, saves: _Checkpoints, writer, members: list) -> None:
  """Stops the prefetching, finishes the saves under way, flushes and closes the writers."""
  if calls is not None:
    calls.close()
  saves.close()
  for each in [*members, writer]:
    if each is not None:
      each.flush()
      each.close()


def _loop(run: _Run, state: TrainState, data_state: dict, stop: StopSignals) -> TrainState:
  """Trains `state` from its step to config.num_steps, or until `stop`; returns the last state."""
  config, stepper = run.config, run.stepper
  initial_step = int(state.step)
  if initial_step:
    logging.info('Resumed from step %d in %s', initial_step, run.workdir)
  metric_writers = _clu_writers()
  _write_run_files(run)
  saves = _Checkpoints(run)
  writer = calls = None
  members = []  # num_seeds > 1: each member's TensorBoard writer
  try:
    health = _HealthCheck(saves.latest, config.skip_nonfinite,
                          stepper.seeds if stepper.num_seeds > 1 else None)
    # Member k's data (num_seeds > 1) is the stream of a run with seed config.seed + k.
    stream = seeds.stream(run.data, config, data_state['position'],
                          (jax.process_index(), jax.process_count()))
    writer = metric_writers.create_default_writer(
        run.workdir, just_logging=jax.process_index() > 0, asynchronous=True)
    members = _member_writers(run.workdir, config, metric_writers)
    if initial_step == 0:
      writer.write_hparams({k: v for k, v in config.items() if not hasattr(v, 'items')})
    health.on_finished = _Progress(config, writer)
    grid_inputs = _grid_inputs(run)
    # The next calls' batches are assembled and sent to the devices on a thread while the
    # current call runs; checkpoints save the position after the batches of the steps done.
    calls = prefetch.Prefetcher(_calls(stepper, stream, config, initial_step), size=2)
    rates = _Rates(run, initial_step)
    done, position = initial_step, data_state['position']
    num_calls = 0  # the preemption sync's step ids (1, 2, ...)
    log = None  # a log step's (step, metrics, scalars), written once the next call is queued
    while done < config.num_steps:
      t0 = time.time()
      call = next(calls)
      waited = time.time() - t0  # the wait for data
      assert call.step == done, (call.step, done)
      state, metrics, flags = stepper.step(state, call.batch)
      rates.add(call, waited)
      if log:  # the last log step's, written while the device runs this call
        _write_log(writer, members, health, *log)
        log = None
      done, position = done + call.length, call.position
      num_calls += 1
      stopping = stop.stop_now(saves.latest, num_calls)
      health.add(done, metrics, flags)  # checks a call dispatched earlier: no wait for this one
      if schedule.is_time(config.log_every, done, config):
        log = (done, metrics, rates.scalars(done))
      # A stop request saves first: sampling and evaluation may not fit in a preemption's grace.
      if (stopping or schedule.is_time(config.checkpoint_every, done, config) or
          done == config.num_steps):
        health.flush()  # never save a non-finite state
        if done == config.num_steps or stopping:
          logging.info('Saving the checkpoint of step %d.', done)
        saves.save(done, state, position)
      if stopping:
        logging.warning('%s: stopped at step %d with a checkpoint; run again to resume.',
                        stop.received, done)
        break
      if schedule.is_time(config.sample_every, done, config):
        _write_grid(run, writer, grid_inputs, state, done)
      if run.evaluation and schedule.is_time(config.eval_every, done, config):
        health.flush()
        result = _evaluate(run, state, done)
        _write_eval(writer, members, done, result)
        saves.keep_best(done, state, position, result)
    if log:
      _write_log(writer, members, health, *log)
    health.flush()
  finally:
    _close(calls, saves, writer, members)
  if done == config.num_steps and done > initial_step:
    logging.info('Trained to step %d in %s.', done, run.workdir)
  return state
