"""The model-summary and benchmark tools run and print their figures."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from opformer_jax import cli

import conftest

TINY = ["--config=configs/h36m.py:t27,tiny", "--config.model.depth=1",
        "--config.model.dim=32"]


def run_tool(name, *args):
  run = subprocess.run([sys.executable, f"tools/{name}", *args],
                       cwd=conftest.REPO, capture_output=True, text=True,
                       timeout=600, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert run.returncode == 0, run.stderr[-3000:]
  return run.stdout


def paper_params(c=512, depth=8, frames=243, joints=17):
  """Parameters of the paper config, counted by hand from SPEC.md §1."""
  block = (2 * c + 3 * c * c + 3 * c + c * c + c + 2 * c +
           2 * c * c + 2 * c + 2 * c * c + c)           # MLP ratio 2
  loop = 3 * block + (5 * c * c + c) + (2 * c * 2 + 2)  # + W_O + fusion
  return (3 * c + c) + joints * c + frames * c + depth * loop + 2 * c + (
      3 * c + 3)


def test_model_summary_counts_match_the_model():
  out = run_tool("model_summary.py", "--config=configs/h36m.py")
  assert f"parameters: {paper_params():,}" in out
  assert "forward GFLOPs per clip: 471.66" in out
  out = run_tool("model_summary.py", "--config=configs/h36m.py:t27")
  assert "forward GFLOPs per clip: 50.78" in out


def test_benchmark_prints_every_figure(tmp_path):
  out = run_tool("benchmark.py", *TINY, "--batch=2", "--steps=2",
                 "--flip_tta", f"--json={tmp_path}/b.json")
  for text in ("matmul peak", "train step: trace+lower", "compile",
               "clips/s", "of the median matmul peak",
               "inference with flip TTA:",
               "input pipeline", "x what the train step consumes",
               "peak host RSS",
               f"allocator: GLIBC_TUNABLES={cli.KEEP_PAGES_TUNABLES} ",
               "CPU ", " cores"):
    assert text in out, text
  # The epoch follows the config's T and stride: Human3.6M at T = 27,
  # stride 9 has (1,559,752 - 600 * 27) / 9 + 600 * 10 / 18 clips.
  assert "one epoch of 171839 clips (Human3.6M estimate, stride 9)" in out
  res = json.loads((tmp_path / "b.json").read_text())
  assert res["T"] == 27 and res["batch"] == 2
  assert len(res["train"]["timing"]["times_s"]) == 2
  assert res["epoch"]["clips"] == 171839


def test_benchmark_epoch_counts_the_clips_of_the_train_file(tmp_path):
  conftest.write_toy_split(tmp_path / "train.npz", num_seqs=2, length=40)
  out = run_tool("benchmark.py", *TINY, "--batch=2", "--epoch",
                 "--peak=false",
                 f"--config.data.train_path={tmp_path}/train.npz",
                 f"--json={tmp_path}/e.json")
  # Two sequences of 40 frames, windows of 27 every 9: starts 0, 9 -> 2 each.
  assert f"= 4 clips ({tmp_path}/train.npz)" in out
  ep = json.loads((tmp_path / "e.json").read_text())["epoch"]
  assert ep["steps"] == 2 and ep["clips"] == 4 and ep["seconds"] > 0


def test_benchmark_times_a_budgeted_config():
  # The CPU recipe's cosine schedule needs a run length, which a budget
  # gives only in training; the benchmark must still build its optimizer.
  out = run_tool("benchmark.py", "--config=configs/mocap.py:cpu",
                 "--config.model.depth=1", "--config.model.dim=32",
                 "--batch=2", "--steps=1", "--inference=false",
                 "--pipeline=false", "--peak=false")
  assert "part attention masked_dense" in out and "clips/s" in out


def test_benchmark_compare_torch_prints_both_medians_and_the_ratio():
  pytest.importorskip("torch", reason="PyTorch is not installed "
                      "(pip install -e \".[bench]\")")
  out = run_tool("benchmark.py", *TINY, "--batch=2", "--steps=2",
                 "--compare=torch", "--pipeline=false", "--peak=false")
  for kind in ("train", "inference"):
    line = next(l for l in out.splitlines()
                if l.startswith(f"compare {kind}:"))
    assert "JAX median" in line and "PyTorch median" in line
  assert out.count("JAX / PyTorch throughput: ") == 2
  assert len(re.findall(r"; per round \d+\.\d\dx \(\d+\.\d\d-\d+\.\d\dx\)",
                        out)) == 2
  assert "PyTorch 2." in out


def test_device_check_dry_run_writes_json_and_markdown(tmp_path):
  run = subprocess.run(["bash", "tools/device_check.sh", "--dry-run"],
                       cwd=conftest.REPO, capture_output=True, text=True,
                       timeout=900, env=dict(os.environ, OUT=str(tmp_path),
                                             PYTHON=sys.executable))
  assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
  res = json.loads((tmp_path / "device_check.json").read_text())
  assert res["dry_run"] is True
  assert "install" not in res["steps"]
  assert {k: v["exit"] for k, v in res["steps"].items()} == {
      "environment": 0, "tests": 0, "bench_t243": 0, "bench_t27": 0,
      "epoch_t243": 0}, (tmp_path / "steps.tsv").read_text()
  assert "1 passed" in res["tests_summary"]
  assert res["epoch_t243"]["epoch"]["clips"] == 6
  md = (tmp_path / "device_check.md").read_text()
  assert "DRY RUN" in md and "| bench_t27 | 27 | 2 |" in md


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory):
  """An untrained tiny model saved as the bundled one is."""
  from opformer_jax import config_lib
  from opformer_jax import model as model_lib
  from opformer_jax import pretrained
  config = config_lib.base_config()
  config_lib.set_frames(config, 27)
  config.model.update(depth=1, dim=32, num_heads=2)
  out = tmp_path_factory.mktemp("saved") / "model"
  pretrained.save(model_lib.build_model(config.model, seed=1), config,
                  str(out))
  return out


def _validation_mocap(path, frames=120):
  """A joint npz as `prepare_mocap` reads it, holding one sequence of a
  validation subject (CMU 16): procedural walking, z up, 50 fps."""
  from opformer_jax.data import synthetic
  rng = np.random.default_rng(0)
  walk = synthetic.motion("Walking", synthetic.random_bones(rng), frames,
                          rng, fps=50.0)
  np.savez(path, **{"16_01": walk.astype(np.float32),
                    "__meta__": json.dumps({"fps": 50.0, "up_axis": "z"})})


def _rows(out):
  """{row label: (mean mm, median mm, % of distance)} of measure_trajectory."""
  rows = {}
  for line in out.splitlines():
    m = re.match(r"\s+(\S.*?)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+) %", line)
    if m:
      rows[m.group(1)] = tuple(float(g) for g in m.groups()[1:])
  return rows


def test_measure_trajectory_recovers_the_root_path(tmp_path, saved_tiny):
  _validation_mocap(tmp_path / "walk.npz")
  out = run_tool("measure_trajectory.py", f"--inputs={tmp_path}/walk.npz",
                 "--cameras=random", "--noise_px=0", f"--model={saved_tiny}")
  assert "random cameras, 2D noise 0 px: 4 views" in out
  rows = _rows(out)
  # GT pose of the true size through exact pinhole 2D: only the temporal
  # smoothing of the root track is left, well under 1 % of the distance.
  assert rows["gt, true size"][2] < 0.5, out   # measured 0.05 %
  # The default stature (1.70 m) against this subject's: a scale error of
  # the whole path, larger than with the true size.
  assert rows["gt, default size"][0] > rows["gt, true size"][0], out
  lifted = rows[f"lifted ({saved_tiny}), true size"]
  assert all(np.isfinite(lifted)), out


def test_measure_bvh_reads_back_what_it_wrote(tmp_path, saved_tiny):
  kp = np.random.default_rng(3).uniform(200, 800, (30, 17, 2)).astype("f4")
  np.savez(tmp_path / "clip.npz", walk=kp, image_size=np.array([1000, 1000]))
  out = run_tool("measure_bvh.py", f"--input={tmp_path}/clip.npz",
                 f"--model={saved_tiny}", f"--output={tmp_path}/out")
  line = next(l for l in out.splitlines() if l.startswith("all "))
  back, rest = (float(x) for x in re.search(
      r"read-back +([\d.]+) mm.*median-length joints +([\d.]+)",
      line).groups())
  assert (tmp_path / "out" / "walk.bvh").exists()
  # The file's bones have one length each: what it reproduces is the
  # median-length skeleton, much closer than the lifted joints themselves.
  assert rest < back, line


def _tiny_mocap_dir(path):
  """The three joint files `train_default_model` reads, with one short
  procedural sequence each (CMU 16 is a validation subject)."""
  from opformer_jax.data import synthetic
  path.mkdir()
  for i, (file, key) in enumerate((("cmu_gait.npz", "16_01"),
                                   ("cmu_actions.npz", "02_01"),
                                   ("cmu_subject131.npz", "131_01"))):
    rng = np.random.default_rng(i)
    walk = synthetic.motion("Walking", synthetic.random_bones(rng), 150, rng,
                            fps=50.0)
    np.savez(path / file, **{key: walk.astype(np.float32), "__meta__":
                             json.dumps({"fps": 50.0, "up_axis": "z"})})
  return path


def test_train_default_model_scores_exports_and_compares(tmp_path,
                                                         saved_tiny):
  mocap = _tiny_mocap_dir(tmp_path / "mocap")
  kp = np.random.default_rng(3).uniform(200, 800, (40, 17, 2)).astype("f4")
  np.savez(tmp_path / "clip.npz", walk=kp, image_size=np.array([1000, 1000]))
  args = [f"--mocap_dir={mocap}", f"--workdir={tmp_path}/run", "--views=1",
          "--config=configs/default_model.py:frames=9,budget=3u",
          "--config.model.depth=1", "--config.model.dim=32",
          "--config.train.budget_evals=1", f"--baseline={saved_tiny}",
          f"--wild={tmp_path}/clip.npz", f"--export={tmp_path}/export"]
  run_tool("train_default_model.py", *args)
  res = json.loads((tmp_path / "run" / "default_model_results.json")
                   .read_text())
  assert res["step"] == 3
  for res_model in (res["new"], res["baselines"]["previous"]):
    for split in ("test_noisy", "test_noisy_coco17", "test_noisy_halpe26",
                  "test_noisy_blazepose"):
      assert res_model[split]["num_frames"] > 0
    assert res_model["wild"]["clip.npz"]["frames"] == 40
  card = (tmp_path / "export" / "MODEL_CARD.md").read_text()
  assert "T = 9" in card and " 3 optimizer updates" in card
  for split in ("clean", "noisy"):
    for who in ("this model", "previous"):
      assert re.search(rf"\| {split} \| {who} \| [\d.]+ \|", card), card
  assert re.search(r"\| clip.npz \| previous \| 40 \|", card), card
  for split in ("noisy_coco17", "noisy_halpe26", "noisy_blazepose"):
    assert re.search(rf"\| {split} \| previous \| [\d.]+ \|", card), card
  from opformer_jax import pretrained
  model, config = pretrained.load(str(tmp_path / "export"))
  assert config.data.num_frames == 9 and config.model.depth == 1
  # Run again: the finished run is not trained again, its time is kept.
  timings = (tmp_path / "run" / "timings.json").read_text()
  run_tool("train_default_model.py", *args)
  assert (tmp_path / "run" / "timings.json").read_text() == timings


def test_train_default_model_prepares_data_without_a_workdir(tmp_path):
  mocap = _tiny_mocap_dir(tmp_path / "mocap")
  run_tool("train_default_model.py", f"--mocap_dir={mocap}", "--views=1",
           f"--data_dir={tmp_path}/data", "--prepare_only")
  names = {p.name for p in (tmp_path / "data").iterdir()}
  assert {"train.npz", "test_noisy.npz", "generator.json"} <= names, names
  # The data's own time lies beside it, for the card of a later run on it.
  timings = json.loads((tmp_path / "data" / "timings.json").read_text())
  assert timings["data_s"] > 0
  assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "mocap"]


def test_measure_conventions_scores_each_placement(tmp_path, saved_tiny):
  mocap = _tiny_mocap_dir(tmp_path / "mocap")
  out = run_tool("measure_conventions.py", f"--mocap_dir={mocap}",
                 f"--model=tiny={saved_tiny}", "--hip_up=50",
                 f"--json={tmp_path}/c.json")
  res = json.loads((tmp_path / "c.json").read_text())["tiny"]
  assert list(res) == ["test_noisy", "test_noisy_coco17",
                       "test_noisy_halpe26", "test_noisy_blazepose",
                       "test_noisy_hips_up_50mm"]
  assert len({r["num_frames"] for r in res.values()}) == 1
  # Same views and noise, only the placement differs: other scores.
  assert len({round(r["mpjpe_action_avg"], 3) for r in res.values()}) == 5
  cost = (res["test_noisy_blazepose"]["mpjpe_action_avg"]
          - res["test_noisy"]["mpjpe_action_avg"])
  assert re.search(r"^\| joint_centres \| [\d.]+ \| \+0\.0 \|$", out, re.M), out
  assert re.search(rf"^\| blazepose \| [\d.]+ \| {re.escape(f'{cost:+.1f}')} "
                   r"\|$", out, re.M), out


def test_measure_wild_prints_and_writes_the_figures(tmp_path, saved_tiny):
  kp = np.random.default_rng(4).uniform(200, 800, (30, 17, 2)).astype("f4")
  np.savez(tmp_path / "a.npz", walk=kp, image_size=np.array([1000, 1000]))
  np.savez(tmp_path / "b.npz", run=kp[:20], image_size=np.array([1000, 1000]))
  out = run_tool("measure_wild.py", f"--input={tmp_path}/a.npz,{tmp_path}/b.npz",
                 f"--model={saved_tiny}", f"--json={tmp_path}/w.json")
  res = json.loads((tmp_path / "w.json").read_text())
  assert [res[k]["frames"] for k in ("a.npz", "b.npz", "all")] == [30, 20, 50]
  # 'all' weighs each file by its frames and bones (same count per frame).
  np.testing.assert_allclose(res["all"]["bones"], (
      30 * res["a.npz"]["bones"] + 20 * res["b.npz"]["bones"]) / 50,
                             rtol=1e-6)
  assert re.search(r"^all +50 ", out, re.M), out
