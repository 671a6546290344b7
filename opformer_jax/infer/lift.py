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

from absl import logging
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


# Statures outside this range (mm) are warned about: likely a unit slip.
PLAUSIBLE_STATURE_MM = (400.0, 2600.0)
# Keypoints farther than this many image sizes from the image are not pixel
# coordinates of that video (a unit or size slip, or a corrupt file).
MAX_IMAGE_SIZES_AWAY = 100


def _positive(flag: str, value, expected: str = "a number > 0") -> None:
  errors.check_number(f"--{flag}", value, above=0, expected=expected)


def check_options(opts: Options) -> None:
  """Refuses options that cannot work, in one line naming the flag.

  Raises:
    errors.UserError: a non-finite or out-of-range value.
  """
  if not 0 <= opts.overlap < 1:
    raise errors.UserError(f"--overlap={opts.overlap:g}; expected a "
                           "fraction in [0, 1), e.g. 0.5")
  _positive("fps", opts.fps, "frames per second > 0, e.g. 30")
  _positive("focal_px", opts.focal_px, "the focal length in px (> 0), or "
            "no --focal_px for the default")
  _positive("subject_height_mm", opts.subject_height_mm,
            "the stature in mm (> 0), e.g. 1700")
  _positive("mm_per_px", opts.mm_per_px)
  _positive("render_fps", opts.render_fps, "frames per second > 0, e.g. 15")
  if opts.render_max_frames < 1:
    raise errors.UserError(f"--render_max_frames={opts.render_max_frames}; "
                           "expected at least 1 (or --render=none)")
  if opts.batch_size < 1:
    raise errors.UserError(f"batch_size={opts.batch_size}; expected >= 1")
  if opts.image_size is not None and (len(opts.image_size) != 2 or min(
      opts.image_size) <= 0):
    raise errors.UserError(
        f"--image_size={','.join(map(str, opts.image_size))}; expected "
        "WIDTH,HEIGHT in px, two integers > 0, e.g. 1920,1080")
  low, high = PLAUSIBLE_STATURE_MM
  if opts.subject_height_mm and not low <= opts.subject_height_mm <= high:
    logging.warning("--subject_height_mm=%g is not a person's height in mm "
                    "(%g to %g); the mm outputs scale with it",
                    opts.subject_height_mm, low, high)


def parse_image_size(values) -> tuple[int, int] | None:
  """`--image_size` (['W', 'H'] strings, or None) as (w, h) px.

  Raises:
    errors.UserError: not two integers > 0.
  """
  if not values:
    return None
  try:
    size = tuple(int(v) for v in values)
  except ValueError:
    size = ()
  if len(size) != 2 or min(size) <= 0:
    raise errors.UserError(
        f"--image_size={','.join(values)}; expected WIDTH,HEIGHT in px, two "
        "integers > 0, e.g. 1920,1080")
  return size


def check_output(out_dir: str) -> None:
  """Refuses an output path that is a file, before anything is written."""
  fileio.check_output_dir(out_dir, "--output")


def check_track(track: keypoint_formats.Track, input_path: str,
                image_size=None) -> None:
  """Refuses keypoints that cannot be pixels of the image; warns when the
  person never appears inside it (a wrong --image_size or units)."""
  size = image_size or track.image_size
  if size is None:
    raise errors.DataError(errors.bad_input(
        input_path, f"track {track.name!r}: the file stores no image size",
        "the video's size as --image_size=WIDTH,HEIGHT"))
  conf = track.conf > 0
  if not conf.any():
    return
  w, h = size
  kp = track.kp2d[conf]
  far = np.abs(kp - [w / 2, h / 2]).max()
  if far > MAX_IMAGE_SIZES_AWAY * max(w, h):
    raise errors.DataError(errors.bad_input(
        input_path, f"track {track.name!r}: keypoint coordinates reach "
        f"{far:.3g} px from the centre of the {w}x{h} image",
        "pixel coordinates of the video (is --image_size right?)"))
  inside = ((kp >= 0) & (kp <= [w, h])).all(-1)
  if not inside.any():
    logging.warning(
        "%s: track %r: no keypoint lies inside the %dx%d image (x %.0f to "
        "%.0f, y %.0f to %.0f px); is --image_size right? Its depth and "
        "path will be off", input_path, track.name, w, h, kp[:, 0].min(),
        kp[:, 0].max(), kp[:, 1].min(), kp[:, 1].max())


def _is_video(input_path: str, opts: Options) -> bool:
  return opts.fmt == "auto" and video.is_video_input(input_path)


def check_input(input_path: str, opts: Options) -> list | None:
  """Reads and checks a keypoint file (`read_tracks`); a video is probed
  only (its detection writes output, so it runs in `infer_file`).

  Returns:
    The tracks of a keypoint file, None for a video.
  """
  if not _is_video(input_path, opts):
    return read_tracks(input_path, opts)
  from opformer_jax.infer import from_video  # pylint: disable=g-import-not-at-top
  from_video.check_range(opts.start_s, opts.end_s)
  video.probe(input_path, opts.fps)
  return None


def read_tracks(input_path: str, opts: Options) -> list:
  """The H36M-17 tracks of `input_path`, checked (`check_track`).

  Raises:
    errors.DataError, FileNotFoundError: a file that cannot be lifted.
  """
  tracks = keypoint_formats.load_h36m(input_path, opts.fmt,
                                     persons=opts.persons)
  if not tracks:
    raise errors.DataError(errors.bad_input(
        input_path, "no person track found", "at least one person's "
        "keypoints"))
  for track in tracks:
    check_track(track, input_path, opts.image_size)
  return tracks


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
  if opts.focal_px is not None:
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
                                               opts.end_s, opts.fps, fps)
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
               out_dir: str, opts: Options = Options(),
               tracks: list | None = None) -> dict:
  """Lifts every track of `input_path` with `model`; writes `out_dir`.

  `tracks`: those `read_tracks(input_path, opts)` returned, if read already.
  Options, output path and input are checked before anything is written.

  Returns:
    {'tracks': {name: [written files]}, 'frames': F total,
     'frames_per_s': lifting speed (excluding reading and rendering)}.
  """
  check_options(opts)
  check_output(out_dir)
  if _is_video(input_path, opts):
    from opformer_jax.infer import from_video  # pylint: disable=g-import-not-at-top
    opts = dataclasses.replace(opts, fmt="array", video=input_path)
    input_path = from_video.detect_to_file(
        input_path, out_dir, opts.start_s, opts.end_s, opts.fps,
        progress=opts.progress)
    tracks = None
  if tracks is None:
    tracks = read_tracks(input_path, opts)
  os.makedirs(out_dir, exist_ok=True)
  apply_fn = make_apply_fn(model)
  written, frames, lift_s = {}, 0, 0.0
  for track in tqdm(tracks, desc="infer", unit="track",
                    disable=len(tracks) < 2):
    t0 = time.perf_counter()
    try:
      result, notes = lift_track(apply_fn, track, config, opts)
    except errors.DataError as e:
      if input_path in str(e):
        raise
      raise errors.DataError(errors.bad_input(
          input_path, f"track {track.name!r}: {e}")) from e
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


def check_model_paths(workdir=None, model_dir=None, config=None) -> None:
  """Refuses model arguments that cannot name a model (`load_model`'s),
  before anything is read or written.

  Raises:
    errors.UserError: both --workdir and --model, --config without
      --workdir, a workdir without checkpoints/ or a --model that is no
      folder.
  """
  if workdir and model_dir:
    raise errors.UserError(errors.bad_input(
        workdir, "--workdir and --model both given", "one of them"))
  if not workdir and config is not None:
    raise errors.UserError(
        "--config describes a training run's checkpoint; expected "
        "--workdir with it (or neither, for the bundled default model)")
  if workdir and not os.path.isdir(os.path.join(workdir, "checkpoints")):
    raise errors.UserError(errors.bad_input(
        workdir, "holds no checkpoints/", "the --workdir of a training run "
        "(python -m opformer_jax.train), or no --workdir for the bundled "
        "default model"))
  if model_dir and not os.path.isdir(model_dir):
    raise errors.UserError(errors.bad_input(
        f"--model={model_dir}", "no such folder" if not os.path.exists(
            model_dir) else "is a file", "a folder written by "
        "opformer_jax.pretrained.save"))


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
  check_model_paths(workdir, model_dir, config)
  if not workdir:
    from opformer_jax import pretrained  # pylint: disable=g-import-not-at-top
    model, config = pretrained.load(model_dir)
    return model, config, (f"the model in {model_dir}" if model_dir
                           else "the bundled default model")
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
          config=None, workdir=None, model_dir=None, step="best",
          tracks=None) -> dict:
  """Loads the model (`load_model`) and runs `infer_file`."""
  model, config, name = load_model(config, workdir, model_dir, step)
  opts = dataclasses.replace(opts, model_name=name)
  out = infer_file(model, config, input_path, out_dir, opts, tracks)
  n = len(out["tracks"])
  print(f"Lifted {out['frames']} frames in {n} track(s) with {name} "
        f"at {out['frames_per_s']:.0f} frames/s; outputs in {out_dir}")
  return out
