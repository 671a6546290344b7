"""Motion capture -> project NPZ: 3D joint npz and BVH files, projected to 2D.

Inputs:
* joint npz files (like `../shared/data/mocap/*.npz`): sequence name ->
  float (F, 17, 3) H36M-17 joints in mm, plus `__meta__` (a JSON string with
  `fps` and `up_axis`);
* BVH files: HIERARCHY / MOTION parsed, forward kinematics honouring each
  joint's channel order, End Sites named '<parent>_end', and a joint-name
  mapping to H36M-17 (`CMU_BVH_MAPPING` by default: the one behind
  `cmu_subject131.npz`), scaled by `unit_mm` (CMU: 1 unit = 25.4 / 0.45 =
  56.444 mm).

Every sequence is resampled to `fps` (mocap: 120 fps; Human3.6M: 50), turned
into the Human3.6M z-up world (y-up sources: (x, y, z) -> (x, -z, y)), placed
with its feet on the floor (lowest ankle at `ANKLE_HEIGHT_MM`) and its mean
root position where the cameras look, and seen by
* 'h36m': the 4 real calibrations of a randomly drawn Human3.6M subject
  (projection with lens distortion), the sequence turned about the vertical
  to the heading that keeps most frames in view; or
* 'random': random pinhole cameras around the subject (`camera.random_camera`)
  that back away until the motion fits the image.
Frames where a joint leaves the image are cut out (a sequence may split into
parts '#k'); parts shorter than `min_frames` are dropped. Optional
detector-like noise (`detector_noise`) perturbs the 2D and sets a confidence
that falls with the injected error. Labels: kp3d (camera mm), kp3d_image,
factor (`camera.image_space_label`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

from absl import logging
import numpy as np
from tqdm import tqdm

from opformer_jax import errors
from opformer_jax.data import camera as camera_lib
from opformer_jax.data import convert_util
from opformer_jax.data import dataset
from opformer_jax.formats import bvh as bvh_lib
from opformer_jax import skeleton

# The BVH reader lives in `formats.bvh`; mocap's callers keep these names.
Bvh, parse_bvh, bvh_positions = (bvh_lib.Bvh, bvh_lib.parse_bvh,
                                 bvh_lib.bvh_positions)

CMU_UNIT_MM = 25.4 / 0.45
# Ankle joint height above the floor when the foot is flat (mm).
ANKLE_HEIGHT_MM = 80.0
# Joint names of the mapping tables (`skeleton.H36M_JOINT_NAMES`, and
# "RAnkle" / "LAnkle" for the ankles) -> skeleton.H36M.joints.
H36M_NAMES = dict(zip(skeleton.H36M_JOINT_NAMES, skeleton.H36M.joints)) | {
    "RAnkle": "r_ankle", "LAnkle": "l_ankle"}
# CMU BVH (31 joints) -> H36M-17; a tuple is the mean of its joints.
CMU_BVH_MAPPING = {
    "hip": ("LeftHip", "RightHip"), "r_hip": "RightHip",
    "r_knee": "RightKnee", "r_ankle": "RightAnkle", "l_hip": "LeftHip",
    "l_knee": "LeftKnee", "l_ankle": "LeftAnkle", "spine": "Chest",
    "thorax": "Neck", "nose": "Head", "head": "Head_end",
    "l_shoulder": "LeftShoulder", "l_elbow": "LeftElbow",
    "l_wrist": "LeftWrist", "r_shoulder": "RightShoulder",
    "r_elbow": "RightElbow", "r_wrist": "RightWrist"}
# The validation split of ../shared/data/mocap (its README): CMU subjects
# 16 and 35 and the test/ sequences of cmu_actions.
DEFAULT_VAL = ("16", "35", "cmu_actions/test/")
# Per-joint jitter scale of `detector_noise` (H36M-17): detectors are least
# precise on wrists, ankles and the head top.
_JOINT_NOISE = np.array([1.0, 1.0, 1.1, 1.3, 1.0, 1.1, 1.3, 1.0, 0.9, 0.9,
                         1.2, 0.9, 1.1, 1.4, 0.9, 1.1, 1.4])


# ---------------------------------------------------------------------------
# Readers.
# ---------------------------------------------------------------------------


def read_joint_npz(path: str, fps: float | None = None,
                   up_axis: str | None = None):
  """Reads a joint npz: {name: (F, 17, 3) mm} plus `__meta__`.

  Args:
    path: the file.
    fps, up_axis: override / supply what `__meta__` says ('y' or 'z').

  Returns:
    ({name: float64 (F, 17, 3) mm}, fps, up_axis).
  """
  z = convert_util.read_npz(path)
  meta = {}
  if "__meta__" in z:
    try:
      meta = json.loads(str(z["__meta__"]))
    except json.JSONDecodeError as e:
      raise dataset.DataError(f"{path}: key '__meta__': not JSON ({e})"
                              ) from None
  fps = fps or meta.get("fps")
  up_axis = up_axis or meta.get("up_axis")
  if not fps:
    raise dataset.DataError(f"{path}: key '__meta__': no 'fps'; give the "
                            "source frame rate (--source_fps)")
  if up_axis not in ("y", "z"):
    raise dataset.DataError(f"{path}: key '__meta__': up_axis is "
                            f"{up_axis!r}, expected 'y' or 'z'")
  seqs = {}
  for key, value in z.items():
    if key == "__meta__":
      continue
    a = convert_util.check_array(value, path, f"'{key}'", ("F", 17, 3))
    seqs[key] = a.astype(np.float64)
  if not seqs:
    raise dataset.DataError(f"{path}: no sequences")
  return seqs, float(fps), up_axis


def map_joints(positions: np.ndarray, names, mapping: dict) -> np.ndarray:
  """(F, J_src, 3) -> (F, 17, 3) H36M-17 through a name mapping.

  `mapping` maps every H36M-17 joint (`skeleton.H36M.joints` names, or the
  README names 'RHip', 'RFoot', ...) to a source joint name or a tuple of
  names whose mean it is.
  """
  mapping = {H36M_NAMES.get(k, k): v for k, v in mapping.items()}
  missing = [j for j in skeleton.H36M.joints if j not in mapping]
  if missing:
    raise ValueError(f"joint mapping lacks H36M joints {missing}")
  names = list(names)
  out = np.zeros(positions.shape[:1] + (17, 3))
  for j, joint in enumerate(skeleton.H36M.joints):
    src = mapping[joint]
    src = (src,) if isinstance(src, str) else tuple(src)
    for s in src:
      if s not in names:
        raise ValueError(f"joint mapping: {joint} -> {s!r}, but the "
                         f"skeleton has no such joint (it has {names})")
    out[:, j] = np.mean([positions[:, names.index(s)] for s in src], axis=0)
  return out


def read_bvh(path: str, mapping: dict | None = None,
             unit_mm: float = CMU_UNIT_MM):
  """BVH file -> ((F, 17, 3) mm in the file's world frame, fps)."""
  bvh = parse_bvh(path)
  pos = bvh_positions(bvh) * unit_mm
  try:
    kp3d = map_joints(pos, bvh.joints, mapping or CMU_BVH_MAPPING)
  except ValueError as e:
    raise dataset.DataError(f"{path}: {e}") from None
  return kp3d, bvh.fps


def read_inputs(paths, bvh_mapping=None, bvh_unit_mm=CMU_UNIT_MM,
                bvh_up_axis="y", source_fps=None, up_axis=None):
  """Reads npz and BVH files -> list of (file stem, name, (F, 17, 3) mm,
  fps, up_axis). `source_fps` / `up_axis` override the npz `__meta__`."""
  out = []
  for path in paths:
    stem = os.path.splitext(os.path.basename(path))[0]
    if path.lower().endswith(".bvh"):
      kp3d, fps = read_bvh(path, bvh_mapping, bvh_unit_mm)
      out.append((stem, stem, kp3d, fps, bvh_up_axis))
    else:
      seqs, fps, up = read_joint_npz(path, source_fps, up_axis)
      out.extend((stem, name, kp3d, fps, up) for name, kp3d in seqs.items())
  return out


# ---------------------------------------------------------------------------
# Geometry: resampling, world placement, cameras, noise.
# ---------------------------------------------------------------------------


def resample(kp3d: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
  """Linear interpolation of (F, J, 3) from fps_in to fps_out (same
  duration, first frame kept)."""
  if fps_in == fps_out:
    return kp3d
  num = int(np.floor((len(kp3d) - 1) * fps_out / fps_in + 1e-9)) + 1
  t = np.arange(num) * fps_in / fps_out
  i0 = np.minimum(np.floor(t).astype(int), len(kp3d) - 1)
  i1 = np.minimum(i0 + 1, len(kp3d) - 1)
  w = (t - i0)[:, None, None]
  return kp3d[i0] * (1 - w) + kp3d[i1] * w


def to_z_up(kp3d: np.ndarray, up_axis: str) -> np.ndarray:
  """y-up world (x, y, z) -> z-up (x, -z, y), a proper rotation."""
  if up_axis == "z":
    return kp3d
  return np.stack([kp3d[..., 0], -kp3d[..., 2], kp3d[..., 1]], -1)


def place(kp3d_zup: np.ndarray, target_xy, yaw: float = 0.0) -> np.ndarray:
  """Turns a z-up sequence by `yaw` about the vertical through its mean root
  position, moves that position to `target_xy` and the lowest ankle of the
  sequence to `ANKLE_HEIGHT_MM` above the floor z = 0."""
  centre = kp3d_zup[:, 0, :2].mean(0)
  c, s = np.cos(yaw), np.sin(yaw)
  xy = (kp3d_zup[..., :2] - centre) @ np.array([[c, s], [-s, c]])
  z = kp3d_zup[..., 2] - kp3d_zup[:, (3, 6), 2].min() + ANKLE_HEIGHT_MM
  return np.concatenate([xy + np.asarray(target_xy), z[..., None]], -1)


def look_at_point(cams) -> np.ndarray:
  """The point nearest (least squares) to the optical axes of `cams`."""
  a = np.zeros((3, 3))
  b = np.zeros(3)
  for cam in cams:
    z = cam.R_world_to_cam[2]
    proj = np.eye(3) - np.outer(z, z)
    a += proj
    b += proj @ cam.center_world_mm
  return np.linalg.solve(a, b)


def in_view(kp2d, kp3d_cam, width, height, margin_px=2.0) -> np.ndarray:
  """(F,) True where every joint is in front of the camera and inside the
  image (with a margin)."""
  return ((kp3d_cam[..., 2] > 100).all(-1)
          & (kp2d[..., 0] >= margin_px).all(-1)
          & (kp2d[..., 0] <= width - 1 - margin_px).all(-1)
          & (kp2d[..., 1] >= margin_px).all(-1)
          & (kp2d[..., 1] <= height - 1 - margin_px).all(-1))


def _view(world, cam, distort):
  kp3d = camera_lib.world_to_camera(world, cam)
  if distort:
    kp2d = camera_lib.project(kp3d, cam.f, cam.c, cam.k, cam.p)
  else:
    kp2d = camera_lib.project(kp3d, cam.f, cam.c)
  return kp3d, kp2d


def detector_noise(rng: np.random.Generator, kp2d: np.ndarray,
                   noise_px: float, outlier_prob: float = 0.003,
                   outlier_frac=(0.05, 0.25)):
  """Detector-like 2D noise and a confidence that falls with the error.

  Each joint gets Gaussian jitter of `noise_px` times a per-joint scale
  (wrists, ankles, head top noisier); with probability `outlier_prob` a joint
  instead jumps by `outlier_frac` (uniform range) of the frame's 2D box
  diagonal in a random direction. Confidence = 0.97 exp(-(e / 3 sigma)^2 / 2)
  + N(0, 0.02), clipped to [0, 1], with e the injected error and sigma the
  joint's jitter scale, so jittered joints score ~0.9 and outliers ~0.

  Args:
    rng: numpy Generator.
    kp2d: (F, J, 2) px.
    noise_px: jitter standard deviation (px); 0 returns kp2d, conf = 1.

  Returns:
    (kp2d (F, J, 2) float32, conf (F, J) float32).
  """
  kp2d = np.asarray(kp2d, np.float64)
  if noise_px <= 0:
    return kp2d.astype(np.float32), np.ones(kp2d.shape[:2], np.float32)
  num_joints = kp2d.shape[1]
  scale = (_JOINT_NOISE if num_joints == len(_JOINT_NOISE)
           else np.ones(num_joints)) * noise_px
  delta = rng.normal(0.0, 1.0, kp2d.shape) * scale[:, None]
  diag = np.linalg.norm(kp2d.max(1) - kp2d.min(1), axis=-1)  # (F,)
  outlier = rng.random(kp2d.shape[:2]) < outlier_prob
  angle = rng.uniform(0, 2 * np.pi, kp2d.shape[:2])
  jump = rng.uniform(*outlier_frac, kp2d.shape[:2]) * diag[:, None]
  jump_xy = np.stack([np.cos(angle), np.sin(angle)], -1) * jump[..., None]
  delta = np.where(outlier[..., None], jump_xy, delta)
  err = np.linalg.norm(delta, axis=-1)
  conf = 0.97 * np.exp(-0.5 * (err / (3 * scale)) ** 2)
  conf = np.clip(conf + rng.normal(0.0, 0.02, conf.shape), 0.0, 1.0)
  return (kp2d + delta).astype(np.float32), conf.astype(np.float32)


def _runs(mask: np.ndarray, min_frames: int):
  """[(start, end)] of the runs of True at least `min_frames` long."""
  edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
  starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
  return [(s, e) for s, e in zip(starts, ends) if e - s >= min_frames]


# ---------------------------------------------------------------------------
# Conversion.
# ---------------------------------------------------------------------------


def is_validation(stem: str, name: str, val_subjects) -> bool:
  """Whether '<stem>/<name>' belongs to the validation split: an entry that
  is a number N selects CMU subject N (names 'N_<trial>'); any other entry
  is a prefix of '<stem>/<name>'."""
  full = f"{stem}/{name}"
  for v in val_subjects:
    v = str(v).strip()
    if not v:
      continue
    if v.isdigit():
      if re.fullmatch(rf"0*{int(v)}_\d+", os.path.basename(name)):
        return True
    elif full.startswith(v):
      return True
  return False


def _subject_action(stem, name, action_regex=None):
  """(subject, action) of '<stem>/<name>': CMU names 'N_<trial>' are subject
  'CMU<N>'; the action is the match of `action_regex`'s group 'action' (a
  compiled pattern, searched in '<stem>/<name>') or, without one or when it
  does not match, the parent folder of the name, else the file stem."""
  m = re.fullmatch(r"(\d+)_\d+", os.path.basename(name))
  subject = f"CMU{int(m.group(1))}" if m else stem
  found = action_regex.search(f"{stem}/{name}") if action_regex else None
  if found and found.group("action"):
    return subject, found.group("action")
  parts = name.split("/")
  action = parts[-2] if len(parts) >= 2 else stem
  return subject, action


def compile_action_regex(action_regex: str | None):
  """The `--action_regex` pattern, compiled; it needs a group 'action'."""
  if not action_regex:
    return None
  try:
    pattern = re.compile(action_regex)
  except re.error as e:
    raise errors.UserError(errors.bad_input(
        "--action_regex", f"{action_regex!r} is not a regular expression "
        f"({e})", "e.g. '(?P<action>[a-z]+)_\\d+$'")) from None
  if "action" not in pattern.groupindex:
    raise errors.UserError(errors.bad_input(
        "--action_regex", f"{action_regex!r} has no group named 'action'",
        "a pattern with (?P<action>...), e.g. '(?P<action>[a-z]+)_\\d+$'"))
  return pattern


def make_views(world_zup, rng, cameras, h36m_cams=None, num_random=4,
               max_yaw_tries=12):
  """Places one z-up sequence and returns [(Camera, world, distort)]."""
  if cameras == "h36m":
    subjects = sorted({s for s, _ in h36m_cams})
    subject = subjects[rng.integers(len(subjects))]
    cams = [h36m_cams[(subject, c)] for c in sorted(
        c for s, c in h36m_cams if s == subject)]
    target = look_at_point(cams)[:2]
    best = None
    offset = rng.uniform(0, 2 * np.pi)
    for k in range(max_yaw_tries):
      yaw = offset + 2 * np.pi * k / max_yaw_tries
      world = place(world_zup, target, yaw)
      frac = np.mean([in_view(*_view(world, cam, True)[::-1], cam.width,
                              cam.height).mean() for cam in cams])
      if best is None or frac > best[0] + 1e-9:
        best = (frac, world)
      if frac == 1.0:
        break
    return [(cam, best[1], True) for cam in cams]
  world = place(world_zup, (0.0, 0.0), rng.uniform(0, 2 * np.pi))
  height = float(np.median(world[:, 0, 2]))
  views = []
  for k in range(num_random):
    cam = camera_lib.random_camera(rng, target_world_mm=(0, 0, height),
                                   camera_id=f"random{k}")
    # Backing away along the optical axis keeps the subject where it was
    # in the image and shrinks it until the whole motion fits.
    dist = np.linalg.norm(cam.center_world_mm - (0, 0, height))
    for back in np.linspace(0.0, 1.5, 7):
      moved = dataclasses.replace(cam, center_world_mm=(
          cam.center_world_mm - back * dist * cam.R_world_to_cam[2]))
      kp3d, kp2d = _view(world, moved, False)
      if in_view(kp2d, kp3d, cam.width, cam.height).mean() >= 0.99:
        break
    views.append((moved, world, False))
  return views


def convert_sequences(items, cameras="h36m", cameras_json=None, fps=50.0,
                      noise_px=0.0, val_subjects=DEFAULT_VAL, seed=0,
                      num_random_cameras=4, min_frames=27,
                      progress=False, action_regex=None,
                      gaps: convert_util.Gaps | None = None) -> dict:
  """Mocap sequences -> {'train': arrays, 'test': arrays} (test =
  validation), each split present when it has sequences.

  Args:
    items: from `read_inputs`: (stem, name, (F, 17, 3) mm, fps, up_axis).
    cameras: 'h36m' (real calibrations: `cameras_json`, a path or loaded
      {(subject, id): Camera}; None = the 44 shipped with the package) or
      'random'.
    fps: output frame rate (resampled); None keeps each source's.
    noise_px: detector-like 2D noise (0: exact projection, input_2d 'gt').
    val_subjects: see `is_validation`.
    seed: everything random (camera choice, heading, noise) derives from it.
    min_frames: shortest in-view part kept.
    action_regex: a pattern with a group 'action' that takes each
      sequence's action from '<file stem>/<name>' (see `_subject_action`).
    gaps: collects what is left out: sequences shorter than `min_frames`,
      camera views never `min_frames` frames in view.
  """
  if cameras not in ("h36m", "random"):
    raise ValueError(f"cameras must be 'h36m' or 'random', got {cameras!r}")
  h36m_cams = None
  if cameras == "h36m":
    h36m_cams = (cameras_json if isinstance(cameras_json, dict)
                 else camera_lib.load_h36m_cameras(cameras_json))
  settings = dict(cameras=cameras, h36m_cams=h36m_cams, fps=fps,
                  noise_px=noise_px, num_random=num_random_cameras,
                  min_frames=min_frames,
                  gaps=gaps if gaps is not None else convert_util.Gaps())
  pattern = (compile_action_regex(action_regex)
             if isinstance(action_regex, str) else action_regex)
  splits = {"train": [], "test": []}
  cut, unmatched = 0, []
  for i, (stem, name, kp3d, src_fps, up_axis) in enumerate(
      tqdm(items, disable=not progress, desc="sequences")):
    subject, action = _subject_action(stem, name, pattern)
    if pattern and not pattern.search(f"{stem}/{name}"):
      unmatched.append(f"{stem}/{name}")
    split = "test" if is_validation(stem, name, val_subjects) else "train"
    seqs, num_cut = _convert_item(np.random.default_rng([seed, i]), stem,
                                  name, (subject, action),
                                  (kp3d, src_fps, up_axis), **settings)
    splits[split] += seqs
    cut += num_cut
  if cut:
    logging.info("mocap: %d frame views left the image and were cut out",
                 cut)
  if unmatched:
    logging.warning("--action_regex matched %d of %d sequence names (not "
                    "e.g. %s); the others keep their folder or file name as "
                    "action", len(items) - len(unmatched), len(items),
                    ", ".join(unmatched[:3]))
  via = "Human3.6M calibrations" if cameras == "h36m" else "random cameras"
  desc = (f"mocap ({', '.join(sorted({s for s, *_ in items}))}) via {via}, "
          f"noise {noise_px:g} px, {fps or 'source'} fps, seed {seed}")
  input_2d = "detected" if noise_px > 0 else "gt"
  return {split: convert_util.pack(seqs, layout="h36m17", input_2d=input_2d,
                                   source=desc)
          for split, seqs in splits.items() if seqs}


def _convert_item(rng, stem, name, subject_action, motion, *, cameras,
                  h36m_cams, fps, noise_px, num_random, min_frames, gaps):
  """One mocap sequence seen by its cameras -> (sequence dicts, number of
  frame views cut because a joint left the image)."""
  (subject, action), (kp3d, src_fps, up_axis) = subject_action, motion
  out_fps = fps or src_fps
  world = to_z_up(resample(kp3d, src_fps, out_fps), up_axis)
  if len(world) < min_frames:
    gaps.leave_out("sequence shorter than min_frames", f"{stem}/{name}",
                   f"{len(world)} frames at {out_fps:g} fps",
                   f"at least --min_frames={min_frames}")
    return [], 0
  seqs, cut = [], 0
  for cam, placed, distort in make_views(world, rng, cameras, h36m_cams,
                                         num_random):
    kp3d_cam, kp2d = _view(placed, cam, distort)
    runs = _runs(in_view(kp2d, kp3d_cam, cam.width, cam.height), min_frames)
    cut += len(kp2d) - sum(e - s for s, e in runs)
    view = f"{stem}/{name}/{cam.subject or 'random'}/{cam.camera_id}"
    if not runs:
      gaps.leave_out("camera view without min_frames frames in view", view,
                     "a joint leaves the image in every stretch of "
                     f"{min_frames} frames", "the whole body in view for "
                     f"at least --min_frames={min_frames} frames")
    for k, (s, e) in enumerate(runs):
      seq_name = view
      if len(runs) > 1 or (s, e) != (0, len(kp2d)):
        seq_name += f"#{k}"
      noisy, conf = detector_noise(rng, kp2d[s:e], noise_px)
      seqs.append(convert_util.camera_sequence(
          seq_name, subject, action, cam, kp3d_cam[s:e], noisy, out_fps,
          conf))
  return seqs, cut


def convert(inputs, output_dir, cameras="h36m", cameras_json=None,
            fps=50.0, noise_px=0.0, val_subjects=DEFAULT_VAL, seed=0,
            num_random_cameras=4, min_frames=27, bvh_mapping=None,
            bvh_unit_mm=CMU_UNIT_MM, source_fps=None, up_axis=None,
            progress=False, action_regex=None,
            gaps: convert_util.Gaps | None = None) -> dict:
  """Reads `inputs` (npz / BVH paths), converts, writes train.npz and
  test.npz (validation) under `output_dir`; returns {split: path}.

  Both splits must come out non-empty, except that `val_subjects` empty
  asks for no validation split (only train.npz is written, with a warning).
  Other arguments: see `convert_sequences` and `read_inputs`.
  """
  pattern = compile_action_regex(action_regex)
  items = read_inputs(inputs, bvh_mapping, bvh_unit_mm,
                      source_fps=source_fps, up_axis=up_axis)
  splits = convert_sequences(items, cameras, cameras_json, fps, noise_px,
                             val_subjects, seed, num_random_cameras,
                             min_frames, progress, pattern, gaps)
  selectors = {"train": "the sequences --val_subjects does not select"}
  val = ",".join(str(v).strip() for v in val_subjects if str(v).strip())
  if val:
    selectors["test"] = (f"--val_subjects={val} (a number N: CMU subject N; "
                         "else a prefix of '<file stem>/<sequence name>')")
  else:
    logging.warning("no validation split asked for (val_subjects empty): "
                    "writing %s only", os.path.join(output_dir, "train.npz"))
  convert_util.require_splits(splits, ",".join(inputs), selectors)
  return convert_util.write_splits(splits, output_dir)
