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
    return _loop(config, workdir, stepper, data, evaluation, state, data_state, stop)


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


class _Throughput:
  """The FLOPs of the calls dispatched since the last log step (Stepper.call_flops, per device)
  and what they make per second: train/tflops_per_second and, where the device's peak is known
  (gan_jax/hardware.py), train/mfu."""

  def __init__(self, stepper: Stepper, config, data):
    self.stepper, self.batch_size = stepper, config.batch_size
    self.image_dtype = str(getattr(data.images, 'dtype', 'uint8'))
    self.labels = data.labels is not None
    self.peak = hardware.peak_flops(jax.devices()[0].device_kind, config.dtype)
    self.flops = 0.0

  def add(self, call) -> None:
    self.flops += self.stepper.call_flops(call.length, call.n_critic, self.batch_size,
                                          self.image_dtype, self.labels)

  def scalars(self, seconds: float) -> Dict[str, float]:
    rate = self.flops / seconds if seconds > 0 else 0.0
    self.flops = 0.0
    out = {'train/tflops_per_second': rate / 1e12}
    if self.peak:
      out['train/mfu'] = rate / self.peak
    return out


def _loop(config, workdir, stepper: Stepper, data, evaluation, state, data_state, stop):
  initial_step = int(state.step)
  if initial_step:
    logging.info('Resumed from step %d in %s', initial_step, workdir)
  # CLU's writers load TensorFlow (~2.5 s), which a refused run never needs.
  platforms.keep_tf_off_accelerators()
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  files.path(workdir).mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    rundir.write_config(config, workdir)
    rundir.write_spec(workdir, input_pipeline.DataSpec(tuple(data.image_shape), data.num_classes,
                                                       data.class_names))
  managers = {'latest': checkpoints.manager(workdir, config.keep_checkpoints)}
  writer = calls = None
  members = []  # num_seeds > 1: each member's TensorBoard writer
  try:
    mngr = managers['latest']
    member_seeds = stepper.seeds if stepper.num_seeds > 1 else None
    health = _HealthCheck(mngr, config.skip_nonfinite, member_seeds)
    # Member k's data (num_seeds > 1) is the stream of a run with seed config.seed + k.
    stream = seeds.stream(data, config, data_state['position'],
                          (jax.process_index(), jax.process_count()))
    writer = metric_writers.create_default_writer(
        workdir, just_logging=jax.process_index() > 0, asynchronous=True)
    members = _member_writers(workdir, config, metric_writers)
    if initial_step == 0:
      writer.write_hparams({k: v for k, v in config.items() if not hasattr(v, 'items')})
    health.on_finished = _Progress(config, writer)
    # num_seeds > 1: member 0's grid (a run of config.seed's), or every member's (its seed's z)
    grid_seeds = stepper.seeds if config.grid_members == 'all' else stepper.seeds[:1]
    grid_inputs = [sampling.grid_inputs(stepper, seed, config.num_grid) for seed in grid_seeds]
    # The next calls' batches are assembled and sent to the devices on a thread while the
    # current call runs; checkpoints save the position after the batches of the steps done.
    calls = prefetch.Prefetcher(_calls(stepper, stream, config, initial_step), size=2)
    throughput = _Throughput(stepper, config, data)
    data_seconds, real_images, t_log, last_log = 0.0, 0, time.time(), initial_step
    done, position = initial_step, data_state['position']
    num_calls = 0  # the preemption sync's step ids (1, 2, ...)
    log = None  # a log step's (step, metrics, scalars), written once the next call is queued
    while done < config.num_steps:
      t0 = time.time()
      call = next(calls)
      data_seconds += time.time() - t0  # the wait for data
      assert call.step == done, (call.step, done)
      real_images += call.length * call.n_critic * config.batch_size * config.num_seeds
      state, metrics, flags = stepper.step(state, call.batch)
      throughput.add(call)
      if log:  # the last log step's, written while the device runs this call
        _write_log(writer, members, health, *log)
        log = None
      done, position = done + call.length, call.position
      num_calls += 1
      stopping = stop.stop_now(mngr, num_calls)
      health.add(done, metrics, flags)  # checks a call dispatched earlier: no wait for this one
      if schedule.is_time(config.log_every, done, config):
        t_now = time.time()
        log = (done, metrics, {'train/data_seconds_per_step': data_seconds / (done - last_log),
                               'train/images_per_sec': real_images / (t_now - t_log),
                               **throughput.scalars(t_now - t_log)})
        data_seconds, real_images, t_log, last_log = 0.0, 0, t_now, done
      # A stop request saves first: sampling and evaluation may not fit in a preemption's grace.
      if (stopping or schedule.is_time(config.checkpoint_every, done, config) or
          done == config.num_steps):
        health.flush()  # never save a non-finite state
        if done == config.num_steps or stopping:
          logging.info('Saving the checkpoint of step %d.', done)
        checkpoints.save(mngr, done, state, {'position': position})
      if stopping:
        logging.warning('%s: stopped at step %d with a checkpoint; run again to resume.',
                        stop.received, done)
        break
      if schedule.is_time(config.sample_every, done, config):
        if member_seeds is None:
          picture = sampling.grid(stepper, state, grid_inputs[0],
                                  data.class_names)
        else:
          picture = sampling.member_grids(stepper, state, grid_inputs, data.class_names)
        writer.write_images(done, {'samples': picture[None]})
      if evaluation and schedule.is_time(config.eval_every, done, config):
        health.flush()
        logging.info('Evaluating step %d on %d samples%s.', done, config.eval.num_samples,
                     f' of each of {config.num_seeds} members' if config.num_seeds > 1 else '')
        result = evaluation.run(state)  # members: seeds.combine's mean
        writer.write_scalars(done, {f'eval/{k}': v for k, v in result.items()
                                    if isinstance(v, (int, float)) and
                                    k not in ('step', 'num_samples')})
        for k, member_writer in enumerate(members):  # each member's own scores
          member_writer.write_scalars(done, {f'eval/{name[:-len("_members")]}': v[k]
                                             for name, v in result.items()
                                             if name.endswith('_members')})
        if 'best' not in managers:
          managers['best'] = checkpoints.manager(workdir, 1, best_metric=evaluation.best_metric,
                                                 best_mode=evaluation.best_mode)
        checkpoints.save(managers['best'], done, state,
                         {'position': position},
                         metrics={evaluation.best_metric: result[evaluation.best_metric]})
    if log:
      _write_log(writer, members, health, *log)
    health.flush()
  finally:
    if calls is not None:
      calls.close()
    for mngr in managers.values():
      mngr.wait_until_finished()
      mngr.close()
    for member_writer in members:
      member_writer.flush()
      member_writer.close()
    if writer is not None:
      writer.flush()
      writer.close()
  if done == config.num_steps and done > initial_step:
    logging.info('Trained to step %d in %s.', done, workdir)
  return state
