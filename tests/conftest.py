"""Shared test set-up: JAX guard rails, compilation cache, real-data paths."""

import os
import pathlib

import pytest

# One CPU device in-process; tests of data parallelism start subprocesses
# with JAX_NUM_CPU_DEVICES=8.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.environ.get(
    "OPFORMER_JAX_CACHE",
    str(pathlib.Path.home() / ".cache" / "opformer_jax" / "jax")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

REPO = pathlib.Path(__file__).resolve().parents[1]


def shared_data_dir() -> pathlib.Path | None:
  """The real-data folder: $OPFORMER_SHARED_DATA or ../shared/data."""
  path = pathlib.Path(os.environ.get("OPFORMER_SHARED_DATA",
                                     REPO.parent / "shared" / "data"))
  return path if path.is_dir() else None


@pytest.fixture
def shared_data() -> pathlib.Path:
  """Skips the test, with the reason, where the real data is absent."""
  path = shared_data_dir()
  if path is None:
    pytest.skip("real data not found: set OPFORMER_SHARED_DATA or place it "
                "at ../shared/data beside the repository")
  return path


def write_toy_split(path, num_seqs=4, length=40, seed=0, input_2d="detected",
                    actions=("Walking", "Eating", "Sitting")):
  """A small random-pose split in the project schema (random, not motion).

  Poses are random points 5 m in front of a 1000x1000 pinhole camera, with
  consistent kp2d / kp3d / kp3d_image / factor, so every label space and
  protocol runs; the numbers mean nothing.
  """
  import numpy as np
  from opformer_jax.data import dataset
  rng = np.random.default_rng(seed)
  n = num_seqs * length
  kp3d = (rng.normal(size=(n, 17, 3)) * 200 + [0, 0, 5000]).astype("f4")
  f, c = 1145.0, 500.0
  uv = kp3d[..., :2] / kp3d[..., 2:] * f + c
  factor = kp3d[:, 0, 2] / f
  z = (kp3d[..., 2] - kp3d[:, :1, 2]) / factor[:, None]
  dataset.save(str(path), dict(
      kp2d=uv, conf=rng.uniform(0.5, 1, (n, 17)), kp3d=kp3d,
      kp3d_image=np.concatenate([uv, z[..., None]], -1), factor=factor,
      seq_name=[f"seq{i}" for i in range(num_seqs)],
      seq_offsets=np.arange(num_seqs + 1) * length,
      seq_subject=["S1"] * num_seqs,
      seq_action=[actions[i % len(actions)] for i in range(num_seqs)],
      seq_camera=["55011271"] * num_seqs,
      seq_image_size=[[1000, 1000]] * num_seqs, seq_fps=[50] * num_seqs,
      layout="h36m17", input_2d=input_2d, source="tests: random poses"))
  return str(path)
