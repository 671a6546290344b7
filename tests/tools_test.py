"""The model-summary and benchmark tools run and print their figures."""

import json
import os
import subprocess
import sys

import pytest

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
                 f"--json={tmp_path}/b.json")
  for text in ("matmul peak", "train step: trace+lower", "compile",
               "clips/s", "of the median matmul peak", "inference:",
               "input pipeline", "x what the train step consumes",
               "peak host RSS", "GLIBC_TUNABLES=glibc.malloc.hugetlb=1",
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
