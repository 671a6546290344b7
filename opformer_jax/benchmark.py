"""Speed and memory measurements behind `tools/benchmark.py`.

Every figure is measured in the same process on the current default device:
compile time of the jitted train step (lower + compile, ahead of time),
steady-state step and inference times (median / min / max over repeats,
each blocked until the device finishes), clips/s and frames/s, achieved
GFLOP/s from the model's own FLOP count (PyTorch's convention: matmuls
only, train step = 3 x forward) next to a dense matmul peak measured in the
same run, peak memory, and the input pipeline's rate.
"""

import dataclasses
import resource
import statistics
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from opformer_jax import model as model_lib
from opformer_jax import optimizer as optimizer_lib
from opformer_jax import train


@dataclasses.dataclass
class Timing:
  """Seconds per call over repeats."""
  times: list

  @property
  def median(self):
    return statistics.median(self.times)

  @property
  def min(self):
    return min(self.times)

  @property
  def max(self):
    return max(self.times)


def time_calls(fn, repeats: int, warmup: int = 1) -> Timing:
  """Times `fn()` (which must block until its work is done)."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return Timing(times)


def matmul_peak(n: int | None = None, dtype=None, repeats: int = 10) -> dict:
  """Dense (n x n) @ (n x n) GFLOP/s on the default device.

  Defaults: float32 n = 2048 on CPU (the perf-anchors protocol), bfloat16
  n = 8192 on accelerators.
  """
  gpu = jax.default_backend() != "cpu"
  n = n or (8192 if gpu else 2048)
  dtype = dtype or (jnp.bfloat16 if gpu else jnp.float32)
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  b = jax.random.normal(jax.random.key(1), (n, n), dtype)
  mm = jax.jit(lambda a, b: a @ b)
  t = time_calls(lambda: mm(a, b).block_until_ready(), repeats, warmup=3)
  flops = 2 * n ** 3
  return {"n": n, "dtype": jnp.dtype(dtype).name,
          "gflops_median": flops / t.median / 1e9,
          "gflops_best": flops / t.min / 1e9}


def _batch(b, t, j=17, seed=0):
  rng = np.random.default_rng(seed)
  return {"kp2d": jnp.asarray(rng.normal(size=(b, t, j, 3)), jnp.float32),
          "kp3d": jnp.asarray(rng.normal(size=(b, t, j, 3)), jnp.float32),
          "scale_mm": jnp.full((b, t), 500.0, jnp.float32)}


def train_step(config: ml_collections.ConfigDict, batch_size: int,
               steps: int) -> dict:
  """Compile and steady-state time of one micro-step (fwd + bwd + update)."""
  model = model_lib.build_model(config.model, config.seed)
  opt = nnx.Optimizer(model, optimizer_lib.make(config, 1000),
                      wrt=nnx.Param)
  graphdef, state = nnx.split((model, opt))
  t = config.data.num_frames
  batch = _batch(batch_size, t)
  step_fn = jax.jit(train.make_train_step(graphdef, config),
                    donate_argnums=0)
  t0 = time.perf_counter()
  lowered = step_fn.lower(state, batch, jnp.int32(0))
  t1 = time.perf_counter()
  compiled = lowered.compile()
  t2 = time.perf_counter()
  holder = {"state": state, "i": 0}

  def run():
    holder["state"], meas = compiled(holder["state"], batch,
                                     jnp.int32(holder["i"]))
    holder["i"] += 1
    jax.block_until_ready(meas["loss"])
  timing = time_calls(run, steps, warmup=2)
  flops = 3 * model_lib.flops_per_clip(config.model, t)["total"] * batch_size
  return {"trace_lower_s": t1 - t0, "compile_s": t2 - t1, "timing": timing,
          "gflop_per_step": flops / 1e9,
          "gflops": flops / timing.median / 1e9,
          "clips_per_s": batch_size / timing.median,
          "frames_per_s": batch_size * t / timing.median}


def inference(config: ml_collections.ConfigDict, batch_size: int,
              repeats: int) -> dict:
  """Forward-only (evaluation mode, no flip) time per batch."""
  model = model_lib.build_model(config.model, config.seed)
  graphdef, state = nnx.split(model)
  t = config.data.num_frames
  x = _batch(batch_size, t)["kp2d"]
  fwd = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
  t0 = time.perf_counter()
  compiled = fwd.lower(state, x).compile()
  compile_s = time.perf_counter() - t0
  timing = time_calls(lambda: compiled(state, x).block_until_ready(),
                      repeats, warmup=2)
  flops = model_lib.flops_per_clip(config.model, t)["total"] * batch_size
  return {"compile_s": compile_s, "timing": timing,
          "gflops": flops / timing.median / 1e9,
          "clips_per_s": batch_size / timing.median,
          "frames_per_s": batch_size * t / timing.median}


def peak_memory() -> dict:
  """Peak host RSS of this process and, on accelerators, device memory."""
  out = {"host_peak_rss_mb": resource.getrusage(
      resource.RUSAGE_SELF).ru_maxrss / 1024}
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    out["device_peak_mb"] = stats["peak_bytes_in_use"] / 2 ** 20
    out["device_limit_mb"] = stats.get("bytes_limit", 0) / 2 ** 20
  return out
