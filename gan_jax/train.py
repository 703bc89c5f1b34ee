"""One compiled iteration over all devices (jit over a mesh, or pmap), and the training loop:
resume, preemption, non-finite checks, TensorBoard, checkpoints, evaluation.

The pure updates (TrainState, critic_update, gen_update, train_step) are in gan_jax/steps.py.
"""

import functools
import os
import signal
import threading
import time
from typing import Any, Dict, Optional

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import checkpoints, evaluator as evaluator_lib, extractors
from gan_jax import images as images_lib, input_pipeline, sharding, variants
from gan_jax import workdir as workdir_lib
from gan_jax.errors import ConfigError, NonFiniteError
from gan_jax.steps import (DTYPES, GAN, STATE_PARTS, TrainState, build_gan, generate,
                           init_state, train_step, train_steps)


def validate(config, num_devices: int) -> None:
  """Raises ConfigError for settings that cannot train (before anything is written)."""
  try:
    variant = variants.get_variant(config)
    variants.make_optimizer(config.gen_optimizer)
    variants.make_optimizer(config.critic_optimizer)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  if config.batch_size <= 0:
    raise ConfigError(f'batch_size must be positive, got {config.batch_size}')
  if config.batch_size % num_devices:
    raise ConfigError(f'batch_size {config.batch_size} is not divisible by the {num_devices} '
                      f'devices; use a multiple of {num_devices}')
  if config.n_critic < 1:
    raise ConfigError(f'n_critic must be >= 1, got {config.n_critic}')
  if config.num_steps < 0:
    raise ConfigError(f'num_steps must be >= 0, got {config.num_steps}')
  if variant.gradient_penalty and config.model.critic_norm == 'batch':
    raise ConfigError("the gradient penalty is per example, so the critic cannot use batch norm: "
                      "set model.critic_norm to 'layer' or 'none' (as in WGAN-GP)")
  if variant.weight_clipping and config.loss.clip_value <= 0:
    raise ConfigError(f'loss.clip_value must be > 0 for weight clipping, '
                      f'got {config.loss.clip_value}')
  if config.parallelism not in ('jit', 'pmap'):
    raise ConfigError(f"parallelism must be 'jit' or 'pmap', got {config.parallelism!r}")
  if config.dtype not in DTYPES:
    raise ConfigError(f'dtype must be one of {", ".join(DTYPES)}, got {config.dtype!r}')
  if config.steps_per_call < 1:
    raise ConfigError(f'steps_per_call must be >= 1, got {config.steps_per_call}')
  for name in ('log_every', 'checkpoint_every', 'sample_every', 'eval_every'):
    if config[name] < 0:
      raise ConfigError(f'{name} must be >= 0 (0 turns it off), got {config[name]}')


def compile_fns(gan: GAN, mesh, image_shape, seed: int):
  """jit-compiled (init, step, steps, generate): batch on 'data', state replicated."""
  repl = sharding.replicated(mesh)
  init_fn = jax.jit(functools.partial(init_state, gan, seed, image_shape), out_shardings=repl)
  step_fn = jax.jit(functools.partial(train_step, gan=gan),
                    in_shardings=(repl, sharding.batch_sharding(mesh)),
                    out_shardings=(repl, repl), donate_argnums=0)
  steps_fn = jax.jit(functools.partial(train_steps, gan=gan),
                     in_shardings=(repl, sharding.batch_sharding(mesh, leading=2)),
                     out_shardings=(repl, repl), donate_argnums=0)
  gen_fn = jax.jit(functools.partial(generate, gan))
  return init_fn, step_fn, steps_fn, gen_fn


def pmap_fns(gan: GAN):
  """The pmap alternative: (step, steps) over this process's devices, axis 'data'.

  `gan` must be built with axis_name='data': gradients and metrics are averaged with
  lax.pmean, batch-norm statistics are synced, and the noise is the jit path's.
  """
  step_fn = jax.pmap(functools.partial(train_step, gan=gan), axis_name='data',
                     donate_argnums=0)
  steps_fn = jax.pmap(functools.partial(train_steps, gan=gan), axis_name='data',
                      donate_argnums=0)
  return step_fn, steps_fn


def pmap_replicate(state, devices: int):
  """One copy of `state` per local device, through the host: pmap places a numpy
  [devices, ...] array one slice per device."""
  return jax.tree.map(lambda x: np.broadcast_to(x, (devices,) + x.shape), jax.device_get(state))


def pmap_split(batch, batch_axis: int, devices: int):
  """[..., B_local, ...] (B on `batch_axis`) -> [devices, ..., B_local / devices, ...]."""
  split = lambda x: np.moveaxis(
      x.reshape(x.shape[:batch_axis] + (devices, -1) + x.shape[batch_axis + 1:]), batch_axis, 0)
  return jax.tree.map(split, batch)


def fixed_grid_inputs(gan: GAN, seed: int, num: int):
  """The fixed z (and labels: one class per row) behind every sample grid of a run."""
  if gan.num_classes:
    labels = jnp.repeat(jnp.arange(gan.num_classes, dtype=jnp.int32), 10)
    ncol = 10
  else:
    labels, ncol = None, int(np.ceil(np.sqrt(num)))
  n = labels.shape[0] if labels is not None else num
  z = jax.random.normal(jax.random.PRNGKey(seed + 1), (n, gan.latent_dim), jnp.float32)
  return z, labels, ncol


class Run:
  """What train and sample share: data, model, compiled functions and the checkpoint manager."""

  def __init__(self, config, workdir: str, devices=None):
    self.mesh = sharding.make_mesh(devices)
    validate(config, self.mesh.size)
    self.config, self.workdir = config, workdir
    self.data = input_pipeline.load(config.dataset)
    self.gan = build_gan(config, self.data.image_shape, self.data.num_classes)
    self.init_fn, self.step_fn, self.steps_fn, self.gen_fn = compile_fns(
        self.gan, self.mesh, self.data.image_shape, config.seed)
    self.pmap = config.parallelism == 'pmap'
    if self.pmap:
      pmap_gan = build_gan(config, self.data.image_shape, self.data.num_classes, 'data')
      self.pmap_step_fn, self.pmap_steps_fn = pmap_fns(pmap_gan)
      self.local_devices = jax.local_device_count()

  def to_device(self, state: TrainState) -> TrainState:
    """The layout train_call takes: as is for jit; one copy per local device for pmap."""
    return pmap_replicate(state, self.local_devices) if self.pmap else state

  def from_device(self, state: TrainState) -> TrainState:
    """Back to one copy (to save, sample or evaluate)."""
    return jax.tree.map(lambda x: x[0], state) if self.pmap else state

  def train_call(self, state: TrainState, host_batches):
    """len(host_batches) iterations in one compiled call.

    Args:
      state: in to_device's layout (donated).
      host_batches: this process's batches, each {'image': [n_critic, B_local, ...], ...}.

    Returns:
      (state, metrics): each metric [K], one value per iteration.
    """
    k = len(host_batches)
    if k == 1:
      batch = host_batches[0]
    else:
      batch = jax.tree.map(lambda *xs: np.stack(xs), *host_batches)  # [K, n_critic, B, ...]
    if self.pmap:
      fn = self.pmap_step_fn if k == 1 else self.pmap_steps_fn
      state, metrics = fn(state, pmap_split(batch, 1 if k == 1 else 2, self.local_devices))
      metrics = jax.tree.map(lambda m: m[0], metrics)  # pmean'd: equal on every device
    else:
      leading = 1 if k == 1 else 2
      batch = sharding.to_global(batch, sharding.batch_sharding(self.mesh, leading))
      fn = self.step_fn if k == 1 else self.steps_fn
      state, metrics = fn(state, batch)
    if k == 1:
      metrics = jax.tree.map(lambda m: m[None], metrics)
    return state, metrics

  def restore_or_init(self, mngr, step: Optional[int] = None):
    state = self.init_fn()
    if step is None and mngr.latest_step() is None:
      return state, {'position': 0}
    return checkpoints.restore(mngr, state, step)


def _scalars(metrics) -> Dict[str, float]:
  return {f'train/{k}': float(v) for k, v in jax.device_get(metrics).items() if k != 'finite'}


class StopSignals:
  """Turns SIGTERM / SIGINT into a request to stop after the current step (preemption)."""

  def __init__(self):
    self.received = None
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, _):
    self.received = signal.Signals(signum).name

  def __exit__(self, *_):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def train_and_evaluate(config, workdir: str) -> TrainState:
  """Trains `config` in `workdir`, resuming from its newest checkpoint if there is one.

  SIGTERM or SIGINT ends the run after the current step, with a checkpoint at that step.
  """
  with StopSignals() as stop:
    return _train(config, workdir, stop)


def _restore_or_init(run: Run, workdir: str):
  """(state, data_state) from the newest checkpoint in `workdir`, else fresh; writes nothing."""
  if not os.path.isdir(checkpoints.directory(workdir)):
    return run.init_fn(), {'position': 0}
  mngr = checkpoints.manager(workdir, 1, read_only=True)
  try:
    return run.restore_or_init(mngr)
  finally:
    mngr.close()


def _check_finite(last_step: int, metrics, mngr, skip: bool) -> None:
  """Raises NonFiniteError naming the step and metrics if an iteration of a call (metrics
  stacked [K], ending at `last_step`) produced a non-finite value (`skip`: that iteration kept
  the old state; only warn)."""
  finite = np.asarray(metrics['finite'])  # [K, 1 + len(STATE_PARTS)]
  if finite.all():
    return
  values = jax.device_get(metrics)
  for i in np.flatnonzero(~finite.all(axis=1)):
    step = last_step - len(finite) + 1 + int(i)
    names = [f'train/{k}' for k, v in values.items() if k != 'finite' and not np.isfinite(v[i])]
    names += [part for part, ok in zip(STATE_PARTS, finite[i, 1:]) if not ok]
    what = ', '.join(names)
    if skip:
      logging.warning('step %d: skipped an iteration with non-finite %s', step, what)
      continue
    mngr.wait_until_finished()
    last = mngr.latest_step()
    kept = f'the last checkpoint (step {last}) is intact' if last else 'no checkpoint was written'
    raise NonFiniteError(f'step {step}: non-finite {what}; {kept}. Lower the learning rates, '
                         f'or set --config.skip_nonfinite=True to skip such iterations')


def is_time(every: int, step: int, config) -> bool:
  """Whether a periodic action (every `every` steps, 0 = never) is due after `step` steps."""
  return every > 0 and (step % every == 0 or step == config.num_steps)


def call_length(step: int, config) -> int:
  """Iterations in the compiled call that starts at `step`: config.steps_per_call when they all
  have the same n_critic and no log, sample, eval or checkpoint falls inside; otherwise 1."""
  k = config.steps_per_call
  if k <= 1 or step + k > config.num_steps:
    return 1
  n_critic = variants.n_critic_at(step, config)
  for j in range(1, k):
    if variants.n_critic_at(step + j, config) != n_critic or any(
        is_time(every, step + j, config)
        for every in (config.log_every, config.sample_every, config.checkpoint_every,
                      config.eval_every)):
      return 1
  return k


class _Evaluator:
  """eval_every: scores the generator, writes eval/* scalars, keeps the best checkpoint."""

  def __init__(self, config, run):
    self.config, self.run = config, run
    self.evaluator = evaluator_lib.Evaluator(config, run.data.image_shape)
    self.metric = self.evaluator.metric
    self.mngr = None

  def __call__(self, step: int, state: TrainState, position: int, writer) -> None:
    result = self.evaluator.run(eval_batches(self.config, self.run, state))
    scalars = {f'eval/{k}': v for k, v in result.items()
               if isinstance(v, (int, float)) and k not in ('step', 'num_samples')}
    writer.write_scalars(step, scalars)
    if self.mngr is None:
      self.mngr = checkpoints.manager(self.run.workdir, 1, best_metric=self.metric,
                                      best_mode=extractors.best_mode(self.metric))
    checkpoints.save(self.mngr, step, state, {'position': position},
                     metrics={self.metric: result[self.metric]})

  def close(self):
    if self.mngr is not None:
      self.mngr.wait_until_finished()
      self.mngr.close()


def _evaluator(config, run: Run):
  if config.eval_every <= 0:
    return None
  return _Evaluator(config, run)


def _train(config, workdir: str, stop: StopSignals) -> TrainState:
  # Everything that can refuse the run comes before the first write to the workdir.
  run = Run(config, workdir)
  workdir_lib.check_resume_config(config, workdir)
  workdir_lib.check_writable(workdir)
  state, data_state = _restore_or_init(run, workdir)
  initial_step = int(state.step)
  if initial_step:
    logging.info('Resumed from step %d in %s', initial_step, workdir)

  evaluator = _evaluator(config, run)  # loads the classifier: may refuse the run
  # CLU's writers load TensorFlow (~2.5 s), which a refused run never needs.
  from clu import metric_writers, periodic_actions  # pylint: disable=g-import-not-at-top
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:
    workdir_lib.write_config(config, workdir)
  mngr = checkpoints.manager(workdir, config.keep_checkpoints)
  local_batch = config.batch_size // jax.process_count()
  stream = input_pipeline.BatchStream(input_pipeline.host_share(run.data), local_batch,
                                      config.seed, data_state['position'])
  writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0,
                                                asynchronous=True)
  if initial_step == 0:
    writer.write_hparams({k: v for k, v in config.items() if not hasattr(v, 'items')})
  report = periodic_actions.ReportProgress(num_train_steps=config.num_steps, writer=writer,
                                           every_steps=config.log_every or None)
  grid_z, grid_labels, grid_ncol = fixed_grid_inputs(run.gan, config.seed, config.num_grid)

  state = run.to_device(state)
  data_seconds, real_images, t_log, last_log = 0.0, 0, time.time(), initial_step
  unchecked = None  # (last step, metrics) of a call not yet checked for non-finite values
  done = initial_step
  try:
    while done < config.num_steps:
      t0 = time.time()
      k = call_length(done, config)
      n_critic = variants.n_critic_at(done, config)
      host_batches = [stream.next(n_critic) for _ in range(k)]
      data_seconds += time.time() - t0
      real_images += k * n_critic * config.batch_size
      state, metrics = run.train_call(state, host_batches)
      for s in range(done + 1, done + k + 1):  # ReportProgress wants every step
        report(s)
      done += k
      # Check the previous call while this one runs: no wait for the device in the loop.
      if unchecked:
        _check_finite(*unchecked, mngr, config.skip_nonfinite)
      unchecked = (done, metrics)
      if is_time(config.log_every, done, config):
        scalars = _scalars(jax.tree.map(lambda m: m[-1], metrics))
        elapsed = time.time() - t_log
        scalars.update({'train/data_seconds_per_step': data_seconds / (done - last_log),
                        'train/images_per_sec': real_images / elapsed})
        writer.write_scalars(done, scalars)  # CLU's writer also prints them to the console
        data_seconds, real_images, t_log, last_log = 0.0, 0, time.time(), done
      if is_time(config.sample_every, done, config):
        images = images_lib.to_unit(run.gen_fn(run.from_device(state), grid_z, grid_labels))
        writer.write_images(done, {'samples': images_lib.make_grid(images, grid_ncol)[None]})
      if evaluator and is_time(config.eval_every, done, config):
        _check_finite(*unchecked, mngr, config.skip_nonfinite)
        evaluator(done, run.from_device(state), stream.position, writer)
      if (is_time(config.checkpoint_every, done, config) or done == config.num_steps or
          stop.received):
        _check_finite(*unchecked, mngr, config.skip_nonfinite)  # never save a non-finite state
        unchecked = None
        checkpoints.save(mngr, done, run.from_device(state), {'position': stream.position})
      if stop.received:
        logging.warning('%s: stopped at step %d with a checkpoint; run again to resume.',
                        stop.received, done)
        break
  finally:
    mngr.wait_until_finished()
    if evaluator:
      evaluator.close()
    writer.flush()
    writer.close()
  if unchecked:
    _check_finite(*unchecked, mngr, config.skip_nonfinite)
  return run.from_device(state)


def restore_for_use(config, workdir: str, step: Optional[int] = None, best: bool = False):
  """(run, state) of a workdir's checkpoint at `step` (default: latest; `best`: the best one by
  eval.best_metric), for sampling or evaluation; ConfigError when there is none."""
  run = Run(config, workdir)
  kind = checkpoints.BEST if best else checkpoints.LATEST
  if not os.path.isdir(checkpoints.directory(workdir, kind)):
    raise ConfigError(f'no {"best " if best else ""}checkpoint in {workdir}; ' +
                      ('train with eval_every > 0' if best else 'train first'))
  metric = extractors.best_metric(config.eval) if best else None
  mngr = checkpoints.manager(workdir, config.keep_checkpoints, read_only=True, best_metric=metric,
                             best_mode=extractors.best_mode(metric) if best else 'min')
  if mngr.latest_step() is None:
    raise ConfigError(f'no checkpoint in {workdir}; train first')
  if step is not None and step not in mngr.all_steps():
    raise ConfigError(f'no checkpoint at step {step} in {workdir}; '
                      f'steps there: {mngr.all_steps()}')
  state, _ = run.restore_or_init(mngr, step)
  mngr.close()
  return run, state


def generate_batches(run: Run, state: TrainState, num_samples: int, seed: int,
                     batch_size: int = 256, interleaved: bool = False):
  """Yields (images in [-1, 1] on the device [b, H, W, C], labels or None) for `num_samples`;
  ACGAN's labels are balanced over the classes (see images_lib.balanced_labels)."""
  key = jax.random.PRNGKey(seed)
  labels = (images_lib.balanced_labels(num_samples, run.gan.num_classes, interleaved)
            if run.gan.num_classes else None)
  for start in range(0, num_samples, batch_size):
    key, z_key = jax.random.split(key)
    n = min(batch_size, num_samples - start)
    z = jax.random.normal(z_key, (n, run.gan.latent_dim), jnp.float32)
    chunk_labels = None if labels is None else labels[start:start + n]
    images = run.gen_fn(state, z, None if chunk_labels is None else jnp.asarray(chunk_labels))
    yield images, chunk_labels


def eval_batches(config, run: Run, state: TrainState):
  """The samples an evaluation scores (as in --mode=sample, another seed; ACGAN's labels
  interleaved, so that every IS split and the features kept for KID and precision/recall cover
  all classes)."""
  return generate_batches(run, state, config.eval.num_samples, config.seed + 3,
                          interleaved=True)


def write_samples(config, workdir: str, num_samples: int, out: str,
                  step: Optional[int] = None, best: bool = False) -> Dict[str, Any]:
  """Restores a checkpoint and writes `out` (.npz: images in [0, 1], labels for ACGAN) + PNG."""
  run, state = restore_for_use(config, workdir, step, best)
  batches = list(generate_batches(run, state, num_samples, config.seed + 2))
  images = np.concatenate([images_lib.to_unit(b[0]) for b in batches])
  labels = None if batches[0][1] is None else np.concatenate([b[1] for b in batches])
  arrays = {'images': images}
  if labels is not None:
    arrays['labels'] = labels
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  np.savez(out, **arrays)
  if labels is not None:  # one class per row
    rows = [images[labels == c][:10] for c in range(run.gan.num_classes)]
    ncol = max(len(r) for r in rows)
    rows = [np.concatenate([r, np.ones((ncol - len(r),) + r.shape[1:], r.dtype)]) for r in rows]
    grid = images_lib.make_grid(np.concatenate(rows), ncol)
  else:
    grid = images_lib.make_grid(images[:100])
  png = os.path.splitext(out)[0] + '.png'
  images_lib.save_png(grid, png, scale=2)
  return {'out': out, 'png': png, 'step': int(state.step), 'num_samples': num_samples}
