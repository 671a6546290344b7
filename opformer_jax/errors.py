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


def check_number(flag: str, value, *, minimum=None, above=None,
                 expected: str | None = None) -> None:
  """Refuses a numeric option that is NaN / infinite or out of range.

  Args:
    flag: its name as the user typed it, e.g. '--fps'.
    value: the number; None (not given) passes.
    minimum: the least allowed value (inclusive).
    above: the value it must exceed.
    expected: what the message says is expected (default from the bounds).

  Raises:
    UserError: `--flag=value; expected ...` in one line.
  """
  if value is None:
    return
  ok = value == value and abs(value) != float("inf")
  ok = ok and (minimum is None or value >= minimum)
  ok = ok and (above is None or value > above)
  if not ok:
    if expected is None:
      expected = (f"a number > {above:g}" if above is not None else
                  f"a number >= {minimum:g}" if minimum is not None else
                  "a finite number")
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    raise UserError(f"{flag}={shown}; expected {expected}")


class Interrupted(Exception):
  """Training stopped by SIGINT / SIGTERM after saving its state.

  The entry points print the message (which step was saved, how to resume)
  and exit with status 128 + `signum`, as a process killed by it would.
  """

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.signum = signum
