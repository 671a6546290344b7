"""Shared test set-up: JAX guard rails, compilation cache, real-data paths."""

import os
import pathlib

import pytest

# Eight CPU devices let data-parallel tests run without a GPU; the rest of the
# suite uses device 0 only. Must happen before JAX initialises its backend.
os.environ.setdefault("JAX_NUM_CPU_DEVICES", "8")
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
