r"""Benchmarks a config's train step, inference and input pipeline.

  python tools/benchmark.py --config=configs/h36m.py:t27 --batch=16 --steps=5
  python tools/benchmark.py --config=configs/h36m.py --batch=2 --steps=3
  python tools/benchmark.py --config=configs/h36m.py --batch=16 \
      --config.model.dtype=bfloat16 --config.model.attention_impl=cudnn  # GPU

Prints, for the current default device: compile time, median / min / max
train-step and inference time, clips/s and frames/s, achieved GFLOP/s (the
model's own count: matmuls only, train step = 3 x forward, as PyTorch's
flop counter in research/perf-anchors.md) as a fraction of a dense matmul
peak measured in the same run, peak memory, and the input pipeline's clips/s
next to what the train step consumes. `--epoch_clips` (default: Human3.6M's
17,748 clips at T = 243) turns the step time into an epoch time.
"""

import os

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.",
                                          lock_config=True)
_BATCH = flags.DEFINE_integer("batch", 16, "Micro-batch size (clips).")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed train steps.")
_INFER = flags.DEFINE_bool("inference", True, "Also time inference.")
_PIPELINE = flags.DEFINE_bool(
    "pipeline", True, "Also time the input pipeline (config.data.train_path "
    "or the built-in synthetic dataset).")
_EPOCH_CLIPS = flags.DEFINE_integer("epoch_clips", 17748,
                                    "Clips per epoch for the epoch estimate.")


def _fmt_timing(t):
  return (f"median {t.median * 1e3:.1f} ms (min {t.min * 1e3:.1f}, "
          f"max {t.max * 1e3:.1f}, n={len(t.times)})")


def main(argv):
  del argv
  import jax
  from opformer_jax import benchmark
  from opformer_jax.data import input_pipeline
  from opformer_jax import model as model_lib
  from opformer_jax.data import sources

  config = _CONFIG.value
  m, t, b = config.model, config.data.num_frames, _BATCH.value
  dev = jax.devices()[0]
  print(f"allocator: GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES')} "
        f"LD_PRELOAD={os.environ.get('LD_PRELOAD')}")
  print(f"device: {dev.device_kind} ({jax.default_backend()}), "
        f"{jax.device_count()} device(s), jax {jax.__version__}")
  print(f"model: depth {m.depth}, dim {m.dim}, heads {m.num_heads}, "
        f"variant {m.variant}, dtype {m.dtype}, remat {m.remat}, attention "
        f"{m.attention_impl}; T={t}, batch {b}")
  fl = model_lib.flops_per_clip(m, t)["total"]
  print(f"FLOPs (model count): {fl / 1e9:.2f} GFLOP forward per clip, "
        f"{3 * fl * b / 1e9:.1f} GFLOP per train step")

  peak = benchmark.matmul_peak()
  print(f"matmul peak ({peak['dtype']} {peak['n']}^3): "
        f"{peak['gflops_median']:.1f} GFLOP/s median, "
        f"{peak['gflops_best']:.1f} best")

  tr = benchmark.train_step(config, b, _STEPS.value)
  print(f"train step: trace+lower {tr['trace_lower_s']:.1f} s, compile "
        f"{tr['compile_s']:.1f} s; {_fmt_timing(tr['timing'])}")
  print(f"  {tr['clips_per_s']:.2f} clips/s, {tr['frames_per_s']:.0f} "
        f"frames/s, {tr['gflops']:.1f} GFLOP/s = "
        f"{tr['gflops'] / peak['gflops_median']:.2f} of the median matmul "
        f"peak ({tr['gflops'] / peak['gflops_best']:.2f} of best)")
  epoch_s = _EPOCH_CLIPS.value / tr["clips_per_s"]
  print(f"  one epoch of {_EPOCH_CLIPS.value} clips: {epoch_s / 60:.1f} min "
        f"({epoch_s / 3600:.2f} h)")

  if _INFER.value:
    inf = benchmark.inference(config, b, max(3, _STEPS.value))
    print(f"inference: compile {inf['compile_s']:.1f} s; "
          f"{_fmt_timing(inf['timing'])}")
    print(f"  {inf['clips_per_s']:.2f} clips/s, {inf['frames_per_s']:.0f} "
          f"frames/s, {inf['gflops']:.1f} GFLOP/s = "
          f"{inf['gflops'] / peak['gflops_median']:.2f} of the matmul peak")

  if _PIPELINE.value:
    cfg = config if config.data.train_path else _with_synthetic(config)
    cfg = sources.resolve(cfg, splits=("train",))
    with cfg.unlocked():
      cfg.train.batch_size = b
    rate = input_pipeline.measure_throughput(cfg, num_batches=20)
    print(f"input pipeline ({cfg.data.num_workers} workers, "
          f"{cfg.data.train_path}): {rate:.0f} clips/s = "
          f"{rate / tr['clips_per_s']:.0f}x what the train step consumes")

  mem = benchmark.peak_memory()
  line = f"peak host RSS {mem['host_peak_rss_mb']:.0f} MB"
  if "device_peak_mb" in mem:
    line += (f"; device peak {mem['device_peak_mb']:.0f} MB of "
             f"{mem['device_limit_mb']:.0f} MB")
  print(line)


def _with_synthetic(config):
  import ml_collections
  cfg = ml_collections.ConfigDict(config.to_dict())
  cfg.data.name = "synthetic"
  return cfg


if __name__ == "__main__":
  from opformer_jax import cli
  cli.reexec_with_allocator()
  flags.mark_flag_as_required("config")
  app.run(main)
