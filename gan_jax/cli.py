"""The command line's plumbing, apart from main.py's flags and dispatch: which log lines reach the
console, a user's error as one line, the argv rewriting that lets sample, interpolate and eval
run on a workdir's own config.json, and `run_tool`, which runs the tools of gan_jax/tools/ the
same way.
"""

import logging
import os
import re
import sys
from typing import Any, Callable, List, NoReturn, Optional, Sequence

from absl import app, flags, logging as absl_logging

from gan_jax import platforms
from gan_jax.errors import CompileError, ConfigError, DataError, NonFiniteError

USER_ERRORS = (ConfigError, DataError)  # exit 2: fix the input (the run's own errors: exit 1)

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep

# Orbax's notes on the options a read-only CheckpointManager overrides, and on its directory:
# sample and eval open one on purpose. Orbax 0.12 logs them as warnings, though nothing is wrong;
# its other records that mention reading (a save skipped, a deprecated option) are real warnings.
_READ_ONLY_NOTE = re.compile(r'CheckpointManagerOptions\.read_only=True, setting \w+=\w+\.$|'
                             r'Given directory is read only=')


class OwnInfoOnly(logging.Filter):
  """INFO lines from gan_jax, main.py and CLU's writers only; warnings from everyone."""

  def filter(self, record: logging.LogRecord) -> bool:
    return keep_record(record)


def keep_record(record: logging.LogRecord) -> bool:
  """Whether the console shows `record` (when --verbose is off)."""
  if (record.pathname.endswith('checkpoint_manager.py') and record.levelno <= logging.WARNING
      and _READ_ONLY_NOTE.match(record.getMessage())):
    return False
  return (record.levelno >= logging.WARNING or record.pathname.startswith(_PACKAGE) or
          '/clu/' in record.pathname or record.pathname.endswith('main.py'))


def _quiet_closed_loop(unraisable, default=sys.unraisablehook) -> None:
  """Drops 'Event loop is closed' from I/O threads that outlive a failed Orbax restore."""
  if not (isinstance(unraisable.exc_value, RuntimeError) and
          'Event loop is closed' in str(unraisable.exc_value)):
    default(unraisable)


def quiet_console() -> None:
  """Filters absl's console handler with keep_record; native libraries' start-up lines go to
  the log (platforms.QUIET_NATIVE_LOGS); drops the closed-event-loop noise."""
  absl_logging.get_absl_handler().addFilter(OwnInfoOnly())
  platforms.QUIET_NATIVE_LOGS = True
  sys.unraisablehook = _quiet_closed_loop


def error_line(error: BaseException, prefix: str = '') -> str:
  """'error: ' + `prefix` + the last meaningful line of `error`, without a class-name prefix.

  Flag parsing and config files wrap the cause in several quoted lines ending with it, e.g.
  "...\\ngan_jax.errors.ConfigError: DIR has no config.json...": the user needs that last line
  (and, after a 'Did you mean' or an OS error, the line before it too).
  """
  text = str(error).replace('\\n', '\n').replace("\\'", "'")
  lines = [l.strip().strip("'") for l in text.splitlines() if l.strip().strip("'")]
  if lines and lines[-1].startswith(('Did you mean', '[Errno')):
    first = lines[-2] if len(lines) > 1 else ''
    mark = '.' if lines[-1].startswith('Did') else ':'  # two sentences, or what failed: why
    detail = ' '.join([first + ('' if first.endswith(('.', ':', '?', '!')) or not first
                                else mark), lines[-1]]).strip()
  else:
    detail = lines[-1] if lines else type(error).__name__
  detail = re.sub(r'^([\w.]*Error): ', '', detail)
  return f'error: {prefix}{detail}'


def exit_with(error: BaseException, prefix: str = '') -> NoReturn:
  """Prints error_line(error, prefix) to stderr and exits with status 2."""
  print(error_line(error, prefix), file=sys.stderr)
  sys.exit(2)


def flag_value(argv: Sequence[str], name: str) -> Optional[str]:
  """The value of --name=V or --name V in argv, or None."""
  for i, arg in enumerate(argv):
    if arg.startswith(f'--{name}='):
      return arg.split('=', 1)[1]
    if arg == f'--{name}' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def with_workdir_config(argv: Sequence[str], workdir_config_file: str) -> List[str]:
  """argv, with --config=WORKDIR_CONFIG_FILE:WORKDIR added for sample, interpolate and eval
  without --config.

  Through a config file (configs/workdir.py) so that --config.* overrides still apply to the
  run's own config; inserted first because absl defines the override flags when it parses
  --config.
  """
  workdir = flag_value(argv, 'workdir')
  if (flag_value(argv, 'config') is None and workdir and
      flag_value(argv, 'mode') in ('sample', 'interpolate', 'eval')):
    return [argv[0], f'--config={workdir_config_file}:{workdir}', *argv[1:]]
  return list(argv)


def flags_parser(flag_values, workdir_config_file: str) -> Callable[[List[str]], List[str]]:
  """A flags_parser for absl's app.run: with_workdir_config, then parsing, where an error (a bad
  flag, --config argument or override) is one line and exit 2 unless --verbose is given."""

  def parse(argv: List[str]) -> List[str]:
    try:
      return flag_values(with_workdir_config(argv, workdir_config_file))
    except Exception as e:  # pylint: disable=broad-except  (config files run arbitrary code)
      if '--verbose' in argv:
        raise
      exit_with(e, 'unknown config field: ' if isinstance(e, AttributeError) else '')

  return parse


def load_config(get_config: Callable[[], Any], verbose: bool) -> Any:
  """get_config() (config files load lazily: a bad one fails here), or one line and exit 2."""
  try:
    config = get_config()
    _ = config and config.gan
    return config
  except Exception as e:  # pylint: disable=broad-except
    if verbose:
      raise
    exit_with(e, 'cannot load --config: ')


def run_reporting_errors(fn: Callable[[], Any], verbose: bool) -> Any:
  """fn(); a user error (exit 2), or the run's own failure (non-finite values, a call that does
not compile for a target: exit 1), as one line, unless `verbose`."""
  try:
    return fn()
  except (*USER_ERRORS, NonFiniteError, CompileError) as e:
    if verbose:
      raise
    print(f'error: {e}', file=sys.stderr, flush=True)
    # Exit at once: a failed Orbax restore leaves tasks whose complaints at garbage collection
    # would bury the one line. Nothing is left to flush: these errors come before the first
    # write, or after the writers were closed (non-finite).
    os._exit(2 if isinstance(e, USER_ERRORS) else 1)  # 1: the run itself went wrong


def run_tool(main: Callable[[], Any]) -> None:
  """absl's app.run for a tool (`python -m gan_jax.tools.NAME`), as main.py runs: a bad or
  missing flag, an argument left over, or a user error (ConfigError, DataError) from `main` is
  one line and exit 2; --verbose shows tracebacks and every log line."""
  flags.DEFINE_bool('verbose', False, 'Show full tracebacks for flag, configuration and data '
                    'errors.')

  def parse(argv: List[str]) -> List[str]:
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      if '--verbose' in argv:
        raise
      exit_with(e)

  def run(argv: Sequence[str]) -> None:
    verbose = flags.FLAGS.verbose
    if not verbose:
      quiet_console()
    if len(argv) > 1:
      exit_with(ConfigError(f'unexpected arguments {" ".join(argv[1:])}: give flags only '
                            f'(--name=value)'))
    run_reporting_errors(main, verbose)

  app.run(run, flags_parser=parse)
