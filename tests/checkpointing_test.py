"""Tests of checkpoints: kept steps, file records, damaged steps."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from opformer_jax import checkpointing
from opformer_jax import config_lib
from opformer_jax import errors
from opformer_jax import model as model_lib
from opformer_jax import optimizer as optimizer_lib

import conftest


def tiny_config(data_dir):
  c = config_lib.base_config()
  c.data.name = "toy"
  c.data.train_path = str(data_dir / "train.npz")
  c.data.test_path = str(data_dir / "test.npz")
  config_lib.set_frames(c, 9)
  c.model.update(depth=1, dim=32, num_heads=2)
  c.eval.update(batch_size=8, figures=False)
  return c


def save_steps(config, workdir, val_by_step):
  """Saves a model whose weights are scaled by the step, one step each."""
  model = model_lib.build_model(config.model, config.seed)
  opt = nnx.Optimizer(model, optimizer_lib.make(config, 10), wrt=nnx.Param)
  mngr = checkpointing.manager(str(workdir))
  params = nnx.state(model, nnx.Param)
  for step, val in val_by_step.items():
    nnx.update(model, jax.tree.map(lambda p, s=step: p * s, params))
    checkpointing.save(mngr, step, model=model, optimizer=opt,
                       data_iter=None, config=config, val_mpjpe=val,
                       meta={"step": step})
    mngr.wait_until_finished()
  return mngr


def largest_array_file(step_dir):
  files = [os.path.join(r, f) for r, _, fs in os.walk(step_dir / "model")
           for f in fs if os.sep + "d" + os.sep in os.path.join(r, f)]
  return max(files, key=os.path.getsize)


@pytest.fixture
def two_steps(tmp_path):
  """Steps 1 (best validation) and 2 (latest), both kept and sealed."""
  conftest.write_toy_split(tmp_path / "test.npz", num_seqs=2, length=20)
  c = tiny_config(tmp_path)
  mngr = save_steps(c, tmp_path / "run", {1: 50.0, 2: 60.0})
  assert sorted(mngr.all_steps()) == [1, 2]
  return c, tmp_path / "run"


def test_intact_steps_restore_and_their_files_are_recorded(two_steps):
  c, workdir = two_steps
  mngr = checkpointing.manager(str(workdir), read_only=True)
  assert checkpointing.find_damage(mngr, 1) is None
  assert (workdir / "checkpoints" / "2" / "files.json").exists()
  m1, step, _ = checkpointing.restore_model(c, str(workdir), "best")
  m2, _, _ = checkpointing.restore_model(c, str(workdir), "latest")
  assert step == 1
  p1, p2 = (jax.tree.leaves(nnx.state(m, nnx.Param)) for m in (m1, m2))
  np.testing.assert_allclose(np.asarray(p2[0]), 2 * np.asarray(p1[0]),
                             rtol=1e-6)


def test_truncated_file_names_step_file_and_the_other_kept_step(two_steps):
  c, workdir = two_steps
  path = largest_array_file(workdir / "checkpoints" / "2")
  size = os.path.getsize(path)
  os.truncate(path, size // 3)
  with pytest.raises(checkpointing.CheckpointError) as e:
    checkpointing.restore_model(c, str(workdir), "latest")
  msg = str(e.value)
  assert "\n" not in msg
  assert msg == (f"{path}: {size // 3} bytes instead of {size} (truncated):"
                 " checkpoint step 2 is damaged; expected --step=1 restores "
                 "the other kept step")
  assert isinstance(e.value, errors.UserError) and e.value.step == 2
  _, step, _ = checkpointing.restore_model(c, str(workdir), 1)  # still fine
  assert step == 1


def test_missing_file_and_no_intact_alternative(two_steps):
  c, workdir = two_steps
  for step in (1, 2):
    os.remove(largest_array_file(workdir / "checkpoints" / str(step)))
  with pytest.raises(checkpointing.CheckpointError,
                     match=r"missing: checkpoint step 1 is damaged; expected "
                     r"no other kept step to restore; train again"):
    checkpointing.restore_model(c, str(workdir), "best")


def test_unrecorded_damaged_step_still_fails_in_one_line(two_steps):
  """A step saved without files.json (an older run, or killed right after
  the save): Orbax's innermost message, one line, names the array."""
  c, workdir = two_steps
  step_dir = workdir / "checkpoints" / "2"
  os.remove(step_dir / "files.json")
  path = largest_array_file(step_dir)
  os.truncate(path, os.path.getsize(path) // 3)
  with pytest.raises(checkpointing.CheckpointError) as e:
    checkpointing.restore_model(c, str(workdir), "latest")
  msg = str(e.value)
  assert "\n" not in msg and len(msg) < 700
  assert msg.startswith(str(step_dir / "model"))
  assert "checkpoint step 2 could not be restored" in msg
  assert msg.endswith("expected --step=1 restores the other kept step")


def test_set_aside_moves_the_step_without_touching_its_files(two_steps):
  _, workdir = two_steps
  mngr = checkpointing.manager(str(workdir))
  path = largest_array_file(workdir / "checkpoints" / "2")
  os.truncate(path, 10)
  dest = checkpointing.set_aside(mngr, 2)
  assert dest == str(workdir / "damaged_checkpoints" / "2")
  assert mngr.all_steps() == [1]
  moved = os.path.join(dest, os.path.relpath(path, workdir / "checkpoints" /
                                             "2"))
  assert os.path.getsize(moved) == 10
  # A second damaged step 2 never overwrites the first.
  save_steps(tiny_config(workdir), workdir, {2: 70.0})
  assert checkpointing.set_aside(mngr, 2).endswith(
      os.path.join("damaged_checkpoints", "2-2"))
  assert os.path.getsize(moved) == 10


def test_evaluate_command_on_a_damaged_step_prints_one_line(two_steps,
                                                             tmp_path):
  c, workdir = two_steps
  os.truncate(largest_array_file(workdir / "checkpoints" / "2"), 100)
  cfg_file = tmp_path / "tiny_config.py"
  cfg_file.write_text(
      "import ml_collections\n"
      f"def get_config():\n  return ml_collections.ConfigDict({c.to_dict()!r})"
      "\n")
  run = subprocess.run(
      [sys.executable, "-m", "opformer_jax.evaluate", f"--config={cfg_file}",
       f"--workdir={workdir}", "--step=latest"], cwd=conftest.REPO,
      capture_output=True, text=True, timeout=300,
      env=dict(os.environ, PYTHONPATH=str(conftest.REPO),
               JAX_PLATFORMS="cpu"))
  assert run.returncode == 2, run.stderr[-3000:]
  lines = run.stderr.strip().splitlines()
  assert lines[-1].startswith("error: ") and lines[-1].endswith(
      "checkpoint step 2 is damaged; expected --step=1 restores the other "
      "kept step"), run.stderr[-3000:]
  assert "Traceback" not in run.stderr
  assert "Event loop is closed" not in run.stderr


def test_an_unknown_step_or_an_empty_workdir_is_a_one_line_error(two_steps,
                                                                 tmp_path):
  c, workdir = two_steps
  with pytest.raises(checkpointing.CheckpointError,
                     match=r"checkpoints: no checkpoint step 3; expected "
                     r"--step=1 or --step=2$"):
    checkpointing.restore_model(c, str(workdir), 3)
  with pytest.raises(errors.UserError, match="--step=last: expected"):
    checkpointing.restore_model(c, str(workdir), "last")
  with pytest.raises(checkpointing.CheckpointError,
                     match="empty/checkpoints: no checkpoint in this "
                     "directory; expected a "
                     "training run's workdir"):
    checkpointing.restore_model(c, str(tmp_path / "empty"), "best")
