"""gan_jax/cli.py without a process: which log records reach the console, the one-line error,
the argv rewriting for sample, interpolate and eval on a workdir's own config."""

import ast
import logging
import os

from absl import flags
import orbax.checkpoint.checkpoint_manager as orbax_manager
import pytest

from conftest import ROOT
from gan_jax import cli
from gan_jax.errors import ConfigError, DataError, NonFiniteError

ORBAX = orbax_manager.__file__
OWN = os.path.join(ROOT, 'gan_jax', 'train.py')


def _record(level, pathname, msg, *args):
  return logging.LogRecord('absl', level, pathname, 1, msg, args or None, None)


def _orbax_messages():
  """(level, message) of every logging call in the installed Orbax checkpoint_manager.py whose
  message mentions 'read'."""
  with open(ORBAX) as f:
    tree = ast.parse(f.read())
  found = []
  for node in ast.walk(tree):
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and
        isinstance(node.func.value, ast.Name) and node.func.value.id == 'logging' and
        node.args and isinstance(node.args[0], ast.Constant) and
        isinstance(node.args[0].value, str) and 'read' in node.args[0].value.lower()):
      level = {'info': logging.INFO, 'warning': logging.WARNING, 'error': logging.ERROR,
               'exception': logging.ERROR}.get(node.func.attr, logging.INFO)
      found.append((level, node.args[0].value))
  return found


def _is_read_only_note(message):
  return message.startswith(('CheckpointManagerOptions.read_only=True, setting',
                             'Given directory is read only'))


def test_orbax_read_only_notes_are_dropped_its_other_warnings_kept():
  messages = _orbax_messages()
  notes = [m for _, m in messages if _is_read_only_note(m)]
  others = [(l, m) for l, m in messages if not _is_read_only_note(m) and l >= logging.WARNING]
  # Orbax 0.12.8: 9 option notes + 'Given directory is read only'; warnings such as
  # '... is read only, save will be skipped' and '... Will try to read legacy file.'
  assert len(notes) >= 2 and len(others) >= 2, messages
  for level, message in messages:
    args = ('/tmp/w',) * message.count('%s')
    record = _record(level, ORBAX, message, *args)
    if _is_read_only_note(message):
      assert not cli.keep_record(record), message
    elif level >= logging.WARNING:
      assert cli.keep_record(record), message


@pytest.mark.parametrize('level,pathname,message,kept', [
    (logging.WARNING, ORBAX, '/tmp/w is read only, save will be skipped', True),
    (logging.WARNING, ORBAX, '`read` option is deprecated. Use `reload` to read from disk.',
     True),
    (logging.ERROR, ORBAX, 'could not read /tmp/w/checkpoints/4', True),
    (logging.WARNING, ORBAX, 'CheckpointManagerOptions.read_only=True, setting create=False.',
     False),
    (logging.INFO, ORBAX, 'CheckpointManagerOptions.read_only=True, setting create=False.', False),
    (logging.INFO, ORBAX, 'CheckpointManager created, primary_host=0', False),  # not ours
    (logging.INFO, OWN, 'Resumed from step 2', True),
    (logging.INFO, OWN, 'read 60000 images', True),
    (logging.INFO, os.path.join(ROOT, 'main.py'), 'Process 0 of 1', True),
    (logging.INFO, '/site-packages/clu/metric_writers/logging_writer.py', '[2] train/x=1', True),
    (logging.INFO, '/site-packages/jax/_src/xla_bridge.py', 'Unable to initialize backend', False),
    (logging.WARNING, '/site-packages/jax/_src/xla_bridge.py', 'An NVIDIA GPU may be present',
     True),
])
def test_console_filter(level, pathname, message, kept):
  assert cli.keep_record(_record(level, pathname, message)) is kept


@pytest.mark.parametrize('error,prefix,line', [
    (ConfigError('batch_size must be positive, got 0'), '',
     'error: batch_size must be positive, got 0'),
    # What config_flags makes of a ConfigError raised inside a config file.
    (RuntimeError("Error loading config file configs/workdir.py:/r\n"
                  "'gan_jax.errors.ConfigError: /r has no config.json: give --config'"), '',
     'error: /r has no config.json: give --config'),
    (AttributeError('Could not find batch_sizee.\nDid you mean "batch_size" instead?'),
     'unknown config field: ',
     'error: unknown config field: Could not find batch_sizee. Did you mean "batch_size" '
     'instead?'),
    (OSError("Error loading configs/nothere.py\n[Errno 2] No such file or directory"), '',
     'error: Error loading configs/nothere.py: [Errno 2] No such file or directory'),
    (ValueError("unknown dataset 'imagenet'; choose one of mnist"), 'cannot load --config: ',
     "error: cannot load --config: unknown dataset 'imagenet'; choose one of mnist"),
    (KeyError(), '', 'error: KeyError'),
])
def test_error_line(error, prefix, line):
  assert cli.error_line(error, prefix) == line


def test_exit_with_prints_one_line_and_exits_2(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.exit_with(DataError('x.npz: no array named "images"'))
  assert exit_info.value.code == 2
  assert capsys.readouterr().err == 'error: x.npz: no array named "images"\n'


@pytest.mark.parametrize('argv,expected', [
    (['main.py', '--workdir=/r', '--mode=sample', '--config.seed=3'],
     ['main.py', '--config=W.py:/r', '--workdir=/r', '--mode=sample', '--config.seed=3']),
    (['main.py', '--workdir', '/r', '--mode', 'eval'],
     ['main.py', '--config=W.py:/r', '--workdir', '/r', '--mode', 'eval']),
    (['main.py', '--workdir=/r', '--mode=interpolate'],
     ['main.py', '--config=W.py:/r', '--workdir=/r', '--mode=interpolate']),
    (['main.py', '--workdir=/r', '--mode=sample', '--config=c.py:mnist'],
     ['main.py', '--workdir=/r', '--mode=sample', '--config=c.py:mnist']),
    (['main.py', '--workdir=/r'], ['main.py', '--workdir=/r']),  # train needs --config
    (['main.py', '--mode=sample'], ['main.py', '--mode=sample']),  # no workdir: absl says so
])
def test_with_workdir_config(argv, expected):
  assert cli.with_workdir_config(argv, 'W.py') == expected


def test_flags_parser_errors_are_one_line(capsys):
  flag_values = flags.FlagValues()
  flags.DEFINE_integer('num_samples', 100, 'n', lower_bound=1, flag_values=flag_values)
  flags.DEFINE_bool('verbose', False, 'v', flag_values=flag_values)
  parse = cli.flags_parser(flag_values, 'W.py')
  assert parse(['main.py', '--num_samples=3']) == ['main.py']
  assert flag_values.num_samples == 3
  with pytest.raises(SystemExit) as exit_info:
    parse(['main.py', '--num_samples=0'])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err.splitlines()
  assert len(err) == 1 and err[0].startswith('error: ') and 'num_samples' in err[0], err
  with pytest.raises(flags.IllegalFlagValueError):  # --verbose: the full error
    parse(['main.py', '--num_samples=0', '--verbose'])


@pytest.mark.parametrize('error,status', [(ConfigError('bad'), 2), (DataError('bad'), 2),
                                          (NonFiniteError('bad'), 1)])
def test_run_reporting_errors(monkeypatch, capsys, error, status):
  def fail():
    raise error

  def fake_exit(code):
    raise SystemExit(code)

  assert cli.run_reporting_errors(lambda: 7, verbose=False) == 7
  monkeypatch.setattr(os, '_exit', fake_exit)
  with pytest.raises(SystemExit) as exit_info:
    cli.run_reporting_errors(fail, verbose=False)
  assert exit_info.value.code == status
  assert capsys.readouterr().err == 'error: bad\n'
  with pytest.raises(type(error)):
    cli.run_reporting_errors(fail, verbose=True)
  with pytest.raises(KeyError):  # not a user's error: the traceback
    cli.run_reporting_errors(lambda: {}['x'], verbose=False)
