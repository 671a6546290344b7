"""Errors a person can act on: bad data, config or command-line input.

Raising `UserError` (or a subclass) means "the input is wrong, not the
code": the entry points print it as one line, `error: <file>: <what is
wrong>; expected <what>`, and exit with status 2 and no traceback
(`--traceback` shows it). Anything else is a bug and keeps its traceback.
`Interrupted` is neither: a run stopped on request, after saving.
"""


class UserError(Exception):
  """Wrong input a user can fix; the message names the file and field."""


class DataError(UserError, ValueError):
  """A data file does not follow its format; the message names file/field."""


class ConfigError(UserError, ValueError):
  """A config value that cannot work (names the field and what it takes)."""


def bad_input(path, what: str, expected: str | None = None) -> str:
  """The one-line message `<path>: <what>; expected <expected>`."""
  msg = f"{path}: {what}"
  return f"{msg}; expected {expected}" if expected else msg


class Interrupted(Exception):
  """Training stopped by SIGINT / SIGTERM after saving its state.

  The entry points print the message (which step was saved, how to resume)
  and exit with status 128 + `signum`, as a process killed by it would.
  """

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.signum = signum
