"""Human3.6M: constants, names, and readers of the three common formats.

Readers return {'train': arrays, 'test': arrays} in the project NPZ schema
(`dataset.py`; train = S1, S5, S6, S7, S8, test = S9, S11), layout h36m17,
50 fps, one sequence per video, named by its LCN / MotionBERT source id
`s_09_act_02_subact_01_ca_01` (camera index 1..4 in `CAMERA_IDS` order):

* `read_motionbert_pkl`: MotionBERT / MotionAGFormer's
  `h36m_sh_conf_cam_source_final.pkl` (PROTOCOL.md §2.1). It has only the
  image-space label (`kp3d_image`); the test split also has the 2.5D factor.
* `read_videopose3d`: VideoPose3D's `data_3d_h36m.npz` (world metres, 32
  joints) with a `data_2d_h36m_<det>.npz` (PROTOCOL.md §2.2) and the camera
  calibrations (default: the 44 shipped with the package,
  `camera.H36M_CAMERAS_JSON`).
* `read_martinez`: 3d-pose-baseline's `h36m/` folder (PROTOCOL.md §2.3):
  `S*/MyPoses/3D_positions/*.h5` (world mm), `cameras.h5` and Stacked
  Hourglass detections `S*/StackedHourglass/<Action>.<camera>.h5` in MPII-16
  order, mapped to H36M-17 by joint name as 3d-pose-baseline does. MPII-16
  has no H36M "Nose" (neck base, joint 9); we put it at the midpoint of the
  detected Thorax (MPII upper neck) and Head (MPII head top), where the
  Human3.6M joint lies (bones thorax-nose ~121 mm, nose-head ~115 mm).

The camera-based readers write kp3d (camera frame, mm), kp3d_image and
factor (`camera.image_space_label`), so both label spaces and the GT-2D input
mode (kp2d from the projection) work for every layout. Without a 2D file
(`input_2d='gt'`) kp2d is the GT projection with lens distortion, as
VideoPose3D's `data_2d_h36m_gt.npz`; detections carry confidence 1.

They convert what is there (`convert_util.Gaps`): the public releases lack
some files (3d-pose-baseline has no detections of S11 "Directions" camera
54138969, its video being damaged; some mirrors lack 3D takes such as S5
"Discussion 2"). A camera view without detections, or a take with
detections but no 3D, is left out with one warning naming it, and the takes
of each subject are numbered over every file that names them, so the
sequences that are converted are the same as from a complete release.
"""

from __future__ import annotations

import collections
import glob
import os
import pickle
import re

from absl import logging
import numpy as np
from tqdm import tqdm

from opformer_jax import errors
from opformer_jax import skeleton
from opformer_jax.data import camera as camera_lib
from opformer_jax.data import convert_util
from opformer_jax.data import dataset

# Action id (02..16) order.
ACTIONS = ("Directions", "Discussion", "Eating", "Greeting", "Phoning",
           "Posing", "Purchases", "Sitting", "SittingDown", "Smoking",
           "Photo", "Waiting", "Walking", "WalkDog", "WalkTogether")
ACTION_IDS = {a: i + 2 for i, a in enumerate(ACTIONS)}
CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")
# (width, height) px (PROTOCOL.md §2.4).
IMAGE_SIZES = {"54138969": (1000, 1002), "55011271": (1000, 1000),
               "58860488": (1000, 1000), "60457274": (1000, 1002)}
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")
FPS = 50.0
# Human3.6M recorded every action of every subject twice.
TAKES_PER_ACTION = 2

# Name variants -> canonical action (keys: lower case, no separators).
_ALIASES = {"takingphoto": "Photo", "walkingdog": "WalkDog",
            "walkingtogether": "WalkTogether", "discussions": "Discussion"}
_CANON = {a.lower(): a for a in ACTIONS} | _ALIASES
_SOURCE_RE = re.compile(r"^s_(\d+)_act_(\d+)_subact_(\d+)_ca_(\d+)$")

# Stacked Hourglass (MPII-16) output order, in the joint names of
# `skeleton.H36M_JOINT_NAMES` (MPII has no H36M "Nose").
SH_JOINTS = ("RFoot", "RKnee", "RHip", "LHip", "LKnee", "LFoot", "Hip",
             "Spine", "Thorax", "Head", "RWrist", "RElbow", "RShoulder",
             "LShoulder", "LElbow", "LWrist")
NOSE, THORAX, HEAD = 9, 8, 10

# What the readers leave out (`convert_util.Gaps` kinds).
NO_2D_VIEW = "camera view without 2D detections"
NO_2D_TAKE = "take without 2D detections"
NO_3D_TAKE = "take without 3D"


def split_action_name(name: str) -> tuple[str, int | None]:
  """'TakingPhoto 1' -> ('Photo', 1); 'WalkDog' -> ('WalkDog', None).

  Case-insensitive; separators (space, '_', '-') are ignored; a trailing
  number is the sub-action suffix. Raises ValueError for unknown actions.
  """
  m = re.match(r"^(.*?)[\s_-]*(\d+)?$", str(name).strip())
  stem, number = m.group(1), m.group(2)
  key = re.sub(r"[\s_-]", "", stem).lower()
  if key not in _CANON:
    raise ValueError(f"unknown Human3.6M action {name!r}; expected one of "
                     f"{', '.join(ACTIONS)} (or TakingPhoto, WalkingDog), "
                     "optionally followed by a sub-action number")
  return _CANON[key], (int(number) if number is not None else None)


def canonical_action(name: str) -> str:
  """'TakingPhoto 1' -> 'Photo', 'walkingdog' -> 'WalkDog'."""
  return split_action_name(name)[0]


def subaction_numbers(names) -> dict:
  """Sub-action index (1, 2) of each action name of ONE subject.

  VideoPose3D / 3d-pose-baseline names keep Human3.6M's file names, in which
  one of the two takes of an action may have no number ("Greeting" beside
  "Greeting 1"). An explicit number is the sub-action; a name without one
  gets the smallest number its siblings do not use (sibling "X 1" -> 2,
  sibling "X 2" -> 1, alone -> 1). This reproduces the skip list: S9
  "Greeting" -> 2, "SittingDown" -> 2, "Waiting 1" -> 1. Where the explicit
  numbers are not within 1..2 (S5 "Discussion 2" / "Discussion 3") the
  siblings are numbered by rank instead, matching the two sub-action indices
  of the original release. Raises ValueError for unknown or ambiguous names.
  """
  keys = _take_keys(names)
  table = _number_takes(keys)
  return {name: table[key] for key, name in keys.items()}


def _take_keys(names) -> dict:
  """{(action, number or None): name}; two names of one take are an error."""
  keys = {}
  for name in names:
    key = split_action_name(name)
    if key in keys:
      raise ValueError(f"ambiguous sub-actions of {key[0]}: "
                       f"{sorted([keys[key], name])}")
    keys[key] = name
  return keys


def _number_takes(keys) -> dict:
  """{(action, number or None): sub-action} (rule of `subaction_numbers`).

  A subject's takes are numbered together over every file naming them, so a
  take whose sibling is missing from one file keeps its number.
  """
  groups = collections.defaultdict(list)
  for action, number in keys:
    groups[action].append(number)
  out = {}
  for action, numbers in groups.items():
    n = max(TAKES_PER_ACTION, len(numbers))
    used = sorted(u for u in numbers if u is not None)
    bare = [u for u in numbers if u is None]
    if len(bare) > 1:
      raise ValueError(f"ambiguous sub-actions of {action}: {len(bare)} "
                       "takes without a number")
    if all(1 <= u <= n for u in used):
      out.update({(action, u): u for u in used})
      free = [i for i in range(1, n + 1) if i not in used]
      out.update({(action, None): free[0] for _ in bare})
    else:
      ranked = [None] * len(bare) + used
      out.update({(action, u): i + 1 for i, u in enumerate(ranked)})
  return out


def source_id(subject: str, action: str, subaction: int,
              camera_id: str) -> str:
  """('S9', 'Greeting', 2, '54138969') -> 's_09_act_05_subact_02_ca_01'."""
  return (f"s_{int(subject.lstrip('Ss')):02d}_act_"
          f"{ACTION_IDS[canonical_action(action)]:02d}_subact_"
          f"{subaction:02d}_ca_{CAMERA_IDS.index(camera_id) + 1:02d}")


def parse_source(source: str) -> dict:
  """'s_09_act_02_subact_01_ca_01' -> {'subject': 'S9', 'action':
  'Directions', 'subaction': 1, 'camera_id': '54138969'}."""
  m = _SOURCE_RE.match(str(source))
  if not m or not 2 <= int(m.group(2)) <= 16 or not 1 <= int(m.group(4)) <= 4:
    raise ValueError(f"{source!r} is not a Human3.6M source id like "
                     "'s_09_act_02_subact_01_ca_01' (act 02..16, ca 01..04)")
  return {"subject": f"S{int(m.group(1))}",
          "action": ACTIONS[int(m.group(2)) - 2],
          "subaction": int(m.group(3)),
          "camera_id": CAMERA_IDS[int(m.group(4)) - 1]}


def subject_split(subject: str) -> str | None:
  if subject in TRAIN_SUBJECTS:
    return "train"
  if subject in TEST_SUBJECTS:
    return "test"
  return None


def _pack_splits(seqs_by_split: dict, input_2d: str, source: str) -> dict:
  out = {}
  for split, seqs in seqs_by_split.items():
    if seqs:
      out[split] = convert_util.pack(seqs, layout="h36m17", input_2d=input_2d,
                                     source=source)
  if not out:
    raise dataset.DataError(f"{source}: no Human3.6M sequence of subjects "
                            f"{TRAIN_SUBJECTS + TEST_SUBJECTS} found")
  return out


# ---------------------------------------------------------------------------
# (a) MotionBERT pickle.
# ---------------------------------------------------------------------------


def read_motionbert_pkl(path: str, progress: bool = False) -> dict:
  """Reads `h36m_sh_conf_cam_source_final.pkl` (PROTOCOL.md §2.1).

  Sequences are the runs of equal `source`; kp2d = `joint_2d`, conf =
  `confidence` (1 if absent), kp3d_image = `joint3d_image`, factor =
  `2.5d_factor` (test split only; train has none). No camera-frame kp3d.
  Every frame holds its 2D and its label, so this layout has no gaps.

  Returns:
    {'train': arrays, 'test': arrays} for the splits present in the file.
  """
  expected = "MotionBERT's pickled dict {'train': {...}, 'test': {...}}"
  with open(path, "rb") as fobj:
    try:
      data = pickle.load(fobj)
    except Exception as e:  # pylint: disable=broad-except
      raise dataset.DataError(errors.bad_input(
          path, f"not a readable pickle ({convert_util.one_line(e)})",
          expected)) from None
  if not isinstance(data, dict) or not {"train", "test"} & set(data):
    raise dataset.DataError(f"{path}: expected a dict with keys 'train' and "
                            "'test' of per-frame arrays")
  out = {}
  for split in ("train", "test"):
    if split in data:
      out[split] = _motionbert_split(path, split, data[split], progress)
  return out


def _motionbert_split(path, split, d, progress):
  """One split's dict of per-frame arrays -> schema arrays."""
  if not isinstance(d, dict):
    raise dataset.DataError(f"{path}: key '{split}': expected a dict of "
                            "per-frame arrays")
  for key in ("joint_2d", "joint3d_image", "camera_name", "source"):
    if key not in d:
      raise dataset.DataError(f"{path}: key ['{split}']['{key}'] is missing "
                              f"(present: {sorted(d)})")
  k = lambda key: f"['{split}']['{key}']"  # noqa: E731
  arrays = _motionbert_frames(path, d, k)
  arrays.update(_motionbert_sequences(path, d, k, len(arrays["kp2d"]),
                                      progress, split))
  arrays.update(layout="h36m17", input_2d="detected",
                source=f"MotionBERT pickle {os.path.basename(path)} "
                f"[{split}]")
  return arrays


def _motionbert_frames(path, d, k) -> dict:
  """kp2d, conf, kp3d_image and (test split) factor, checked."""
  kp2d = np.asarray(d["joint_2d"])
  if kp2d.ndim == 3 and kp2d.shape[-1] > 2:
    kp2d = kp2d[..., :2]   # MotionBERT reads [..., :2] only.
  kp2d = convert_util.check_array(kp2d, path, k("joint_2d"), ("N", 17, 2))
  n = len(kp2d)
  kp3d_image = convert_util.check_array(d["joint3d_image"], path,
                                        k("joint3d_image"), (n, 17, 3))
  if d.get("confidence") is None:
    conf = np.ones((n, 17), np.float32)
  else:
    conf = np.asarray(d["confidence"])
    if conf.ndim == 3 and conf.shape[-1] == 1:
      conf = conf[..., 0]
    conf = convert_util.check_array(conf, path, k("confidence"), (n, 17))
    if conf.min() < 0 or conf.max() > 1:
      logging.warning("%s: %s outside [0, 1] in %d values; clipped", path,
                      k("confidence"), int(np.sum((conf < 0) | (conf > 1))))
      conf = np.clip(conf, 0, 1)
  arrays = {"kp2d": kp2d, "conf": conf, "kp3d_image": kp3d_image}
  if d.get("2.5d_factor") is not None:
    arrays["factor"] = _motionbert_factor(path, d, k, kp3d_image)
  return arrays


def _motionbert_factor(path, d, k, kp3d_image) -> np.ndarray:
  """`2.5d_factor` (N,), checked against `joints_2.5d_image` when present."""
  n = len(kp3d_image)
  factor = np.asarray(d["2.5d_factor"])
  if factor.shape == (n, 1):
    factor = factor[:, 0]
  factor = convert_util.check_array(factor, path, k("2.5d_factor"), (n,))
  if d.get("joints_2.5d_image") is None:
    logging.warning("%s: %s absent; cannot check 2.5d_factor", path,
                    k("joints_2.5d_image"))
    return factor
  mm = convert_util.check_array(d["joints_2.5d_image"], path,
                                k("joints_2.5d_image"), (n, 17, 3))
  want = kp3d_image * factor[:, None, None].astype(np.float64)
  if not np.allclose(mm, want, rtol=1e-4, atol=1e-2):
    logging.warning("%s: %s differs from joint3d_image * 2.5d_factor by up "
                    "to %.3g mm", path, k("joints_2.5d_image"),
                    np.abs(mm - want).max())
  return factor


def _motionbert_sequences(path, d, k, n, progress, split) -> dict:
  """The per-sequence schema fields from the runs of equal `source`."""
  source = np.asarray(d["source"]).astype(str)
  cams = np.asarray(d["camera_name"]).astype(str)
  for key, a in (("source", source), ("camera_name", cams)):
    if a.shape != (n,):
      raise dataset.DataError(f"{path}: key {k(key)}: has shape {a.shape}, "
                              f"expected ({n},) like joint_2d")
  starts = np.concatenate([[0], np.flatnonzero(source[1:] != source[:-1]) + 1])
  names = source[starts].tolist()
  if len(set(names)) != len(names):
    dup = collections.Counter(names).most_common(1)[0][0]
    raise dataset.DataError(f"{path}: key {k('source')}: the frames of "
                            f"{dup!r} are not contiguous")
  cam_change = np.flatnonzero(cams[1:] != cams[:-1]) + 1
  if not np.isin(cam_change, starts).all():
    bad = cam_change[~np.isin(cam_change, starts)][0]
    raise dataset.DataError(f"{path}: key {k('camera_name')}: changes inside "
                            f"source {str(source[bad])!r} (frame {bad})")
  actions = d.get("action")
  seq = collections.defaultdict(list)
  for s, name in tqdm(list(zip(starts, names)), disable=not progress,
                      desc=f"{split} sequences"):
    try:
      meta = parse_source(name)
    except ValueError as err:
      raise dataset.DataError(f"{path}: key {k('source')}: {err}") from None
    cam = str(cams[s])
    if cam not in IMAGE_SIZES:
      raise dataset.DataError(f"{path}: key {k('camera_name')}: unknown "
                              f"camera {cam!r}; expected one of {CAMERA_IDS}")
    if cam != meta["camera_id"]:
      logging.warning("%s: source %s is camera %s by its index but "
                      "camera_name says %s; using camera_name", path, name,
                      meta["camera_id"], cam)
    if actions is not None:
      _check_action(path, k("action"), name, actions[s], meta["action"])
    seq["subject"].append(meta["subject"])
    seq["action"].append(meta["action"])
    seq["camera"].append(cam)
  return dict(
      seq_offsets=np.append(starts, n), seq_name=np.array(names),
      seq_subject=np.array(seq["subject"]), seq_action=np.array(seq["action"]),
      seq_camera=np.array(seq["camera"]),
      seq_image_size=np.array([IMAGE_SIZES[c] for c in seq["camera"]]),
      seq_fps=np.full(len(names), FPS))


def _check_action(path, key, name, value, action):
  """Warns when the per-frame action label disagrees with the source id."""
  value = value.item() if isinstance(value, np.generic) else value
  if isinstance(value, (int, np.integer)):
    ok = int(value) == ACTION_IDS[action]
  else:
    try:
      ok = canonical_action(str(value)) == action
    except ValueError:
      ok = False
  if not ok:
    logging.warning("%s: %s of %s is %r, its source id says %s", path, key,
                    name, value, action)


# ---------------------------------------------------------------------------
# Cameras and what the camera-based readers share.
# ---------------------------------------------------------------------------


def load_cameras(path: str | None = None) -> dict:
  """{(subject, camera_id): Camera} from an `h36m_cameras.json` (None: the
  calibrations shipped with the package) or 3d-pose-baseline's
  `cameras.h5`."""
  if path is None or path.endswith(".json"):
    return camera_lib.load_h36m_cameras(path)
  return load_martinez_cameras(path)


def load_martinez_cameras(path: str) -> dict:
  """Reads 3d-pose-baseline's `cameras.h5`.

  Groups `subject{N}/camera{1..4}` hold R (stored transposed: X_cam =
  R.T @ (X_world - T)), T (3, 1) camera centre in world mm, f, c (2, 1),
  k (3, 1), p (2, 1) and Name (character codes of the camera id).
  """
  import h5py  # pylint: disable=import-outside-toplevel
  try:
    with h5py.File(path, "r") as hf:
      cams = {}
      for sub in hf:
        m = re.fullmatch(r"subject(\d+)", sub)
        for cam_key in (hf[sub] if m else ()):
          cam = _martinez_camera(path, hf[sub][cam_key], f"{sub}/{cam_key}",
                                 f"S{int(m.group(1))}")
          cams[(cam.subject, cam.camera_id)] = cam
  except OSError as e:
    if e.filename:
      raise
    raise dataset.DataError(errors.bad_input(
        path, f"not a readable HDF5 file ({convert_util.one_line(e)})",
        "3d-pose-baseline's cameras.h5")) from None
  if not cams:
    raise dataset.DataError(f"{path}: no subject*/camera* groups found")
  return cams


def _martinez_camera(path, g, where, subject):
  """One `subject{N}/camera{i}` group of `cameras.h5` -> Camera."""
  vals = {}
  for key, shape in (("R", (3, 3)), ("T", (3, 1)), ("f", (2, 1)),
                     ("c", (2, 1)), ("k", (3, 1)), ("p", (2, 1))):
    if key not in g:
      raise dataset.DataError(f"{path}: key {where}/{key} is missing")
    a = np.asarray(g[key][()], np.float64)
    vals[key] = convert_util.check_array(
        a.reshape(shape) if a.size == np.prod(shape) else a, path,
        f"{where}/{key}", shape)
  name = _h5_name(g["Name"][()]) if "Name" in g else None
  if name not in IMAGE_SIZES:
    idx = int(re.sub(r"\D", "", where.split("/")[-1]) or 0) - 1
    if not 0 <= idx < 4:
      raise dataset.DataError(f"{path}: key {where}/Name: unknown camera "
                              f"{name!r}")
    name = CAMERA_IDS[idx]
  w, h = IMAGE_SIZES[name]
  return camera_lib.make_camera(
      vals["R"].T, vals["T"][:, 0], vals["f"][:, 0], vals["c"][:, 0],
      vals["k"][:, 0], vals["p"][:, 0], w, h, name, subject)


def _h5_name(raw) -> str:
  if isinstance(raw, bytes):
    return raw.decode()
  a = np.asarray(raw)
  if a.dtype.kind in "SU":
    return str(a.reshape(-1)[0].decode() if a.dtype.kind == "S" else
               a.reshape(-1)[0])
  return "".join(chr(int(x)) for x in a.reshape(-1))


def _camera_for(cameras, subject, cam_id, path):
  if (subject, cam_id) not in cameras:
    raise dataset.DataError(f"{path}: no calibration for camera {cam_id} of "
                            f"{subject} (have {len(cameras)} cameras)")
  return cameras[(subject, cam_id)]


def _camera_sequence(world_mm, cam, kp2d, name, subject, action, input_2d):
  """One video: world mm (F, 17, 3) + camera (+ 2D) -> sequence dict."""
  kp3d = camera_lib.world_to_camera(world_mm, cam)
  if input_2d == "gt" and kp2d is None:
    kp2d = camera_lib.project(kp3d, cam.f, cam.c, cam.k, cam.p)
  return convert_util.camera_sequence(name, subject, action, cam, kp3d, kp2d,
                                      FPS)


def _trim_2d(kp2d, num_frames, path, key):
  """2D longer than the mocap is trimmed (VideoPose3D run.py); shorter is an
  error."""
  if len(kp2d) < num_frames:
    raise dataset.DataError(f"{path}: key {key}: has {len(kp2d)} frames, "
                            f"fewer than the {num_frames} 3D frames")
  return kp2d[:num_frames]


def _take_numbers(subject, sources) -> dict:
  """{(action, number): sub-action} of one subject's takes over several
  files; `sources` = [(where, names)], names unique per file."""
  keys = set()
  for where, names in sources:
    try:
      keys.update(_take_keys(names))
    except ValueError as e:
      raise dataset.DataError(f"{where}: {e}") from None
  try:
    return _number_takes(keys)
  except ValueError as e:
    raise dataset.DataError(f"{sources[0][0]}: {subject}: {e}") from None


# ---------------------------------------------------------------------------
# (b) VideoPose3D npz pair.
# ---------------------------------------------------------------------------


def read_videopose3d(path_3d: str, path_2d: str | None = None,
                     cameras: str | dict | None = None,
                     input_2d: str | None = None, progress: bool = False,
                     gaps: convert_util.Gaps | None = None) -> dict:
  """Reads VideoPose3D's `data_3d_h36m.npz` (+ a `data_2d_h36m_*.npz`).

  Args:
    path_3d: positions_3d[subject][action] = (F, 32, 3) world metres.
    path_2d: positions_2d[subject][action] = 4 x (F', 17, 2) px in
      `CAMERA_IDS` order, F' >= F (trimmed to F). None: kp2d = the GT
      projection (with lens distortion).
    cameras: an `h36m_cameras.json` path, a loaded {(subject, id): Camera},
      or None for the calibrations shipped with the package.
    input_2d: 'gt' or 'detected'; default 'gt' for no 2D file or a
      `*_gt.npz`, else 'detected'.
    gaps: collects what is left out: a take of one file missing from the
      other, an empty camera view (default: a non-strict `Gaps`).

  Returns:
    {'train': arrays, 'test': arrays}; S11 "Directions" (corrupt video) is
    dropped as in VideoPose3D.
  """
  gaps = gaps if gaps is not None else convert_util.Gaps()
  cam_source = cameras if isinstance(cameras, str) else (
      camera_lib.H36M_CAMERAS_JSON if cameras is None else path_3d)
  cams = cameras if isinstance(cameras, dict) else load_cameras(cameras)
  pos3d = _vp3d_positions(path_3d, "positions_3d")
  pos2d = None if path_2d is None else _vp3d_positions(path_2d,
                                                       "positions_2d")
  if input_2d is None:
    gt_file = path_2d is None or re.search(
        r"(^|_)gt(\.npz)?$", os.path.basename(path_2d).removesuffix(".npz"))
    input_2d = "gt" if gt_file else "detected"
  seqs = {"train": [], "test": []}
  takes = _vp3d_takes(pos3d, pos2d, path_3d, path_2d, gaps)
  for split, subject, action, subact in tqdm(takes, disable=not progress,
                                             desc="sequences"):
    views = None if pos2d is None else pos2d[subject][action]
    seqs[split] += _vp3d_take(
        pos3d[subject][action], views, (subject, action, subact), cams,
        cam_source, input_2d, (path_3d, path_2d), gaps)
  src = f"VideoPose3D {os.path.basename(path_3d)} + " + (
      os.path.basename(path_2d) if path_2d else "GT projection")
  return _pack_splits(seqs, input_2d, src)


def _vp3d_positions(path, key) -> dict:
  """positions_3d / positions_2d of a VideoPose3D file: {subject: {action:
  ...}} (the 2D file's metadata must say 17 joints)."""
  data = convert_util.read_npz(path, (key, "metadata?"), allow_pickle=True)
  if not isinstance(data[key], dict):
    raise dataset.DataError(errors.bad_input(
        path, f"key '{key}' is not a dict",
        "a pickled dict {subject: {action: arrays}}"))
  meta = data.get("metadata")
  if isinstance(meta, dict) and meta.get("num_joints", 17) != 17:
    raise dataset.DataError(f"{path}: key 'metadata': num_joints is "
                            f"{meta['num_joints']}, expected 17 (h36m)")
  return data[key]


def _vp3d_takes(pos3d, pos2d, path_3d, path_2d, gaps) -> list:
  """[(split, subject, action name, sub-action)] of the takes both files
  hold; a take in only one of them is left out (`gaps`)."""
  takes = []
  for subject in sorted(set(pos3d) | set(pos2d or {}),
                        key=dataset.natural_key):
    split = subject_split(subject)
    if split is None:
      if subject in pos3d:
        logging.warning("%s: subject %s is neither train nor test; skipped",
                        path_3d, subject)
      continue
    names3d = list(pos3d.get(subject, {}))
    names2d = list((pos2d or {}).get(subject, {}))
    numbers = _take_numbers(subject, [
        (f"{path_3d}: positions_3d['{subject}']", names3d),
        (f"{path_2d}: positions_2d['{subject}']", names2d)])
    for action in sorted(set(names3d) | set(names2d)):
      if subject == "S11" and action == "Directions":
        # Corrupt video (VideoPose3D prepare_data_h36m.py).
        gaps.drop("take with a corrupt video (S11 'Directions')", path_3d,
                  "S11 'Directions': VideoPose3D drops its corrupt video")
      elif action not in names3d:
        gaps.leave_out(
            NO_3D_TAKE, path_3d, f"key positions_3d['{subject}']['{action}']"
            " is missing (the 2D file has it)", "3D for every take")
      elif pos2d is not None and action not in names2d:
        gaps.leave_out(
            NO_2D_TAKE, path_2d, f"key positions_2d['{subject}']['{action}']"
            " is missing (the 3D file has it)", "2D for every take")
      else:
        takes.append((split, subject, action,
                      numbers[split_action_name(action)]))
  return takes


def _vp3d_take(world_m, views, take, cams, cam_source, input_2d, paths,
               gaps) -> list:
  """The sequences of one take's four cameras (an empty view is a gap)."""
  (subject, action, subact), (path_3d, path_2d) = take, paths
  key3 = f"positions_3d['{subject}']['{action}']"
  world = convert_util.check_array(world_m, path_3d, key3, ("F", 32, 3))
  world = world[:, skeleton.H36M32_TO_17].astype(np.float64) * 1000.0
  key2 = f"positions_2d['{subject}']['{action}']"
  if views is not None and len(views) != len(CAMERA_IDS):
    raise dataset.DataError(f"{path_2d}: key {key2}: has {len(views)} "
                            f"views, expected {len(CAMERA_IDS)}")
  canon = canonical_action(action)
  seqs = []
  for i, cam_id in enumerate(CAMERA_IDS):
    cam = _camera_for(cams, subject, cam_id, cam_source)
    kp2d = None
    if views is not None:
      if views[i] is None or np.shape(views[i])[:1] == (0,):
        gaps.leave_out(NO_2D_VIEW, path_2d, f"key {key2}[{i}] is empty (no "
                       f"detections of {subject} '{action}' camera {cam_id})",
                       "detections for every camera of every take")
        continue
      kp2d = np.asarray(views[i])
      if kp2d.ndim == 3 and kp2d.shape[-1] > 2:
        kp2d = kp2d[..., :2]
      kp2d = convert_util.check_array(kp2d, path_2d, f"{key2}[{i}]",
                                      ("F", 17, 2))
      kp2d = _trim_2d(kp2d, len(world), path_2d, f"{key2}[{i}]")
    name = source_id(subject, canon, subact, cam_id)
    seqs.append(_camera_sequence(world, cam, kp2d, name, subject, canon,
                                 input_2d))
  return seqs


# ---------------------------------------------------------------------------
# (c) 3d-pose-baseline folder.
# ---------------------------------------------------------------------------


def sh_to_h36m(sh_kp2d: np.ndarray) -> np.ndarray:
  """(F, 16, 2) Stacked Hourglass MPII-16 -> (F, 17, 2) H36M-17 by joint name.

  The H36M Nose / neck base (9) has no MPII counterpart: it is the midpoint
  of the mapped Thorax (8) and Head (10).
  """
  out = np.zeros(sh_kp2d.shape[:1] + (17,) + sh_kp2d.shape[2:],
                 sh_kp2d.dtype)
  for j, name in enumerate(skeleton.H36M_JOINT_NAMES):
    if j != NOSE:
      out[:, j] = sh_kp2d[:, SH_JOINTS.index(name)]
  out[:, NOSE] = (out[:, THORAX] + out[:, HEAD]) / 2
  return out


def _read_h5(path, key, shape):
  import h5py  # pylint: disable=import-outside-toplevel
  try:
    with h5py.File(path, "r") as hf:
      if key not in hf:
        raise dataset.DataError(f"{path}: dataset '{key}' is missing "
                                f"(present: {list(hf)})")
      value = hf[key][()]
  except OSError as e:
    if e.filename:
      raise
    raise dataset.DataError(errors.bad_input(
        path, f"not a readable HDF5 file ({convert_util.one_line(e)})",
        f"an HDF5 file with dataset '{key}'")) from None
  return convert_util.check_array(value, path, f"'{key}'", shape)


def read_martinez(folder: str, cameras: str | dict | None = None,
                  input_2d: str = "detected", progress: bool = False,
                  gaps: convert_util.Gaps | None = None) -> dict:
  """Reads 3d-pose-baseline's `h36m/` folder (PROTOCOL.md §2.3).

  Args:
    folder: holds S*/MyPoses/3D_positions/<Action>.h5 ('3D_positions', (96,
      F) world mm), S*/StackedHourglass/<Action>.<camera>.h5 ('poses',
      (F, 16, 2) px, MPII-16) and cameras.h5.
    cameras: `cameras.h5` (default: `<folder>/cameras.h5`, else the
      calibrations shipped with the package), an `h36m_cameras.json`, or a
      loaded {(subject, id): Camera}.
    input_2d: 'detected' (Stacked Hourglass, conf 1, Nose interpolated, see
      `sh_to_h36m`) or 'gt' (projection with lens distortion).
    gaps: collects what is left out: a camera view or take without
      detections, a take with detections but no 3D file.

  Returns:
    {'train': arrays, 'test': arrays}.
  """
  if input_2d not in ("detected", "gt"):
    raise ValueError(f"input_2d must be 'detected' or 'gt', got {input_2d!r}")
  if not os.path.isdir(folder):
    raise dataset.DataError(f"{folder}: no such folder (expected "
                            "3d-pose-baseline's h36m/ layout)")
  gaps = gaps if gaps is not None else convert_util.Gaps()
  if cameras is None and os.path.exists(os.path.join(folder, "cameras.h5")):
    cameras = os.path.join(folder, "cameras.h5")
  cams = cameras if isinstance(cameras, dict) else load_cameras(cameras)
  cam_source = (cameras if isinstance(cameras, str) else
                folder if cameras is not None else camera_lib.H36M_CAMERAS_JSON)
  takes = []
  for subject_dir in sorted(glob.glob(os.path.join(folder, "S*")),
                            key=lambda p: dataset.natural_key(
                                os.path.basename(p))):
    takes += _martinez_takes(subject_dir, gaps)
  seqs = {"train": [], "test": []}
  for take in tqdm(takes, disable=not progress, desc="sequences"):
    seqs[take[0]] += _martinez_take(take, cams, cam_source, input_2d, gaps)
  src = (f"3d-pose-baseline folder {os.path.basename(os.path.normpath(folder))}"
         + (" + Stacked Hourglass (MPII-16, Nose interpolated)"
            if input_2d == "detected" else " + GT projection"))
  return _pack_splits(seqs, input_2d, src)


def _martinez_takes(subject_dir, gaps) -> list:
  """[(split, subject_dir, 3D file, name, sub-action, detections)] of one
  subject; detections without a 3D file are left out (`gaps`)."""
  subject = os.path.basename(subject_dir)
  split = subject_split(subject)
  poses_dir = os.path.join(subject_dir, "MyPoses", "3D_positions")
  files3d = sorted(glob.glob(os.path.join(poses_dir, "*.h5")))
  detections = _sh_files(subject_dir) if split else {}
  if split is None or not (files3d or detections):
    return []
  names = [os.path.basename(p)[:-3] for p in files3d]
  sh_names = {key[:2]: name for key, (name, _) in detections.items()}
  numbers = _take_numbers(subject, [
      (poses_dir, names),
      (os.path.join(subject_dir, "StackedHourglass"), list(sh_names.values()))])
  have3d = {split_action_name(n) for n in names}
  for key in sorted(set(sh_names) - have3d, key=str):
    gaps.leave_out(NO_3D_TAKE, os.path.join(poses_dir, f"{sh_names[key]}.h5"),
                   f"missing (StackedHourglass/ has detections of {subject} "
                   f"'{sh_names[key]}')", "a 3D file for every take")
  return [(split, subject_dir, path3d, name,
           numbers[split_action_name(name)], detections)
          for path3d, name in zip(files3d, names)]


def _martinez_take(take, cams, cam_source, input_2d, gaps) -> list:
  """The sequences of one 3D take's four cameras (missing detections of a
  camera, or of all four, are gaps)."""
  _, subject_dir, path3d, name, subact, detections = take
  subject = os.path.basename(subject_dir)
  flat = _read_h5(path3d, "3D_positions", (96, "F"))
  world = flat.T.reshape(-1, 32, 3)[:, skeleton.H36M32_TO_17]
  action, number = split_action_name(name)
  missing = [c for c in CAMERA_IDS if (action, number, c) not in detections]
  sh_dir = os.path.join(subject_dir, "StackedHourglass")
  if input_2d == "detected" and len(missing) == len(CAMERA_IDS):
    gaps.leave_out(NO_2D_TAKE, sh_dir, f"no detections of {subject} '{name}' "
                   f"(no '{name}.<camera>.h5' under any action-name variant)",
                   "detections for every take")
    return []
  seqs = []
  for cam_id in CAMERA_IDS:
    cam = _camera_for(cams, subject, cam_id, cam_source)
    kp2d = None
    if input_2d == "detected":
      if cam_id in missing:
        gaps.leave_out(NO_2D_VIEW, os.path.join(sh_dir,
                                                f"{name}.{cam_id}.h5"),
                       f"missing (no detections of {subject} '{name}' camera "
                       f"{cam_id} under any action-name variant)",
                       "detections for every camera of every take")
        continue
      path2d = detections[(action, number, cam_id)][1]
      sh = _read_h5(path2d, "poses", ("F", 16, 2))
      kp2d = _trim_2d(sh_to_h36m(sh), len(world), path2d, "'poses'")
    seq_name = source_id(subject, action, subact, cam_id)
    seqs.append(_camera_sequence(world.astype(np.float64), cam, kp2d,
                                 seq_name, subject, action, input_2d))
  return seqs


def _sh_files(subject_dir) -> dict:
  """{(action, suffix, camera_id): (take name, path)} of a subject's SH
  detections."""
  out = {}
  for path in glob.glob(os.path.join(subject_dir, "StackedHourglass",
                                     "*.h5")):
    stem = os.path.basename(path)[:-3]
    if "." not in stem:
      continue
    name, cam_id = stem.rsplit(".", 1)
    try:
      action, number = split_action_name(name)
    except ValueError:
      logging.warning("%s: unknown action name; ignored", path)
      continue
    out[(action, number, cam_id)] = (name, path)
  return out


def convert(layout: str, input_path: str, output_dir: str,
            input_2d_path: str | None = None, cameras: str | None = None,
            input_2d: str | None = None, progress: bool = False,
            gaps: convert_util.Gaps | None = None) -> dict:
  """Converts one of the three layouts and writes train.npz / test.npz.

  Args:
    layout: 'motionbert_pkl', 'videopose3d' or 'martinez'.
    input_path: the pickle, the `data_3d_h36m.npz`, or the `h36m/` folder.
    output_dir: where `train.npz` and `test.npz` go.
    input_2d_path: VideoPose3D 2D file (None: GT projection).
    cameras: calibrations (`h36m_cameras.json`, or `cameras.h5` for
      martinez); None: martinez `<folder>/cameras.h5`, else the 44
      calibrations shipped with the package.
    input_2d: 'gt' or 'detected' override (martinez: default 'detected').
    gaps: collects what is left out; `Gaps(strict=True)` makes any gap an
      error (default: a non-strict `Gaps`).

  Returns:
    {split: written path}. Both splits must come out non-empty.
  """
  gaps = gaps if gaps is not None else convert_util.Gaps()
  if layout == "motionbert_pkl":
    splits = read_motionbert_pkl(input_path, progress=progress)
  elif layout == "videopose3d":
    splits = read_videopose3d(input_path, input_2d_path, cameras, input_2d,
                              progress=progress, gaps=gaps)
  elif layout == "martinez":
    splits = read_martinez(input_path, cameras, input_2d or "detected",
                           progress=progress, gaps=gaps)
  else:
    raise ValueError(f"unknown layout {layout!r}; expected motionbert_pkl, "
                     "videopose3d or martinez")
  convert_util.require_splits(splits, input_path, {
      "train": "the train subjects " + ", ".join(TRAIN_SUBJECTS),
      "test": "the test subjects " + ", ".join(TEST_SUBJECTS)})
  return convert_util.write_splits(splits, output_dir)
