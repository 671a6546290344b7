"""The model-summary and benchmark tools run and print their figures."""

import os
import subprocess
import sys

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


def test_benchmark_prints_every_figure():
  out = run_tool("benchmark.py", *TINY, "--batch=2", "--steps=2")
  for text in ("matmul peak", "train step: trace+lower", "compile",
               "clips/s", "of the median matmul peak", "inference:",
               "input pipeline", "x what the train step consumes",
               "peak host RSS", "GLIBC_TUNABLES=glibc.malloc.hugetlb=1"):
    assert text in out, text
