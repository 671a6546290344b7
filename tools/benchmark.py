r"""Benchmarks a config's train step, inference and input pipeline.

  python tools/benchmark.py --config=configs/h36m.py:t27 --batch=16 --steps=5
  python tools/benchmark.py --config=configs/h36m.py --batch=2 --steps=3
  python tools/benchmark.py --config=configs/h36m.py:t27 --batch=16 \
      --compare=torch            # needs pip install -e ".[bench]"
  python tools/benchmark.py --config=configs/h36m.py --batch=32 \
      --config.model.dtype=bfloat16 --config.model.attention_impl=cudnn  # GPU

Prints, for the current default device: compile time, median / min / max
train-step and inference time, clips/s and frames/s, achieved GFLOP/s (the
model's own count: matmuls only, train step = 3 x forward, as PyTorch's
flop counter in research/perf-anchors.md) as a fraction of a dense matmul
peak measured in the same run, peak memory, the input pipeline's clips/s
next to what the train step consumes, and the time of one training epoch:
the clips of `config.data.train_path` at the config's T and train stride
when that file exists, otherwise Human3.6M's (estimated from its 1,559,752
training frames: 171,839 clips at T = 27, 17,760 at T = 243).

`--compare=torch` (instead of the timings above) builds the PyTorch reference
(benchmarks/torch_opformer.py) with the JAX model's weights and times both
train steps, then both forwards, on the same batch in this one process,
alternating call by call, and prints both medians and their ratio. On a
busy machine use a large model: PyTorch's OpenMP threads wait at a barrier
after every op for a thread the OS has descheduled, which slows a tiny
model 20-fold (JAX much less), and the ratio then says little.
`--json=PATH` also writes every figure as JSON.
"""

import json
import os
import sys

from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.",
                                          lock_config=True)
_BATCH = flags.DEFINE_integer("batch", 16, "Micro-batch size (clips).")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed train steps.")
_INFER = flags.DEFINE_bool("inference", True, "Also time inference.")
_FLIP = flags.DEFINE_bool("flip_tta", False, "Time inference with flip "
                          "test-time augmentation (as infer and evaluate run).")
_PIPELINE = flags.DEFINE_bool(
    "pipeline", True, "Also time the input pipeline (config.data.train_path "
    "or the built-in synthetic dataset).")
_PEAK = flags.DEFINE_bool("peak", True, "Measure the dense matmul peak.")
_EPOCH_CLIPS = flags.DEFINE_integer(
    "epoch_clips", None, "Clips per epoch for the epoch time (default: "
    "config.data.train_path's clips, else Human3.6M's at the config's T).")
_COMPARE = flags.DEFINE_enum(
    "compare", "", ["", "torch"], "Time JAX against the PyTorch reference, "
    "alternating, instead of the single-model figures.")
_EPOCH = flags.DEFINE_bool(
    "epoch", False, "Instead of the step benchmark, time one full training "
    "epoch of --epoch_clips random clips (batch --batch, host->device "
    "copies included, compilation not).")
_JSON = flags.DEFINE_string("json", None, "Also write the figures here.")


def cpu_model() -> str:
  """The CPU's model name and the cores this process may use."""
  from opformer_jax import cli  # pylint: disable=g-import-not-at-top
  return f"{cli.cpu_name()}, {len(os.sched_getaffinity(0))} cores"


def _of_peaks(res, peak, out):
  """' = x of the median matmul peak (y of best)[, z of nominal]'."""
  text = ""
  if peak:
    text += (f" = {res['gflops'] / peak['gflops_median']:.2f} of the median "
             f"matmul peak ({res['gflops'] / peak['gflops_best']:.2f} of best)")
  if out.get("nominal_peak_gflops") and out["backend"] == "gpu":
    text += (f", {res['gflops'] / out['nominal_peak_gflops']:.2f} of the "
             "nominal bf16 peak")
  return text


def _fmt_timing(t):
  return (f"median {t.median * 1e3:.1f} ms (min {t.min * 1e3:.1f}, "
          f"max {t.max * 1e3:.1f}, n={len(t.times)})")


def epoch_clips(config) -> tuple[int, str]:
  """(clips per training epoch, where the number comes from)."""
  from opformer_jax import benchmark
  from opformer_jax.data import input_pipeline
  d = config.data
  if _EPOCH_CLIPS.value:
    return _EPOCH_CLIPS.value, "--epoch_clips"
  if d.train_path and os.path.exists(d.train_path):
    n = len(input_pipeline.ClipSource(d.train_path, d.num_frames,
                                      d.train_stride))
    return n, d.train_path
  return (benchmark.h36m_train_clips(d.num_frames, d.train_stride),
          f"Human3.6M estimate, stride {d.train_stride}")


def _header(config, b, out):
  import jax
  from opformer_jax import benchmark
  from opformer_jax import model as model_lib
  m, t = config.model, config.data.num_frames
  dev = jax.devices()[0]
  print(f"allocator: GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES')} "
        f"LD_PRELOAD={os.environ.get('LD_PRELOAD')}")
  print(f"device: {dev.device_kind} ({jax.default_backend()}), "
        f"{jax.device_count()} device(s), jax {jax.__version__}; "
        f"CPU {cpu_model()}")
  print(f"model: depth {m.depth}, dim {m.dim}, heads {m.num_heads}, "
        f"variant {m.variant}, dtype {m.dtype}, remat {m.remat}, attention "
        f"{m.attention_impl}, part attention "
        f"{m.get('part_attention', 'grouped')}, loops "
        f"{m.get('loop_impl', 'scan')} (scan unroll "
        f"{m.get('scan_unroll', 1)}); T={t}, batch {b}")
  fl = model_lib.flops_per_clip(m, t)["total"]
  print(f"FLOPs (model count): {fl / 1e9:.2f} GFLOP forward per clip, "
        f"{3 * fl * b / 1e9:.1f} GFLOP per train step")
  nominal = benchmark.nominal_peak_gflops(dev.device_kind)
  if nominal and jax.default_backend() == "gpu":
    print(f"nominal dense bf16 peak of a {dev.device_kind}: "
          f"{nominal / 1e3:.0f} TFLOP/s")
  out.update(device=dev.device_kind, backend=jax.default_backend(),
             cpu=cpu_model(), jax=jax.__version__, T=t, batch=b,
             model=m.to_dict(), gflop_forward_per_clip=fl / 1e9,
             nominal_peak_gflops=nominal)


def _train_and_inference(config, b, peak, out):
  from opformer_jax import benchmark
  tr = benchmark.train_step(config, b, _STEPS.value)
  print(f"train step: trace+lower {tr['trace_lower_s']:.1f} s, compile "
        f"{tr['compile_s']:.1f} s; {_fmt_timing(tr['timing'])}")
  print(f"  {tr['clips_per_s']:.2f} clips/s, {tr['frames_per_s']:.0f} "
        f"frames/s, {tr['gflops']:.1f} GFLOP/s{_of_peaks(tr, peak, out)}")
  clips, source = epoch_clips(config)
  epoch_s = clips / tr["clips_per_s"]
  print(f"  one epoch of {clips} clips ({source}): {epoch_s / 60:.1f} min "
        f"({epoch_s / 3600:.2f} h)")
  out["train"] = _jsonable(tr)
  out["epoch"] = {"clips": clips, "source": source, "seconds": epoch_s}
  if _INFER.value:
    inf = benchmark.inference(config, b, max(3, _STEPS.value), _FLIP.value)
    flip = " with flip TTA" if _FLIP.value else ""
    print(f"inference{flip}: compile {inf['compile_s']:.1f} s; "
          f"{_fmt_timing(inf['timing'])}")
    print(f"  {inf['clips_per_s']:.2f} clips/s, {inf['frames_per_s']:.0f} "
          f"frames/s, {inf['gflops']:.1f} GFLOP/s{_of_peaks(inf, peak, out)}")
    out["inference"] = _jsonable(inf)
  return tr


def _epoch(config, b, peak, out):
  from opformer_jax import benchmark
  clips, source = epoch_clips(config)
  ep = benchmark.epoch(config, b, clips)
  gflops = (3 * out["gflop_forward_per_clip"] * ep["clips"] /
            ep["seconds"])
  print(f"epoch: {ep['steps']} steps of {b} = {ep['clips']} clips "
        f"({source}) in {ep['seconds']:.1f} s = {ep['seconds'] / 60:.2f} "
        f"min; {ep['clips_per_s']:.1f} clips/s, {gflops:.0f} GFLOP/s"
        f"{_of_peaks({'gflops': gflops}, peak, out)}; compile "
        f"{ep['compile_s']:.1f} s, final loss {ep['final_loss']:.4f}")
  out["epoch"] = {**ep, "source": source, "gflops": gflops}


def _compare_torch(config, b, out):
  """JAX and the PyTorch reference on one batch, alternating."""
  sys.path.insert(0, os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  try:
    import torch
    from benchmarks import torch_opformer
  except ImportError as e:
    from opformer_jax import errors
    raise errors.UserError(f"--compare=torch: {e}; expected torch installed "
                           "(pip install -e \".[bench]\")") from e
  from opformer_jax import benchmark
  from opformer_jax import model as model_lib
  t = config.data.num_frames
  torch.set_num_threads(len(os.sched_getaffinity(0)))
  print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads "
        f"(reference: benchmarks/torch_opformer.py, same weights)")
  batch = benchmark.random_batch(b, t)
  fl = model_lib.flops_per_clip(config.model, t)["total"] * b / 1e9
  for kind in ("train", "inference"):
    if kind == "inference" and not _INFER.value:
      continue
    jax_model = model_lib.build_model(config.model, config.seed)
    ref = torch_opformer.load_jax_weights(
        torch_opformer.TorchOPFormer(config.model), jax_model)
    if kind == "train":
      jax_run, _ = benchmark.train_runner(config, batch, jax_model)
      torch_run = torch_opformer.train_runner(ref, config, batch)
    else:
      jax_run, _ = benchmark.inference_runner(config, batch["kp2d"],
                                              jax_model)
      torch_run = torch_opformer.inference_runner(ref, batch["kp2d"])
    times = benchmark.alternate({"jax": jax_run, "torch": torch_run},
                                _STEPS.value, warmup=2)
    gflop = 3 * fl if kind == "train" else fl
    ratio = times["torch"].median / times["jax"].median
    paired = benchmark.paired_ratio(times["torch"], times["jax"])
    print(f"compare {kind}: JAX {_fmt_timing(times['jax'])}; PyTorch "
          f"{_fmt_timing(times['torch'])}")
    print(f"  JAX / PyTorch throughput: {ratio:.2f}x (JAX "
          f"{gflop / times['jax'].median:.0f}, PyTorch "
          f"{gflop / times['torch'].median:.0f} GFLOP/s); per round "
          f"{paired['median']:.2f}x ({paired['min']:.2f}-"
          f"{paired['max']:.2f}x)")
    out.setdefault("compare_torch", {})[kind] = {
        "jax_s": times["jax"].times, "torch_s": times["torch"].times,
        "jax_median_s": times["jax"].median,
        "torch_median_s": times["torch"].median, "ratio": ratio,
        "ratio_per_round": paired, "torch": torch.__version__}


def _pipeline(config, b, train_clips_per_s, out):
  from opformer_jax.data import input_pipeline
  from opformer_jax.data import sources
  cfg = config if config.data.train_path else _with_synthetic(config)
  cfg = sources.resolve(cfg, splits=("train",))
  with cfg.unlocked():
    cfg.train.batch_size = b
  rate = input_pipeline.measure_throughput(cfg, num_batches=20)
  print(f"input pipeline ({cfg.data.num_workers} workers, "
        f"{cfg.data.train_path}): {rate:.0f} clips/s = "
        f"{rate / train_clips_per_s:.0f}x what the train step consumes")
  out["pipeline_clips_per_s"] = rate


def _check_flags():
  """Counts that cannot work and a --json that is a folder, in one line
  before anything is compiled or timed."""
  from opformer_jax import errors  # pylint: disable=g-import-not-at-top
  from opformer_jax import fileio  # pylint: disable=g-import-not-at-top
  errors.check_number("--batch", _BATCH.value, minimum=1)
  errors.check_number("--steps", _STEPS.value, minimum=1)
  errors.check_number("--epoch_clips", _EPOCH_CLIPS.value, minimum=0,
                      expected="a clip count >= 1, or 0 for the config's "
                      "data")
  if _JSON.value:
    fileio.check_output_file(_JSON.value, "--json")


def main(argv):
  del argv
  _check_flags()
  from opformer_jax import benchmark
  config, b, out = _CONFIG.value, _BATCH.value, {}
  _header(config, b, out)
  peak = None
  if _PEAK.value:
    peak = benchmark.matmul_peak()
    print(f"matmul peak ({peak['dtype']} {peak['n']}^3): "
          f"{peak['gflops_median']:.1f} GFLOP/s median, "
          f"{peak['gflops_best']:.1f} best")
    out["matmul_peak"] = peak
  if _EPOCH.value:
    _epoch(config, b, peak, out)
  elif _COMPARE.value == "torch":
    _compare_torch(config, b, out)
  else:
    tr = _train_and_inference(config, b, peak, out)
    if _PIPELINE.value:
      _pipeline(config, b, tr["clips_per_s"], out)
  mem = benchmark.peak_memory()
  line = f"peak host RSS {mem['host_peak_rss_mb']:.0f} MB"
  if "device_peak_mb" in mem:
    line += (f"; device peak {mem['device_peak_mb']:.0f} MB of "
             f"{mem['device_limit_mb']:.0f} MB")
  print(line)
  out["memory"] = mem
  if _JSON.value:
    from opformer_jax import fileio
    fileio.write_text(_JSON.value, json.dumps(out, indent=1) + "\n")


def _jsonable(d):
  """A result dict with its Timing as lists of seconds."""
  out = {}
  for k, v in d.items():
    if hasattr(v, "times"):
      out[k] = {"times_s": v.times, "median_s": v.median, "min_s": v.min,
                "max_s": v.max}
    else:
      out[k] = v
  return out


def _with_synthetic(config):
  import ml_collections
  cfg = ml_collections.ConfigDict(config.to_dict())
  cfg.data.name = "synthetic"
  return cfg


if __name__ == "__main__":
  from opformer_jax import cli
  cli.reexec_with_allocator()
  flags.mark_flag_as_required("config")
  cli.run(main)
