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


# Human3.6M training split (S1, S5, S6, S7, S8; PROTOCOL.md §2.1): frames at
# 50 fps, and videos = 5 subjects x 30 takes x 4 cameras.
H36M_TRAIN_FRAMES = 1_559_752
H36M_TRAIN_VIDEOS = 600


def h36m_train_clips(num_frames: int, stride: int) -> int:
  """Estimated training clips per Human3.6M epoch at (T, stride).

  Each video of n frames gives floor((n - T) / stride) + 1 clips (tails
  dropped, as MotionBERT's `split_clips`); the floor loses on average
  (stride - 1) / (2 stride) of a clip per video, so over V videos and N
  frames: (N - V T) / stride + V (stride + 1) / (2 stride). At T = 243,
  stride 81 this gives 17,760 (MotionBERT's loader logs 17,748); at T = 27,
  stride 9, 171,839.
  """
  n, v = H36M_TRAIN_FRAMES, H36M_TRAIN_VIDEOS
  return round((n - v * num_frames) / stride + v * (stride + 1) / (2 * stride))


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
  return alternate({"fn": fn}, repeats, warmup)["fn"]


def alternate(fns: dict, repeats: int, warmup: int = 1) -> dict:
  """Times several `fn()`s in one process, interleaved call by call.

  On a shared machine the load drifts over seconds; interleaving (and
  reversing the order every other round) exposes every function to the
  same drift, so their ratio is meaningful even when each time is not.

  Returns:
    name -> Timing.
  """
  names = list(fns)
  for _ in range(warmup):
    for name in names:
      fns[name]()
  times = {name: [] for name in names}
  for r in range(repeats):
    for name in (names if r % 2 == 0 else names[::-1]):
      t0 = time.perf_counter()
      fns[name]()
      times[name].append(time.perf_counter() - t0)
  return {name: Timing(t) for name, t in times.items()}


def paired_ratio(num: Timing, den: Timing) -> dict:
  """Ratios num_i / den_i of the calls `alternate` made side by side.

  Each round times the two calls back to back, so a round's ratio sees one
  load level; the median over rounds resists a shared machine's drift
  better than the ratio of the two medians.

  Returns:
    dict with 'median', 'min', 'max' and 'ratios' (one per round).
  """
  if len(num.times) != len(den.times):
    raise ValueError(f"paired_ratio: {len(num.times)} vs {len(den.times)} "
                     "rounds; expected the Timings of one `alternate` call")
  ratios = [a / b for a, b in zip(num.times, den.times)]
  return {"median": statistics.median(ratios), "min": min(ratios),
          "max": max(ratios), "ratios": ratios}


# Dense bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s
# (without sparsity), by a substring of `jax.Device.device_kind`.
NOMINAL_BF16_TFLOPS = (("H100 PCIe", 756), ("H100 NVL", 835), ("H100", 989),
                       ("H200", 989), ("A100", 312), ("L4", 121))


def nominal_peak_gflops(device_kind: str) -> float | None:
  """The data-sheet dense bf16 GFLOP/s of a known GPU, else None."""
  for name, tflops in NOMINAL_BF16_TFLOPS:
    if name in device_kind:
      return tflops * 1e3
  return None


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


def random_batch(b, t, j=17, seed=0) -> dict:
  """A (B, T, J, 3) float32 numpy batch of the train step's fields."""
  rng = np.random.default_rng(seed)
  return {"kp2d": rng.normal(size=(b, t, j, 3)).astype(np.float32),
          "kp3d": rng.normal(size=(b, t, j, 3)).astype(np.float32),
          "scale_mm": np.full((b, t), 500.0, np.float32)}


def rates(timing: Timing, gflop: float, batch_size: int, t: int) -> dict:
  """GFLOP/s, clips/s and frames/s at the median time."""
  return {"timing": timing, "gflop": gflop,
          "gflops": gflop / timing.median,
          "clips_per_s": batch_size / timing.median,
          "frames_per_s": batch_size * t / timing.median}


def train_runner(config: ml_collections.ConfigDict, batch: dict,
                 model=None, compiler_options=None):
  """The jitted train micro-step (fwd + bwd + update), compiled ahead.

  Args:
    config: the experiment config.
    batch: numpy arrays from `random_batch`.
    model: the OPFormer to train (default: built from `config`); its
      arrays are donated to the step, so it is unusable afterwards.
    compiler_options: XLA options for this executable only (e.g.
      {'xla_cpu_enable_fast_math': True}), so variants can alternate in
      one process.

  Returns:
    (run, info): `run(batch=None, block=True)` takes one step (on `batch`,
    host arrays copied to the device, or on the fixed one) and waits for
    it when `block`; info has 'trace_lower_s' and 'compile_s'.
  """
  model = model or model_lib.build_model(config.model, config.seed)
  # A nominal run length: a budgeted config's cosine / linear schedule needs
  # one, and the step's cost does not depend on it.
  opt = nnx.Optimizer(model, optimizer_lib.make(config, 1000,
                                                total_updates=1000),
                      wrt=nnx.Param)
  graphdef, state = nnx.split((model, opt))
  batch = jax.tree.map(jnp.asarray, batch)
  step_fn = jax.jit(train.make_train_step(graphdef, config),
                    donate_argnums=0)
  t0 = time.perf_counter()
  lowered = step_fn.lower(state, batch, jnp.int32(0))
  t1 = time.perf_counter()
  compiled = lowered.compile(compiler_options)
  t2 = time.perf_counter()
  holder = {"state": state, "i": 0}

  def run(new_batch=None, block=True):
    b = batch if new_batch is None else jax.device_put(new_batch)
    holder["state"], meas = compiled(holder["state"], b,
                                     jnp.int32(holder["i"]))
    holder["i"] += 1
    if block:
      jax.block_until_ready(meas["loss"])
    return meas
  return run, {"trace_lower_s": t1 - t0, "compile_s": t2 - t1}


def epoch(config: ml_collections.ConfigDict, batch_size: int,
          num_clips: int, distinct_batches: int = 4) -> dict:
  """Wall time of one training epoch of `num_clips` random clips.

  Full batches only (`num_clips // batch_size` steps, as the input
  pipeline); each step copies a host batch to the device (cycling over
  `distinct_batches` pre-made ones, so data generation costs nothing) and
  steps are dispatched without waiting, as in training; the clock stops
  when the last step's loss is ready. Compilation is not counted.
  """
  t = config.data.num_frames
  batches = [random_batch(batch_size, t, seed=i)
             for i in range(distinct_batches)]
  run, info = train_runner(config, batches[0])
  run()  # warm-up: first-call allocations
  steps = num_clips // batch_size
  t0 = time.perf_counter()
  for i in range(steps):
    meas = run(batches[i % distinct_batches], block=False)
  loss = float(meas["loss"]) if steps else float("nan")
  seconds = time.perf_counter() - t0
  return {**info, "steps": steps, "clips": steps * batch_size,
          "seconds": seconds, "clips_per_s": steps * batch_size / seconds,
          "final_loss": loss}


def inference_runner(config: ml_collections.ConfigDict, kp2d, model=None,
                     compiler_options=None, flip_tta: bool = False):
  """The jitted forward (evaluation mode), compiled ahead; with `flip_tta`
  the flip test-time augmentation `infer` and `evaluate` use (two
  forwards).

  Returns:
    (run, info) as `train_runner`; info has 'compile_s'.
  """
  model = model or model_lib.build_model(config.model, config.seed)
  graphdef, state = nnx.split(model)
  x = jnp.asarray(kp2d)
  layout = config.model.layout

  def forward(s, x):
    apply = nnx.merge(graphdef, s)
    return model_lib.flip_tta(apply, x, layout) if flip_tta else apply(x)
  fwd = jax.jit(forward)
  t0 = time.perf_counter()
  compiled = fwd.lower(state, x).compile(compiler_options)
  compile_s = time.perf_counter() - t0
  return (lambda: compiled(state, x).block_until_ready(),
          {"compile_s": compile_s})


def train_step(config: ml_collections.ConfigDict, batch_size: int,
               steps: int) -> dict:
  """Compile and steady-state time of one micro-step (fwd + bwd + update)."""
  t = config.data.num_frames
  run, info = train_runner(config, random_batch(batch_size, t))
  flops = 3 * model_lib.flops_per_clip(config.model, t)["total"] * batch_size
  return {**info, "gflop_per_step": flops / 1e9,
          **rates(time_calls(run, steps, warmup=2), flops / 1e9,
                  batch_size, t)}


def inference(config: ml_collections.ConfigDict, batch_size: int,
              repeats: int, flip_tta: bool = False) -> dict:
  """Forward-only (evaluation mode) time per batch, with or without flip
  TTA; frames/s counts each input frame once."""
  t = config.data.num_frames
  run, info = inference_runner(config, random_batch(batch_size, t)["kp2d"],
                               flip_tta=flip_tta)
  flops = model_lib.flops_per_clip(config.model, t)["total"] * batch_size
  flops *= 2 if flip_tta else 1
  return {**info, **rates(time_calls(run, repeats, warmup=2), flops / 1e9,
                          batch_size, t)}


def peak_memory() -> dict:
  """Peak host RSS of this process and, on accelerators, device memory."""
  out = {"host_peak_rss_mb": resource.getrusage(
      resource.RUSAGE_SELF).ru_maxrss / 1024}
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    out["device_peak_mb"] = stats["peak_bytes_in_use"] / 2 ** 20
    out["device_limit_mb"] = stats.get("bytes_limit", 0) / 2 ** 20
  return out
