"""What main.py can do — train, sample, interpolate, evaluate — each assembled the one way data
flows here:

  config -> checks -> data spec (image shape, classes) -> Stepper (the GAN on the devices)
         -> the trainer's loop (writers, checkpoints) | sampling | interpolation | the evaluator

Every check that can refuse comes before the first write. Sampling and interpolation read no
training data (sampling's nearest neighbours read the reference split, as evaluation does): the
spec comes from the workdir's data_spec.json (older runs: the dataset's registry entry or its
files' headers).
"""

import math
from typing import Any, Dict, Optional, Sequence, Tuple

from absl import logging
import jax

from gan_jax import (checkpoints, checks, extractors, files, image_files, input_pipeline,
                     interpolation, neighbours, platforms, protocol, rundir, sampling, seeds,
                     trainer)
from gan_jax.errors import ConfigError
from gan_jax.evaluator import Evaluator, truncation_sweep
from gan_jax.stepper import Stepper


def _stepper(config, image_shape, num_classes, raw_generator: bool = False) -> Stepper:
  """The Stepper of a config whose data `checks.check_data` passed."""
  stepper = Stepper(config, image_shape, num_classes, raw_generator=raw_generator)
  if config.ema.decay > 0:
    logging.info('Samples, grids and evaluations use the %s generator%s.',
                 'EMA' if stepper.uses_ema else 'raw (trained, not averaged)',
                 f' (ema.decay {config.ema.decay}, from step {config.ema.start_step})'
                 if stepper.uses_ema else '')
  elif raw_generator:
    logging.info('--raw_generator: ema.decay is 0, so the trained generator is the only one.')
  return stepper


def _generator(stepper: Stepper) -> Dict[str, str]:
  """What a sample or eval result says about the generator it used."""
  return {'generator': 'ema' if stepper.uses_ema else 'raw'}


def _evaluation(config, stepper: Stepper, evaluator: Evaluator) -> trainer.Evaluation:
  """Scores a state; with num_seeds > 1 every member (each with its own seed's samples, as a
  separate run's), combined: each score's mean, `_seed_std` and `_members` (seeds.combine).

  z is truncated at eval.truncation (0: not; the result then says `truncation`), and each
  threshold T of eval.truncation_sweep scores the same samples' z truncated at T (the same
  key: truncated_noise maps the same uniforms) as the scores `truncation_T/NAME`."""
  truncation = config.eval.truncation or None
  sweep = truncation_sweep(config.eval)

  def one(state, seed, threshold):
    return evaluator.run(sampling.batches(
        stepper, state, config.eval.num_samples,
        sampling.stream_key(seed, sampling.EVAL_STREAM), interleaved=True,
        progress='Evaluating' + (f' at truncation {threshold:g}' if threshold else ''),
        truncation=threshold))

  def scores(state, threshold):
    if stepper.num_seeds == 1:
      return one(state, config.seed, threshold)
    return seeds.combine([one(seeds.member(state, k), seed, threshold)
                          for k, seed in enumerate(stepper.seeds)])

  def run(state):
    # The seed of the samples' stream (sampling.EVAL_STREAM of it): part of the protocol card.
    result = {'seed': config.seed if stepper.num_seeds == 1 else list(stepper.seeds),
              **scores(state, truncation)}
    for threshold in sweep:
      result.update({f'truncation_{threshold:g}/{name}': value
                     for name, value in scores(state, threshold).items()
                     if _is_score(name, value)})
    if truncation:
      result['truncation'] = truncation
    if sweep:
      result['truncation_sweep'] = list(sweep)
    return result
  metric = extractors.best_metric(config.eval)
  return trainer.Evaluation(run, metric, extractors.best_mode(metric))


def _is_score(name: str, value) -> bool:
  """Whether an evaluation's entry is a score (a number, or the members' values of one), not
  what every evaluation shares (the step, the sample count, the reference) or a count."""
  if name.endswith(seeds.MEMBERS):
    return True
  return (isinstance(value, (int, float)) and not isinstance(value, bool) and
          name not in ('step', 'num_samples'))


def _settle_channels(config, workdir: str) -> str:
  """Sets dataset.channels 0 (the data's own) to the channels the run has: a resumed run's (its
  data_spec.json), else the data's (input_pipeline.own_channels); returns where they come
  from."""
  if config.dataset.channels:
    return 'dataset.channels'
  recorded = rundir.read_spec(workdir)
  if recorded:
    config.dataset.channels = int(recorded.image_shape[2])
    return f'the run in {workdir}'
  config.dataset.channels, source = input_pipeline.own_channels(config.dataset)
  return source


def _log_shape(config, image_shape, channels_from: str) -> None:
  """Says the shape the run trains at and where it comes from (a dataset name sets the size of
  a user's folder; the channels are the folder's own unless dataset.channels sets them)."""
  d = config.dataset
  height, width, channels = image_shape
  if d.path and input_pipeline.path_kind(d.path) != 'folder':
    where = f'the files\' own shape ({d.path})'
  else:
    where = (f'side {d.image_size} from dataset.image_size ({d.name}\'s size unless set: '
             f'--config.dataset.image_size changes it), {channels} channel'
             f'{"s" if channels > 1 else ""} from {channels_from}')
  logging.info('Training on %dx%dx%d images: %s.', height, width, channels, where)


def train(config, workdir: str):
  """Trains `config` in `workdir` (resuming); returns the final state."""
  with image_files.listings():  # a folder's files listed once: spec, evaluator, loader
    return _train(config, workdir)


def _train(config, workdir: str):
  checks.check_config(config, jax.device_count())
  platforms.advise_conv_impl(config.model.conv_impl)
  # Everything that can refuse the run comes before the data is loaded (a download, or a
  # folder decoded), from the data's spec (headers, registry, a folder's listing).
  channels_from = _settle_channels(config, workdir)
  spec = input_pipeline.spec(config.dataset)
  rundir.check_resume_shape(spec.image_shape, workdir)
  _log_shape(config, spec.image_shape, channels_from)
  checks.check_data(config, spec.image_shape, spec.num_classes)
  evaluator = None
  if config.eval_every > 0:  # checks the eval settings, loads the extractors: may refuse
    evaluator = Evaluator(config, spec.image_shape, spec.num_classes)
  rundir.check_resume_config(config, workdir)
  rundir.check_writable(workdir)
  data = input_pipeline.subset(input_pipeline.load_on_every_process(config.dataset),
                              config.dataset.subset)
  stepper = _stepper(config, data.image_shape, data.num_classes)
  evaluation = evaluator and _evaluation(config, stepper, evaluator)
  return trainer.train(config, workdir, stepper, data, evaluation)


def _spec(config, workdir: str) -> input_pipeline.DataSpec:
  """The data spec of a run's generator: its workdir's data_spec.json, else (older runs) the
  data's registry entry or file headers."""
  return rundir.read_spec(workdir) or input_pipeline.spec(config.dataset)


def _restore(config, workdir: str, stepper: Stepper, step: Optional[int], best: bool):
  metric = extractors.best_metric(config.eval) if best else None
  mode = extractors.best_mode(metric) if best else 'min'
  return checkpoints.restore_for_use(workdir, stepper.abstract_state(), step, metric, mode)


def _sampling(config, workdir: str, step: Optional[int], best: bool, seed_index: int,
              raw_generator: bool, truncation: Optional[float]):
  """(data spec, Stepper, state) of the checkpoint sample and interpolate use: member
  `seed_index`'s with num_seeds > 1."""
  checks.check_config(config, jax.device_count())
  if truncation is not None and not (math.isfinite(truncation) and truncation > 0):
    raise ConfigError(f'--truncation must be > 0 (a threshold on |z_i|; stylegan2: psi toward '
                      f'w_avg), got {truncation}')
  if not 0 <= seed_index < config.num_seeds:
    raise ConfigError(f'--seed_index must be >= 0 and < num_seeds ({config.num_seeds}), '
                      f'got {seed_index}')
  spec = _spec(config, workdir)
  checks.check_data(config, spec.image_shape, spec.num_classes)
  stepper = _stepper(config, spec.image_shape, spec.num_classes, raw_generator)
  state = _restore(config, workdir, stepper, step, best)
  if stepper.num_seeds > 1:
    state = seeds.member(state, seed_index)
  return spec, stepper, state


def restored(config, workdir: str, step: Optional[int] = None, raw_generator: bool = False):
  """(data spec, Stepper, state) of a workdir's checkpoint at `step` (default: the latest), as
  sample and eval restore it (the run's first member with num_seeds > 1)."""
  return _sampling(config, workdir, step, False, 0, raw_generator, None)


def _described(config, stepper: Stepper, seed_index: int, result: Dict[str, Any]
               ) -> Dict[str, Any]:
  """A sample or interpolate result with the generator (EMA or raw) and, with num_seeds > 1,
  the member's seed."""
  if config.ema.decay > 0:
    result.update(_generator(stepper))
  return result if stepper.num_seeds == 1 else {**result, 'seed': config.seed + seed_index}


def sample(config, workdir: str, num_samples: int, out: str, step: Optional[int] = None,
           best: bool = False, seed_index: int = 0, raw_generator: bool = False,
           truncation: Optional[float] = None, num_neighbours: int = 0) -> Dict[str, Any]:
  """Writes `num_samples` samples of a checkpoint to `out` (.npz) and a PNG grid beside it;
  with num_seeds > 1, member `seed_index`'s (those of a run with seed config.seed + it). With
  ema.decay > 0 the EMA generator's, unless `raw_generator`; with `truncation`, from z
  truncated at that threshold (sampling.truncated_noise); with `num_neighbours` K > 0, each
  sample's K nearest reference images too (OUT_neighbours.png and .json: gan_jax/neighbours.py).
  """
  with image_files.listings():  # a reference folder listed once: its spec, then its images
    return _sample(config, workdir, num_samples, out, step, best, seed_index, raw_generator,
                   truncation, num_neighbours)


def _sample(config, workdir: str, num_samples: int, out: str, step: Optional[int], best: bool,
            seed_index: int, raw_generator: bool, truncation: Optional[float],
            num_neighbours: int) -> Dict[str, Any]:
  if num_samples < 1:
    raise ConfigError(f'--num_samples must be >= 1, got {num_samples}')
  if num_neighbours < 0:
    raise ConfigError(f'--neighbours must be >= 0 (0: none), got {num_neighbours}')
  spec, stepper, state = _sampling(config, workdir, step, best, seed_index, raw_generator,
                                   truncation)
  reference = None
  if num_neighbours:   # the extractor, the reference split and its images: may refuse
    _settle_channels(config, workdir)
    reference = neighbours.Reference(config, spec.image_shape, num_neighbours)
  samples, labels = sampling.draw(stepper, state, config.seed + seed_index, num_samples,
                                  truncation)
  result = sampling.write_samples(out, samples, labels, int(state.step), stepper.num_classes,
                                  spec.class_names, truncation)
  if reference is not None:
    result['neighbours'] = reference.write(out, samples, labels)
  return _described(config, stepper, seed_index, result)


def interpolate(config, workdir: str, num_walks: int, out: str, keyframes: int,
                frames_between: int, fps: float, step: Optional[int] = None, best: bool = False,
                seed_index: int = 0, raw_generator: bool = False,
                truncation: Optional[float] = None) -> Dict[str, Any]:
  """Writes a checkpoint's latent walks as OUT.gif and OUT.mp4 (gan_jax/interpolation.py):
  `num_walks` walks through `keyframes` latents (truncated at `truncation`, if given), slerped
  with `frames_between` frames from one to the next, at `fps`; the checkpoint and generator
  as `sample` picks them."""
  if num_walks < 1:
    raise ConfigError(f'--num_samples (the walks) must be >= 1, got {num_walks}')
  if keyframes < 2:
    raise ConfigError(f'--keyframes must be >= 2 (latents to walk through), got {keyframes}')
  if frames_between < 1:
    raise ConfigError(f'--frames_between must be >= 1, got {frames_between}')
  if not (math.isfinite(fps) and fps > 0):
    raise ConfigError(f'--fps must be > 0, got {fps}')
  refusal = interpolation.check_video_writer()
  if refusal:
    raise ConfigError(refusal)
  spec, stepper, state = _sampling(config, workdir, step, best, seed_index, raw_generator,
                                   truncation)
  result = interpolation.write_interpolation(
      stepper, state, config.seed + seed_index, num_walks, out, keyframes, frames_between, fps,
      spec.class_names, truncation)
  return _described(config, stepper, seed_index, result)


def evaluate(config, workdir: str, step: Optional[int] = None, best: bool = False,
             raw_generator: bool = False) -> Dict[str, Any]:
  """Scores a checkpoint (default: the latest) with the configured extractors; with
  ema.decay > 0 the EMA generator, unless `raw_generator`. The result is its own protocol
  card (gan_jax/protocol.py)."""
  with image_files.listings():  # a reference folder listed once: evaluator, reference stats
    return _evaluate(config, workdir, step, best, raw_generator)


def compare(config, workdir: str, others: Sequence[Tuple[str, Any]], step: Optional[int] = None,
            best: bool = False, raw_generator: bool = False) -> Dict[str, Any]:
  """Scores `workdir` (with `config`) and each of `others`, (workdir, its own config) pairs,
  with `config`'s eval settings: one protocol. ConfigError, before any scoring, where a run's
  reference images would not be `config`'s.

  Returns:
    {'runs': [each run's evaluate result, with its 'workdir'], 'table': markdown}.
  """
  configs = [config]
  for other, other_config in others:
    other_config = protocol.with_eval_of(other_config, config)
    differ = protocol.mismatch(config, other_config)
    if differ:
      raise ConfigError(f'{other} is not scored on the protocol of {workdir}: its reference '
                        f'images differ ({differ})')
    configs.append(other_config)
  names = [workdir, *(other for other, _ in others)]
  results = [{'workdir': files.absolute(name), **evaluate(c, name, step, best, raw_generator)}
             for name, c in zip(names, configs)]
  return {'runs': results, 'table': protocol.table(names, results)}


def _evaluate(config, workdir: str, step: Optional[int], best: bool,
              raw_generator: bool) -> Dict[str, Any]:
  checks.check_config(config, jax.device_count())
  _settle_channels(config, workdir)
  spec = _spec(config, workdir)
  checks.check_data(config, spec.image_shape, spec.num_classes)
  evaluator = Evaluator(config, spec.image_shape, spec.num_classes)  # checks the eval settings
  stepper = _stepper(config, spec.image_shape, spec.num_classes, raw_generator)
  state = _restore(config, workdir, stepper, step, best)
  return {'step': int(state.step), **_generator(stepper),
          **_evaluation(config, stepper, evaluator).run(state)}
