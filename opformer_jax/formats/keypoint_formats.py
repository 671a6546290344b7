"""2D keypoint files from real detectors -> clean H36M-17 tracks.

Owns the input side of in-the-wild inference (SPEC.md §5): reading detector
output, choosing one person per frame, filling missed detections, converting
COCO-17 / Halpe-26 to Human3.6M-17 and normalising to the model's input.

Readers (`read_tracks`, format picked by `detect_format`):

* ``videopose3d``: VideoPose3D "custom" npz (`prepare_data_2d_custom.py`):
  ``positions_2d`` = {video: {'custom': [(F, K, 2) px, ...]}}, ``metadata`` =
  {'layout_name': 'coco' | 'h36m', 'video_metadata': {video: {'w', 'h'}}}.
  One track per array; no confidences (conf = 1).
* ``mmpose``: MMPose ``--save-predictions`` JSON, as written by the demos
  (``{"meta_info": ..., "instance_info": [{"frame_id", "instances"}]}``), the
  inferencer for videos (``[{"frame_id", "instances"}]``) or for one image
  (``[instance, ...]``); an instance holds ``keypoints`` (K, 2) px and
  ``keypoint_scores`` (K,).
* ``alphapose``: AlphaPose results JSON, a list of
  ``{"image_id", "category_id", "keypoints": [x, y, score] * K, "score", ...}``
  grouped by ``image_id``; frame order = the last integer in the image id.
* ``array``: plain ``.npy`` (F, K, 2|3) or ``.npz`` of such arrays (one track
  per array; optional scalar entries ``image_size`` (w, h) and ``fps``); a
  third channel is the confidence. Layout H36M-17 unless told otherwise.

The joint layout of JSON files is taken from K: 17 = COCO-17, 26 = Halpe-26,
133 = COCO-WholeBody and 136 = Halpe-136 (their first 17 / 26 keypoints are
COCO-17 / Halpe-26). A ``layout`` argument overrides it, e.g. for a 2D model
trained on Human3.6M that outputs H36M-17.

Main person: where a frame holds several people, the one with the largest box
around its detected keypoints is kept (the filmed subject is usually the
nearest person); equal boxes go to the higher mean keypoint score. There is no
identity tracking across frames.

Missed detections: a joint is missing where its x or y is not finite, where it
is exactly (0, 0) (the detectors' "not found" value) or where its confidence is
0; a frame with no person has every joint missing, and so do frame numbers
absent between the first and last detected frame. Missing joints are linearly
interpolated over time from the valid frames of the same joint (held constant
before the first and after the last valid frame) and get confidence 0, so the
model knows they are guesses; ``Track.interpolated`` flags the frames that had
any joint filled in. A joint never detected in the whole track is placed at
the per-frame centroid of the detected joints (conf 0) with a warning. A track
with no valid joint at all is an error. Confidences outside [0, 1] (some
detectors output heatmap maxima above 1) are clipped with a warning.

Conversion to H36M-17 (`to_h36m`), limbs 1:1, derived joints get the minimum
confidence of their sources:

=========  =====================================  =========================
H36M       from COCO-17                           from Halpe-26
=========  =====================================  =========================
0 Hip      mid(l_hip 11, r_hip 12)                hip 19
7 Spine    mid(Hip, Thorax) = mean(5, 6, 11, 12)  mid(hip 19, neck 18)
8 Thorax   mid(l_shoulder 5, r_shoulder 6)        neck 18
9 Nose     nose 0                                 nose 0
10 Head    2 * mid(eyes 1, 2) - nose 0            head 17
=========  =====================================  =========================

COCO has no head-top keypoint. Our Head is the nose mirrored through the
midpoint of the eyes, i.e. one eye-to-nose distance above the eyes along the
face's own up direction: MotionAGFormer's demo uses the same extrapolation for
the y coordinate only (``y = eye_l + eye_r - nose``); taking it on both axes
keeps the head on the face axis when the head tilts. The Halpe rules are
MotionBERT's ``halpe2h36m`` (`lib/data/dataset_wild.py`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import warnings

from absl import logging
import numpy as np

from opformer_jax.data import camera
from opformer_jax import skeleton
from opformer_jax.errors import DataError

FORMATS = ("videopose3d", "mmpose", "alphapose", "array")

COCO17_JOINTS = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder",
    "l_elbow", "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee",
    "r_knee", "l_ankle", "r_ankle")
HALPE26_JOINTS = COCO17_JOINTS + (
    "head", "neck", "hip", "l_big_toe", "r_big_toe", "l_small_toe",
    "r_small_toe", "l_heel", "r_heel")
JOINT_NAMES = {
    "coco17": COCO17_JOINTS,
    "halpe26": HALPE26_JOINTS,
    "h36m17": skeleton.H36M.joints,
}
LAYOUTS = tuple(JOINT_NAMES)

# JSON keypoint count -> (layout, number of leading keypoints that form it).
_JSON_LAYOUTS = {17: ("coco17", 17), 26: ("halpe26", 26),
                 133: ("coco17", 17), 136: ("halpe26", 26)}

# Limbs shared by COCO-17 and Halpe-26 (same first 17 joints): H36M <- source.
_LIMBS = {1: 12, 2: 14, 3: 16, 4: 11, 5: 13, 6: 15, 11: 5, 12: 7, 13: 9,
          14: 6, 15: 8, 16: 10, 9: 0}
# H36M joint -> {source joint: weight}; xy_h36m = sum(weight * xy_source).
_TO_H36M = {
    "coco17": {
        0: {11: 0.5, 12: 0.5},
        7: {5: 0.25, 6: 0.25, 11: 0.25, 12: 0.25},
        8: {5: 0.5, 6: 0.5},
        10: {1: 1.0, 2: 1.0, 0: -1.0},
        **{h: {s: 1.0} for h, s in _LIMBS.items()},
    },
    "halpe26": {
        0: {19: 1.0},
        7: {18: 0.5, 19: 0.5},
        8: {18: 1.0},
        10: {17: 1.0},
        **{h: {s: 1.0} for h, s in _LIMBS.items()},
    },
}


@dataclasses.dataclass(frozen=True)
class Track:
  """One person's 2D keypoints over the frames of one video.

  Attributes:
    name: video / file name the track came from.
    kp2d: (F, J, 2) float32 pixels, every entry finite (gaps filled).
    conf: (F, J) float32 in [0, 1]; 0 where the joint was filled in.
    layout: joint order, one of `LAYOUTS`.
    image_size: (width, height) px where the file stores it, else None.
    fps: frames per second where the file stores it, else None.
    frame_ids: (F,) int64 source frame number of each row.
    interpolated: (F,) bool, True where any joint of the frame was filled in.
  """
  name: str
  kp2d: np.ndarray
  conf: np.ndarray
  layout: str
  image_size: tuple[int, int] | None
  fps: float | None
  frame_ids: np.ndarray
  interpolated: np.ndarray

  @property
  def num_frames(self) -> int:
    return self.kp2d.shape[0]


def fill_missing(kp2d, conf, where: str = "keypoints"):
  """Clips confidences and interpolates missing joints over time.

  Args:
    kp2d: (F, J, 2) px; missing joints are non-finite or exactly (0, 0).
    conf: (F, J) confidence; missing joints have 0 (or NaN).
    where: file / track named in warnings and errors.

  Returns:
    kp2d (F, J, 2) float32 all finite, conf (F, J) float32 in [0, 1] with 0 at
    filled joints, interpolated (F,) bool frames with any filled joint.

  Raises:
    DataError: no frame, or no valid joint in any frame.
  """
  kp2d = np.array(kp2d, np.float64)
  conf = np.array(conf, np.float64)
  num_frames, num_joints = conf.shape
  if num_frames == 0:
    raise DataError(f"{where}: the track has no frames.")
  finite_conf = np.isfinite(conf)
  out_of_range = finite_conf & ((conf < 0) | (conf > 1))
  if out_of_range.any():
    warnings.warn(
        f"{where}: {int(out_of_range.sum())} confidences outside [0, 1] "
        f"(range {conf[finite_conf].min():.3g}..{conf[finite_conf].max():.3g})"
        " were clipped to [0, 1].", stacklevel=2)
  conf = np.where(finite_conf, np.clip(conf, 0.0, 1.0), 0.0)
  valid = (np.isfinite(kp2d).all(-1) & ~(kp2d == 0).all(-1) & (conf > 0))
  if not valid.any():
    raise DataError(f"{where}: no valid keypoint in any of its {num_frames} "
                    "frames (all NaN, (0, 0) or confidence 0).")
  frames = np.arange(num_frames)
  never = []
  for j in range(num_joints):
    ok = valid[:, j]
    if ok.all():
      continue
    if not ok.any():
      never.append(j)
      continue
    for c in range(2):
      kp2d[~ok, j, c] = np.interp(frames[~ok], frames[ok], kp2d[ok, j, c])
  if never:
    warnings.warn(f"{where}: joints {never} are never detected; they are "
                  "placed at the centroid of the other joints with "
                  "confidence 0.", stacklevel=2)
    # After the loop every other joint is finite in every frame.
    others = [j for j in range(num_joints) if j not in never]
    kp2d[:, never] = kp2d[:, others].mean(1, keepdims=True)
  conf = np.where(valid, conf, 0.0)
  return (kp2d.astype(np.float32), conf.astype(np.float32),
          ~valid.all(axis=1))


def make_track(name, kp2d, conf, layout, image_size=None, fps=None,
               frame_ids=None, where=None) -> Track:
  """Validates raw arrays, fills gaps (`fill_missing`) and builds a Track.

  Args:
    name: track name.
    kp2d: (F, J, 2) px, NaN / (0, 0) where missing.
    conf: (F, J) confidence, or None for all ones.
    layout: joint order of `kp2d`, one of `LAYOUTS`.
    image_size: (w, h) or None.
    fps: frame rate or None.
    frame_ids: (F,) source frame numbers; default 0..F-1.
    where: file and field for messages; default `name`.
  """
  where = where or name
  if layout not in JOINT_NAMES:
    raise ValueError(f"Unknown keypoint layout {layout!r}; expected one of "
                     f"{LAYOUTS}.")
  num_joints = len(JOINT_NAMES[layout])
  kp2d = np.asarray(kp2d)
  if kp2d.ndim != 3 or kp2d.shape[1:] != (num_joints, 2):
    raise DataError(f"{where}: keypoints have shape {kp2d.shape}; expected "
                    f"(F, {num_joints}, 2) for layout {layout}.")
  if conf is None:
    conf = np.ones(kp2d.shape[:2], np.float32)
  conf = np.asarray(conf)
  if conf.shape != kp2d.shape[:2]:
    raise DataError(f"{where}: confidences have shape {conf.shape}; expected "
                    f"{kp2d.shape[:2]} (F, J).")
  kp2d, conf, interpolated = fill_missing(kp2d, conf, where)
  if frame_ids is None:
    frame_ids = np.arange(kp2d.shape[0])
  if image_size is not None:
    image_size = (int(image_size[0]), int(image_size[1]))
  return Track(name=name, kp2d=kp2d, conf=conf, layout=layout,
               image_size=image_size,
               fps=None if fps is None else float(fps),
               frame_ids=np.asarray(frame_ids, np.int64),
               interpolated=interpolated)


def _conversion_matrix(layout: str) -> np.ndarray:
  """(17, K) weights such that h36m_xy = M @ source_xy."""
  table = _TO_H36M[layout]
  mat = np.zeros((17, len(JOINT_NAMES[layout])), np.float64)
  for h, sources in table.items():
    for s, w in sources.items():
      mat[h, s] = w
  return mat


def to_h36m(track: Track) -> Track:
  """Converts a track to H36M-17 (rules in the module docstring).

  Derived joints get the minimum confidence of their sources, so a joint
  built from a filled-in source keeps confidence 0.
  """
  if track.layout == "h36m17":
    return track
  mat = _conversion_matrix(track.layout)
  kp2d = np.einsum("hk,fkc->fhc", mat, track.kp2d.astype(np.float64))
  used = mat != 0
  conf = np.stack([track.conf[:, used[h]].min(axis=1) for h in range(17)], 1)
  return dataclasses.replace(track, kp2d=kp2d.astype(np.float32),
                             conf=conf.astype(np.float32), layout="h36m17")


def normalize_track(track: Track, image_size=None) -> np.ndarray:
  """Model input (PROTOCOL.md §2.4): (F, J, 3) normalised x, y and conf.

  Args:
    track: any layout (normally H36M-17 from `to_h36m`).
    image_size: (w, h) px; overrides the file's size (a warning says so when
      they differ). Required where the file stores none.
  """
  size = track.image_size
  if image_size is not None:
    image_size = (int(image_size[0]), int(image_size[1]))
    if size is not None and size != image_size:
      logging.warning("%s: using image size %s instead of the file's %s.",
                      track.name, image_size, size)
    size = image_size
  if size is None:
    raise ValueError(
        f"{track.name}: the keypoint file stores no image size; pass the "
        "video's image_size=(width, height).")
  w, h = size
  if w <= 0 or h <= 0:
    raise ValueError(f"{track.name}: image size {size} must be positive.")
  xyc = np.concatenate([track.kp2d, track.conf[..., None]], -1)
  return camera.normalize_screen(xyc, w, h)


# ----------------------------------------------------------------- readers


def detect_format(path: str) -> str:
  """The reader for `path`, from its extension and content (see FORMATS)."""
  ext = os.path.splitext(path)[1].lower()
  if ext == ".npy":
    return "array"
  if ext == ".npz":
    with np.load(path, allow_pickle=False) as data:
      return "videopose3d" if "positions_2d" in data.files else "array"
  if ext == ".json":
    data = _load_json(path)
    if isinstance(data, dict) and "instance_info" in data:
      return "mmpose"
    if isinstance(data, list) and data and isinstance(data[0], dict):
      if "instances" in data[0] or "keypoint_scores" in data[0]:
        return "mmpose"
      if "image_id" in data[0] and "keypoints" in data[0]:
        return "alphapose"
    raise DataError(
        f"{path}: unrecognised JSON keypoints. Expected MMPose predictions "
        "({'instance_info': [{'frame_id', 'instances'}]} or a list of them) "
        "or AlphaPose results ([{'image_id', 'keypoints', 'score'}]).")
  raise DataError(
      f"{path}: unknown keypoint file type {ext or '(none)'!r}; expected .npz "
      "(VideoPose3D custom or plain arrays), .npy (plain arrays) or .json "
      f"(MMPose, AlphaPose). Known formats: {FORMATS}.")


def read_tracks(path: str, fmt: str = "auto",
                layout: str | None = None) -> list[Track]:
  """Reads every track of a keypoint file, in its own joint layout.

  Args:
    path: the file.
    fmt: one of `FORMATS`, or "auto" (`detect_format`).
    layout: overrides the file's joint layout (one of `LAYOUTS`).

  Returns:
    Tracks with gaps filled (module docstring); convert with `to_h36m`.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Keypoint file not found: {path}")
  if layout is not None and layout not in JOINT_NAMES:
    raise ValueError(f"Unknown keypoint layout {layout!r}; expected one of "
                     f"{LAYOUTS}.")
  if fmt == "auto":
    fmt = detect_format(path)
  readers = {"videopose3d": _read_videopose3d, "mmpose": _read_mmpose,
             "alphapose": _read_alphapose, "array": _read_array}
  if fmt not in readers:
    raise ValueError(f"Unknown keypoint format {fmt!r}; expected 'auto' or "
                     f"one of {FORMATS}.")
  return readers[fmt](path, layout)


def load_h36m(path: str, fmt: str = "auto",
              layout: str | None = None) -> list[Track]:
  """`read_tracks` then `to_h36m`: H36M-17 tracks ready to normalise."""
  return [to_h36m(t) for t in read_tracks(path, fmt, layout)]


def _load_json(path):
  try:
    with open(path) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise DataError(f"{path}: not valid JSON ({e}).") from e


def _name(path):
  return os.path.splitext(os.path.basename(path))[0]


def _read_videopose3d(path, layout):
  # The format is pickled python dicts; allow_pickle is unavoidable here.
  with np.load(path, allow_pickle=True) as data:
    for field in ("positions_2d", "metadata"):
      if field not in data.files:
        raise DataError(f"{path}: missing field {field!r} of a VideoPose3D "
                        "custom npz.")
    positions = data["positions_2d"].item()
    metadata = data["metadata"].item()
  names = {"coco": "coco17", "h36m": "h36m17"}
  layout_name = metadata.get("layout_name")
  if layout is None:
    if layout_name not in names:
      raise DataError(f"{path}: metadata['layout_name'] = {layout_name!r}; "
                      f"expected one of {sorted(names)} (or pass a layout).")
    layout = names[layout_name]
  sizes = metadata.get("video_metadata", {})
  tracks = []
  for video, cams in positions.items():
    if not isinstance(cams, dict) or "custom" not in cams:
      raise DataError(f"{path}: positions_2d[{video!r}] must be a dict with "
                      "key 'custom' holding a list of (F, J, 2) arrays.")
    arrays = cams["custom"]
    size = sizes.get(video)
    size = None if size is None else (size["w"], size["h"])
    for i, arr in enumerate(arrays):
      where = f"{path}: positions_2d[{video!r}]['custom'][{i}]"
      arr = np.asarray(arr, np.float32)
      if arr.ndim == 3 and arr.shape[-1] == 3:
        arr, conf = arr[..., :2], arr[..., 2]
      else:
        conf = None
      name = video if len(arrays) == 1 else f"{video}[{i}]"
      tracks.append(make_track(name, arr, conf, layout, size, where=where))
  if not tracks:
    raise DataError(f"{path}: positions_2d holds no video.")
  return tracks


def _frame_numbers(keys, where):
  """Every frame number from the first to the last seen, missing ones too."""
  nums = np.array(sorted(set(keys)), np.int64)
  step = 1
  if len(nums) > 1:
    step = math.gcd(*np.diff(nums).tolist())
    if step > 1:
      logging.info("%s: frame numbers step by %d; that is one frame.", where,
                   step)
  return np.arange(nums[0], nums[-1] + 1, step)


def _main_person(kps, scores):
  """Index of the instance with the largest keypoint box (ties: mean score).

  Args:
    kps: list of (K, 2) arrays; scores: list of (K,) arrays.
  """
  best, best_key = 0, None
  for i, (kp, sc) in enumerate(zip(kps, scores)):
    ok = np.isfinite(kp).all(-1) & ~(kp == 0).all(-1) & (sc > 0)
    area = 0.0
    if ok.sum() >= 2:
      span = kp[ok].max(0) - kp[ok].min(0)
      area = float(span[0] * span[1])
    key = (area, float(np.nanmean(sc)) if len(sc) else 0.0)
    if best_key is None or key > best_key:
      best, best_key = i, key
  return best


def _assemble(path, layout, num_kp, per_frame, name):
  """Builds one track from {frame number: [(kp (K,2), score (K,)), ...]}."""
  if not per_frame:
    raise DataError(f"{path}: no frame with a detected person.")
  if layout is None:
    if num_kp not in _JSON_LAYOUTS:
      raise DataError(
          f"{path}: {num_kp} keypoints per person; expected 17 (COCO-17), 26 "
          "(Halpe-26), 133 (COCO-WholeBody) or 136 (Halpe-136), or pass a "
          "layout.")
    layout, keep = _JSON_LAYOUTS[num_kp]
  else:
    keep = len(JOINT_NAMES[layout])
    if num_kp < keep:
      raise DataError(f"{path}: {num_kp} keypoints per person; layout "
                      f"{layout} needs {keep}.")
  frames = _frame_numbers(per_frame.keys(), path)
  kp2d = np.full((len(frames), keep, 2), np.nan, np.float32)
  conf = np.zeros((len(frames), keep), np.float32)
  crowded = 0
  for row, frame in enumerate(frames):
    people = per_frame.get(int(frame), [])
    if not people:
      continue
    crowded += len(people) > 1
    i = _main_person([p[0] for p in people], [p[1] for p in people])
    kp2d[row] = people[i][0][:keep]
    conf[row] = people[i][1][:keep]
  if crowded:
    logging.info("%s: %d of %d frames hold several people; kept the largest "
                 "each time.", path, crowded, len(frames))
  return make_track(name, kp2d, conf, layout, frame_ids=frames, where=path)


def _person(path, field, kp, scores, num_kp):
  """Validated (kp (K, 2), scores (K,)) float arrays of one instance."""
  kp = np.asarray(kp, np.float32)
  if kp.ndim != 2 or kp.shape[1] != 2 or (num_kp and kp.shape[0] != num_kp):
    raise DataError(
        f"{path}: {field}['keypoints'] has shape {kp.shape}; expected "
        f"({num_kp or 'K'}, 2) pixel keypoints (a 3D lifter's output cannot "
        "be lifted again).")
  scores = (np.ones(kp.shape[0], np.float32) if scores is None else
            np.asarray(scores, np.float32).reshape(-1))
  if scores.shape != (kp.shape[0],):
    raise DataError(f"{path}: {field}['keypoint_scores'] has shape "
                    f"{scores.shape}; expected ({kp.shape[0]},).")
  return kp, scores


def _read_mmpose(path, layout):
  data = _load_json(path)
  if isinstance(data, dict):
    if "instance_info" not in data:
      raise DataError(f"{path}: MMPose JSON dict without 'instance_info'.")
    data = data["instance_info"]
  if not isinstance(data, list):
    raise DataError(f"{path}: MMPose predictions must be a list of frames.")
  if data and "instances" not in data[0]:
    data = [{"frame_id": 0, "instances": data}]  # One image's instances.
  per_frame, num_kp = {}, 0
  for n, frame in enumerate(data):
    if "instances" not in frame:
      raise DataError(f"{path}: frame entry {n} has no 'instances' list.")
    fid = int(frame.get("frame_id", n))
    people = per_frame.setdefault(fid, [])
    for i, inst in enumerate(frame["instances"]):
      field = f"[{n}]['instances'][{i}]"
      if "keypoints" not in inst:
        raise DataError(f"{path}: {field} has no 'keypoints'.")
      kp, sc = _person(path, field, inst["keypoints"],
                       inst.get("keypoint_scores"), num_kp)
      num_kp = kp.shape[0]
      people.append((kp, sc))
  if not any(per_frame.values()):
    raise DataError(f"{path}: no frame with a detected person "
                    f"({len(data)} frames, all without instances).")
  return [_assemble(path, layout, num_kp, per_frame, _name(path))]


def _image_number(image_id):
  if isinstance(image_id, int):
    return image_id
  digits = re.findall(r"\d+", os.path.splitext(os.path.basename(
      str(image_id)))[0])
  return int(digits[-1]) if digits else None


def _read_alphapose(path, layout):
  data = _load_json(path)
  if not isinstance(data, list):
    raise DataError(f"{path}: AlphaPose results must be a JSON list of "
                    "detections (the default --format, not cmu/open).")
  numbers = [_image_number(d.get("image_id")) for d in data]
  if any(n is None for n in numbers):
    # Without numbers in the names, AlphaPose's own (frame) order is used.
    order = {}
    for d in data:
      order.setdefault(str(d.get("image_id")), len(order))
    numbers = [order[str(d.get("image_id"))] for d in data]
  per_frame, num_kp = {}, 0
  for n, (det, frame) in enumerate(zip(data, numbers)):
    field = f"[{n}]"
    flat = np.asarray(det.get("keypoints", []), np.float32).reshape(-1)
    if flat.size % 3 or (num_kp and flat.size != 3 * num_kp):
      raise DataError(
          f"{path}: {field}['keypoints'] has {flat.size} values; expected "
          f"3 * {num_kp or 'K'} ([x, y, score] per keypoint).")
    xys = flat.reshape(-1, 3)
    kp, sc = _person(path, field, xys[:, :2], xys[:, 2], num_kp)
    num_kp = kp.shape[0]
    per_frame.setdefault(frame, []).append((kp, sc))
  return [_assemble(path, layout, num_kp, per_frame, _name(path))]


def _read_array(path, layout):
  layout = layout or "h36m17"
  if path.lower().endswith(".npy"):
    arrays = {_name(path): np.load(path, allow_pickle=False)}
    size = fps = None
  else:
    with np.load(path, allow_pickle=False) as data:
      arrays = {k: data[k] for k in data.files}
    size = arrays.pop("image_size", None)
    fps = arrays.pop("fps", None)
    if size is not None:
      size = np.asarray(size).reshape(-1)
      if size.shape != (2,):
        raise DataError(f"{path}: field 'image_size' has shape {size.shape}; "
                        "expected (2,) = (width, height).")
    if fps is not None:
      fps = float(np.asarray(fps).reshape(()))
  if not arrays:
    raise DataError(f"{path}: no keypoint array in the file.")
  num_joints = len(JOINT_NAMES[layout])
  tracks = []
  for key, arr in arrays.items():
    where = f"{path}: field {key!r}"
    if arr.ndim != 3 or arr.shape[1] != num_joints or arr.shape[2] not in (
        2, 3):
      raise DataError(f"{where} has shape {arr.shape}; expected (F, "
                      f"{num_joints}, 2) or (F, {num_joints}, 3) (x, y, conf) "
                      f"for layout {layout}.")
    arr = arr.astype(np.float32)
    conf = arr[..., 2] if arr.shape[2] == 3 else None
    tracks.append(make_track(key, arr[..., :2], conf, layout, size, fps,
                             where=where))
  return tracks
