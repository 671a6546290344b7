"""2D keypoint files from real detectors -> clean H36M-17 tracks.

Owns the input side of in-the-wild inference (SPEC.md §5): reading detector
output, following each person across frames (`tracking`), filling missed
detections, converting COCO-17 / Halpe-26 / OpenPose BODY_25 and COCO-18 to
Human3.6M-17 and normalising to the model's input.

Readers (`read_tracks`, format picked by `detect_format`):

* ``videopose3d``: VideoPose3D "custom" npz (`prepare_data_2d_custom.py`):
  ``positions_2d`` = {video: {'custom': [(F, K, 2) px, ...]}}, ``metadata`` =
  {'layout_name': 'coco' | 'h36m', 'video_metadata': {video: {'w', 'h'}}}.
  One track per array; no confidences (conf = 1).
* ``mmpose``: MMPose ``--save-predictions`` JSON, as written by the demos
  (``{"meta_info": ..., "instance_info": [{"frame_id", "instances"}]}``), the
  inferencer for videos (``[{"frame_id", "instances"}]``) or for one image
  (``[instance, ...]``); an instance holds ``keypoints`` (K, 2) px,
  ``keypoint_scores`` (K,) and, from tracking demos, ``track_id``.
* ``alphapose``: AlphaPose results JSON, a list of
  ``{"image_id", "category_id", "keypoints": [x, y, score] * K, "score",
  "idx"}`` grouped by ``image_id``; frame order = the last integer in the
  image id. ``idx`` is a person id only where it is a number (tracking on).
* ``openpose``: an OpenPose ``--write_json`` folder, one
  ``<video>_<frame:012d>_keypoints.json`` per frame (or one such file):
  ``{"people": [{"person_id", "pose_keypoints_2d": [x, y, c] * K}]}`` with
  K = 25 (BODY_25) or 18 (COCO-18). Files are ordered by the frame number in
  their names (natural order of the names where they have none); a person
  whose keypoints are all 0 is absent; ``person_id`` >= 0 (``--tracking``)
  is a person id. The track is named after the folder.
* ``demo_npz``: the ``input_2D/keypoints.npz`` of the MHFormer,
  PoseFormerV2, P-STMO and MotionAGFormer demos: ``reconstruction`` (persons,
  F, 17, 2) px in H36M-17 order (MotionAGFormer: (persons, F, 17, 3), the
  HRNet score appended), optionally ``scores`` (persons, F, 17). Frames where
  a person's keypoints are all 0 are frames without that person. Tracks are
  named after the video folder (``<video>/input_2D/keypoints.npz``).
* ``array``: plain ``.npy`` (F, K, 2|3) or ``.npz`` of such arrays (one track
  per array, each a separate sequence; optional scalar entries
  ``image_size`` (w, h) and ``fps``); a third channel is the confidence.
  Layout H36M-17 unless told otherwise.

The joint layout of MMPose / AlphaPose JSON is taken from K: 17 = COCO-17,
26 = Halpe-26, 133 = COCO-WholeBody and 136 = Halpe-136 (their first 17 / 26
keypoints are COCO-17 / Halpe-26). A ``layout`` argument overrides it, e.g.
for a 2D model trained on Human3.6M that outputs H36M-17.

Several people (``persons``): files that hold the people of one video
(MMPose, AlphaPose, OpenPose, demo npz) are split into person tracks by
`tracking.link` (the file's person ids where it has them, else association
frame to frame). ``persons='main'`` keeps the main person, the track with the
largest summed confidence (the person seen longest and most clearly; see
`tracking`), named after the video; ``persons='all'`` keeps every person,
named ``<video>_person<id>`` (id = the file's person id, else the order of
first appearance; demo npz: the row). Each track spans its person's first to
last detected frame (``Track.frame_ids``). VideoPose3D and plain arrays hold
one sequence per array and are read whole.

Values. Coordinates and confidences must be finite: NaN or infinity is an
error (mark a missed joint with (0, 0) or confidence 0). A confidence must be
a score: heatmap and SimCC detectors overshoot 1 (HRNet, RSN and RTMPose
reach about 1.3, mmpose issues 884 and 3122) and RTMPose scores joints it
lost <= 0, so scores in (1, 2] are clipped to 1 and scores in [-1, 0) count as
missed joints, with a warning; anything outside [-1, 2] is an error (a third
channel of depths, pixels or percentages is not a confidence).

Missed detections: a joint is missing where it is exactly (0, 0) (the
detectors' "not found" value) or its confidence is <= 0; a frame without the
person has every joint missing. Missing joints are linearly interpolated over
time from the valid frames of the same joint (held constant before the first
and after the last valid frame) and get confidence 0, so the model knows they
are guesses; ``Track.interpolated`` flags the frames that had any joint
filled in. A joint never detected in the whole track is placed at the
per-frame centroid of the detected joints (conf 0) with a warning. A track
with no valid joint at all is an error.

Conversion to H36M-17 (`to_h36m`), limbs 1:1, derived joints get the minimum
confidence of their sources:

=========  ============================  ==============  =====================
H36M       from COCO-17                  from Halpe-26   from OpenPose BODY_25
                                                         / COCO-18
=========  ============================  ==============  =====================
0 Hip      mid(l_hip 11, r_hip 12)       hip 19          mid(RHip, LHip)
7 Spine    mid(Hip, Thorax)              mid(hip 19,     mid(Hip, Thorax)
           = mean(5, 6, 11, 12)          neck 18)
8 Thorax   mid(l_shoulder 5,             neck 18         Neck 1
           r_shoulder 6)
9 Nose     nose 0                        nose 0          Nose 0
10 Head    2 * mid(eyes 1, 2) - nose 0   head 17         2 * mid(REye, LEye)
                                                         - Nose
=========  ============================  ==============  =====================

COCO has no head-top keypoint. Our Head is the nose mirrored through the
midpoint of the eyes, i.e. one eye-to-nose distance above the eyes along the
face's own up direction: MotionAGFormer's demo uses the same extrapolation for
the y coordinate only (``y = eye_l + eye_r - nose``); taking it on both axes
keeps the head on the face axis when the head tilts. The Halpe rules are
MotionBERT's ``halpe2h36m`` (`lib/data/dataset_wild.py`). OpenPose's Neck is
by its training labels the midpoint of the shoulders, i.e. COCO-17's Thorax;
its Hip is taken from the two hips as for COCO-17 (BODY_25's MidHip 8 is the
same point by definition and is not used, so BODY_25 and COCO-18 give the
same skeleton). OpenPose indices: BODY_25 RHip 9, LHip 12, REye 15, LEye 16;
COCO-18 RHip 8, LHip 11, REye 14, LEye 15; both Nose 0, Neck 1, RShoulder 2,
LShoulder 5.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import zipfile
import zlib

from absl import logging
import numpy as np

from opformer_jax.data import camera
from opformer_jax.data import dataset
from opformer_jax import errors
from opformer_jax.errors import DataError
from opformer_jax.formats import tracking
from opformer_jax import skeleton

FORMATS = ("videopose3d", "mmpose", "alphapose", "openpose", "demo_npz",
           "array")
PERSONS = ("main", "all")
# Accepted detector scores (module docstring): clipped to [0, 1] inside.
CONF_RANGE = (-1.0, 2.0)

COCO17_JOINTS = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder",
    "l_elbow", "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee",
    "r_knee", "l_ankle", "r_ankle")
HALPE26_JOINTS = COCO17_JOINTS + (
    "head", "neck", "hip", "l_big_toe", "r_big_toe", "l_small_toe",
    "r_small_toe", "l_heel", "r_heel")
COCO18_JOINTS = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder",
    "l_elbow", "l_wrist", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee",
    "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear")
BODY25_JOINTS = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder",
    "l_elbow", "l_wrist", "mid_hip", "r_hip", "r_knee", "r_ankle", "l_hip",
    "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear", "l_big_toe",
    "l_small_toe", "l_heel", "r_big_toe", "r_small_toe", "r_heel")
JOINT_NAMES = {
    "coco17": COCO17_JOINTS,
    "halpe26": HALPE26_JOINTS,
    "coco18": COCO18_JOINTS,
    "body25": BODY25_JOINTS,
    "h36m17": skeleton.H36M.joints,
}
LAYOUTS = tuple(JOINT_NAMES)

# JSON keypoint count -> (layout, number of leading keypoints that form it).
_JSON_LAYOUTS = {17: ("coco17", 17), 26: ("halpe26", 26),
                 133: ("coco17", 17), 136: ("halpe26", 26)}
_OPENPOSE_LAYOUTS = {25: ("body25", 25), 18: ("coco18", 18)}


def _h36m_rules(layout: str) -> dict:
  """H36M joint -> {source joint: weight}; xy_h36m = sum(weight * xy_src).

  Limbs and the nose map 1:1 by name; the five derived joints follow the
  table of the module docstring.
  """
  names = JOINT_NAMES[layout]
  idx = {n: i for i, n in enumerate(names)}
  rules = {h: {idx[n]: 1.0} for h, n in enumerate(skeleton.H36M.joints)
           if n in idx and n not in ("hip", "spine", "thorax", "head")}
  hips = {idx["l_hip"]: 0.5, idx["r_hip"]: 0.5}
  if "neck" in idx:   # Halpe-26, BODY_25, COCO-18: Thorax = neck.
    thorax = {idx["neck"]: 1.0}
  else:
    thorax = {idx["l_shoulder"]: 0.5, idx["r_shoulder"]: 0.5}
  if "hip" in idx:    # Halpe-26 has its own hip keypoint.
    hips = {idx["hip"]: 1.0}
  if "head" in idx:
    head = {idx["head"]: 1.0}
  else:
    head = {idx["l_eye"]: 1.0, idx["r_eye"]: 1.0, idx["nose"]: -1.0}
  spine = {}
  for src in (hips, thorax):
    for j, w in src.items():
      spine[j] = spine.get(j, 0.0) + w / 2
  rules.update({0: hips, 7: spine, 8: thorax, 10: head})
  return rules


@dataclasses.dataclass(frozen=True)
class Track:
  """One person's 2D keypoints over the frames of one video.

  Attributes:
    name: video / file name the track came from (``_person<id>`` appended
      when every person of a file is kept).
    kp2d: (F, J, 2) float32 pixels, every entry finite (gaps filled).
    conf: (F, J) float32 in [0, 1]; 0 where the joint was filled in.
    layout: joint order, one of `LAYOUTS`.
    image_size: (width, height) px where the file stores it, else None.
    fps: frames per second where the file stores it, else None.
    frame_ids: (F,) int64 source frame number of each row.
    interpolated: (F,) bool, True where any joint of the frame was filled in.
    person: the person's id in a multi-person file, else None.
  """
  name: str
  kp2d: np.ndarray
  conf: np.ndarray
  layout: str
  image_size: tuple[int, int] | None
  fps: float | None
  frame_ids: np.ndarray
  interpolated: np.ndarray
  person: int | None = None

  @property
  def num_frames(self) -> int:
    return self.kp2d.shape[0]


def _first_at(mask: np.ndarray, axes) -> str:
  """'frame 3, joint 5' for the first True entry of `mask` (axes named)."""
  first = np.argwhere(mask)[0]
  return ", ".join(f"{a} {i}" for a, i in zip(axes, first))


def check_values(where: str, kp2d, conf=None,
                 axes=("frame", "joint")) -> None:
  """Raises DataError unless keypoints are finite and conf is a score.

  Args:
    where: file and field, e.g. "clip.npz: field 'reconstruction'".
    kp2d: (..., J, 2) px.
    conf: (..., J) scores or None.
    axes: names of the leading axes of `conf`, for the message.
  """
  kp2d = np.asarray(kp2d)
  bad = ~np.isfinite(kp2d).all(-1)
  if bad.any():
    raise DataError(errors.bad_input(
        where, f"{int(bad.sum())} keypoints are NaN or infinite (first at "
        f"{_first_at(bad, axes)})", "finite pixel coordinates; mark a missed "
        "joint with (0, 0) or confidence 0"))
  if conf is None or np.size(conf) == 0:
    return
  conf = np.asarray(conf)
  bad = ~np.isfinite(conf)
  if bad.any():
    raise DataError(errors.bad_input(
        where, f"{int(bad.sum())} confidences are NaN or infinite (first at "
        f"{_first_at(bad, axes)})", "finite scores in [0, 1]"))
  lo, hi = float(conf.min()), float(conf.max())
  if lo < CONF_RANGE[0] or hi > CONF_RANGE[1]:
    raise DataError(errors.bad_input(
        where, f"confidences range from {lo:.4g} to {hi:.4g} (first outside "
        f"at {_first_at((conf < CONF_RANGE[0]) | (conf > CONF_RANGE[1]), axes)}"
        ")", "scores in [0, 1] (detector overshoot up to 2 is clipped, down "
        "to -1 counts as missed); depths, pixels or percentages are not "
        "confidences"))


def fill_missing(kp2d, conf, where: str = "keypoints"):
  """Clips confidences and interpolates missing joints over time.

  Args:
    kp2d: (F, J, 2) px; missing joints are non-finite or exactly (0, 0).
    conf: (F, J) confidence; missing joints have <= 0 (or NaN).
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
    raise DataError(errors.bad_input(where, "the track has no frames",
                                     "at least one frame"))
  finite_conf = np.isfinite(conf)
  out_of_range = finite_conf & ((conf < 0) | (conf > 1))
  if out_of_range.any():
    logging.warning(
        "%s: %d confidences outside [0, 1] (range %.3g..%.3g): scores above "
        "1 were clipped to 1, scores below 0 count as missed joints.", where,
        int(out_of_range.sum()), conf[finite_conf].min(),
        conf[finite_conf].max())
  conf = np.where(finite_conf, np.clip(conf, 0.0, 1.0), 0.0)
  valid = (np.isfinite(kp2d).all(-1) & ~(kp2d == 0).all(-1) & (conf > 0))
  if not valid.any():
    raise DataError(errors.bad_input(
        where, f"no valid keypoint in any of its {num_frames} frames (all "
        "NaN, (0, 0) or confidence 0)", "at least one detected joint"))
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
    logging.warning("%s: joints %s are never detected; they are placed at "
                    "the centroid of the other joints with confidence 0.",
                    where, never)
    # After the loop every other joint is finite in every frame.
    others = [j for j in range(num_joints) if j not in never]
    kp2d[:, never] = kp2d[:, others].mean(1, keepdims=True)
  conf = np.where(valid, conf, 0.0)
  return (kp2d.astype(np.float32), conf.astype(np.float32),
          ~valid.all(axis=1))


def make_track(name, kp2d, conf, layout, image_size=None, fps=None,
               frame_ids=None, where=None, person=None) -> Track:
  """Validates raw arrays, fills gaps (`fill_missing`) and builds a Track.

  Args:
    name: track name.
    kp2d: (F, J, 2) px, (0, 0) where missing; must be finite.
    conf: (F, J) confidence (`check_values`), or None for all ones.
    layout: joint order of `kp2d`, one of `LAYOUTS`.
    image_size: (w, h) or None.
    fps: frame rate or None.
    frame_ids: (F,) source frame numbers; default 0..F-1.
    where: file and field for messages; default `name`.
    person: person id in a multi-person file, or None.
  """
  where = where or name
  if layout not in JOINT_NAMES:
    raise ValueError(f"Unknown keypoint layout {layout!r}; expected one of "
                     f"{LAYOUTS}.")
  num_joints = len(JOINT_NAMES[layout])
  kp2d = np.asarray(kp2d)
  if kp2d.ndim != 3 or kp2d.shape[1:] != (num_joints, 2):
    raise DataError(errors.bad_input(
        where, f"keypoints have shape {kp2d.shape}",
        f"(F, {num_joints}, 2) for layout {layout}"))
  if conf is None:
    conf = np.ones(kp2d.shape[:2], np.float32)
  conf = np.asarray(conf)
  if conf.shape != kp2d.shape[:2]:
    raise DataError(errors.bad_input(
        where, f"confidences have shape {conf.shape}",
        f"{kp2d.shape[:2]} (F, J)"))
  check_values(where, kp2d, conf)
  kp2d, conf, interpolated = fill_missing(kp2d, conf, where)
  if frame_ids is None:
    frame_ids = np.arange(kp2d.shape[0])
  if image_size is not None:
    image_size = (int(image_size[0]), int(image_size[1]))
  return Track(name=name, kp2d=kp2d, conf=conf, layout=layout,
               image_size=image_size,
               fps=None if fps is None else float(fps),
               frame_ids=np.asarray(frame_ids, np.int64),
               interpolated=interpolated, person=person)


def _conversion_matrix(layout: str) -> np.ndarray:
  """(17, K) weights such that h36m_xy = M @ source_xy."""
  mat = np.zeros((17, len(JOINT_NAMES[layout])), np.float64)
  for h, sources in _h36m_rules(layout).items():
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
    raise DataError(errors.bad_input(
        track.name, "the keypoint file stores no image size",
        "the video's size as --image_size=WIDTH,HEIGHT (image_size=(w, h))"))
  w, h = size
  if w <= 0 or h <= 0:
    raise DataError(errors.bad_input(track.name, f"image size {size}",
                                     "positive width and height"))
  xyc = np.concatenate([track.kp2d, track.conf[..., None]], -1)
  return camera.normalize_screen(xyc, w, h)


# ------------------------------------------------------- opening files

_EXPECTED_FILE = (".npz (VideoPose3D custom, a lifting demo's keypoints.npz "
                  "or plain arrays), .npy, .json (MMPose, AlphaPose, "
                  "OpenPose) or an OpenPose --write_json folder")
_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
          (b"GIF8", "a GIF image"), (b"RIFF", "a RIFF (AVI / WAV) file"),
          (b"\x1aE\xdf\xa3", "a Matroska / WebM video"),
          (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a zip archive"),
          (b"\x93NUMPY", "a NumPy .npy array"))


def _what_is(path: str) -> str | None:
  """What the file's first bytes say it is (images, videos, ...), or None."""
  try:
    with open(path, "rb") as f:
      head = f.read(12)
  except OSError:
    return None
  if head[4:8] == b"ftyp":
    return "an MP4 / MOV video"
  for magic, what in _MAGIC:
    if head.startswith(magic):
      return what
  return None


def _load_npz(path: str, allow_pickle: bool = False,
              keys_only: bool = False) -> dict:
  """Every array of an .npz ({name: array}) or .npy ({None: array}).

  With `keys_only` the values are None (nothing is read or unpickled).

  Raises:
    DataError: a damaged or truncated file, or one that is no NumPy file.
  """
  what = _what_is(path)
  if not what or what == "a zip archive":
    what = dataset.not_numpy(path)
    if what:
      raise DataError(errors.bad_input(
          path, what, "an .npz / .npy file written by numpy.savez / save"))
  try:
    loaded = np.load(path, allow_pickle=allow_pickle)
    if isinstance(loaded, np.ndarray):
      return {None: loaded}
    with loaded:
      return {k: None if keys_only else loaded[k] for k in loaded.files}
  except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error,
          KeyError) as e:
    what = _what_is(path)
    if what and "NumPy" not in what and what != "a zip archive":
      reason = f"is {what}, not NumPy keypoints"
    else:
      detail = str(e).splitlines()[0] if str(e) else type(e).__name__
      reason = f"cannot be read as NumPy data, truncated or damaged ({detail})"
    raise DataError(errors.bad_input(
        path, reason, "an .npz / .npy file written by numpy.savez / save")) \
        from e


def _load_json(path: str):
  try:
    with open(path, "rb") as f:
      return json.loads(f.read())
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    what = _what_is(path)
    if what:
      reason = f"is {what}, not JSON"
    elif isinstance(e, json.JSONDecodeError):
      reason = (f"is not valid JSON ({e.msg} at line {e.lineno} column "
                f"{e.colno}; truncated?)")
    else:
      reason = "is not a text file"
    raise DataError(errors.bad_input(path, reason, "a JSON keypoint file")) \
        from e


def _name(path):
  return os.path.splitext(os.path.basename(os.path.normpath(path)))[0]


def _numeric(path, field, value, expected):
  """`value` as a float32 array, or a DataError naming the field."""
  try:
    arr = np.asarray(value)
  except ValueError:  # Ragged nested lists.
    arr = None
  if arr is None or arr.dtype.kind not in "fiub":
    what = ("rows of different lengths" if arr is None else
            "it holds text" if arr.dtype.kind in "US" else
            "it holds null or mixed values")
    raise DataError(errors.bad_input(
        path, f"{field} is not an array of numbers ({what})", expected))
  return arr.astype(np.float32)


# ----------------------------------------------------------------- readers


def _openpose_files(path: str) -> list[str]:
  """The *_keypoints.json files of an OpenPose folder, in natural order."""
  names = [n for n in os.listdir(path) if n.endswith("_keypoints.json")]
  return [os.path.join(path, n) for n in sorted(names, key=dataset.natural_key)]


def detect_format(path: str) -> str:
  """The reader for `path`, from its extension and content (see FORMATS)."""
  if os.path.isdir(path):
    if _openpose_files(path):
      return "openpose"
    raise DataError(errors.bad_input(
        path, "is a folder without OpenPose *_keypoints.json files",
        _EXPECTED_FILE))
  ext = os.path.splitext(path)[1].lower()
  if ext == ".npy":
    return "array"
  if ext == ".npz":
    keys = _load_npz(path, keys_only=True).keys()
    if "positions_2d" in keys:
      return "videopose3d"
    return "demo_npz" if "reconstruction" in keys else "array"
  if ext == ".json":
    data = _load_json(path)
    if isinstance(data, dict) and "instance_info" in data:
      return "mmpose"
    if isinstance(data, dict) and "people" in data:
      return "openpose"
    if isinstance(data, list) and data and isinstance(data[0], dict):
      if "instances" in data[0] or "keypoint_scores" in data[0]:
        return "mmpose"
      if "image_id" in data[0] and "keypoints" in data[0]:
        return "alphapose"
    raise DataError(errors.bad_input(
        path, "unrecognised JSON keypoints", "MMPose predictions "
        "({'instance_info': [{'frame_id', 'instances'}]} or a list of them), "
        "AlphaPose results ([{'image_id', 'keypoints', 'score'}]) or OpenPose "
        "({'people': [{'pose_keypoints_2d'}]})"))
  what = _what_is(path)
  raise DataError(errors.bad_input(
      path, f"unknown keypoint file type {ext or '(none)'!r}" +
      (f" ({what})" if what else ""), _EXPECTED_FILE))


def read_tracks(path: str, fmt: str = "auto", layout: str | None = None,
                persons: str = "main") -> list[Track]:
  """Reads the tracks of a keypoint file or folder, in its own joint layout.

  Args:
    path: the file (an OpenPose folder for 'openpose').
    fmt: one of `FORMATS`, or "auto" (`detect_format`).
    layout: overrides the file's joint layout (one of `LAYOUTS`).
    persons: 'main' or 'all' people of a multi-person file (module
      docstring); other formats are read whole.

  Returns:
    Tracks with gaps filled (module docstring); convert with `to_h36m`.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(errno.ENOENT, "keypoint file not found", path)
  if layout is not None and layout not in JOINT_NAMES:
    raise ValueError(f"Unknown keypoint layout {layout!r}; expected one of "
                     f"{LAYOUTS}.")
  if persons not in PERSONS:
    raise ValueError(f"persons={persons!r}; expected one of {PERSONS}.")
  if fmt == "auto":
    fmt = detect_format(path)
  readers = {"videopose3d": _read_videopose3d, "mmpose": _read_mmpose,
             "alphapose": _read_alphapose, "openpose": _read_openpose,
             "demo_npz": _read_demo_npz, "array": _read_array}
  if fmt not in readers:
    raise ValueError(f"Unknown keypoint format {fmt!r}; expected 'auto' or "
                     f"one of {FORMATS}.")
  if os.path.isdir(path) and fmt != "openpose":
    raise DataError(errors.bad_input(path, f"is a folder; --format={fmt} "
                                     "reads a file", _EXPECTED_FILE))
  return readers[fmt](path, layout, persons)


def load_h36m(path: str, fmt: str = "auto", layout: str | None = None,
              persons: str = "main") -> list[Track]:
  """`read_tracks` then `to_h36m`: H36M-17 tracks ready to normalise."""
  return [to_h36m(t) for t in read_tracks(path, fmt, layout, persons)]


def _read_videopose3d(path, layout, persons):
  del persons  # One sequence per array.
  # The format is pickled python dicts; allow_pickle is unavoidable here.
  data = _load_npz(path, allow_pickle=True)
  for field in ("positions_2d", "metadata"):
    if field not in data:
      raise DataError(errors.bad_input(
          path, f"missing field {field!r}", "a VideoPose3D custom npz "
          "(positions_2d, metadata)"))
  try:
    positions = data["positions_2d"].item()
    metadata = data["metadata"].item()
    assert isinstance(positions, dict) and isinstance(metadata, dict)
  except (ValueError, AssertionError) as e:
    raise DataError(errors.bad_input(
        path, "positions_2d / metadata are not pickled dicts",
        "{video: {'custom': [(F, J, 2) array]}} and {'layout_name', "
        "'video_metadata'}")) from e
  names = {"coco": "coco17", "h36m": "h36m17"}
  layout_name = metadata.get("layout_name")
  if layout is None:
    if layout_name not in names:
      raise DataError(errors.bad_input(
          path, f"metadata['layout_name'] = {layout_name!r}",
          f"one of {sorted(names)} (or pass a layout)"))
    layout = names[layout_name]
  sizes = metadata.get("video_metadata", {})
  tracks = []
  for video, cams in positions.items():
    if not isinstance(cams, dict) or "custom" not in cams:
      raise DataError(errors.bad_input(
          path, f"positions_2d[{video!r}] has no 'custom' entry",
          "a dict with key 'custom' holding a list of (F, J, 2) arrays"))
    arrays = cams["custom"]
    size = sizes.get(video)
    size = None if size is None else (size["w"], size["h"])
    for i, arr in enumerate(arrays):
      field = f"positions_2d[{video!r}]['custom'][{i}]"
      arr = _numeric(path, field, arr, "an (F, J, 2) array of pixels")
      if arr.ndim == 3 and arr.shape[-1] == 3:
        arr, conf = arr[..., :2], arr[..., 2]
      else:
        conf = None
      name = video if len(arrays) == 1 else f"{video}[{i}]"
      tracks.append(make_track(name, arr, conf, layout, size,
                               where=f"{path}: {field}"))
  if not tracks:
    raise DataError(errors.bad_input(path, "positions_2d holds no video",
                                     "at least one video"))
  return tracks


def _frame_step(frames, where) -> int:
  """The spacing of a file's frame numbers (gcd of their differences)."""
  nums = np.unique(np.asarray(list(frames), np.int64))
  step = int(np.gcd.reduce(np.diff(nums))) if len(nums) > 1 else 1
  if step > 1:
    logging.info("%s: frame numbers step by %d; that is one frame.", where,
                 step)
  return max(step, 1)


def _json_layout(path, layout, num_kp, table):
  """(layout, number of leading keypoints used) for K keypoints per person."""
  if layout is None:
    if num_kp not in table:
      expected = ", ".join(f"{k} ({v[0]})" for k, v in table.items())
      raise DataError(errors.bad_input(
          path, f"{num_kp} keypoints per person",
          f"{expected}, or pass a layout"))
    return table[num_kp]
  keep = len(JOINT_NAMES[layout])
  if num_kp < keep:
    raise DataError(errors.bad_input(path, f"{num_kp} keypoints per person",
                                     f"at least {keep} for layout {layout}"))
  return layout, keep


def _person_tracks(path, name, dets, layout, persons, frames,
                   table=None) -> list[Track]:
  """Tracks of the people of one video from its per-frame detections.

  Args:
    path: the file, for messages.
    name: the video's name.
    dets: `tracking.Detection`s of every frame, all with K keypoints.
    layout: joint layout, or None to take it from K through `table`.
    persons: 'main' or 'all'.
    frames: every frame number the file holds (frames without people too).
    table: K -> (layout, keypoints used); default MMPose / AlphaPose's.
  """
  if not dets:
    raise DataError(errors.bad_input(
        path, f"no person detected ({len(set(frames))} frames read)",
        "at least one person"))
  layout, keep = _json_layout(path, layout, dets[0].kp.shape[0],
                              table or _JSON_LAYOUTS)
  step = _frame_step(frames, path)
  people, ids = tracking.link(dets, where=path)
  if not people:
    raise DataError(errors.bad_input(
        path, "no person with a detected keypoint (all (0, 0) or score 0)",
        "at least one detected joint"))
  if persons == "main":
    main = tracking.main_track(people)
    if len(people) > 1:
      logging.info("%s: %d people; kept the main one (%d of %d frames).",
                   path, len(people), len(people[main]), len(set(frames)))
    chosen = [(name, people[main], None)]
  else:
    # No dot in the name: output files are named after it, minus extension.
    base = name.replace(".", "_")
    chosen = [(f"{base}_person{i}", p, i) for p, i in zip(people, ids)]
  tracks = []
  for track_name, person, pid in chosen:
    first = person[0].frame
    frame_ids = np.arange(first, person[-1].frame + 1, step)
    kp2d = np.zeros((len(frame_ids), keep, 2), np.float32)
    conf = np.zeros((len(frame_ids), keep), np.float32)
    for d in person:
      kp2d[(d.frame - first) // step] = d.kp[:keep]
      conf[(d.frame - first) // step] = d.score[:keep]
    tracks.append(make_track(track_name, kp2d, conf, layout,
                             frame_ids=frame_ids, where=path, person=pid))
  return tracks


def _detection(path, field, frame, kp, scores, num_kp, track_id=None):
  """A validated `tracking.Detection` of one person in one frame."""
  kp = _numeric(path, f"{field}['keypoints']", kp, "[[x, y], ...] pixels")
  if kp.ndim != 2 or kp.shape[1] != 2 or (num_kp and kp.shape[0] != num_kp):
    raise DataError(errors.bad_input(
        path, f"{field}['keypoints'] has shape {kp.shape}",
        f"({num_kp or 'K'}, 2) pixel keypoints (a 3D lifter's output cannot "
        "be lifted again)"))
  scores = (np.ones(kp.shape[0], np.float32) if scores is None else
            _numeric(path, f"{field}['keypoint_scores']", scores,
                     "a list of K scores").reshape(-1))
  if scores.shape != (kp.shape[0],):
    raise DataError(errors.bad_input(
        path, f"{field}['keypoint_scores'] has shape {scores.shape}",
        f"({kp.shape[0]},)"))
  check_values(f"{path}: {field}", kp, scores, axes=("joint",))
  return tracking.Detection(frame, kp, scores, track_id)


def _int_id(value) -> int | None:
  """A person id given as a number (not a list, bool or float fraction)."""
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return None
  return int(value) if float(value).is_integer() else None


def _structure_error(path, what, expected):
  return DataError(errors.bad_input(path, what, expected))


def _read_mmpose(path, layout, persons):
  data = _load_json(path)
  if isinstance(data, dict):
    if "instance_info" not in data:
      raise _structure_error(path, "MMPose JSON object without "
                             "'instance_info'", "{'meta_info', "
                             "'instance_info': [{'frame_id', 'instances'}]}")
    data = data["instance_info"]
  if not isinstance(data, list) or not all(isinstance(f, dict) for f in data):
    raise _structure_error(path, "'instance_info' is not a list of objects",
                           "[{'frame_id': int, 'instances': [...]}, ...]")
  if data and "instances" not in data[0]:
    data = [{"frame_id": 0, "instances": data}]  # One image's instances.
  dets, frames, num_kp = [], [], 0
  for n, frame in enumerate(data):
    insts = frame.get("instances")
    if not isinstance(insts, list):
      raise _structure_error(path, f"frame entry [{n}] has no 'instances' "
                             "list", "{'frame_id': int, 'instances': [...]}")
    fid = _int_id(frame.get("frame_id", n))
    fid = n if fid is None else fid
    frames.append(fid)
    for i, inst in enumerate(insts):
      field = f"[{n}]['instances'][{i}]"
      if not isinstance(inst, dict) or "keypoints" not in inst:
        raise _structure_error(path, f"{field} has no 'keypoints'",
                               "{'keypoints', 'keypoint_scores'}")
      det = _detection(path, field, fid, inst["keypoints"],
                       inst.get("keypoint_scores"), num_kp,
                       _int_id(inst.get("track_id")))
      num_kp = det.kp.shape[0]
      dets.append(det)
  return _person_tracks(path, _name(path), dets, layout, persons, frames)


def _image_number(image_id):
  if isinstance(image_id, int):
    return image_id
  digits = re.findall(r"\d+", os.path.splitext(os.path.basename(
      str(image_id)))[0])
  return int(digits[-1]) if digits else None


def _flat_keypoints(path, field, flat, num_kp):
  """[x, y, score] * K -> (kp (K, 2), score (K,)) float32."""
  flat = _numeric(path, field, flat, "a flat list [x, y, score] * K")
  flat = flat.reshape(-1)
  if flat.size % 3 or (num_kp and flat.size != 3 * num_kp):
    raise DataError(errors.bad_input(
        path, f"{field} has {flat.size} values",
        f"3 * {num_kp or 'K'} ([x, y, score] per keypoint)"))
  xys = flat.reshape(-1, 3)
  return xys[:, :2], xys[:, 2]


def _read_alphapose(path, layout, persons):
  data = _load_json(path)
  if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
    raise _structure_error(
        path, "AlphaPose results are not a list of objects",
        "[{'image_id', 'keypoints', 'score'}, ...] (the default --format, "
        "not cmu / open)")
  numbers = [_image_number(d.get("image_id")) for d in data]
  if any(n is None for n in numbers):
    # Without numbers in the names, AlphaPose's own (frame) order is used.
    order = {}
    for d in data:
      order.setdefault(str(d.get("image_id")), len(order))
    numbers = [order[str(d.get("image_id"))] for d in data]
  dets, num_kp = [], 0
  for n, (det, frame) in enumerate(zip(data, numbers)):
    field = f"[{n}]['keypoints']"
    kp, sc = _flat_keypoints(path, field, det.get("keypoints", []), num_kp)
    dets.append(_detection(path, f"[{n}]", frame, kp, sc, num_kp,
                           _int_id(det.get("idx"))))
    num_kp = kp.shape[0]
  return _person_tracks(path, _name(path), dets, layout, persons, numbers)


def _openpose_frame(path, fname, frame, num_kp):
  """The detections of one OpenPose per-frame file."""
  data = _load_json(fname)
  if not isinstance(data, dict) or not isinstance(data.get("people"), list):
    raise _structure_error(fname, "no 'people' list",
                           "OpenPose JSON {'version', 'people': [...]}")
  dets = []
  for i, person in enumerate(data["people"]):
    field = f"people[{i}]['pose_keypoints_2d']"
    if not isinstance(person, dict) or "pose_keypoints_2d" not in person:
      raise _structure_error(fname, f"people[{i}] has no 'pose_keypoints_2d'",
                             "OpenPose body keypoints (run with the body on)")
    kp, sc = _flat_keypoints(fname, field, person["pose_keypoints_2d"],
                             num_kp)
    if not kp.size or not (kp.any() or sc.any()):
      continue  # OpenPose lists people it lost with all-zero keypoints.
    pid = person.get("person_id")
    pid = _int_id(pid[0] if isinstance(pid, list) and len(pid) == 1 else pid)
    dets.append(_detection(fname, f"people[{i}]", frame, kp, sc, num_kp,
                           pid if pid is not None and pid >= 0 else None))
    num_kp = kp.shape[0]
  return dets, num_kp


def _read_openpose(path, layout, persons):
  if os.path.isdir(path):
    files, name = _openpose_files(path), _name(path)
    if not files:
      raise DataError(errors.bad_input(
          path, "holds no *_keypoints.json file",
          "an OpenPose --write_json folder"))
  else:
    files, name = [path], re.sub(r"_keypoints$", "", _name(path))
  stems = [re.sub(r"_keypoints\.json$", "", os.path.basename(f))
           for f in files]
  numbered = [re.fullmatch(r"(.*?)(\d+)\D*", stem) for stem in stems]
  frames = list(range(len(files)))  # Without usable numbers: name order.
  if all(numbered):
    videos = sorted({m.group(1) for m in numbered})
    if len(videos) > 1:
      raise DataError(errors.bad_input(
          path, f"holds the frames of {len(videos)} videos ({videos[0]!r}, "
          f"{videos[1]!r}, ...)", "one video's --write_json folder"))
    if len({int(m.group(2)) for m in numbered}) == len(files):
      frames = [int(m.group(2)) for m in numbered]
  order = np.argsort(frames, kind="stable")
  dets, num_kp = [], 0
  for i in order:
    frame_dets, num_kp = _openpose_frame(path, files[i], frames[i], num_kp)
    dets += frame_dets
  return _person_tracks(path, name, dets, layout, persons, frames,
                        table=_OPENPOSE_LAYOUTS)


def _demo_name(path):
  """<video> for <video>/input_2D/keypoints.npz, else the file's stem."""
  parent = os.path.dirname(os.path.abspath(path))
  if os.path.basename(parent) == "input_2D":
    return os.path.basename(os.path.dirname(parent))
  return _name(path)


def _read_demo_npz(path, layout, persons):
  data = _load_npz(path)
  layout = layout or "h36m17"
  num_joints = len(JOINT_NAMES[layout])
  expected = (f"(persons, F, {num_joints}, 2) pixels, or (persons, F, "
              f"{num_joints}, 3) with the score, in {layout} order")
  rec = _numeric(path, "field 'reconstruction'", data["reconstruction"],
                 expected)
  rec = rec[None] if rec.ndim == 3 else rec  # One person saved as (F, J, C).
  if rec.ndim != 4 or rec.shape[2] != num_joints or rec.shape[3] not in (2, 3):
    raise DataError(errors.bad_input(
        path, f"field 'reconstruction' has shape {rec.shape}", expected))
  conf = rec[..., 2] if rec.shape[3] == 3 else None
  if "scores" in data:
    conf = _numeric(path, "field 'scores'", data["scores"], "(persons, F, J)")
    if conf.shape != rec.shape[:3]:
      raise DataError(errors.bad_input(
          path, f"field 'scores' has shape {conf.shape}",
          f"{rec.shape[:3]} (persons, F, J) like 'reconstruction'"))
  if conf is None:
    conf = np.ones(rec.shape[:3], np.float32)
  check_values(f"{path}: field 'reconstruction'", rec[..., :2], conf,
               axes=("person", "frame", "joint"))
  dets = [tracking.Detection(f, rec[m, f, :, :2], conf[m, f], m)
          for m in range(rec.shape[0]) for f in range(rec.shape[1])]
  return _person_tracks(path, _demo_name(path), dets, layout, persons,
                        range(rec.shape[1]), table={num_joints: (layout,
                                                                 num_joints)})


def _read_array(path, layout, persons):
  del persons  # Each array is a sequence of its own.
  layout = layout or "h36m17"
  arrays = _load_npz(path)
  size = fps = None
  npy = None in arrays
  if npy:
    arrays = {_name(path): arrays[None]}
  else:
    size = arrays.pop("image_size", None)
    fps = arrays.pop("fps", None)
    if size is not None:
      size = _numeric(path, "field 'image_size'", size, "(width, height)")
      if size.reshape(-1).shape != (2,):
        raise DataError(errors.bad_input(
            path, f"field 'image_size' has shape {size.shape}",
            "(2,) = (width, height)"))
      size = size.reshape(-1)
    if fps is not None:
      fps = float(_numeric(path, "field 'fps'", fps, "a number").reshape(-1)[0])
  if not arrays:
    raise DataError(errors.bad_input(path, "no keypoint array in the file",
                                     "(F, 17, 2) or (F, 17, 3) arrays"))
  num_joints = len(JOINT_NAMES[layout])
  tracks = []
  for key, arr in arrays.items():
    field = "the array" if npy else f"field {key!r}"
    expected = (f"(F, {num_joints}, 2) or (F, {num_joints}, 3) (x, y, conf) "
                f"for layout {layout}")
    arr = _numeric(path, field, arr, expected)
    if arr.ndim != 3 or arr.shape[1] != num_joints or arr.shape[2] not in (
        2, 3):
      raise DataError(errors.bad_input(path, f"{field} has shape {arr.shape}",
                                       expected))
    conf = arr[..., 2] if arr.shape[2] == 3 else None
    tracks.append(make_track(key, arr[..., :2], conf, layout, size, fps,
                             where=path if npy else f"{path}: {field}"))
  return tracks
