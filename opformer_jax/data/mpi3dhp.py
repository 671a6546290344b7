"""MPI-INF-3DHP: reader of MotionAGFormer / P-STMO's preprocessed npz files.

`data_train_3dhp.npz` and `data_test_3dhp.npz` (PROTOCOL.md §4) hold, under
`np.load(path, allow_pickle=True)['data'].item()`:

* train: "S{1..8} Seq{1,2}" -> [{camera: {'data_2d': (F, 17, 2) px,
  'data_3d': (F, 17, 3) mm}}, fps], cameras 0, 1, 2, 4, 5, 6, 7, 8, images
  2048 x 2048;
* test: "TS1".."TS6" -> {'data_2d', 'data_3d', 'valid': (F,)}, images
  2048 x 2048 (TS1-4) and 1920 x 1080 (TS5-6).

Both are in MPI-17 joint order (`skeleton.MPI`, root = pelvis 14). The 3D is
`univ_annot3`: camera-frame joints of the "universal" skeleton, rescaled to
Human3.6M's height, so it does not project exactly onto `data_2d` (which is
`annot2`, the projection of the subject's real skeleton). The files hold no
camera intrinsics, hence no image-space label: we write kp3d only (the
pipeline normalises it "as if pixels", like MotionAGFormer). 2D is ground
truth: input_2d = 'gt', confidence 1.

Test frame rates are not stored in the file: TEST_FPS below (25 fps studio
sequences TS1-4, 50 fps outdoor TS5-6) follows the dataset description and
only labels the sequences; nothing here resamples.
"""

from __future__ import annotations

import os
import re

from absl import logging
import numpy as np
from tqdm import tqdm

from opformer_jax import errors
from opformer_jax.data import convert_util
from opformer_jax.data import dataset

TRAIN_IMAGE_SIZE = (2048, 2048)
TEST_IMAGE_SIZES = {"TS1": (2048, 2048), "TS2": (2048, 2048),
                    "TS3": (2048, 2048), "TS4": (2048, 2048),
                    "TS5": (1920, 1080), "TS6": (1920, 1080)}
TEST_FPS = {"TS1": 25.0, "TS2": 25.0, "TS3": 25.0, "TS4": 25.0,
            "TS5": 50.0, "TS6": 50.0}
# Scene of each test sequence (the official per-setting breakdown).
TEST_SCENES = {"TS1": "GreenScreen", "TS2": "GreenScreen",
               "TS3": "NoGreenScreen", "TS4": "NoGreenScreen",
               "TS5": "Outdoor", "TS6": "Outdoor"}


# What the readers leave out (`convert_util.Gaps` kind).
NO_POSES = "sequence without 2D or 3D"


def _load_data(path):
  data = convert_util.read_npz(path, ("data",), allow_pickle=True)["data"]
  if not isinstance(data, dict):
    raise dataset.DataError(f"{path}: key 'data': expected a pickled dict")
  return data


def _poses(entry, path, key, gaps):
  """(data_2d, data_3d) of one entry, or None when either is absent or
  empty (left out with a warning, or an error with a strict `gaps`)."""
  if not isinstance(entry, dict):
    raise dataset.DataError(f"{path}: key {key}: expected a dict with "
                            "'data_2d' and 'data_3d'")
  for k in ("data_2d", "data_3d"):
    if entry.get(k) is None or np.shape(entry[k])[:1] == (0,):
      gaps.leave_out(NO_POSES, path, f"key {key}['{k}'] is missing or empty",
                     "'data_2d' and 'data_3d' for every sequence")
      return None
  return np.asarray(entry["data_2d"]), np.asarray(entry["data_3d"])


def _require_sequences(seqs, path, split):
  if not seqs:
    raise dataset.DataError(errors.bad_input(
        path, f"split '{split}' came out empty (no sequence with 2D and 3D)",
        "at least one sequence with 'data_2d' and 'data_3d'"))


def _sequence(name, subject, action, camera, size, fps, kp2d, kp3d, path,
              key, valid=None):
  kp2d = convert_util.check_array(kp2d, path, f"{key}['data_2d']",
                                  ("F", 17, 2), finite=valid is None)
  kp3d = convert_util.check_array(kp3d, path, f"{key}['data_3d']",
                                  (len(kp2d), 17, 3), finite=valid is None)
  frames = {}
  if valid is not None:
    valid = convert_util.check_array(valid, path, f"{key}['valid']",
                                     (len(kp2d),)).astype(bool)
    kp2d, kp3d = _fill_invalid(kp2d, kp3d, valid, path, key)
    frames["valid"] = valid
  return convert_util.sequence(name, subject, action, camera, size, fps, kp2d,
                               kp3d=kp3d.astype(np.float32), **frames)


def _fill_invalid(kp2d, kp3d, valid, path, key):
  """Non-finite poses are allowed on frames that are never scored; they are
  replaced by the nearest finite frame so that clips stay finite."""
  ok = (np.isfinite(kp2d).all((1, 2)) & np.isfinite(kp3d).all((1, 2)))
  if ok.all():
    return kp2d, kp3d
  if (~ok & valid).any() or not ok.any():
    bad = np.flatnonzero(~ok & valid)[:5].tolist() or [0]
    raise dataset.DataError(f"{path}: key {key}: NaN/inf poses on valid "
                            f"frames {bad}")
  good = np.flatnonzero(ok)
  idx = np.arange(len(ok))
  pos = np.searchsorted(good, idx)
  left = good[np.clip(pos - 1, 0, len(good) - 1)]
  right = good[np.clip(pos, 0, len(good) - 1)]
  nearest = np.where(np.abs(idx - left) <= np.abs(right - idx), left, right)
  logging.warning("%s: key %s: %d invalid frames had NaN/inf poses; filled "
                  "from the nearest finite frame", path, key, int((~ok).sum()))
  return kp2d[nearest], kp3d[nearest]


def read_train(path: str, progress: bool = False,
               gaps: convert_util.Gaps | None = None) -> dict:
  """`data_train_3dhp.npz` -> schema arrays (one sequence per camera); a
  camera without 2D or 3D is left out (`gaps`, default non-strict)."""
  gaps = gaps if gaps is not None else convert_util.Gaps()
  data = _load_data(path)
  seqs = []
  for key in tqdm(sorted(data, key=dataset.natural_key), disable=not progress,
                  desc="train sequences"):
    m = re.fullmatch(r"(S\d+)\s+(Seq\d+)", str(key))
    entry = data[key]
    if (m is None or not isinstance(entry, (list, tuple)) or len(entry) != 2
        or not isinstance(entry[0], dict)):
      raise dataset.DataError(f"{path}: key ['data']['{key}']: expected "
                              "'S<n> Seq<m>' -> [{camera: {'data_2d', "
                              "'data_3d'}}, fps]")
    cams, fps = entry
    try:
      fps = float(fps)
    except (TypeError, ValueError):
      raise dataset.DataError(f"{path}: key ['data']['{key}'][1]: fps "
                              f"{fps!r} is not a number") from None
    for cam in sorted(cams, key=dataset.natural_key):
      where = f"['data']['{key}'][0]['{cam}']"
      poses = _poses(cams[cam], path, where, gaps)
      if poses is not None:
        seqs.append(_sequence(f"{m.group(1)} {m.group(2)} cam{cam}",
                              m.group(1), m.group(2), str(cam),
                              TRAIN_IMAGE_SIZE, fps, *poses, path, where))
  _require_sequences(seqs, path, "train")
  return convert_util.pack(seqs, layout="mpi17", input_2d="gt",
                           source=f"MPI-INF-3DHP {os.path.basename(path)}")


def read_test(path: str, progress: bool = False,
              gaps: convert_util.Gaps | None = None) -> dict:
  """`data_test_3dhp.npz` -> schema arrays with the `valid` mask; a test
  sequence without 2D or 3D is left out (`gaps`, default non-strict)."""
  gaps = gaps if gaps is not None else convert_util.Gaps()
  data = _load_data(path)
  seqs = []
  for key in tqdm(sorted(data, key=dataset.natural_key), disable=not progress,
                  desc="test sequences"):
    where = f"['data']['{key}']"
    if key not in TEST_IMAGE_SIZES:
      raise dataset.DataError(f"{path}: key {where}: unknown test sequence; "
                              f"expected one of {sorted(TEST_IMAGE_SIZES)}")
    poses = _poses(data[key], path, where, gaps)
    if poses is None:
      continue
    if "valid" not in data[key]:
      raise dataset.DataError(f"{path}: key {where}['valid'] is missing")
    valid = np.asarray(data[key]["valid"]).reshape(-1)
    seqs.append(_sequence(key, key, TEST_SCENES[key], key,
                          TEST_IMAGE_SIZES[key], TEST_FPS[key], *poses,
                          path, where, valid=valid))
  _require_sequences(seqs, path, "test")
  return convert_util.pack(seqs, layout="mpi17", input_2d="gt",
                           source=f"MPI-INF-3DHP {os.path.basename(path)}")


def convert(output_dir: str, train_path: str | None = None,
            test_path: str | None = None, progress: bool = False,
            gaps: convert_util.Gaps | None = None) -> dict:
  """Converts the train and/or test file; writes train.npz / test.npz.

  A file whose split comes out empty (every sequence left out) is an error.
  """
  if not (train_path or test_path):
    raise ValueError("give a train and/or a test file")
  gaps = gaps if gaps is not None else convert_util.Gaps()
  splits = {}
  if train_path:
    splits["train"] = read_train(train_path, progress, gaps)
  if test_path:
    splits["test"] = read_test(test_path, progress, gaps)
  return convert_util.write_splits(splits, output_dir)
