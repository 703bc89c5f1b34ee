"""Errors a user can act on: main.py prints their message as one line (no traceback)."""


class ConfigError(ValueError):
  """A config, flag or workdir that cannot run; the message says which and how to fix it."""


class DataError(ValueError):
  """A dataset that cannot be read; its message says what to fix."""


class NonFiniteError(RuntimeError):
  """Training produced a non-finite loss or parameter; the message names the step and metric."""


class CompileError(RuntimeError):
  """XLA could not compile the training call for a target (--mode=compile); the message names
  the target and XLA's first line (--verbose: the whole error)."""
