"""Entry-point behaviour a user meets first: one-line errors, quiet console."""

import os
import subprocess
import sys

import pytest

from opformer_jax import cli
from opformer_jax import errors

import conftest

REPO = conftest.REPO


def _run(*args, timeout=120):
  env = dict(os.environ, JAX_PLATFORMS="cpu", OPFORMER_ALLOCATOR="system")
  return subprocess.run([sys.executable, *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


def _assert_one_line_error(run, *needles):
  assert run.returncode == 2, run.stderr
  assert "Traceback" not in run.stderr
  first = run.stderr.splitlines()[0]
  assert first.startswith("error: "), run.stderr
  for needle in needles:
    assert needle in first, first


@pytest.mark.parametrize("args, needles", [
    (["--config=configs/quickstart.py", "--config.model.dpeth=4"],
     ["--config.model.dpeth=4: no such config field", "'depth'"]),
    (["--config=configs/missing.py"],
     ["configs/missing.py: No such file", "get_config()"]),
    (["--config=configs/quickstart.py", "--config.optim.lr=fast"],
     ["--config.optim.lr=fast", "float"]),
])
def test_train_config_errors_are_one_line(tmp_path, args, needles):
  run = _run("-m", "opformer_jax.train", *args, f"--workdir={tmp_path}")
  _assert_one_line_error(run, *needles)
  assert not (tmp_path / "checkpoints").exists()


def test_missing_required_flag_is_one_line():
  run = _run("-m", "opformer_jax.evaluate", "--config=configs/quickstart.py")
  _assert_one_line_error(run, "--workdir")


def test_traceback_flag_shows_the_traceback(tmp_path):
  run = _run("-m", "opformer_jax.train", "--config=configs/quickstart.py",
             "--config.model.dpeth=4", f"--workdir={tmp_path}", "--traceback")
  assert run.returncode != 0 and "Traceback" in run.stderr


def test_user_errors_and_missing_files_are_the_users_bugs_are_not():
  e = errors.DataError(errors.bad_input("a.npz", "field 'kp2d' has shape "
                                        "(3, 2)", "(F, 17, 2)"))
  assert cli.user_error_line(e) == (
      "error: a.npz: field 'kp2d' has shape (3, 2); expected (F, 17, 2)")
  missing = FileNotFoundError(2, "No such file or directory", "x.json")
  assert cli.user_error_line(missing) == (
      "error: x.json: No such file or directory")
  assert cli.user_error_line(KeyError("bug")) is None
  assert cli.user_error_line(FileNotFoundError("no filename")) is None


_LOGGING_SCRIPT = r"""
import sys
from absl import app, logging
from opformer_jax import cli
from opformer_jax.data import dataset   # a module of the package

def main(argv):
  path = cli.route_logs(sys.argv[1])
  logging.info("orbax-like INFO line")
  logging.warning("library warning")
  # A warning logged from inside the package reaches the console.
  exec(compile("logging.warning('project warning')", dataset.__file__,
               "exec"), {"logging": logging})
  print("printed line")
  print(path)

app.run(main, argv=sys.argv[:1])
"""


def test_library_logs_go_to_the_log_file_not_the_console(tmp_path):
  script = tmp_path / "log_script.py"
  script.write_text(_LOGGING_SCRIPT)
  run = _run(str(script), str(tmp_path / "work"))
  assert run.returncode == 0, run.stderr
  log = (tmp_path / "work" / "log.txt").read_text()
  assert "orbax-like INFO line" in log and "library warning" in log
  assert "orbax-like" not in run.stderr and "library warning" not in run.stderr
  assert "WARNING: project warning" in run.stderr
  assert "printed line" in run.stdout


_INTERRUPTED_SCRIPT = r"""
import signal, sys
from opformer_jax import cli, errors

def main(argv):
  raise errors.Interrupted("SIGTERM: stopped at micro-step 5 of 12, saved "
                           "in w/checkpoints/5; run the same command to "
                           "resume.", signal.SIGTERM)

cli.run(main)
"""


def test_interrupted_run_prints_one_line_and_exits_as_the_signal_would(
    tmp_path):
  script = tmp_path / "interrupted.py"
  script.write_text(_INTERRUPTED_SCRIPT)
  run = _run(str(script))
  assert run.returncode == 128 + 15, run.stderr
  assert run.stderr.splitlines() == [
      "SIGTERM: stopped at micro-step 5 of 12, saved in w/checkpoints/5; run "
      "the same command to resume."]


_ALLOC_SCRIPT = """
import os, resource, sys
from opformer_jax import cli
cli.reexec_with_allocator()
import numpy as np
def faults_of_a_fresh_block():
  # 256 MiB, far above glibc's 32 MiB mmap ceiling: without the tunables it
  # is mmapped on every allocation and faulted in page by page.
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  np.ones(2 ** 25).sum()
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_a_fresh_block()
print(os.environ.get("GLIBC_TUNABLES"), faults_of_a_fresh_block())
"""


def _alloc_run(choice):
  env = {k: v for k, v in os.environ.items()
         if k not in ("GLIBC_TUNABLES", "LD_PRELOAD")}
  env.update(OPFORMER_ALLOCATOR=choice, PYTHONPATH=str(REPO))
  return subprocess.run([sys.executable, "-c", _ALLOC_SCRIPT], env=env,
                        capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="glibc tunables are Linux-only")
def test_default_allocator_reuses_freed_blocks_without_page_faults():
  tunables, faults = _alloc_run("keep").stdout.split()
  assert tunables == cli.KEEP_PAGES_TUNABLES
  # The second 256 MiB block comes from the kept heap: no page faulted in
  # (a few for numpy's own bookkeeping), against one per 4 KiB page (65,536)
  # or per huge page (128) when glibc maps it afresh.
  assert int(faults) < 64, faults
  tunables, faults = _alloc_run("system").stdout.split()
  assert tunables == "None" and int(faults) >= 128, faults


def test_unknown_allocator_is_one_line():
  run = _alloc_run("jemalloc")
  assert run.returncode != 0 and "Traceback" not in run.stderr
  assert run.stderr.strip() == ("error: OPFORMER_ALLOCATOR='jemalloc'; "
                                "expected one of keep, hugepages, tcmalloc, "
                                "system")
