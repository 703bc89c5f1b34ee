"""gan_jax: train, sample, interpolate, evaluate, or compile for a TPU slice, the GANs of configs/.

  python main.py --config=configs/wgan_gp.py:mnist --workdir=/tmp/run
  python main.py --config=configs/wgan_gp.py:mnist --workdir=/tmp/run --mode=sample \
      --num_samples=1000 --out=/tmp/run/samples.npz [--neighbours=5]
  python main.py --workdir=/tmp/run --mode=interpolate --num_samples=16   # interpolation.gif, .mp4
  python main.py --workdir=/tmp/run --mode=eval --config.eval.classifier=classifiers/mnist
  python main.py --workdir=/tmp/run --mode=eval --compare=/tmp/run2   # one protocol, a table
  python main.py --mode=compile --config=configs/dcgan.py:cifar10 --target=v5e-8 [--workdir=DIR]
sample, interpolate and eval without --config use the workdir's config.json (overrides still
apply).
"""

import json
import os
import sys

from absl import app, flags, logging
import jax
from ml_collections import config_flags

from configs import workdir as workdir_config
from gan_jax import aot, cli, modes, platforms
from gan_jax.errors import ConfigError

# sample and eval without --config load the workdir's config.json through this config file.
WORKDIR_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs', 'workdir.py')

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file, e.g. configs/wgan_gp.py:mnist '
                                '(sample: default is the workdir\'s own config.json).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, TensorBoard logs and samples '
                    '(local or gs://).')
flags.DEFINE_enum('mode', 'train', ['train', 'sample', 'interpolate', 'eval', 'compile'],
                  'What to do (interpolate: latent walks as a GIF and an MP4; compile: the '
                  'training call for a TPU slice, --target).')
flags.DEFINE_string('target', None, 'compile: the TPU slice, as an accelerator type (v4-8, '
                    'v5litepod-8, v5e-8, v5p-8, v6e-8, ...) or a topology (v5e:2x4, v4:2x2x2).')
flags.DEFINE_bool('fit_batch', False, 'compile: also find the largest global batch that fits '
                  '(a compile per candidate).')
flags.DEFINE_integer('num_samples', 100, 'sample: number of images to write (>= 1); '
                     'interpolate: walks in the grid (conditional: per class row, '
                     'num_samples // classes).', lower_bound=1)
flags.DEFINE_string('out', None, 'sample: output .npz, local or gs:// (default: '
                    'WORKDIR/samples.npz); interpolate: the videos\' path, OUT.gif and OUT.mp4 '
                    '(default: WORKDIR/interpolation).')
flags.DEFINE_integer('step', None, 'sample, interpolate, eval: checkpoint step (default: the '
                     'latest).')
flags.DEFINE_bool('best', False, 'sample, interpolate, eval: the best checkpoint by '
                  'eval.best_metric.')
flags.DEFINE_list('compare', [], 'eval: other workdirs to score with this one\'s evaluation '
                  'settings (one protocol), and a table of all.')
flags.DEFINE_bool('raw_generator', False, 'sample, interpolate, eval: with ema.decay > 0, the '
                  'trained generator instead of its exponential moving average.')
flags.DEFINE_float('truncation', None, 'sample, interpolate: draw z truncated at this '
                   'threshold (the truncation trick: every |z_i| <= it, resampled); for '
                   'stylegan2 psi, every w pulled toward w_avg (w_avg + psi (w - w_avg)); '
                   'evaluations take --config.eval.truncation and eval.truncation_sweep.')
flags.DEFINE_integer('seed_index', 0, 'sample, interpolate, with num_seeds > 1: the member '
                     'whose samples to write (seed config.seed + seed_index).')
flags.DEFINE_integer('neighbours', 0, 'sample: also each sample\'s K nearest reference images '
                     '(eval.reference_split) in the first eval extractor\'s features, else '
                     'pixels: OUT_neighbours.png and .json (0: none).')
flags.DEFINE_integer('keyframes', 5, 'interpolate: latents each walk passes through (>= 2), '
                     'looping back to the first.')
flags.DEFINE_integer('frames_between', 20, 'interpolate: frames from one keyframe to the next '
                     '(>= 1; keyframes * frames_between frames in all).')
flags.DEFINE_float('fps', 20.0, 'interpolate: frames per second of the GIF and the MP4.')
flags.DEFINE_bool('distributed', False, 'Several processes (hosts): call '
                  'jax.distributed.initialize() first. It detects TPU pod slices, SLURM and MPI '
                  'by itself; elsewhere set JAX_COORDINATOR_ADDRESS and pass --num_processes '
                  'and --process_id.')
flags.DEFINE_integer('num_processes', None, '--distributed: number of processes.')
flags.DEFINE_integer('process_id', None, '--distributed: this process\'s index.')
flags.DEFINE_bool('verbose', False, 'Show full tracebacks for configuration and data errors.')


def _report(result) -> None:
  if jax.process_index() == 0:  # one JSON line, whatever the number of processes
    print(json.dumps(result))


def compile_for_target(config) -> None:
  """--mode=compile: the report as one JSON line (and WORKDIR/compile_TARGET.json); exit 3 when
  the call does not fit."""
  if not FLAGS.target:
    raise ConfigError('--mode=compile needs --target, e.g. --target=v5e-8 or --target=v4:2x2x2')
  result = aot.report(config, FLAGS.target, FLAGS.fit_batch)
  if FLAGS.workdir:
    result['report'] = aot.write(result, FLAGS.workdir)
  print(json.dumps(result), flush=True)
  if not result['fits']:
    print(f'error: {aot.refusal(result)}', file=sys.stderr, flush=True)
    sys.exit(3)


def run(config) -> None:
  """The mode's function, on the parsed flags."""
  workdir = FLAGS.workdir
  if config is None:
    raise ConfigError('--config is required to train, e.g. --config=configs/wgan_gp.py:mnist')
  if FLAGS.mode == 'compile':
    compile_for_target(config)
    return
  if not workdir:
    raise ConfigError(f'--workdir is required to {FLAGS.mode}')
  if FLAGS.truncation is not None and FLAGS.mode not in ('sample', 'interpolate'):
    raise ConfigError(f'--truncation is for --mode=sample and interpolate; --mode={FLAGS.mode} '
                      f'takes --config.eval.truncation=T (and eval.truncation_sweep)')
  for name, mode in (('compare', 'eval'), ('neighbours', 'sample'), ('keyframes', 'interpolate'),
                     ('frames_between', 'interpolate'), ('fps', 'interpolate')):
    if FLAGS[name].present and FLAGS.mode != mode:
      raise ConfigError(f'--{name} is for --mode={mode}, not --mode={FLAGS.mode}')
  if FLAGS.distributed:
    jax.distributed.initialize(num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
  platforms.log_backend()
  platforms.use_compilation_cache(platforms.compilation_cache_dir(config.compilation_cache,
                                                                 workdir))
  if FLAGS.mode == 'train':
    modes.train(config, workdir)
  elif FLAGS.mode == 'sample':
    out = FLAGS.out or f'{workdir}/samples.npz'
    _report(modes.sample(config, workdir, FLAGS.num_samples, out, FLAGS.step, FLAGS.best,
                         FLAGS.seed_index, FLAGS.raw_generator, FLAGS.truncation,
                         FLAGS.neighbours))
  elif FLAGS.mode == 'interpolate':
    out = FLAGS.out or f'{workdir}/interpolation'
    _report(modes.interpolate(config, workdir, FLAGS.num_samples, out, FLAGS.keyframes,
                              FLAGS.frames_between, FLAGS.fps, FLAGS.step, FLAGS.best,
                              FLAGS.seed_index, FLAGS.raw_generator, FLAGS.truncation))
  elif FLAGS.compare:
    others = [(other, workdir_config.get_config(other)) for other in FLAGS.compare]
    result = modes.compare(config, workdir, others, FLAGS.step, FLAGS.best, FLAGS.raw_generator)
    if jax.process_index() == 0:
      print(result.pop('table'))
    _report(result)
  else:
    _report(modes.evaluate(config, workdir, FLAGS.step, FLAGS.best, FLAGS.raw_generator))


def main(_):
  if not FLAGS.verbose:
    cli.quiet_console()
  config = cli.load_config(lambda: FLAGS.config, FLAGS.verbose)
  cli.run_reporting_errors(lambda: run(config), FLAGS.verbose)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.flags_parser(FLAGS, WORKDIR_CONFIG))
