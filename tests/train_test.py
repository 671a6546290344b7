"""Tests of training in one process: steps, accumulation, resume, failures,
budgets. Runs that need several processes or devices: train_processes_test."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from opformer_jax import checkpointing
from opformer_jax import config_lib
from opformer_jax import errors
from opformer_jax import model as model_lib
from opformer_jax import optimizer as optimizer_lib
from opformer_jax import train
from opformer_jax.data import dataset

import conftest

REPO = conftest.REPO


def tiny_config(data_dir, **train_kw):
  """A depth-1, dim-32, T=9 config over the toy splits in `data_dir`."""
  c = config_lib.base_config()
  c.data.name = "toy"
  c.data.train_path = str(data_dir / "train.npz")
  c.data.test_path = str(data_dir / "test.npz")
  config_lib.set_frames(c, 9)
  c.model.update(depth=1, dim=32, num_heads=2)
  c.train.update(batch_size=4, accum_steps=2, num_epochs=2, log_every=2,
                 eval_every_epochs=-1, checkpoint_every=3, final_eval=False,
                 compilation_cache="")
  c.train.update(train_kw)
  c.optim.lr = 1e-3
  c.eval.batch_size = 8
  return c


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("toy")
  conftest.write_toy_split(d / "train.npz", num_seqs=4, length=30)
  conftest.write_toy_split(d / "test.npz", num_seqs=2, length=20, seed=1)
  return d


def params_of(config, workdir, step="latest"):
  model, _, _ = checkpointing.restore_model(config, str(workdir), step)
  return jax.tree.map(np.asarray, nnx.state(model, nnx.Param))


def assert_trees_close(a, b, atol):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, atol=atol)


def random_batch(b, t=9, seed=0):
  rng = np.random.default_rng(seed)
  return {"kp2d": rng.normal(size=(b, t, 17, 3)).astype("f4"),
          "kp3d": rng.normal(size=(b, t, 17, 3)).astype("f4") * 0.1,
          "scale_mm": np.full((b, t), 500.0, "f4")}


def _env(devices):
  """The environment of a training subprocess with `devices` CPU devices."""
  return dict(os.environ, PYTHONPATH=str(REPO), JAX_NUM_CPU_DEVICES=str(
      devices), XLA_FLAGS="")


def build_state(config, steps_per_epoch=100):
  model = model_lib.build_model(config.model, config.seed)
  opt = nnx.Optimizer(model, optimizer_lib.make(config, steps_per_epoch),
                      wrt=nnx.Param)
  return nnx.split((model, opt))


def test_accumulating_8_micro_batches_equals_one_batch_of_8x(data_dir):
  big = random_batch(16)
  c_acc = tiny_config(data_dir, accum_steps=8)
  c_one = tiny_config(data_dir, accum_steps=1)
  c_acc.loss.w_vel = c_one.loss.w_vel = 1.0
  graphdef, state = build_state(c_acc)
  step_fn = jax.jit(train.make_train_step(graphdef, c_acc))
  for i in range(8):
    micro = {k: v[2 * i:2 * i + 2] for k, v in big.items()}
    state, _ = step_fn(state, micro, jnp.int32(i))
  graphdef1, state1 = build_state(c_one)
  state1, _ = jax.jit(train.make_train_step(graphdef1, c_one))(
      state1, big, jnp.int32(0))
  p_acc = nnx.merge(graphdef, state)[0]
  p_one = nnx.merge(graphdef1, state1)[0]
  p0 = model_lib.build_model(c_one.model, c_one.seed)
  assert_trees_close(nnx.state(p_acc, nnx.Param), nnx.state(p_one, nnx.Param),
                     atol=2e-6)
  moved = [np.abs(a - b).max() for a, b in zip(
      jax.tree.leaves(nnx.state(p_one, nnx.Param)),
      jax.tree.leaves(nnx.state(p0, nnx.Param)))]
  assert max(moved) > 1e-4  # an update really happened


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory):
  """A run of 6 updates (12 micro-steps) in one go: (config, workdir)."""
  c = tiny_config(data_dir, max_updates=6)
  workdir = tmp_path_factory.mktemp("uninterrupted")
  out = train.train_and_evaluate(c, str(workdir))
  assert out["step"] == 12
  return c, workdir


def test_resumed_run_ends_with_the_parameters_of_an_uninterrupted_one(
    data_dir, uninterrupted, tmp_path):
  c, full = uninterrupted
  half = tiny_config(data_dir, max_updates=3)
  train.train_and_evaluate(half, str(tmp_path / "resumed"))
  out = train.train_and_evaluate(c, str(tmp_path / "resumed"))
  assert out["step"] == 12
  assert_trees_close(params_of(c, full), params_of(c, tmp_path / "resumed"),
                     atol=1e-6)
  rows = [json.loads(l) for l in open(full / "metrics.jsonl")]
  for key in ("loss", "lr", "grad_norm", "clips_per_s", "loss_vel"):
    assert key in rows[-1], key
  assert any(f.startswith("events") for f in os.listdir(full / "tb"))


def _largest_array(step_dir):
  arrays = [os.path.join(r, f) for r, _, fs in os.walk(step_dir / "model")
            for f in fs if f"{os.sep}d{os.sep}" in os.path.join(r, f)]
  return max(arrays, key=os.path.getsize)


def _damage(step_dir, how):
  """Damages a step `how`; returns the file its warning must name."""
  if how == "truncated":
    path = _largest_array(step_dir)
    os.truncate(path, 100)
    return path
  record = step_dir / "files.json"
  if how == "no record":
    os.remove(record)
  else:
    record.write_text('{"files": {"model/_METADATA": [1, ')
  return str(record)


def logged_steps(workdir):
  return [json.loads(l)["step"] for l in open(workdir / "metrics.jsonl")]


@pytest.mark.parametrize("how", ["truncated", "no record", "garbage record"])
def test_damaged_latest_step_is_set_aside_and_training_resumes_from_the_one_before(
    data_dir, uninterrupted, tmp_path, caplog, how):
  """Step 8 damaged (a file cut short, or no valid integrity record), step 4
  intact: the run resumes from 4, replays 5-8 and logs each step once."""
  c, full = uninterrupted
  ckpt = tmp_path / "checkpoints"
  train.train_and_evaluate(tiny_config(data_dir, max_updates=2), str(tmp_path))
  shutil.copytree(ckpt / "4", tmp_path / "step4")
  train.train_and_evaluate(tiny_config(data_dir, max_updates=4), str(tmp_path))
  shutil.copytree(tmp_path / "step4", ckpt / "4")     # keep steps 4 and 8
  named = _damage(ckpt / "8", how)
  before = sorted(str(p.relative_to(ckpt / "8")) for p in
                  (ckpt / "8").rglob("*"))
  with caplog.at_level(logging.WARNING):
    out = train.train_and_evaluate(c, str(tmp_path))
  assert out["step"] == 12
  warning = [r.getMessage() for r in caplog.records
             if "is damaged" in r.getMessage()]
  assert len(warning) == 1 and "checkpoint step 8 is damaged" in warning[0]
  assert warning[0].startswith(named + ": ") and "\n" not in warning[0]
  moved = tmp_path / "damaged_checkpoints" / "8"
  assert warning[0].endswith(f"; moved to {moved}")
  # Kept, untouched, beside the run; the result is the uninterrupted one.
  assert sorted(str(p.relative_to(moved)) for p in moved.rglob("*")) == before
  if how == "truncated":
    assert (moved / os.path.relpath(named, ckpt / "8")).stat().st_size == 100
  assert_trees_close(params_of(c, full), params_of(c, tmp_path), atol=1e-6)
  assert logged_steps(tmp_path) == logged_steps(full) == list(range(2, 13, 2))


def test_the_only_kept_step_damaged_restarts_from_step_0_in_one_line(
    data_dir, tmp_path, caplog):
  c = tiny_config(data_dir, max_updates=2)
  train.train_and_evaluate(c, str(tmp_path))
  first = params_of(c, tmp_path)
  ckpt = tmp_path / "checkpoints"
  assert os.listdir(ckpt) == ["4"]
  os.remove(ckpt / "4" / "files.json")
  with caplog.at_level(logging.WARNING):
    assert train.train_and_evaluate(c, str(tmp_path))["step"] == 4
  lines = [r.getMessage() for r in caplog.records
           if r.levelno >= logging.WARNING and "opformer_jax" in r.pathname]
  assert lines == [
      f"{ckpt / '4' / 'files.json'}: missing (the step's integrity record), "
      "so its files cannot be checked: checkpoint step 4 is damaged; moved "
      f"to {tmp_path / 'damaged_checkpoints' / '4'}; it was the only kept "
      "step, so training restarts from step 0"]
  # Trained again from the start: the same run, logged once.
  assert_trees_close(first, params_of(c, tmp_path), atol=1e-6)
  assert logged_steps(tmp_path) == [2, 4]


def test_sigterm_saves_the_micro_step_and_the_resumed_run_is_exact(
    data_dir, uninterrupted, tmp_path, monkeypatch):
  """SIGTERM after micro-step 5 (mid-accumulation, between the saves at 3
  and 6): that step is saved, the run stops, and resuming it ends with the
  uninterrupted run's parameters."""
  c, full = uninterrupted
  step = train.Trainer._train_step

  def step_then_sigterm(self):
    meas = step(self)
    if self.step == 5:
      os.kill(os.getpid(), signal.SIGTERM)
    return meas
  monkeypatch.setattr(train.Trainer, "_train_step", step_then_sigterm)
  handler = signal.getsignal(signal.SIGTERM)
  with pytest.raises(errors.Interrupted,
                     match=r"SIGTERM: stopped at micro-step 5 of 12, saved in "
                     r".*checkpoints/5; run the same command") as e:
    train.train_and_evaluate(c, str(tmp_path))
  assert e.value.signum == signal.SIGTERM
  assert signal.getsignal(signal.SIGTERM) is handler   # restored
  assert max(map(int, os.listdir(tmp_path / "checkpoints"))) == 5
  monkeypatch.undo()
  assert train.train_and_evaluate(c, str(tmp_path))["step"] == 12
  assert_trees_close(params_of(c, full), params_of(c, tmp_path), atol=1e-6)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    data_dir, tmp_path):
  c = tiny_config(data_dir, checkpoint_every=2, log_every=1)
  c.optim.lr = 1e30
  with pytest.raises(FloatingPointError, match="non-finite training loss"):
    train.train_and_evaluate(c, str(tmp_path))
  mngr = checkpointing.manager(str(tmp_path), read_only=True)
  assert mngr.all_steps(), "a good checkpoint was kept"
  params = params_of(c, tmp_path)
  assert all(np.isfinite(p).all() for p in jax.tree.leaves(params))


def test_validation_keeps_latest_and_best_and_evaluate_restores_best(
    data_dir, tmp_path):
  c = tiny_config(data_dir, eval_every_epochs=0.5, num_epochs=2,
                  final_eval=True)
  c.eval.attention_clips = 2
  out = train.train_and_evaluate(c, str(tmp_path))
  rows = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  vals = {r["step"]: r["val_mpjpe"] for r in rows if "val_mpjpe" in r}
  assert len(vals) >= 3
  mngr = checkpointing.manager(str(tmp_path), read_only=True)
  best_step = min(vals, key=vals.get)
  assert mngr.best_step() == best_step
  assert set(mngr.all_steps()) == {best_step, max(vals)}
  assert out["val_mpjpe"] == pytest.approx(vals[best_step])
  out_dir = tmp_path / "eval" / f"step_{best_step}"
  res = json.load(open(out_dir / "results.json"))
  for name in ("results.md", "fig4_mpjpe_histogram.png",
               "fig5_part_error.png", "fig6_attention.png"):
    assert (out_dir / name).stat().st_size > 1000, name
  # The final protocol on the best step reproduces its validation number.
  assert res["results"]["default"]["action_avg"]["mpjpe"] == pytest.approx(
      vals[best_step], rel=1e-5)


# The shrunk quickstart model, as --config overrides of configs/quickstart.py.
QUICKSTART_TINY = {"model.depth": 1, "model.dim": 32, "model.max_frames": 9,
                   "data.num_frames": 9, "data.train_stride": 3,
                   "data.test_stride": 9}


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
  """The README's main job, shrunk: the real config on a small synthetic set,
  trained in two parts (the second resumes). Returns (workdir, output)."""
  sys.path.insert(0, str(REPO))
  from configs import quickstart  # pylint: disable=import-outside-toplevel
  from opformer_jax.data import synthetic  # pylint: disable=import-outside-toplevel
  tmp = tmp_path_factory.mktemp("quickstart")
  train_path, test_path = synthetic.generate(
      str(tmp / "data"), train_subjects=1, test_subjects=1, takes=1,
      frames=40, cameras_per_take=1)
  c = quickstart.get_config()
  with c.unlocked():
    c.data.train_path, c.data.test_path = train_path, test_path
    for key, value in QUICKSTART_TINY.items():
      section, field = key.split(".")
      c[section][field] = value
    c.train.update(num_epochs=3, eval_every_epochs=1.0, log_every=5,
                   compilation_cache="")
    c.eval.attention_clips = 2
  half = c.copy_and_resolve_references()
  with half.unlocked():
    half.train.max_updates = 10
  first = train.train_and_evaluate(half, str(tmp / "run"))
  assert first["step"] == 10
  return tmp / "run", train.train_and_evaluate(c, str(tmp / "run"))


def test_quickstart_config_shrunk_trains_resumes_and_evaluates(quickstart_run):
  workdir, out = quickstart_run
  assert out["step"] == 27                             # 3 epochs x 9
  res = out["results"]["default"]
  assert res["num_frames"] > 0 and np.isfinite(res["action_avg"]["mpjpe"])
  assert len(res["actions"]) == 7                      # synthetic actions
  md = next((workdir / "eval").glob("step_*/results.md")).read_text()
  assert "Synthetic data" in md and "Walking" in md


def test_readme_evaluation_command_on_a_trained_quickstart_workdir(
    quickstart_run, tmp_path):
  """`python -m opformer_jax.evaluate --config=configs/quickstart.py
  --workdir=...` on a fresh machine: the built-in dataset is resolved (here
  generated into an empty HOME) as training resolves it."""
  workdir, out = quickstart_run
  best = checkpointing.resolve_step(
      checkpointing.manager(str(workdir), read_only=True), "best")
  results_json = workdir / "eval" / f"step_{best}" / "results.json"
  results_json.unlink()
  run = subprocess.run(
      [sys.executable, "-m", "opformer_jax.evaluate",
       "--config=configs/quickstart.py", f"--workdir={workdir}"] +
      [f"--config.{k}={v}" for k, v in QUICKSTART_TINY.items()],
      cwd=REPO, capture_output=True, text=True, timeout=600,
      env=dict(_env(1), HOME=str(tmp_path)))
  assert run.returncode == 0, run.stderr[-3000:]
  assert "MPJPE" in run.stdout
  res = json.load(open(results_json))
  assert res["meta"]["step"] == best
  assert res["meta"]["test_path"] == str(
      tmp_path / ".cache" / "opformer_jax" / "synthetic" / "test.npz")
  assert res["meta"]["synthetic"]
  default = res["results"]["default"]
  # The default synthetic test split: 2 subjects x 7 actions x 2 takes x
  # 2 cameras = 56 sequences of 160 frames, in clips of T = 9 (tails dropped).
  assert default["num_frames"] == 56 * (160 // 9) * 9
  assert len(default["actions"]) == 7
  assert 0 < default["action_avg"]["mpjpe"] < 1000
  assert out["results"]["default"]["num_frames"] != default["num_frames"]


def test_config_typo_fails_at_start_up(tmp_path):
  run = subprocess.run(
      [sys.executable, "-m", "opformer_jax.train",
       "--config=configs/quickstart.py", "--config.model.dpeth=4",
       f"--workdir={tmp_path}"], cwd=REPO, capture_output=True, text=True,
      timeout=120, env=_env(1))
  assert run.returncode != 0
  assert "depth" in run.stderr  # "Did you mean depth?"
  assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("text, want", [
    ("2h", ("seconds", 7200.0)), ("90m", ("seconds", 5400.0)),
    ("45s", ("seconds", 45.0)), ("1.5h", ("seconds", 5400.0)),
    ("5000u", ("updates", 5000.0)), ("5000updates", ("updates", 5000.0)),
    (" 20 U ", ("updates", 20.0)), ("", None)])
def test_parse_budget(text, want):
  assert train.parse_budget(text) == want


@pytest.mark.parametrize("text", ["2", "2d", "-5m", "0s", "1.5u", "h"])
def test_parse_budget_rejects_in_one_line(text):
  with pytest.raises(errors.ConfigError, match="expected"):
    train.parse_budget(text)


def test_time_budget_pays_for_start_up_compilation_and_validations():
  # 3600 s - 100 spent - 20 compile - 11 x 10 validations - 70 final
  # = 3300 s, at 0.5 s per update.
  assert train.time_budget_updates(
      3600, 100, compile_s=20, update_s=0.5, val_s=10, num_vals=11,
      final_s=70) == 6600
  with pytest.raises(errors.ConfigError, match="too short"):
    train.time_budget_updates(60, 50, compile_s=20, update_s=0.5, val_s=0,
                              num_vals=0, final_s=0)


def test_final_evaluation_estimate_counts_one_compilation():
  # 6 s compiling + 2 s steady per subset; the test split is 10 subsets:
  # one compiling pass and nine steady ones (all ten at 6 s left a quarter
  # of an 8-minute budget unused).
  assert train.final_eval_seconds(6.0, 2.0, 10.0) == 24.0
  assert train.final_eval_seconds(6.0, 2.0, 0.5) == 6.0


def test_budgeted_run_interrupted_and_resumed_equals_uninterrupted(
    data_dir, tmp_path):
  c = tiny_config(data_dir, budget="8u", budget_evals=2, eval_max_clips=3,
                  num_epochs=1000)
  full = train.train_and_evaluate(c, str(tmp_path / "full"))
  assert full["step"] == 16                   # 8 updates x 2 micro-batches
  half = c.copy_and_resolve_references()
  with half.unlocked():
    half.train.max_updates = 3
  assert train.train_and_evaluate(half, str(tmp_path / "resumed"))[
      "step"] == 6
  assert train.train_and_evaluate(c, str(tmp_path / "resumed"))["step"] == 16
  assert_trees_close(params_of(c, tmp_path / "full"),
                     params_of(c, tmp_path / "resumed"), atol=1e-6)
  mngr = checkpointing.manager(str(tmp_path / "resumed"), read_only=True)
  assert checkpointing.latest_meta(mngr)["plan"] == {
      "budget": "8u", "total_updates": 8, "schedule": "cosine"}
  rows = [json.loads(l) for l in open(tmp_path / "full" / "metrics.jsonl")]
  vals = [r for r in rows if "val_mpjpe" in r]
  assert [r["step"] for r in vals] == [8, 16]   # budget_evals spread
  # Validation scored the fixed subset; the last logged lr is near the floor.
  sub = dataset.load(str(tmp_path / "full" / "validation_subset.npz"))
  # 3 clips over 2 sequences of 20 frames: 2 clips (18 frames) of each.
  assert sub.num_frames == 2 * 18
  assert [r["lr"] for r in rows if "lr" in r][-1] < 0.1 * c.optim.lr


def test_time_budget_is_timed_once_and_a_resume_keeps_its_plan(
    data_dir, tmp_path, caplog):
  c = tiny_config(data_dir, budget="10m", budget_timing_steps=2,
                  budget_evals=0, max_updates=1)
  assert train.train_and_evaluate(c, str(tmp_path))["step"] == 2
  mngr = checkpointing.manager(str(tmp_path), read_only=True)
  plan = checkpointing.latest_meta(mngr)["plan"]
  assert plan["budget"] == "10m" and plan["total_updates"] > 10
  with c.unlocked():
    c.train.update(budget="1h", max_updates=2)
  with caplog.at_level(logging.WARNING):
    assert train.train_and_evaluate(c, str(tmp_path))["step"] == 4
  assert any("keeps that plan" in r.getMessage() for r in caplog.records)
  mngr = checkpointing.manager(str(tmp_path), read_only=True)
  assert checkpointing.latest_meta(mngr)["plan"] == plan
