"""The thin `python -m` layer: absl flags, logging, multi-host start-up.

Only this module defines flags, and only when an entry point runs, so every
library function stays importable and callable from tests and notebooks.
"""

import glob
import logging
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags


def reexec_with_allocator() -> None:
  """Restarts this process once with a malloc that keeps its pages.

  XLA on CPU allocates every step's temporaries afresh; glibc returns big
  blocks to the kernel and the next step faults them back in, 4 KiB at a
  time (9 M page faults, 18 % of the CPU time of a dim-512 train step on a
  2-core machine). `glibc.malloc.hugetlb=1` backs them with huge pages
  (measured 8 % faster steps, same memory); OPFORMER_ALLOCATOR=tcmalloc
  preloads tcmalloc where installed (15 % faster, but about twice the peak
  RSS); OPFORMER_ALLOCATOR=system (or a GLIBC_TUNABLES / LD_PRELOAD already
  set) leaves the process alone. Must run before anything is imported that
  allocates much, i.e. first in an entry point.
  """
  choice = os.environ.get("OPFORMER_ALLOCATOR", "hugepages")
  if (not sys.platform.startswith("linux") or choice == "system" or
      "GLIBC_TUNABLES" in os.environ or "LD_PRELOAD" in os.environ):
    return
  env = dict(os.environ)
  if choice == "tcmalloc":
    libs = sorted(glob.glob("/usr/lib/*/libtcmalloc*.so.4") +
                  glob.glob("/usr/lib/libtcmalloc*.so.4"))
    if not libs:
      logging.warning("OPFORMER_ALLOCATOR=tcmalloc but no libtcmalloc found "
                      "(apt install libtcmalloc-minimal4)")
      return
    env["LD_PRELOAD"] = libs[0]
  else:
    env["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1"
  argv = getattr(sys, "orig_argv", None) or [sys.executable] + sys.argv
  os.execve(sys.executable, argv, env)


def _define_common(workdir_help: str):
  config = config_flags.DEFINE_config_file(
      "config", None, "Config file, e.g. configs/h36m.py or "
      "configs/h36m.py:t81,gt. Override fields with --config.a.b=value.",
      lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, workdir_help)
  flags.mark_flags_as_required(["config", "workdir"])
  return config, workdir


def _start():
  import jax  # pylint: disable=g-import-not-at-top
  from opformer_jax import parallel  # pylint: disable=g-import-not-at-top
  logging.getLogger().setLevel(logging.INFO)
  parallel.initialize_distributed()
  logging.info("JAX %s on %s: process %d of %d, %d local device(s)",
               jax.__version__, jax.default_backend(), jax.process_index(),
               jax.process_count(), jax.local_device_count())


def run(fn, kind: str):
  """Defines the flags of entry point `kind` and runs `fn` under absl."""
  reexec_with_allocator()
  if kind == "workdir":   # train
    config, workdir = _define_common(
        "Directory for checkpoints, logs and results; an existing run there "
        "is resumed.")

    def main(argv):
      del argv
      _start()
      fn(config.value, workdir.value)
  elif kind == "evaluate":
    config, workdir = _define_common("The training workdir to evaluate.")
    step = flags.DEFINE_string(
        "step", "best", "'best' (lowest validation MPJPE), 'latest' or a "
        "step number.")

    def main(argv):
      del argv
      _start()
      fn(config.value, workdir.value, step.value)
  elif kind == "infer":
    config, workdir = _define_common("The training workdir whose checkpoint "
                                     "lifts the keypoints.")
    step = flags.DEFINE_string("step", "best", "'best', 'latest' or a step.")
    inp = flags.DEFINE_string("input", None, "Keypoint file (see --format).")
    out = flags.DEFINE_string("output", None, "Output directory.")
    fmt = flags.DEFINE_enum(
        "format", "auto", ["auto", "videopose3d", "mmpose", "alphapose",
                           "array"],
        "Input format: VideoPose3D custom npz, MMPose prediction JSON, "
        "AlphaPose JSON (COCO-17 / Halpe-26), or H36M-17 .npy/.npz arrays.")
    size = flags.DEFINE_list("image_size", None, "W,H of the video in px "
                             "when the file stores none.")
    render = flags.DEFINE_enum("render", "gif", ["gif", "mp4", "none"],
                               "Animation of 2D input beside 3D output.")
    max_frames = flags.DEFINE_integer("render_max_frames", 300,
                                      "Frames drawn per animation.")
    overlap = flags.DEFINE_float("overlap", 0.5, "Window overlap in [0, 1).")
    flip = flags.DEFINE_bool("flip_tta", True, "Flip test-time augmentation.")
    fps = flags.DEFINE_float("fps", None, "Frame rate when the file stores "
                             "none (default 30).")
    mm_per_px = flags.DEFINE_float(
        "mm_per_px", None, "2.5D factor (mm per px at the subject's depth, "
        "= depth / focal length) for outputs in mm.")
    height = flags.DEFINE_float(
        "subject_height_mm", None, "Subject's height (head to ankles) for "
        "outputs in mm, when --mm_per_px is unknown.")
    flags.mark_flags_as_required(["input", "output"])

    def main(argv):
      del argv
      _start()
      from opformer_jax import infer  # pylint: disable=g-import-not-at-top
      opts = infer.Options(
          fmt=fmt.value, overlap=overlap.value, flip_tta=flip.value,
          image_size=tuple(int(v) for v in size.value) if size.value
          else None, render=render.value, render_max_frames=max_frames.value,
          fps=fps.value, mm_per_px=mm_per_px.value,
          subject_height_mm=height.value)
      fn(config.value, workdir.value, inp.value, out.value, opts, step.value)
  else:
    raise ValueError(kind)
  app.run(main, argv=sys.argv)
