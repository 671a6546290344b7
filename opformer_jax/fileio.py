"""Atomic file writes: a file appears complete under its name, or not at all.

Every output of the project (datasets, results, figures, animations,
inference outputs) is written to a temporary file beside its destination and
renamed into place when complete, so a crash or an exception never leaves a
half-written file and never damages an existing one.
"""

import contextlib
import errno
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path: str):
  """Yields a temporary path beside `path` with the same extension.

  On normal exit the temporary file is renamed onto `path` (with the
  permissions a plain `open` would give it); on an exception it is removed
  and `path` is left untouched.
  """
  if os.path.isdir(path):
    # Named here: the rename would fail on the temporary file's name.
    raise IsADirectoryError(errno.EISDIR, "is a folder; expected a file "
                            "name to write", path)
  directory = os.path.dirname(os.path.abspath(path))
  _make_folder(directory)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-",
                             suffix=os.path.basename(path))
  os.close(fd)
  try:
    yield tmp
    # mkstemp creates 0600 files; give the result the usual umask mode.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _existing_file_above(path: str) -> str | None:
  """The first existing non-folder among `path` and its parents, if any."""
  path = os.path.abspath(path)
  while not os.path.exists(path):
    parent = os.path.dirname(path)
    if parent == path:
      return None
    path = parent
  return None if os.path.isdir(path) else path


def _make_folder(directory: str) -> None:
  blocker = _existing_file_above(directory)
  if blocker is not None:
    # One line naming the file in the way (cli.user_error_line), not
    # makedirs' FileExistsError traceback.
    raise NotADirectoryError(errno.ENOTDIR, "is a file, so no folder can be "
                             f"made under it (for {directory})", blocker)
  os.makedirs(directory, exist_ok=True)


def check_output_file(path: str, flag: str) -> None:
  """Refuses an output file name that cannot be written (a folder, or a
  path under an existing file), before any work is done.

  Raises:
    errors.UserError: in one line naming `flag`.
  """
  from opformer_jax import errors  # pylint: disable=g-import-not-at-top
  blocker = _existing_file_above(os.path.dirname(os.path.abspath(path)))
  if os.path.isdir(path):
    raise errors.UserError(errors.bad_input(
        f"{flag}={path}", "is a folder", "a file name to write"))
  if blocker is not None:
    raise errors.UserError(errors.bad_input(
        f"{flag}={path}", f"{blocker} is a file, not a folder",
        "a file name in a folder (created if missing)"))


def write_text(path: str, text: str) -> None:
  """Writes `text` to `path` atomically."""
  with atomic_path(path) as tmp, open(tmp, "w") as f:
    f.write(text)


def check_output_dir(path: str, flag: str = "--output_dir") -> None:
  """Refuses an output folder that cannot be one (empty, or an existing
  file), before anything is read or written.

  Raises:
    errors.UserError: in one line naming `flag`.
  """
  from opformer_jax import errors  # pylint: disable=g-import-not-at-top
  if not path:
    raise errors.UserError(f"{flag} is empty; expected a folder for the "
                           "outputs (created if missing)")
  blocker = _existing_file_above(path)
  if blocker is not None:
    what = ("is an existing file" if blocker == os.path.abspath(path) else
            f"lies under the file {blocker}")
    raise errors.UserError(errors.bad_input(
        path, f"{what}, not a folder", f"{flag}=<a folder for "
        "the outputs> (created if missing)"))
