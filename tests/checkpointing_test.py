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


def _run_entry(args):
  return subprocess.run(
      [sys.executable, "-m", *args], cwd=conftest.REPO, capture_output=True,
      text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(
          conftest.REPO), JAX_PLATFORMS="cpu", OPFORMER_ALLOCATOR="system"))


def test_evaluate_and_infer_on_a_truncated_unrecorded_step_print_one_line(
    two_steps, tmp_path):
  """Orbax gives up on the other arrays when one cannot be read; their
  reports (asyncio's, 'Event loop is closed', at exit) must not follow the
  one line."""
  c, workdir = two_steps
  step_dir = workdir / "checkpoints" / "2"
  os.remove(step_dir / "files.json")
  os.truncate(largest_array_file(step_dir), 100)
  cfg_file = tmp_path / "tiny_config.py"
  cfg_file.write_text(
      "import ml_collections\n"
      f"def get_config():\n  return ml_collections.ConfigDict({c.to_dict()!r})"
      "\n")
  kp = np.random.default_rng(0).uniform(200, 800, (30, 17, 3)).astype("f4")
  kp[..., 2] = 1
  np.savez(tmp_path / "walk.npz", walk=kp, image_size=np.array([1000, 1000]))
  for args in (["opformer_jax.evaluate", f"--config={cfg_file}"],
               ["opformer_jax.infer", f"--input={tmp_path / 'walk.npz'}",
                f"--output={tmp_path / 'out'}"]):
    run = _run_entry(args + [f"--workdir={workdir}", "--step=latest"])
    assert run.returncode == 2, run.stderr[-3000:]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr[-3000:]
    assert lines[0].startswith(f"error: {step_dir / 'model'}") and (
        "checkpoint step 2 could not be restored" in lines[0]) and lines[
            0].endswith("expected --step=1 restores the other kept step")
  assert not (tmp_path / "out").exists()


def test_each_step_carries_its_record_before_it_gets_its_final_name(
    tmp_path, monkeypatch):
  """Orbax renames the step's temporary folder as its last act: the record
  must be in the folder by then, covering every file of the items."""
  from orbax.checkpoint._src.path import async_path  # pylint: disable=g-import-not-at-top
  conftest.write_toy_split(tmp_path / "test.npz", num_seqs=2, length=20)
  renamed = {}
  rename = async_path.rename

  async def spy(src, dst):
    if dst.name.isdigit():   # the step folder, not one of its items
      renamed[dst.name] = (src.name, os.path.exists(src / "files.json"))
    return await rename(src, dst)
  monkeypatch.setattr(async_path, "rename", spy)
  mngr = save_steps(tiny_config(tmp_path), tmp_path / "run", {1: 5.0, 2: 6.})
  assert renamed == {str(s): (f"{s}.orbax-checkpoint-tmp", True)
                     for s in (1, 2)}
  for step in (1, 2):
    step_dir = tmp_path / "run" / "checkpoints" / str(step)
    record = checkpointing._read_record(str(step_dir))  # pylint: disable=protected-access
    on_disk = sorted(os.path.relpath(os.path.join(r, f), step_dir)
                     for item in ("model", "optimizer", "config", "meta")
                     for r, _, fs in os.walk(step_dir / item) for f in fs)
    assert sorted(record) == on_disk and len(on_disk) > 8
    assert all(record[rel][0] == os.path.getsize(step_dir / rel)
               for rel in on_disk)
    assert checkpointing.find_damage(mngr, step) is None


@pytest.mark.parametrize("record, needles", [
    (None, ["files.json: missing (the step's integrity record)"]),
    (b"{\"files\": [1, 2", ["files.json: not a readable integrity record"]),
    (b'{"files": {}}', ["2/config/", "not in the step's integrity record"]),
])
def test_a_step_without_a_valid_record_is_damaged_for_training_only_when_absent(
    two_steps, record, needles):
  """No record: evaluate still reads the step (an older version's), training
  does not trust it; a garbage or incomplete record is damage for both."""
  c, workdir = two_steps
  mngr = checkpointing.manager(str(workdir), read_only=True)
  path = workdir / "checkpoints" / "2" / "files.json"
  if record is None:
    os.remove(path)
  else:
    path.write_bytes(record)
  path, what = checkpointing.find_damage(mngr, 2)
  assert all(n in f"{path}: {what}" for n in needles), (path, what)
  assert checkpointing.find_damage(mngr, 1) is None
  if record is None:
    assert checkpointing.find_damage(mngr, 2, need_record=False) is None
    assert checkpointing.restore_model(c, str(workdir), 2)[1] == 2
  else:
    with pytest.raises(checkpointing.CheckpointError, match="step 2 is "
                       "damaged; expected --step=1 restores the other"):
      checkpointing.restore_model(c, str(workdir), 2)


def test_non_finite_weights_of_an_unrecorded_step_are_one_line(two_steps):
  c, workdir = two_steps
  model, _, _ = checkpointing.restore_model(c, str(workdir), 2)
  params = nnx.state(model, nnx.Param)
  leaf = jax.tree.leaves(params)[0]
  nnx.update(model, jax.tree.map(
      lambda p: p.at[(0,) * p.ndim].set(np.nan) if p is leaf else p, params))
  mngr = checkpointing.manager(str(workdir))
  opt = nnx.Optimizer(model, optimizer_lib.make(c, 10), wrt=nnx.Param)
  checkpointing.save(mngr, 3, model=model, optimizer=opt, data_iter=None,
                     config=c, val_mpjpe=None, meta={"step": 3})
  mngr.wait_until_finished()
  os.remove(workdir / "checkpoints" / "3" / "files.json")
  total = sum(p.size for p in jax.tree.leaves(params))
  with pytest.raises(checkpointing.CheckpointError) as e:
    checkpointing.restore_model(c, str(workdir), 3)
  assert str(e.value) == (
      f"{workdir / 'checkpoints' / '3' / 'model'}: weights hold NaN/inf "
      f"values (1 of {total}): checkpoint step 3 is damaged; expected "
      "--step=1 restores the other kept step")   # 2 made way for 3


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
