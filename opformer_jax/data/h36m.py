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
  calibrations (`h36m_cameras.json`).
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
"""

from __future__ import annotations

import collections
import glob
import logging
import os
import pickle
import re

import numpy as np
from tqdm import tqdm

from opformer_jax.data import camera as camera_lib
from opformer_jax.data import convert_util
from opformer_jax.data import dataset
from opformer_jax import skeleton

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
# S9 videos with known bad ground truth, all cameras (PROTOCOL.md §3.4):
# Greeting 2 (or "Greeting"), SittingDown 2 (or "SittingDown"), Waiting 1.
SKIP_SOURCES = ("s_09_act_05_subact_02", "s_09_act_10_subact_02",
                "s_09_act_13_subact_01")

# Name variants -> canonical action (keys: lower case, no separators).
_ALIASES = {"takingphoto": "Photo", "walkingdog": "WalkDog",
            "walkingtogether": "WalkTogether", "discussions": "Discussion"}
_CANON = {a.lower(): a for a in ACTIONS} | _ALIASES
_SOURCE_RE = re.compile(r"^s_(\d+)_act_(\d+)_subact_(\d+)_ca_(\d+)$")

# 3d-pose-baseline's joint names: Stacked Hourglass (MPII-16) output order and
# the H36M-17 joints ("Neck/Nose" is H36M joint 9, absent from MPII).
SH_JOINTS = ("RFoot", "RKnee", "RHip", "LHip", "LKnee", "LFoot", "Hip",
             "Spine", "Thorax", "Head", "RWrist", "RElbow", "RShoulder",
             "LShoulder", "LElbow", "LWrist")
H36M_JOINT_NAMES = ("Hip", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot",
                    "Spine", "Thorax", "Neck/Nose", "Head", "LShoulder",
                    "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist")
NOSE, THORAX, HEAD = 9, 8, 10


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
  numbers are not within 1..n (S5 "Discussion 2" / "Discussion 3") the
  siblings are numbered by rank instead, matching the two sub-action indices
  of the original release.
  """
  groups = collections.defaultdict(list)
  for name in names:
    action, number = split_action_name(name)
    groups[action].append((number, name))
  out = {}
  for action, members in groups.items():
    n = len(members)
    bare = [name for number, name in members if number is None]
    numbered = sorted((number, name) for number, name in members
                      if number is not None)
    used = [number for number, _ in numbered]
    if len(bare) > 1 or len(set(used)) != len(used):
      raise ValueError(f"ambiguous sub-actions of {action}: "
                       f"{sorted(name for _, name in members)}")
    if all(1 <= u <= n for u in used):
      out.update({name: number for number, name in numbered})
      free = [i for i in range(1, n + 1) if i not in used]
      out.update({name: free[0] for name in bare})
    else:
      ranked = [name for name in bare] + [name for _, name in numbered]
      out.update({name: i + 1 for i, name in enumerate(ranked)})
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


def is_skipped(seq_name: str) -> bool:
  """True for the S9 videos that the evaluation protocol skips."""
  return any(str(seq_name) == s or str(seq_name).startswith(s + "_ca_")
             for s in SKIP_SOURCES)


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

  Returns:
    {'train': arrays, 'test': arrays} for the splits present in the file.
  """
  with open(path, "rb") as fobj:
    try:
      data = pickle.load(fobj)
    except Exception as e:  # pylint: disable=broad-except
      raise dataset.DataError(f"{path}: not a readable pickle ({e})") from None
  if not isinstance(data, dict) or not {"train", "test"} & set(data):
    raise dataset.DataError(f"{path}: expected a dict with keys 'train' and "
                            "'test' of per-frame arrays")
  out = {}
  for split in ("train", "test"):
    if split in data:
      out[split] = _motionbert_split(path, split, data[split], progress)
  return out


def _motionbert_split(path, split, d, progress):
  if not isinstance(d, dict):
    raise dataset.DataError(f"{path}: key '{split}': expected a dict of "
                            "per-frame arrays")
  for key in ("joint_2d", "joint3d_image", "camera_name", "source"):
    if key not in d:
      raise dataset.DataError(f"{path}: key ['{split}']['{key}'] is missing "
                              f"(present: {sorted(d)})")
  k = lambda key: f"['{split}']['{key}']"  # noqa: E731
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
  source = np.asarray(d["source"]).astype(str)
  cams = np.asarray(d["camera_name"]).astype(str)
  for key, a in (("source", source), ("camera_name", cams)):
    if a.shape != (n,):
      raise dataset.DataError(f"{path}: key {k(key)}: has shape {a.shape}, "
                              f"expected ({n},) like joint_2d")
  arrays = {"kp2d": kp2d, "conf": conf, "kp3d_image": kp3d_image}
  if d.get("2.5d_factor") is not None:
    factor = np.asarray(d["2.5d_factor"])
    if factor.shape == (n, 1):
      factor = factor[:, 0]
    arrays["factor"] = convert_util.check_array(factor, path,
                                                k("2.5d_factor"), (n,))
    if d.get("joints_2.5d_image") is not None:
      mm = convert_util.check_array(d["joints_2.5d_image"], path,
                                    k("joints_2.5d_image"), (n, 17, 3))
      want = kp3d_image * arrays["factor"][:, None, None].astype(np.float64)
      err = np.abs(mm - want).max()
      if not np.allclose(mm, want, rtol=1e-4, atol=1e-2):
        logging.warning("%s: %s differs from joint3d_image * 2.5d_factor by "
                        "up to %.3g mm", path, k("joints_2.5d_image"), err)
    else:
      logging.warning("%s: %s absent; cannot check 2.5d_factor", path,
                      k("joints_2.5d_image"))
  starts = np.concatenate([[0], np.flatnonzero(source[1:] != source[:-1]) + 1])
  names = source[starts].tolist()
  if len(set(names)) != len(names):
    dup = collections.Counter(names).most_common(1)[0][0]
    raise dataset.DataError(f"{path}: key {k('source')}: the frames of "
                            f"{dup!r} are not contiguous")
  names = np.array(names)
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
  arrays.update(
      seq_offsets=np.append(starts, n), seq_name=names,
      seq_subject=np.array(seq["subject"]), seq_action=np.array(seq["action"]),
      seq_camera=np.array(seq["camera"]),
      seq_image_size=np.array([IMAGE_SIZES[c] for c in seq["camera"]]),
      seq_fps=np.full(len(names), FPS), layout="h36m17", input_2d="detected",
      source=f"MotionBERT pickle {os.path.basename(path)} [{split}]")
  return arrays


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
# (b) VideoPose3D npz pair.
# ---------------------------------------------------------------------------


def _load_pickled(path, key):
  try:
    with np.load(path, allow_pickle=True) as z:
      if key not in z.files:
        raise dataset.DataError(f"{path}: key '{key}' is missing (present: "
                                f"{z.files})")
      value = z[key]
  except (OSError, ValueError) as e:
    raise dataset.DataError(f"{path}: not a readable .npz file ({e})") from None
  return value.item() if value.dtype == object and value.ndim == 0 else value


def _camera_for(cameras, subject, cam_id, path):
  if (subject, cam_id) not in cameras:
    raise dataset.DataError(f"{path}: no calibration for camera {cam_id} of "
                            f"{subject} (have {len(cameras)} cameras)")
  return cameras[(subject, cam_id)]


def _camera_sequence(world_mm, cam, kp2d, name, subject, action, input_2d):
  """One video: world mm (F, 17, 3) + camera (+ 2D) -> sequence dict."""
  kp3d = camera_lib.world_to_camera(world_mm, cam)
  kp3d_image, factor = camera_lib.image_space_label(kp3d, cam.f, cam.c)
  if input_2d == "gt" and kp2d is None:
    kp2d = camera_lib.project(kp3d, cam.f, cam.c, cam.k, cam.p)
  return {"name": name, "subject": subject, "action": action,
          "camera": cam.camera_id, "image_size": (cam.width, cam.height),
          "fps": FPS,
          "kp2d": kp2d.astype(np.float32),
          "conf": np.ones(kp2d.shape[:2], np.float32),
          "kp3d": kp3d.astype(np.float32), "kp3d_image": kp3d_image,
          "factor": factor}


def _trim_2d(kp2d, num_frames, path, key):
  """2D longer than the mocap is trimmed (VideoPose3D run.py); shorter is an
  error."""
  if len(kp2d) < num_frames:
    raise dataset.DataError(f"{path}: key {key}: has {len(kp2d)} frames, "
                            f"fewer than the {num_frames} 3D frames")
  return kp2d[:num_frames]


def read_videopose3d(path_3d: str, path_2d: str | None = None,
                     cameras: str | dict | None = None,
                     input_2d: str | None = None,
                     progress: bool = False) -> dict:
  """Reads VideoPose3D's `data_3d_h36m.npz` (+ a `data_2d_h36m_*.npz`).

  Args:
    path_3d: positions_3d[subject][action] = (F, 32, 3) world metres.
    path_2d: positions_2d[subject][action] = 4 x (F', 17, 2) px in
      `CAMERA_IDS` order, F' >= F (trimmed to F). None: kp2d = the GT
      projection (with lens distortion).
    cameras: `h36m_cameras.json` path or a loaded {(subject, id): Camera}.
    input_2d: 'gt' or 'detected'; default 'gt' for no 2D file or a
      `*_gt.npz`, else 'detected'.

  Returns:
    {'train': arrays, 'test': arrays}; S11 "Directions" (corrupt video) is
    dropped as in VideoPose3D.
  """
  if cameras is None:
    raise ValueError("read_videopose3d needs the camera calibrations "
                     "(h36m_cameras.json)")
  cams = load_cameras(cameras) if isinstance(cameras, str) else cameras
  pos3d = _load_pickled(path_3d, "positions_3d")
  if not isinstance(pos3d, dict):
    raise dataset.DataError(f"{path_3d}: key 'positions_3d': expected a "
                            "pickled dict {subject: {action: (F, 32, 3)}}")
  pos2d = None
  if path_2d is not None:
    pos2d = _load_pickled(path_2d, "positions_2d")
    try:
      meta = _load_pickled(path_2d, "metadata")
    except dataset.DataError:
      meta = {}
    if isinstance(meta, dict) and meta.get("num_joints", 17) != 17:
      raise dataset.DataError(f"{path_2d}: key 'metadata': num_joints is "
                              f"{meta['num_joints']}, expected 17 (h36m)")
  if input_2d is None:
    gt_file = path_2d is None or re.search(
        r"(^|_)gt(\.npz)?$", os.path.basename(path_2d).removesuffix(".npz"))
    input_2d = "gt" if gt_file else "detected"
  seqs = {"train": [], "test": []}
  jobs = []
  for subject in sorted(pos3d, key=_subject_key):
    split = subject_split(subject)
    if split is None:
      logging.warning("%s: subject %s is neither train nor test; skipped",
                      path_3d, subject)
      continue
    try:
      subacts = subaction_numbers(pos3d[subject])
    except ValueError as e:
      raise dataset.DataError(f"{path_3d}: positions_3d['{subject}']: {e}"
                              ) from None
    for action in sorted(pos3d[subject]):
      if subject == "S11" and action == "Directions":
        continue  # Corrupt video (VideoPose3D prepare_data_h36m.py).
      jobs.append((split, subject, action, subacts[action]))
  for split, subject, action, subact in tqdm(jobs, disable=not progress,
                                             desc="sequences"):
    key3 = f"positions_3d['{subject}']['{action}']"
    world = convert_util.check_array(pos3d[subject][action], path_3d, key3,
                                     ("F", 32, 3))
    world = world[:, skeleton.H36M32_TO_17].astype(np.float64) * 1000.0
    views = None
    if pos2d is not None:
      key2 = f"positions_2d['{subject}']['{action}']"
      views = pos2d.get(subject, {}).get(action)
      if views is None:
        raise dataset.DataError(f"{path_2d}: key {key2} is missing (the 3D "
                                "file has it)")
      if len(views) != len(CAMERA_IDS):
        raise dataset.DataError(f"{path_2d}: key {key2}: has {len(views)} "
                                f"views, expected {len(CAMERA_IDS)}")
    canon = canonical_action(action)
    for i, cam_id in enumerate(CAMERA_IDS):
      cam = _camera_for(cams, subject, cam_id, path_3d)
      kp2d = None
      if views is not None:
        kp2d = np.asarray(views[i])
        if kp2d.ndim == 3 and kp2d.shape[-1] > 2:
          kp2d = kp2d[..., :2]
        kp2d = convert_util.check_array(kp2d, path_2d, f"{key2}[{i}]",
                                        ("F", 17, 2))
        kp2d = _trim_2d(kp2d, len(world), path_2d, f"{key2}[{i}]")
      name = source_id(subject, canon, subact, cam_id)
      seqs[split].append(_camera_sequence(world, cam, kp2d, name, subject,
                                          canon, input_2d))
  src = f"VideoPose3D {os.path.basename(path_3d)} + " + (
      os.path.basename(path_2d) if path_2d else "GT projection")
  return _pack_splits(seqs, input_2d, src)


def _subject_key(subject):
  digits = re.sub(r"\D", "", str(subject))
  return (int(digits) if digits else 0, str(subject))


# ---------------------------------------------------------------------------
# (c) 3d-pose-baseline folder.
# ---------------------------------------------------------------------------


def load_cameras(path: str) -> dict:
  """{(subject, camera_id): Camera} from `h36m_cameras.json` or from
  3d-pose-baseline's `cameras.h5`."""
  if path.endswith(".json"):
    return camera_lib.load_h36m_cameras(path)
  return load_martinez_cameras(path)


def load_martinez_cameras(path: str) -> dict:
  """Reads 3d-pose-baseline's `cameras.h5`.

  Groups `subject{N}/camera{1..4}` hold R (stored transposed: X_cam =
  R.T @ (X_world - T)), T (3, 1) camera centre in world mm, f, c (2, 1),
  k (3, 1), p (2, 1) and Name (character codes of the camera id).
  """
  import h5py  # pylint: disable=import-outside-toplevel
  cams = {}
  try:
    hf = h5py.File(path, "r")
  except OSError as e:
    raise dataset.DataError(f"{path}: not a readable HDF5 file ({e})") from None
  with hf:
    for sub in hf:
      m = re.fullmatch(r"subject(\d+)", sub)
      if not m:
        continue
      for cam_key in hf[sub]:
        g = hf[sub][cam_key]
        where = f"{sub}/{cam_key}"
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
          idx = int(re.sub(r"\D", "", cam_key) or 0) - 1
          if not 0 <= idx < 4:
            raise dataset.DataError(f"{path}: key {where}/Name: unknown "
                                    f"camera {name!r}")
          name = CAMERA_IDS[idx]
        w, h = IMAGE_SIZES[name]
        subject = f"S{int(m.group(1))}"
        cams[(subject, name)] = camera_lib.make_camera(
            vals["R"].T, vals["T"][:, 0], vals["f"][:, 0], vals["c"][:, 0],
            vals["k"][:, 0], vals["p"][:, 0], w, h, name, subject)
  if not cams:
    raise dataset.DataError(f"{path}: no subject*/camera* groups found")
  return cams


def _h5_name(raw) -> str:
  if isinstance(raw, bytes):
    return raw.decode()
  a = np.asarray(raw)
  if a.dtype.kind in "SU":
    return str(a.reshape(-1)[0].decode() if a.dtype.kind == "S" else
               a.reshape(-1)[0])
  return "".join(chr(int(x)) for x in a.reshape(-1))


def sh_to_h36m(sh_kp2d: np.ndarray) -> np.ndarray:
  """(F, 16, 2) Stacked Hourglass MPII-16 -> (F, 17, 2) H36M-17 by joint name.

  The H36M Nose / neck base (9) has no MPII counterpart: it is the midpoint
  of the mapped Thorax (8) and Head (10).
  """
  out = np.zeros(sh_kp2d.shape[:1] + (17,) + sh_kp2d.shape[2:],
                 sh_kp2d.dtype)
  for j, name in enumerate(H36M_JOINT_NAMES):
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
    raise dataset.DataError(f"{path}: not a readable HDF5 file ({e})") from None
  return convert_util.check_array(value, path, f"'{key}'", shape)


def read_martinez(folder: str, cameras: str | dict | None = None,
                  input_2d: str = "detected", progress: bool = False) -> dict:
  """Reads 3d-pose-baseline's `h36m/` folder (PROTOCOL.md §2.3).

  Args:
    folder: holds S*/MyPoses/3D_positions/<Action>.h5 ('3D_positions', (96,
      F) world mm), S*/StackedHourglass/<Action>.<camera>.h5 ('poses',
      (F, 16, 2) px, MPII-16) and cameras.h5.
    cameras: `cameras.h5` (default: `<folder>/cameras.h5`), an
      `h36m_cameras.json`, or a loaded {(subject, id): Camera}.
    input_2d: 'detected' (Stacked Hourglass, conf 1, Nose interpolated, see
      `sh_to_h36m`) or 'gt' (projection with lens distortion).

  Returns:
    {'train': arrays, 'test': arrays}.
  """
  if input_2d not in ("detected", "gt"):
    raise ValueError(f"input_2d must be 'detected' or 'gt', got {input_2d!r}")
  if not os.path.isdir(folder):
    raise dataset.DataError(f"{folder}: no such folder (expected "
                            "3d-pose-baseline's h36m/ layout)")
  if cameras is None:
    cameras = os.path.join(folder, "cameras.h5")
  cams = load_cameras(cameras) if isinstance(cameras, str) else cameras
  jobs = []
  for subject_dir in sorted(glob.glob(os.path.join(folder, "S*")),
                            key=lambda p: _subject_key(os.path.basename(p))):
    subject = os.path.basename(subject_dir)
    split = subject_split(subject)
    files3d = sorted(glob.glob(os.path.join(subject_dir, "MyPoses",
                                            "3D_positions", "*.h5")))
    if split is None or not files3d:
      continue
    names = [os.path.basename(p)[:-3] for p in files3d]
    try:
      subacts = subaction_numbers(names)
    except ValueError as e:
      raise dataset.DataError(f"{subject_dir}/MyPoses/3D_positions: {e}"
                              ) from None
    detections = {}
    if input_2d == "detected":
      detections = _sh_files(subject_dir)
    for path3d, name in zip(files3d, names):
      jobs.append((split, subject_dir, path3d, name, subacts[name],
                   detections))
  cam_source = cameras if isinstance(cameras, str) else folder
  seqs = {"train": [], "test": []}
  for split, subject_dir, path3d, name, subact, detections in tqdm(
      jobs, disable=not progress, desc="sequences"):
    subject = os.path.basename(subject_dir)
    flat = _read_h5(path3d, "3D_positions", (96, "F"))
    world = flat.T.reshape(-1, 32, 3)[:, skeleton.H36M32_TO_17]
    action, number = split_action_name(name)
    for cam_id in CAMERA_IDS:
      cam = _camera_for(cams, subject, cam_id, cam_source)
      kp2d = None
      if input_2d == "detected":
        path2d = detections.get((action, number, cam_id))
        if path2d is None:
          raise dataset.DataError(
              f"{subject_dir}/StackedHourglass/{name}.{cam_id}.h5: missing "
              f"(no detections of {subject} {name!r} camera {cam_id} under "
              "any action-name variant)")
        sh = _read_h5(path2d, "poses", ("F", 16, 2))
        kp2d = _trim_2d(sh_to_h36m(sh), len(world), path2d, "'poses'")
      seq_name = source_id(subject, action, subact, cam_id)
      seqs[split].append(_camera_sequence(world.astype(np.float64), cam, kp2d,
                                          seq_name, subject, action,
                                          input_2d))
  src = (f"3d-pose-baseline folder {os.path.basename(os.path.normpath(folder))}"
         + (" + Stacked Hourglass (MPII-16, Nose interpolated)"
            if input_2d == "detected" else " + GT projection"))
  return _pack_splits(seqs, input_2d, src)


def _sh_files(subject_dir) -> dict:
  """{(action, suffix, camera_id): path} of a subject's SH detections."""
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
    out[(action, number, cam_id)] = path
  return out


def convert(layout: str, input_path: str, output_dir: str,
            input_2d_path: str | None = None, cameras: str | None = None,
            input_2d: str | None = None, progress: bool = False) -> dict:
  """Converts one of the three layouts and writes train.npz / test.npz.

  Args:
    layout: 'motionbert_pkl', 'videopose3d' or 'martinez'.
    input_path: the pickle, the `data_3d_h36m.npz`, or the `h36m/` folder.
    output_dir: where `train.npz` and `test.npz` go.
    input_2d_path: VideoPose3D 2D file (None: GT projection).
    cameras: calibrations (`h36m_cameras.json`, or `cameras.h5` for
      martinez; its default is `<folder>/cameras.h5`).
    input_2d: 'gt' or 'detected' override (martinez: default 'detected').

  Returns:
    {split: written path}.
  """
  if layout == "motionbert_pkl":
    splits = read_motionbert_pkl(input_path, progress=progress)
  elif layout == "videopose3d":
    splits = read_videopose3d(input_path, input_2d_path, cameras, input_2d,
                              progress=progress)
  elif layout == "martinez":
    splits = read_martinez(input_path, cameras, input_2d or "detected",
                           progress=progress)
  else:
    raise ValueError(f"unknown layout {layout!r}; expected motionbert_pkl, "
                     "videopose3d or martinez")
  return convert_util.write_splits(splits, output_dir)
