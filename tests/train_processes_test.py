"""Training as separate processes: eight devices, two processes over
localhost, a run killed with SIGKILL and restarted.

The subprocesses share the suite's persistent compilation cache, so a
restarted run does not compile again.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from opformer_jax import parallel
from opformer_jax import train

import conftest
from train_test import _env, assert_trees_close, build_state, params_of
from train_test import random_batch, tiny_config
from train_test import data_dir  # pylint: disable=unused-import  (fixture)

REPO = conftest.REPO


def cached_config(data_dir, **train_kw):
  """`tiny_config` whose subprocesses use the suite's compilation cache."""
  c = tiny_config(data_dir, **train_kw)
  c.train.compilation_cache = jax.config.jax_compilation_cache_dir
  return c


def eight_vs_one_device_max_diff(data_dir):
  """Runs 4 steps on 1 and on 8 devices; returns the max param difference.

  Needs 8 devices: runs in a subprocess started with JAX_NUM_CPU_DEVICES=8.
  """
  c = tiny_config(data_dir, batch_size=8, accum_steps=2)
  results = []
  for devices in (jax.devices()[:1], jax.devices()[:8]):
    mesh = parallel.make_mesh(devices)
    graphdef, state = build_state(c)
    state = parallel.replicate(state, mesh)
    step_fn = jax.jit(train.make_train_step(graphdef, c), donate_argnums=0)
    for i in range(4):
      batch = parallel.to_global(random_batch(8, seed=i), mesh)
      state, _ = step_fn(state, batch, jnp.int32(i))
    assert len(jax.tree.leaves(state)[0].sharding.device_set) == len(devices)
    assert batch["kp2d"].sharding.shard_shape((8, 9, 17, 3))[0] == 8 // len(
        devices)
    results.append(jax.tree.map(np.asarray, nnx.state(
        nnx.merge(graphdef, state)[0], nnx.Param)))
  return max(float(np.abs(a - b).max()) for a, b in zip(
      jax.tree.leaves(results[0]), jax.tree.leaves(results[1])))


def test_eight_devices_give_the_same_result_as_one(data_dir):
  code = ("import pathlib, sys; sys.path.insert(0, 'tests'); import jax; "
          "assert jax.device_count() == 8; import train_processes_test as t; "
          "print('DIFF', t.eight_vs_one_device_max_diff("
          f"pathlib.Path({str(data_dir)!r})))")
  run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(8),
                       capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  diff = float(run.stdout.split("DIFF")[-1])
  assert diff < 1e-5, diff


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


_RUNNER = """
import os, sys, json
os.environ["JAX_PLATFORMS"] = "cpu"
import jax
pid, nproc, port, cfg_json, workdir = (int(sys.argv[1]), int(sys.argv[2]),
                                       sys.argv[3], sys.argv[4], sys.argv[5])
if nproc > 1:
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(f"127.0.0.1:{port}", nproc, pid)
import ml_collections
from opformer_jax import train
config = ml_collections.ConfigDict(json.loads(cfg_json))
train.train_and_evaluate(config, workdir)
"""


def test_two_processes_on_localhost_agree_with_one(data_dir, tmp_path):
  # Validation and the final evaluation run too: each process restores and
  # scores on its own devices.
  c = cached_config(data_dir, max_updates=2, batch_size=4,
                  eval_every_epochs=0.5, final_eval=True)
  c.eval.figures = False
  cfg = json.dumps(c.to_dict())
  port = str(_free_port())
  procs = [subprocess.Popen(
      [sys.executable, "-c", _RUNNER, str(i), "2", port, cfg,
       str(tmp_path / "two")], env=_env(1), stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True) for i in range(2)]
  for p in procs:
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out[-3000:]
  one = subprocess.run(
      [sys.executable, "-c", _RUNNER, "0", "1", "0", cfg,
       str(tmp_path / "one")], env=_env(2), capture_output=True, text=True,
      timeout=600)
  assert one.returncode == 0, one.stdout[-2000:] + one.stderr[-3000:]
  assert_trees_close(params_of(c, tmp_path / "one"),
                     params_of(c, tmp_path / "two"), atol=1e-5)
  res = [json.load(open(next((tmp_path / d / "eval").glob("*/results.json"))))
         for d in ("one", "two")]
  assert res[0]["results"]["default"]["action_avg"]["mpjpe"] == pytest.approx(
      res[1]["results"]["default"]["action_avg"]["mpjpe"], rel=1e-4)


def _train_reference(cfg, workdir):
  """Trains `cfg` uninterrupted in one process into `workdir`; returns the
  runner's command line without its workdir."""
  cmd = [sys.executable, "-c", _RUNNER, "0", "1", "0", cfg]
  ref = subprocess.run(cmd + [str(workdir)], env=_env(1),
                       capture_output=True, text=True, timeout=600)
  assert ref.returncode == 0, ref.stderr[-3000:]
  return cmd


def test_killed_run_resumes_to_the_same_parameters(data_dir, tmp_path):
  """SIGKILL during training (possibly mid-save), restart, compare."""
  c = cached_config(data_dir, max_updates=8, checkpoint_every=2)
  cfg = json.dumps(c.to_dict())
  cmd = _train_reference(cfg, tmp_path / "ref")
  workdir = tmp_path / "killed"
  proc = subprocess.Popen(cmd + [str(workdir)], env=_env(1),
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  ckpt = workdir / "checkpoints"
  deadline = time.time() + 300
  # Kill as soon as a second save starts: often while it is being written.
  while time.time() < deadline and proc.poll() is None:
    entries = os.listdir(ckpt) if ckpt.exists() else []
    if len(entries) >= 2 or any("tmp" in e for e in entries[1:]):
      break
    time.sleep(0.01)
  killed = proc.poll() is None
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert killed, "the run finished before it could be killed"
  again = subprocess.run(cmd + [str(workdir)], env=_env(1),
                         capture_output=True, text=True, timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  assert_trees_close(params_of(c, tmp_path / "ref"), params_of(c, workdir),
                     atol=1e-6)


# The runner, dying by SIGKILL inside the save window of its `KILL_AT`-th
# save: Orbax has written every file and the integrity record into the
# step's temporary folder, and has not yet renamed it.
_KILLED_IN_SAVE_RUNNER = _RUNNER.replace("config = ml_collections", """
import signal
from opformer_jax import checkpointing
_saves, _write = [0], checkpointing.write_record
def _write_then_die(step_dir):
  _write(step_dir)
  _saves[0] += 1
  if _saves[0] == int(os.environ["KILL_AT"]):
    os.kill(os.getpid(), signal.SIGKILL)
checkpointing.write_record = _write_then_die
config = ml_collections""")


def test_killed_between_writing_a_step_and_renaming_it_resumes_exactly(
    data_dir, tmp_path):
  c = cached_config(data_dir, max_updates=6, checkpoint_every=2,
                    log_every=1)
  cfg = json.dumps(c.to_dict())
  runner = _train_reference(cfg, tmp_path / "ref")
  workdir = tmp_path / "killed"
  killed = subprocess.run(
      [sys.executable, "-c", _KILLED_IN_SAVE_RUNNER] + runner[3:] +
      [str(workdir)], env=dict(_env(1), KILL_AT="3"), capture_output=True,
      text=True, timeout=600)
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
  ckpt = workdir / "checkpoints"
  # Steps 2 and 4 saved (4 kept); 6 complete with its record but unnamed.
  assert sorted(os.listdir(ckpt)) == ["4", "6.orbax-checkpoint-tmp"]
  assert (ckpt / "6.orbax-checkpoint-tmp" / "files.json").exists()
  # The save is asynchronous: steps after 6 were trained and logged too.
  assert max(json.loads(l)["step"] for l in open(workdir / "metrics.jsonl")
             ) >= 6
  again = subprocess.run(runner + [str(workdir)], env=_env(1),
                         capture_output=True, text=True, timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "Resumed from" in again.stdout and again.stdout.split(
      "Resumed from ")[1].startswith(f"{ckpt}/4\n")
  assert not (workdir / "damaged_checkpoints").exists()
  for a, b in zip(jax.tree.leaves(params_of(c, tmp_path / "ref")),
                  jax.tree.leaves(params_of(c, workdir))):
    np.testing.assert_array_equal(a, b)   # bit-identical
  steps = [[json.loads(l)["step"] for l in open(d / "metrics.jsonl")]
           for d in (tmp_path / "ref", workdir)]
  assert steps[1] == steps[0] == list(range(1, 13))
