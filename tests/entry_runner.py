"""Runs many command lines of one entry point, each in a forked child of
one warm process (JAX and the package imported once, ~4 s, not per case).

  python tests/entry_runner.py SPEC.json   ->  prints [exit code, ...]

SPEC: {"entry": "-m opformer_jax.infer" or "tools/x.py", "preload": [module
names], "cases": [[arg, ...], ...], "out": folder}; case i's stderr goes
to <out>/<i>.err. Each child is a fresh process as far as the entry point
can tell: its own flags, argv, exit status and file descriptors.
"""

import importlib
import json
import os
import runpy
import sys


def _child(entry: str, args: list, err_path: str) -> None:
  fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
  os.dup2(fd, 2)
  os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
  code = 0
  try:
    if entry.startswith("-m "):
      # A preloaded module runs afresh as __main__, as under `python -m`
      # (a package's __main__ is not preloaded).
      if not hasattr(sys.modules.get(entry[3:]), "__path__"):
        sys.modules.pop(entry[3:], None)
      sys.argv = [entry[3:], *args]
      runpy.run_module(entry[3:], run_name="__main__", alter_sys=True)
    else:
      sys.argv = [entry, *args]
      runpy.run_path(entry, run_name="__main__")
  except SystemExit as e:
    if isinstance(e.code, str):
      print(e.code, file=sys.stderr)
      code = 1
    else:
      code = e.code or 0
  except BaseException:  # pylint: disable=broad-except
    import traceback  # pylint: disable=g-import-not-at-top
    traceback.print_exc()
    code = 1
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)


def main():
  # The repository in the working directory, not an installed copy.
  sys.path[0] = os.getcwd()
  # cli.reexec_with_allocator would re-exec this runner, not the case.
  os.environ["OPFORMER_ALLOCATOR"] = "system"
  with open(sys.argv[1]) as f:
    spec = json.load(f)
  for name in spec.get("preload", []):
    importlib.import_module(name)
  codes = []
  for i, args in enumerate(spec["cases"]):
    err = os.path.join(spec["out"], f"{i}.err")
    pid = os.fork()
    if pid == 0:
      _child(spec["entry"], args, err)
    _, status = os.waitpid(pid, 0)
    codes.append(os.waitstatus_to_exitcode(status))
  print(json.dumps(codes))


if __name__ == "__main__":
  main()
