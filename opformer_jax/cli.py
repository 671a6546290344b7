"""What the `python -m` entry points share: start-up, allocator, common flags.

Each entry point (`train`, `evaluate`, `infer`) defines its own flags, and
only when it runs as `__main__`, so every library function stays importable
and callable from tests and notebooks.
"""

import glob
import io
import logging
import os
import platform
import re
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from opformer_jax import errors


# GLIBC_TUNABLES of OPFORMER_ALLOCATOR=hugepages and =keep
# (reexec_with_allocator).
HUGEPAGES_TUNABLES = "glibc.malloc.hugetlb=1"
KEEP_PAGES_TUNABLES = ":".join((
    HUGEPAGES_TUNABLES, "glibc.malloc.mmap_max=0",
    "glibc.malloc.arena_max=1",
    f"glibc.malloc.trim_threshold={2 ** 40}"))
_TUNABLES = {"keep": KEEP_PAGES_TUNABLES, "hugepages": HUGEPAGES_TUNABLES}

ALLOCATORS = (*_TUNABLES, "tcmalloc", "system")


def cpu_name() -> str:
  """The CPU's model name (Linux /proc/cpuinfo), else the machine type:
  benchmarks print it, as figures differ from machine to machine."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def reexec_with_allocator() -> None:
  """Restarts this process once with a malloc that keeps its pages.

  XLA on CPU allocates every step's temporaries afresh; glibc hands blocks
  over 32 MiB back to the kernel when they are freed and the next step
  faults them in again (millions of page faults, 18 % of the CPU time of a
  dim-512 train step on a 2-core machine with 4 KiB pages; 30-40 k faults
  and ~2 s of kernel time per T = 243 step with huge pages). The default,
  OPFORMER_ALLOCATOR=keep, sets GLIBC_TUNABLES to serve every block from
  one heap (`mmap_max=0`, `arena_max=1`: thread arenas would mmap big
  blocks), never trim it (`trim_threshold`) and back it with huge pages
  (`hugetlb=1`): after the first step no page faults, and the same peak
  RSS for a JAX process (T = 243 train steps: 4.9 GB against 5.0 GB).
  OPFORMER_ALLOCATOR=hugepages is huge pages only (the earlier default),
  OPFORMER_ALLOCATOR=tcmalloc preloads tcmalloc where installed (about
  twice the peak RSS), OPFORMER_ALLOCATOR=system (or a GLIBC_TUNABLES /
  LD_PRELOAD already set) leaves the process alone. Must run before
  anything is imported that allocates much, i.e. first in an entry point.
  """
  choice = os.environ.get("OPFORMER_ALLOCATOR", "keep")
  if choice not in ALLOCATORS:
    sys.exit(f"error: OPFORMER_ALLOCATOR={choice!r}; expected one of "
             f"{', '.join(ALLOCATORS)}")
  if (not sys.platform.startswith("linux") or choice == "system" or
      "GLIBC_TUNABLES" in os.environ or "LD_PRELOAD" in os.environ):
    return
  env = dict(os.environ)
  if choice == "tcmalloc":
    libs = sorted(glob.glob("/usr/lib/*/libtcmalloc*.so.4") +
                  glob.glob("/usr/lib/libtcmalloc*.so.4"))
    if not libs:
      logging.warning("OPFORMER_ALLOCATOR=tcmalloc but no libtcmalloc found "
                      "(apt install libtcmalloc-minimal4)")
      return
    env["LD_PRELOAD"] = libs[0]
  else:
    env["GLIBC_TUNABLES"] = _TUNABLES[choice]
  argv = getattr(sys, "orig_argv", None) or [sys.executable] + sys.argv
  os.execve(sys.executable, argv, env)


def define_config_and_workdir(workdir_help: str, required: bool = True):
  """Defines the --config and --workdir flags every entry point takes
  (optional for `infer`, which has a default model)."""
  config = config_flags.DEFINE_config_file(
      "config", None, "Config file, e.g. configs/h36m.py or "
      "configs/h36m.py:t81,gt. Override fields with --config.a.b=value.",
      lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, workdir_help)
  if required:
    flags.mark_flags_as_required(["config", "workdir"])
  return config, workdir


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class _ProjectWarnings(logging.Filter):
  """Passes this package's warnings and errors, not the libraries' logs."""

  def filter(self, record):
    return (record.levelno >= logging.WARNING and
            os.path.abspath(record.pathname).startswith(_PACKAGE_DIR))


def route_logs(log_dir: str | None, before_file=None) -> str | None:
  """Sends every log record to `<log_dir>/log.txt`; the console keeps ours.

  Orbax, grain, absl and JAX log many INFO lines per checkpoint; on the
  console they bury the progress bar. They go to the file, while this
  package's warnings still reach stderr as `warning: ...`.

  Args:
    log_dir: the folder of log.txt (created); None = logs unchanged.
    before_file: a callable run before the folder and log.txt are created
      (the input checks: a run refused in one line leaves nothing behind);
      what it logs is held and written to log.txt after it.

  Returns:
    The log file's path, or None when `log_dir` is None (logs unchanged).
  """
  if log_dir is None:
    if before_file:
      before_file()
    return None
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  handler = absl_logging.get_absl_handler().python_handler
  console = logging.StreamHandler(sys.stderr)
  console.addFilter(_ProjectWarnings())
  console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
  logging.getLogger().addHandler(console)
  logging.captureWarnings(True)
  held = handler.stream = io.StringIO()
  if before_file:
    before_file()
  path = os.path.join(log_dir, "log.txt")
  _created.clear()
  _created.extend(p for p in (path, os.path.abspath(log_dir))
                  if not os.path.exists(p))
  os.makedirs(log_dir, exist_ok=True)
  # Line-buffered so the file is readable while a long run goes on.
  handler.stream = open(path, "a", buffering=1, encoding="utf-8")
  handler.stream.write(held.getvalue())
  return path


# What `route_logs` created (log.txt, then the folder), for `_undo_logs`.
_created = []


def _undo_logs() -> None:
  """Removes the log.txt and folder this run created, so that a run that
  stops on an input error leaves nothing behind; a folder that has gained
  other files stays, and so does a log.txt that was there before."""
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  if not _created:
    return
  handler = absl_logging.get_absl_handler().python_handler
  if getattr(handler.stream, "name", None) == _created[0]:
    handler.stream.close()
    handler.stream = sys.stderr
  for path in _created:
    try:
      os.remove(path) if path.endswith("log.txt") else os.rmdir(path)
    except OSError:   # kept: the folder is not empty
      pass
  _created.clear()


def start_jax(log_dir: str | None = None, before_file=None):
  """Routes logs, joins a multi-host run when there is one, logs the set-up.

  Args:
    log_dir: where `log.txt` goes (the workdir or output directory); None
      keeps absl's default (stderr).
    before_file: the entry point's input checks, run before `log_dir` or
      anything in it is created (`route_logs`).
  """
  route_logs(log_dir, before_file)
  import jax  # pylint: disable=g-import-not-at-top
  from opformer_jax import parallel  # pylint: disable=g-import-not-at-top
  logging.getLogger().setLevel(logging.INFO)
  parallel.initialize_distributed()
  logging.info("JAX %s on %s: process %d of %d, %d local device(s)",
               jax.__version__, jax.default_backend(), jax.process_index(),
               jax.process_count(), jax.local_device_count())


_TRACEBACK = flags.DEFINE_bool(
    "traceback", False, "Show the Python traceback of input errors too.")


def user_error_line(e: BaseException) -> str | None:
  """The one-line message for an input error, or None for a bug.

  `errors.UserError` (bad data, config or usage) and a missing or
  unreadable file are the user's to fix; anything else is a bug and keeps
  its traceback.
  """
  if isinstance(e, errors.UserError):
    return f"error: {e}"
  if isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError,
                    PermissionError)) and e.filename:
    return f"error: {e.filename}: {e.strerror}"
  return None


def run(main) -> None:
  """Runs an entry point's absl `main(argv)` after its flags are defined.

  Input errors end the program with one line on stderr and exit status 2
  (`--traceback` shows the traceback as well); an interrupted training run
  with its one line and 128 + the signal's number.
  """
  def guarded(argv):
    try:
      return main(argv)
    except errors.Interrupted as e:
      print(e, file=sys.stderr)
      sys.exit(128 + e.signum)
    except Exception as e:  # pylint: disable=broad-except
      line = user_error_line(e)
      if line is None or _TRACEBACK.value:
        raise
      _undo_logs()
      print(line, file=sys.stderr)
      sys.exit(2)
  app.run(guarded, argv=sys.argv, flags_parser=_parse_flags)


def _parse_flags(argv):
  """absl's flag parsing, with usage and config errors as one line, exit 2.

  Config overrides are applied while flags are parsed, so a misspelt field
  (`--config.model.dpeth=4`) surfaces here; a config file that fails to
  load only does when its value is first read, so it is read here.
  """
  try:
    rest = flags.FLAGS(argv)
    if "config" in flags.FLAGS and flags.FLAGS["config"].value is not None:
      flags.FLAGS["config"].value.get("data")  # raises if it failed to load
    return rest
  except flags.Error as e:
    if "--traceback" in argv:
      raise
    line = _flag_error_line(e)
  except Exception as e:  # pylint: disable=broad-except
    if "--traceback" in argv:
      raise
    line = _config_error_line(e, argv)
  print(f"error: {line}", file=sys.stderr)
  print(f"(run with --helpshort for the flags of {os.path.basename(argv[0])})",
        file=sys.stderr)
  sys.exit(2)


def _flag_error_line(e: flags.Error) -> str:
  """The first line of absl's message; for a config file whose get_config
  raised, `--config=X: <the exception's own message>` (ml_collections
  buries it at the end of a traceback it puts into the message)."""
  text = str(e)
  if "Error whilst parsing config file" not in text:
    return text.splitlines()[0] if text else type(e).__name__
  flag = re.match(r"flag (--config=\S+):", text)
  last = [ln.strip() for ln in text.replace("\\n", "\n").splitlines()
          if ln.strip()][-1]
  cause = re.sub(r"^([\w.]+\.)?\w*(Error|Exception): ", "", last)
  return f"{flag.group(1) if flag else '--config'}: {cause}"


def _config_error_line(e: Exception, argv) -> str:
  """`--config.a.b=v: no such config field; did you mean ...` and the like."""
  text = str(e).replace("\\n", "\n")
  typo = re.search(r'Did you mean "([^"]+)" instead of "([^"]+)"', text)
  if typo:
    key = typo.group(2)
    for arg in argv:
      if arg.startswith("--config.") and re.search(
          rf"\.{re.escape(key)}(=|$)", arg):
        return (f"{arg}: no such config field; did you mean "
                f"'{typo.group(1)}'?")
    return f"config field '{key}' does not exist; did you mean '{typo.group(1)}'?"
  missing = re.search(r"Attempted.*?:\s*(\S+)\s*\[Errno \d+\] ([^\n]+)", text,
                      re.S)
  if missing:
    return (f"{missing.group(1)}: {missing.group(2).split(':')[0]}; expected "
            "a config file defining get_config()")
  first = " ".join(text.split())
  return f"config: {first}"
