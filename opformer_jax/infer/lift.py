"""Inference on real detector output, any length, with rendered results.

  python -m opformer_jax.infer --config=configs/h36m.py --workdir=runs/x \
      --input=keypoints.json --output=out/ [--format=auto] [--image_size=W,H]

Every person track in the input file (one per video for VideoPose3D custom
npz files, the main person per frame for MMPose / AlphaPose JSON) is
converted to H36M-17 (`keypoint_formats`), normalised by the image size,
lifted in overlapping windows of the model's T (`windows`), and written as

  <output>/<track>.npz   pose3d (F, J, 3) root-relative, normalised units;
                         pose3d_px (F, J, 3) = pose3d * w / 2, pixels at the
                         root depth; pose3d_mm (F, J, 3) when a scale is
                         given (--mm_per_px, the 2.5D factor, or
                         --subject_height_mm); kp2d (F, J, 2) px, conf,
                         interpolated (F,) bool, frame_ids.
  <output>/<track>.json  the same, as lists.
  <output>/<track>.gif   2D input beside the rotating 3D skeleton (or .mp4).

Axes follow the camera: x right, y down, z away from the camera.
"""

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from tqdm import tqdm

from opformer_jax import fileio
from opformer_jax.formats import keypoint_formats
from opformer_jax.infer import render
from opformer_jax import skeleton
from opformer_jax.infer import windows


@dataclasses.dataclass
class Options:
  """What to do with each track (the CLI flags)."""
  fmt: str = "auto"
  image_size: tuple[int, int] | None = None
  overlap: float = 0.5
  flip_tta: bool = True
  batch_size: int = 8
  render: str = "gif"          # 'gif', 'mp4' or 'none'
  render_max_frames: int = 300
  fps: float | None = None     # when the file stores none (default 30)
  mm_per_px: float | None = None
  subject_height_mm: float | None = None


def make_apply_fn(model):
  """A jitted (B, T, J, 3) -> (B, T, J, 3) on the default device; the
  batch shape is fixed by `windows.predict_sequence`, so it compiles once."""
  graphdef, state = nnx.split(model)

  @jax.jit
  def apply(state, x):
    return nnx.merge(graphdef, state)(x)
  return lambda x: apply(state, jnp.asarray(x, jnp.float32))


def _to_model_layout(kp, layout):
  """H36M-17 arrays (..., 17, C) -> the model's joint order."""
  if layout == "h36m17":
    return kp
  out = np.empty_like(kp)
  out[..., list(skeleton.H36M_TO_MPI), :] = kp
  return out


def skeleton_height(pose, layout) -> float:
  """Median over frames of head-top to mean-ankle distance (pose units)."""
  lay = skeleton.get_layout(layout)
  head = lay.joints.index("head" if layout == "h36m17" else "head_top")
  ankles = [lay.joints.index("l_ankle"), lay.joints.index("r_ankle")]
  d = np.linalg.norm(pose[:, head] - pose[:, ankles].mean(axis=1), axis=-1)
  return float(np.median(d))


def lift_track(apply_fn, track: keypoint_formats.Track, config, opts: Options):
  """Lifts one H36M-17 track; returns a dict of output arrays."""
  layout = config.model.layout
  kp = keypoint_formats.normalize_track(track, opts.image_size)
  kp = _to_model_layout(kp, layout)
  pose = windows.predict_sequence(
      apply_fn, kp, config.data.num_frames, overlap=opts.overlap,
      flip_tta=opts.flip_tta, layout=layout, batch_size=opts.batch_size)
  root = skeleton.get_layout(layout).root
  pose = pose - pose[:, root:root + 1]
  w = (opts.image_size or track.image_size)[0]
  out = {"pose3d": pose.astype(np.float32),
         "pose3d_px": (pose * w / 2).astype(np.float32),
         "kp2d": _to_model_layout(track.kp2d, layout),
         "conf": _to_model_layout(track.conf[..., None], layout)[..., 0],
         "interpolated": track.interpolated,
         "frame_ids": track.frame_ids}
  if opts.mm_per_px:
    out["pose3d_mm"] = out["pose3d_px"] * opts.mm_per_px
  elif opts.subject_height_mm:
    height = skeleton_height(out["pose3d_px"], layout)
    out["pose3d_mm"] = out["pose3d_px"] * (opts.subject_height_mm / height)
  return out


def _safe_name(name: str) -> str:
  base = os.path.splitext(os.path.basename(name))[0] or "track"
  return "".join(c if c.isalnum() or c in "-_." else "_" for c in base)


def write_track(out_dir, name, result, track, config, opts: Options):
  """Writes npz, json and (optionally) the animation of one track."""
  stem = os.path.join(out_dir, _safe_name(name))
  meta = {"track": name, "layout": config.model.layout,
          "joints": list(skeleton.get_layout(config.model.layout).joints),
          "image_size": list(opts.image_size or track.image_size),
          "fps": opts.fps or track.fps,
          "units": {"pose3d": "normalised (x w/2 = px at root depth)",
                    "pose3d_px": "px at root depth",
                    "pose3d_mm": "mm" if "pose3d_mm" in result else None},
          "num_frames": int(result["pose3d"].shape[0]),
          "num_interpolated_frames": int(result["interpolated"].sum())}

  with fileio.atomic_path(stem + ".npz") as tmp, open(tmp, "wb") as f:
    np.savez(f, meta=json.dumps(meta), **result)
  fileio.write_text(stem + ".json", json.dumps(
      {"meta": meta, **{k: np.asarray(v).tolist()
                        for k, v in result.items()}}))
  files = [stem + ".npz", stem + ".json"]
  if opts.render != "none":
    pose = result.get("pose3d_mm", result["pose3d_px"])
    path = f"{stem}.{opts.render}"
    render.render_animation(
        result["kp2d"], pose, config.model.layout, path,
        fps=opts.fps or track.fps or 30.0,
        image_size=opts.image_size or track.image_size,
        max_frames=opts.render_max_frames, title=name)
    files.append(path)
  return files


def infer_file(model, config: ml_collections.ConfigDict, input_path: str,
               out_dir: str, opts: Options = Options()) -> dict:
  """Lifts every track of `input_path` with `model`; writes `out_dir`.

  Returns:
    {'tracks': {name: [written files]}, 'frames': F total,
     'frames_per_s': lifting speed (excluding reading and rendering)}.
  """
  tracks = keypoint_formats.load_h36m(input_path, opts.fmt)
  if not tracks:
    raise ValueError(f"{input_path}: no person track found")
  os.makedirs(out_dir, exist_ok=True)
  apply_fn = make_apply_fn(model)
  written, frames, lift_s = {}, 0, 0.0
  for track in tqdm(tracks, desc="infer", unit="track",
                    disable=len(tracks) < 2):
    t0 = time.perf_counter()
    result = lift_track(apply_fn, track, config, opts)
    lift_s += time.perf_counter() - t0
    frames += track.num_frames
    written[track.name] = write_track(out_dir, track.name, result, track,
                                      config, opts)
  return {"tracks": written, "frames": frames,
          "frames_per_s": frames / max(lift_s, 1e-9)}


def infer(config: ml_collections.ConfigDict, workdir: str, input_path: str,
          out_dir: str, opts: Options = Options(), step="best") -> dict:
  """Restores `workdir`'s checkpoint and runs `infer_file`."""
  from opformer_jax import checkpointing  # pylint: disable=g-import-not-at-top
  model, step, _ = checkpointing.restore_model(config, workdir, step)
  out = infer_file(model, config, input_path, out_dir, opts)
  n = len(out["tracks"])
  print(f"Lifted {out['frames']} frames in {n} track(s) with step {step} "
        f"at {out['frames_per_s']:.0f} frames/s; outputs in {out_dir}")
  return out
