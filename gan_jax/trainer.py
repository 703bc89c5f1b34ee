"""The training loop: resume, preemption, non-finite checks, periodic actions (logs, grids,
evaluations, checkpoints) and the writers. It gets everything built and checked (gan_jax/modes.py
does that): a Stepper, the data, and optionally an evaluation function.
"""

import dataclasses
import signal
import threading
import time
from typing import Any, Callable, Dict, Optional

from absl import logging
import jax
import numpy as np

from gan_jax import checkpoints, files, gans, input_pipeline, platforms, rundir, sampling
from gan_jax.errors import NonFiniteError
from gan_jax.stepper import Stepper
from gan_jax.steps import TrainState


@dataclasses.dataclass
class Evaluation:
  """What eval_every runs: `run(state) -> metrics`, and the metric that keeps the best
  checkpoint ('min' or 'max' is better)."""
  run: Callable[[TrainState], Dict[str, Any]]
  best_metric: str
  best_mode: str


class StopSignals:
  """Turns SIGTERM / SIGINT into a request to stop after the current step (preemption).

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


def is_time(every: int, step: int, config) -> bool:
  """Whether a periodic action (every `every` steps, 0 = never) is due after `step` steps."""
  return every > 0 and (step % every == 0 or step == config.num_steps)


def call_length(step: int, config) -> int:
  """Iterations in the compiled call that starts at `step`: config.steps_per_call when they all
  have the same n_critic and no log, sample, eval or checkpoint falls inside; otherwise 1."""
  k = config.steps_per_call
  if k <= 1 or step + k > config.num_steps:
    return 1
  n_critic = gans.n_critic_at(step, config)
  for j in range(1, k):
    if gans.n_critic_at(step + j, config) != n_critic or any(
        is_time(every, step + j, config)
        for every in (config.log_every, config.sample_every, config.checkpoint_every,
                      config.eval_every)):
      return 1
  return k


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


def _unhealthy(last_step: int, metrics, health) -> list:
  """[(step, 'what was not finite')] of a call's iterations (stacked [K], ending at
  `last_step`) whose health flags are not all true."""
  flags = jax.device_get(health)                      # name -> [K] bools
  ok = np.all(np.stack(list(flags.values())), axis=0)  # [K]
  if ok.all():
    return []
  values = jax.device_get(metrics)
  out = []
  for i in np.flatnonzero(~ok):
    names = [f'train/{k}' for k, v in values.items() if not np.isfinite(v[i])]
    names += [name for name, flag in flags.items() if name != 'metrics' and not flag[i]]
    out.append((last_step - len(ok) + 1 + int(i), ', '.join(names)))
  return out


class _HealthCheck:
  """Checks each call's finite flags once: warns for skipped iterations (skip_nonfinite), else
  raises NonFiniteError naming the step and the values."""

  def __init__(self, mngr, skip: bool):
    self.mngr, self.skip, self.pending = mngr, skip, None

  def add(self, last_step: int, metrics, health) -> None:
    """Checks the previous call (while this one runs), then keeps this one for later."""
    self.flush()
    self.pending = (last_step, metrics, health)

  def flush(self) -> None:
    if self.pending is None:
      return
    pending, self.pending = self.pending, None
    for step, what in _unhealthy(*pending):
      if self.skip:
        logging.warning('step %d: skipped an iteration with non-finite %s', step, what)
        continue
      self.mngr.wait_until_finished()
      last = self.mngr.latest_step()
      kept = f'the last checkpoint (step {last}) is intact' if last else 'no checkpoint was written'
      raise NonFiniteError(f'step {step}: non-finite {what}; {kept}. Lower the learning rates, '
                           f'or set --config.skip_nonfinite=True to skip such iterations')


def train(config, workdir: str, stepper: Stepper, data: input_pipeline.Dataset,
          evaluation: Optional[Evaluation] = None) -> TrainState:
  """Trains in `workdir`, resuming from its newest checkpoint if there is one.

  Everything given must be checked already: the first thing this does is restore (which may
  still refuse a damaged checkpoint), then it writes. SIGTERM or SIGINT ends the run after the
  current step, with a checkpoint at that step.
  """
  state, data_state = restore_or_init(stepper, workdir)
  with StopSignals(multi_process=jax.process_count() > 1) as stop:
    return _loop(config, workdir, stepper, data, evaluation, state, data_state, stop)


def _loop(config, workdir, stepper: Stepper, data, evaluation, state, data_state, stop):
  initial_step = int(state.step)
  if initial_step:
    logging.info('Resumed from step %d in %s', initial_step, workdir)
  # CLU's writers load TensorFlow (~2.5 s), which a refused run never needs.
  from clu import metric_writers, periodic_actions  # pylint: disable=g-import-not-at-top
  platforms.keep_tf_off_accelerators()
  files.path(workdir).mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    rundir.write_config(config, workdir)
    rundir.write_spec(workdir, data.image_shape, data.num_classes)
  managers = {'latest': checkpoints.manager(workdir, config.keep_checkpoints)}
  writer = None
  try:
    mngr = managers['latest']
    health = _HealthCheck(mngr, config.skip_nonfinite)
    stream = input_pipeline.BatchStream(data, config.batch_size, config.seed,
                                        data_state['position'],
                                        (jax.process_index(), jax.process_count()))
    writer = metric_writers.create_default_writer(
        workdir, just_logging=jax.process_index() > 0, asynchronous=True)
    if initial_step == 0:
      writer.write_hparams({k: v for k, v in config.items() if not hasattr(v, 'items')})
    report = periodic_actions.ReportProgress(num_train_steps=config.num_steps, writer=writer,
                                             every_steps=config.log_every or None)
    grid_inputs = sampling.grid_inputs(stepper, config.seed, config.num_grid)
    state = stepper.place(state)
    data_seconds, real_images, t_log, last_log = 0.0, 0, time.time(), initial_step
    done, calls = initial_step, 0   # calls: the preemption sync's step ids (1, 2, ...)
    while done < config.num_steps:
      t0 = time.time()
      k = call_length(done, config)
      n_critic = gans.n_critic_at(done, config)
      host_batches = [stream.next(n_critic) for _ in range(k)]
      data_seconds += time.time() - t0
      real_images += k * n_critic * config.batch_size
      state, metrics, flags = stepper.train(state, host_batches)
      for s in range(done + 1, done + k + 1):  # ReportProgress wants every step
        report(s)
      done += k
      calls += 1
      stopping = stop.stop_now(mngr, calls)
      health.add(done, metrics, flags)  # checks the previous call: no wait for this one
      if is_time(config.log_every, done, config):
        scalars = {f'train/{name}': float(v[-1]) for name, v in jax.device_get(metrics).items()}
        elapsed = time.time() - t_log
        scalars.update({'train/data_seconds_per_step': data_seconds / (done - last_log),
                        'train/images_per_sec': real_images / elapsed})
        writer.write_scalars(done, scalars)  # CLU's writer also prints them to the console
        data_seconds, real_images, t_log, last_log = 0.0, 0, time.time(), done
      # A stop request saves first: sampling and evaluation may not fit in a preemption's grace.
      if (stopping or is_time(config.checkpoint_every, done, config) or
          done == config.num_steps):
        health.flush()  # never save a non-finite state
        checkpoints.save(mngr, done, stepper.unplace(state), {'position': stream.position})
      if stopping:
        logging.warning('%s: stopped at step %d with a checkpoint; run again to resume.',
                        stop.received, done)
        break
      if is_time(config.sample_every, done, config):
        picture = sampling.grid(stepper, stepper.unplace(state), grid_inputs)
        writer.write_images(done, {'samples': picture[None]})
      if evaluation and is_time(config.eval_every, done, config):
        health.flush()
        result = evaluation.run(stepper.unplace(state))
        writer.write_scalars(done, {f'eval/{k}': v for k, v in result.items()
                                    if isinstance(v, (int, float)) and
                                    k not in ('step', 'num_samples')})
        if 'best' not in managers:
          managers['best'] = checkpoints.manager(workdir, 1, best_metric=evaluation.best_metric,
                                                 best_mode=evaluation.best_mode)
        checkpoints.save(managers['best'], done, stepper.unplace(state),
                         {'position': stream.position},
                         metrics={evaluation.best_metric: result[evaluation.best_metric]})
    health.flush()
  finally:
    for mngr in managers.values():
      mngr.wait_until_finished()
      mngr.close()
    if writer is not None:
      writer.flush()
      writer.close()
  return stepper.unplace(state)
