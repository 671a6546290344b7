"""What the `python -m` entry points share: start-up, allocator, common flags.

Each entry point (`train`, `evaluate`, `infer`) defines its own flags, and
only when it runs as `__main__`, so every library function stays importable
and callable from tests and notebooks.
"""

import glob
import logging
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags


def reexec_with_allocator() -> None:
  """Restarts this process once with a malloc that keeps its pages.

  XLA on CPU allocates every step's temporaries afresh; glibc returns big
  blocks to the kernel and the next step faults them back in, 4 KiB at a
  time (9 M page faults, 18 % of the CPU time of a dim-512 train step on a
  2-core machine). `glibc.malloc.hugetlb=1` backs them with huge pages
  (measured 8 % faster steps, same memory); OPFORMER_ALLOCATOR=tcmalloc
  preloads tcmalloc where installed (15 % faster, but about twice the peak
  RSS); OPFORMER_ALLOCATOR=system (or a GLIBC_TUNABLES / LD_PRELOAD already
  set) leaves the process alone. Must run before anything is imported that
  allocates much, i.e. first in an entry point.
  """
  choice = os.environ.get("OPFORMER_ALLOCATOR", "hugepages")
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
    env["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1"
  argv = getattr(sys, "orig_argv", None) or [sys.executable] + sys.argv
  os.execve(sys.executable, argv, env)


def define_config_and_workdir(workdir_help: str):
  """Defines the --config and --workdir flags every entry point takes."""
  config = config_flags.DEFINE_config_file(
      "config", None, "Config file, e.g. configs/h36m.py or "
      "configs/h36m.py:t81,gt. Override fields with --config.a.b=value.",
      lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, workdir_help)
  flags.mark_flags_as_required(["config", "workdir"])
  return config, workdir


def start_jax():
  """Logs the JAX set-up and joins a multi-host run when there is one."""
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
  from opformer_jax import errors  # pylint: disable=g-import-not-at-top
  if isinstance(e, errors.UserError):
    return f"error: {e}"
  if isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError,
                    PermissionError)) and e.filename:
    return f"error: {e.filename}: {e.strerror}"
  return None


def run(main) -> None:
  """Runs an entry point's absl `main(argv)` after its flags are defined.

  Input errors end the program with one line on stderr and exit status 2
  (`--traceback` shows the traceback as well).
  """
  def guarded(argv):
    try:
      return main(argv)
    except Exception as e:  # pylint: disable=broad-except
      line = user_error_line(e)
      if line is None or _TRACEBACK.value:
        raise
      print(line, file=sys.stderr)
      sys.exit(2)
  app.run(guarded, argv=sys.argv)
