"""gan_jax: train or sample WGAN, WGAN-GP, DCGAN and ACGAN.

  python main.py --config=configs/wgan_gp.py:mnist --workdir=/tmp/run
  python main.py --config=configs/wgan_gp.py:mnist --workdir=/tmp/run --mode=sample \
      --num_samples=1000 --out=/tmp/run/samples.npz
  python main.py --workdir=/tmp/run --mode=eval --config.eval.classifier=classifiers/mnist
sample and eval without --config use the workdir's config.json (overrides still apply).
"""

import json
import logging as py_logging
import os
import re
import sys

from absl import app, flags, logging
import jax
from ml_collections import config_flags

from gan_jax import input_pipeline, modes, train

ROOT = os.path.dirname(os.path.abspath(__file__))

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file, e.g. configs/wgan_gp.py:mnist '
                                '(sample: default is the workdir\'s own config.json).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, TensorBoard logs and samples.')
flags.DEFINE_enum('mode', 'train', ['train', 'sample', 'eval'], 'What to do.')
flags.DEFINE_integer('num_samples', 100, 'sample: number of images to write.')
flags.DEFINE_string('out', None, 'sample: output .npz (default: WORKDIR/samples.npz).')
flags.DEFINE_integer('step', None, 'sample, eval: checkpoint step (default: the latest).')
flags.DEFINE_bool('best', False, 'sample, eval: the best checkpoint by eval.best_metric.')
flags.DEFINE_bool('distributed', False, 'Several processes (hosts): call '
                  'jax.distributed.initialize() first. It detects TPU pod slices, SLURM and MPI '
                  'by itself; elsewhere set JAX_COORDINATOR_ADDRESS and pass --num_processes '
                  'and --process_id.')
flags.DEFINE_integer('num_processes', None, '--distributed: number of processes.')
flags.DEFINE_integer('process_id', None, '--distributed: this process\'s index.')
flags.DEFINE_bool('verbose', False, 'Show full tracebacks for configuration and data errors.')
flags.mark_flags_as_required(['workdir'])

USER_ERRORS = (train.ConfigError, input_pipeline.DataError)  # exit 2: fix the input


class _OwnInfoOnly(py_logging.Filter):
  """INFO lines from this project and CLU's writers only; warnings from everyone."""

  def filter(self, record):
    if record.pathname.endswith('checkpoint_manager.py') and 'read' in record.getMessage():
      return False  # Orbax's notes on read-only managers (sample and eval use one on purpose)
    return (record.levelno >= py_logging.WARNING or '/gan_jax/' in record.pathname or
            '/clu/' in record.pathname or record.pathname.endswith('main.py'))


def run(_):
  workdir = FLAGS.workdir
  config = FLAGS.config
  if config is None:
    raise train.ConfigError('--config is required to train, e.g. '
                            '--config=configs/wgan_gp.py:mnist')
  if FLAGS.distributed:
    jax.distributed.initialize(num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
  logging.info('Process %d of %d; JAX devices: %s', jax.process_index(), jax.process_count(),
               jax.devices())
  if FLAGS.mode == 'train':
    train.train_and_evaluate(config, workdir)
  elif FLAGS.mode == 'sample':
    out = FLAGS.out or f'{workdir}/samples.npz'
    print(json.dumps(train.write_samples(config, workdir, FLAGS.num_samples, out, FLAGS.step,
                                          FLAGS.best)))
  else:
    print(json.dumps(modes.evaluate(config, workdir, FLAGS.step, FLAGS.best)))


def _exit_with(error: BaseException, prefix: str = '') -> None:
  """Prints the last meaningful line of `error` as one line and exits with status 2."""
  text = str(error).replace('\\n', '\n').replace("\\'", "'")
  lines = [l.strip().strip("'") for l in text.splitlines() if l.strip().strip("'")]
  detail = ' '.join(lines[-2:]) if lines and lines[-1].startswith(('Did you mean', '[Errno')) \
      else (lines[-1] if lines else type(error).__name__)
  detail = re.sub(r'^([\w.]*Error): ', '', detail)
  print(f'error: {prefix}{detail}', file=sys.stderr)
  sys.exit(2)


def _flag_value(argv, name: str):
  """The value of --name=V or --name V in argv, or None."""
  for i, arg in enumerate(argv):
    if arg.startswith(f'--{name}='):
      return arg.split('=', 1)[1]
    if arg == f'--{name}' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _with_workdir_config(argv):
  """sample and eval without --config use the workdir's config.json, through a config file so
  that --config.* overrides still apply."""
  workdir = _flag_value(argv, 'workdir')
  if (_flag_value(argv, 'config') is None and workdir and
      _flag_value(argv, 'mode') in ('sample', 'eval')):
    # Before any --config.* override: absl defines those flags when it parses --config.
    return [argv[0], f'--config={os.path.join(ROOT, "configs", "workdir.py")}:{workdir}',
            *argv[1:]]
  return argv


def parse_flags(argv):
  """absl flag parsing, with errors (a bad --config argument or override) as one line."""
  try:
    return FLAGS(_with_workdir_config(argv))
  except Exception as e:  # pylint: disable=broad-except  (config files run arbitrary code)
    if '--verbose' in argv:
      raise
    _exit_with(e, 'unknown config field: ' if isinstance(e, AttributeError) else '')


def _quiet_closed_loop(unraisable, default=sys.unraisablehook):
  """Drops 'Event loop is closed' from I/O threads that outlive a failed Orbax restore."""
  if not (isinstance(unraisable.exc_value, RuntimeError) and
          'Event loop is closed' in str(unraisable.exc_value)):
    default(unraisable)


def main(argv):
  if not FLAGS.verbose:
    logging.get_absl_handler().addFilter(_OwnInfoOnly())
    sys.unraisablehook = _quiet_closed_loop
  try:
    _ = FLAGS.config and FLAGS.config.gan  # config files load lazily: a bad one fails here
  except Exception as e:  # pylint: disable=broad-except
    if FLAGS.verbose:
      raise
    _exit_with(e, 'cannot load --config: ')
  try:
    run(argv)
  except (*USER_ERRORS, train.NonFiniteError) as e:
    if FLAGS.verbose:
      raise
    print(f'error: {e}', file=sys.stderr, flush=True)
    # Exit at once: a failed Orbax restore leaves tasks whose complaints at garbage collection
    # would bury the one line. Nothing is left to flush: these errors come before the first
    # write, or after the writers were closed (non-finite).
    os._exit(1 if isinstance(e, train.NonFiniteError) else 2)  # 1: the run itself went wrong


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
