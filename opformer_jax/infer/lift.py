"""Inference on real detector output, any length, with rendered results.

  python -m opformer_jax.infer --input=keypoints.json --output=out/ \
      [--format=auto] [--image_size=W,H] [--focal_px=F] [--bvh]

The model: the default one bundled with the package (`pretrained.load()`),
a folder written by `pretrained.save` (`--model`), or a training run's
checkpoint (`--workdir`, with `--config` or the config the checkpoint
stores).

A video or image folder (`infer.from_video`, docs/video.md) is first run
through BlazePose into ``<output>/<video>_2d.npz``, which is then lifted
like any keypoint file.

Every person track in the input file (one per video for VideoPose3D custom
npz files, the main person per frame for MMPose / AlphaPose JSON) is
converted to H36M-17 (`keypoint_formats`), normalised by the image size,
lifted in overlapping windows of the model's T (`windows`), placed in the
camera frame (`trajectory`) and written as

  <output>/<track>.npz   pose3d (F, J, 3) root-relative, normalised units;
                         pose3d_px (F, J, 3) = pose3d * w / 2, pixels at the
                         root depth; pose3d_mm (F, J, 3) root-relative mm
                         (scale from --mm_per_px, else the stature
                         --subject_height_mm or its default);
                         root_cam_mm (F, 3) the root's camera-frame
                         position (mm), so pose3d_mm + root_cam_mm are the
                         joints in the camera frame; kp2d (F, J, 2) px,
                         conf, interpolated (F,) bool, frame_ids; meta
                         (JSON: units, focal length, scale, model).
  <output>/<track>.json  the same, as lists.
  <output>/<track>.gif   2D input beside the 3D skeleton moving along its
                         path (or .mp4).
  <output>/<track>.bvh   with --bvh: the animation (`formats.bvh`), cm,
                         y up, the camera at the origin looking along -z.

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

from opformer_jax import config_lib
from opformer_jax import errors
from opformer_jax import fileio
from opformer_jax.formats import bvh
from opformer_jax.formats import keypoint_formats
from opformer_jax.infer import render
from opformer_jax.infer import trajectory
from opformer_jax.infer import video
from opformer_jax.infer import windows
from opformer_jax import skeleton


@dataclasses.dataclass
class Options:
  """What to do with each track (the CLI flags)."""
  fmt: str = "auto"
  persons: str = "main"        # 'main' or 'all' people of the video
  image_size: tuple[int, int] | None = None
  overlap: float = 0.5
  flip_tta: bool = True
  batch_size: int = 8
  render: str = "gif"          # 'gif', 'mp4' or 'none'
  render_max_frames: int = 300
  fps: float | None = None     # when the file stores none (default 30)
  mm_per_px: float | None = None
  subject_height_mm: float | None = None   # stature (trajectory.py)
  focal_px: float | None = None            # None: trajectory default
  bvh: bool = False
  model_name: str = ""                     # for the meta
  # Video input (infer.from_video): time range in seconds, render rate,
  # progress bars; `video` is set to the source for the render.
  start_s: float = 0.0
  end_s: float | None = None
  render_fps: float | None = None
  progress: bool = False
  video: str | None = None


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


def _camera(track, opts: Options):
  """(image size, focal px, where the focal length came from)."""
  size = opts.image_size or track.image_size
  if opts.focal_px:
    return size, float(opts.focal_px), "--focal_px"
  return (size, trajectory.default_focal_px(size),
          f"default: {trajectory.DEFAULT_HFOV_DEG:g} degree field of view "
          "across the longer image side")


def _metric(pose_px, kp2d, conf, track, layout, opts: Options):
  """Root-relative mm pose, the root's camera-frame path and their meta."""
  fps = opts.fps or track.fps or 30.0
  window = max(1, round(fps * trajectory.SMOOTH_S)) | 1
  if opts.mm_per_px:
    scale, source = opts.mm_per_px, "--mm_per_px"
  else:
    scale = trajectory.metric_scale(pose_px, layout, opts.subject_height_mm,
                                    window)[:, None, None]
    stature = opts.subject_height_mm or trajectory.DEFAULT_STATURE_MM
    source = (f"stature {stature:g} mm"
              f"{'' if opts.subject_height_mm else ' (default)'}")
  pose_mm = pose_px * scale
  size, focal, focal_source = _camera(track, opts)
  root = trajectory.root_trajectory(
      pose_mm, kp2d, conf, focal_px=focal, principal_px=np.divide(size, 2),
      layout=layout, window=window)
  meta = {"scale": source, "focal_px": focal, "focal": focal_source,
          "principal_px": [size[0] / 2, size[1] / 2],
          "depth_median_frames": window}
  return pose_mm.astype(np.float32), root.astype(np.float32), meta


def lift_track(apply_fn, track: keypoint_formats.Track, config, opts: Options):
  """Lifts one H36M-17 track.

  Returns:
    (dict of output arrays, dict of camera / scale notes for the meta).
  """
  layout = config.model.layout
  kp = keypoint_formats.normalize_track(track, opts.image_size)
  kp = _to_model_layout(kp, layout)
  pose = windows.predict_sequence(
      apply_fn, kp, config.data.num_frames, overlap=opts.overlap,
      flip_tta=opts.flip_tta, layout=layout, batch_size=opts.batch_size,
      progress=opts.progress)
  root = skeleton.get_layout(layout).root
  pose = pose - pose[:, root:root + 1]
  w = (opts.image_size or track.image_size)[0]
  out = {"pose3d": pose.astype(np.float32),
         "pose3d_px": (pose * w / 2).astype(np.float32),
         "kp2d": _to_model_layout(track.kp2d, layout),
         "conf": _to_model_layout(track.conf[..., None], layout)[..., 0],
         "interpolated": track.interpolated,
         "frame_ids": track.frame_ids}
  out["pose3d_mm"], out["root_cam_mm"], notes = _metric(
      out["pose3d_px"], out["kp2d"], out["conf"], track, layout, opts)
  return out, notes


def _safe_name(name: str) -> str:
  base = os.path.splitext(os.path.basename(name))[0] or "track"
  return "".join(c if c.isalnum() or c in "-_." else "_" for c in base)


def _write_bvh(path, result, layout, fps):
  """The track's joints in the camera frame as a BVH animation."""
  joints = result["pose3d_mm"] + result["root_cam_mm"][:, None]
  if layout != "h36m17":
    joints = joints[:, list(skeleton.H36M_TO_MPI)]
  bvh.write_bvh(path, joints, fps)


def _video_render_args(opts: Options, fps):
  """render_animation's frame_step (--render_fps) and video background."""
  args = {}
  if opts.render_fps:
    args["frame_step"] = max(1, round(fps / opts.render_fps))
  if opts.video:
    from opformer_jax.infer import from_video  # pylint: disable=g-import-not-at-top
    args["background"] = from_video.background(opts.video, opts.start_s,
                                               opts.end_s, opts.fps)
  return args


def write_track(out_dir, name, result, notes, track, config, opts: Options):
  """Writes npz, json and (optionally) the animation and BVH of a track."""
  stem = os.path.join(out_dir, _safe_name(name))
  fps = opts.fps or track.fps or 30.0
  meta = {"track": name, "layout": config.model.layout,
          "joints": list(skeleton.get_layout(config.model.layout).joints),
          "image_size": list(opts.image_size or track.image_size),
          "fps": opts.fps or track.fps, "model": opts.model_name,
          "units": {"pose3d": "normalised (x w/2 = px at root depth)",
                    "pose3d_px": "px at root depth",
                    "pose3d_mm": "mm, root-relative",
                    "root_cam_mm": "mm, camera frame (x right, y down, "
                                   "z away)"},
          **notes,
          "num_frames": int(result["pose3d"].shape[0]),
          "num_interpolated_frames": int(result["interpolated"].sum())}

  with fileio.atomic_path(stem + ".npz") as tmp, open(tmp, "wb") as f:
    np.savez(f, meta=json.dumps(meta), **result)
  fileio.write_text(stem + ".json", json.dumps(
      {"meta": meta, **{k: np.asarray(v).tolist()
                        for k, v in result.items()}}))
  files = [stem + ".npz", stem + ".json"]
  if opts.bvh:
    files.append(stem + ".bvh")
    _write_bvh(files[-1], result, config.model.layout, fps)
  if opts.render != "none":
    files.append(f"{stem}.{opts.render}")
    render.render_animation(
        result["kp2d"], result["pose3d_mm"], config.model.layout, files[-1],
        fps=fps, image_size=opts.image_size or track.image_size,
        trajectory=result["root_cam_mm"], max_frames=opts.render_max_frames,
        title=name, **_video_render_args(opts, fps))
  return files


def infer_file(model, config: ml_collections.ConfigDict, input_path: str,
               out_dir: str, opts: Options = Options()) -> dict:
  """Lifts every track of `input_path` with `model`; writes `out_dir`.

  Returns:
    {'tracks': {name: [written files]}, 'frames': F total,
     'frames_per_s': lifting speed (excluding reading and rendering)}.
  """
  if opts.fmt == "auto" and video.is_video_input(input_path):
    from opformer_jax.infer import from_video  # pylint: disable=g-import-not-at-top
    opts = dataclasses.replace(opts, fmt="array", video=input_path)
    input_path = from_video.detect_to_file(
        input_path, out_dir, opts.start_s, opts.end_s, opts.fps,
        progress=opts.progress)
  tracks = keypoint_formats.load_h36m(input_path, opts.fmt,
                                     persons=opts.persons)
  if not tracks:
    raise ValueError(f"{input_path}: no person track found")
  os.makedirs(out_dir, exist_ok=True)
  apply_fn = make_apply_fn(model)
  written, frames, lift_s = {}, 0, 0.0
  for track in tqdm(tracks, desc="infer", unit="track",
                    disable=len(tracks) < 2):
    t0 = time.perf_counter()
    result, notes = lift_track(apply_fn, track, config, opts)
    lift_s += time.perf_counter() - t0
    frames += track.num_frames
    written[track.name] = write_track(out_dir, track.name, result, notes,
                                      track, config, opts)
  return {"tracks": written, "frames": frames,
          "frames_per_s": frames / max(lift_s, 1e-9)}


def _checkpoint_config(workdir: str, step):
  """The full config a training run's checkpoint was saved with."""
  from opformer_jax import checkpointing  # pylint: disable=g-import-not-at-top
  config = config_lib.base_config()
  try:
    config.update(checkpointing.saved_config(workdir, step))
  except (TypeError, ValueError, KeyError) as e:
    raise errors.ConfigError(errors.bad_input(
        workdir, f"the config stored with the checkpoint does not fit this "
        f"version ({e})", "--config=<the run's config file>")) from e
  return config


def load_model(config=None, workdir=None, model_dir=None, step="best"):
  """The model to lift with, and its config.

  Args:
    config: the run's config (with `workdir`); None = the one its
      checkpoint stores.
    workdir: a training run (Orbax checkpoints); None = a saved model.
    model_dir: a folder from `pretrained.save`; None (and no `workdir`) =
      the default model bundled with the package.
    step: 'best', 'latest' or a step number (with `workdir`).

  Returns:
    (model, config, description of the model for messages and the meta).
  """
  if workdir and model_dir:
    raise errors.UserError(errors.bad_input(
        workdir, "--workdir and --model both given", "one of them"))
  if not workdir:
    if config is not None:
      raise errors.UserError(
          "--config describes a training run's checkpoint; expected "
          "--workdir with it (or neither, for the bundled default model)")
    from opformer_jax import pretrained  # pylint: disable=g-import-not-at-top
    model, config = pretrained.load(model_dir)
    return model, config, (f"the model in {model_dir}" if model_dir
                           else "the bundled default model")
  if not os.path.isdir(os.path.join(workdir, "checkpoints")):
    raise errors.UserError(errors.bad_input(
        workdir, "holds no checkpoints/", "the --workdir of a training run "
        "(python -m opformer_jax.train), or no --workdir for the bundled "
        "default model"))
  from opformer_jax import checkpointing  # pylint: disable=g-import-not-at-top
  try:
    if config is None:
      config = _checkpoint_config(workdir, step)
    model, step, _ = checkpointing.restore_model(config, workdir, step)
  except FileNotFoundError as e:   # no (such) step: resolve_step's message
    if e.filename:
      raise
    raise errors.UserError(str(e)) from e
  return model, config, f"step {step} of {workdir}"


def infer(input_path: str, out_dir: str, opts: Options = Options(), *,
          config=None, workdir=None, model_dir=None, step="best") -> dict:
  """Loads the model (`load_model`) and runs `infer_file`."""
  model, config, name = load_model(config, workdir, model_dir, step)
  opts = dataclasses.replace(opts, model_name=name)
  out = infer_file(model, config, input_path, out_dir, opts)
  n = len(out["tracks"])
  print(f"Lifted {out['frames']} frames in {n} track(s) with {name} "
        f"at {out['frames_per_s']:.0f} frames/s; outputs in {out_dir}")
  return out
