"""The project NPZ schema: one file per split, per-frame arrays in sequences.

Schema version 1 (documented in docs/data.md, "Data format"). A file holds

per frame (N frames, frames of one sequence contiguous):
  kp2d        float32 (N, J, 2)  2D keypoints in pixels (detected or GT).
  conf        float32 (N, J)     2D confidence in [0, 1] (1 where unknown).
  kp3d        float32 (N, J, 3)  3D joints in the camera frame (x right, y
                                 down, z forward), mm, absolute.
  kp3d_image  float32 (N, J, 3)  image-space label: x, y = pinhole projection
                                 (px, no distortion); z = (Z - Z_root) /
                                 factor (px at the root depth).
                                 At least one of kp3d, kp3d_image is present
                                 (MotionBERT's pickle has only the latter).
  factor      float32 (N,)       optional 2.5D factor (mm per px at the root
                                 depth) such that kp3d_image * factor is in mm.
  valid       bool    (N,)       optional; frames that are scored (3DHP).

per sequence (S sequences):
  seq_name        str   (S,)    unique id; clips never cross it.
  seq_offsets     int64 (S+1,)  frames of sequence s are [off[s], off[s+1]).
  seq_subject     str   (S,)
  seq_action      str   (S,)    canonical action (H36M: one of 15).
  seq_camera      str   (S,)
  seq_image_size  int32 (S, 2)  (width, height) in px.
  seq_fps         float32 (S,)

scalars:
  schema_version  int   1
  layout          str   'h36m17' or 'mpi17'
  input_2d        str   'detected' or 'gt' (what kp2d holds)
  source          str   free text: where the file came from
  synthetic       bool  True for generated data (never a benchmark)

Strings are fixed-width numpy unicode, so files load without pickle, and the
file is an uncompressed zip, so `load` memory-maps every array: worker
processes share the page cache instead of each holding a copy.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import zipfile

import numpy as np

from opformer_jax import errors
from opformer_jax import fileio
from opformer_jax import skeleton

SCHEMA_VERSION = 1

_PER_FRAME = ("kp2d", "conf", "kp3d", "kp3d_image", "factor", "valid")
_PER_SEQ = ("seq_name", "seq_subject", "seq_action", "seq_camera",
            "seq_image_size", "seq_fps")
_SCALARS = ("schema_version", "layout", "input_2d", "source", "synthetic")
_OPTIONAL = ("kp3d", "kp3d_image", "factor", "valid")
REQUIRED = tuple(f for f in _PER_FRAME + _PER_SEQ + _SCALARS + ("seq_offsets",)
                 if f not in _OPTIONAL)


DataError = errors.DataError  # raised for files that break the schema


@dataclasses.dataclass(frozen=True)
class PoseData:
  """A read-only (memory-mapped) view of one split file."""
  path: str
  arrays: dict

  def __getattr__(self, name):
    arrays = self.__dict__.get("arrays", {})
    if name in arrays:
      return arrays[name]
    if name in _OPTIONAL:
      return None
    raise AttributeError(name)

  @property
  def layout(self) -> str:
    return str(self.arrays["layout"])

  @property
  def input_2d(self) -> str:
    return str(self.arrays["input_2d"])

  @property
  def synthetic(self) -> bool:
    return bool(self.arrays["synthetic"])

  @property
  def num_frames(self) -> int:
    return int(self.arrays["kp2d"].shape[0])

  @property
  def num_seqs(self) -> int:
    return int(self.arrays["seq_name"].shape[0])

  @property
  def seq_lengths(self) -> np.ndarray:
    return np.diff(self.arrays["seq_offsets"])

  def seq_frames(self, s: int) -> slice:
    off = self.arrays["seq_offsets"]
    return slice(int(off[s]), int(off[s + 1]))

  def frame_seq(self) -> np.ndarray:
    """(N,) int index of the sequence each frame belongs to."""
    return np.repeat(np.arange(self.num_seqs), self.seq_lengths)


def _err(path, field, msg):
  return DataError(f"{path}: field '{field}': {msg}")


def validate(arrays: dict, path: str = "<arrays>") -> None:
  """Checks names, dtypes, shapes and values; raises DataError on the first
  violation, naming the file, the field and the expected shape."""
  for f in REQUIRED:
    if f not in arrays:
      raise _err(path, f, f"missing (required fields: {', '.join(REQUIRED)})")
  if "kp3d" not in arrays and "kp3d_image" not in arrays:
    raise _err(path, "kp3d", "missing: a file needs kp3d (camera mm) or "
               "kp3d_image (image space), or both")
  version = int(np.asarray(arrays["schema_version"]))
  if version != SCHEMA_VERSION:
    raise _err(path, "schema_version",
               f"is {version}, this code reads version {SCHEMA_VERSION}")
  layout = str(np.asarray(arrays["layout"]))
  if layout not in skeleton.LAYOUTS:
    raise _err(path, "layout",
               f"is {layout!r}, expected one of {sorted(skeleton.LAYOUTS)}")
  if str(np.asarray(arrays["input_2d"])) not in ("detected", "gt"):
    raise _err(path, "input_2d", "expected 'detected' or 'gt'")
  j = skeleton.get_layout(layout).num_joints
  n = np.asarray(arrays["kp2d"]).shape[0] if np.ndim(arrays["kp2d"]) else -1
  shapes = {"kp2d": (n, j, 2), "conf": (n, j), "kp3d": (n, j, 3),
            "kp3d_image": (n, j, 3), "factor": (n,), "valid": (n,)}
  for f, shape in shapes.items():
    if f not in arrays:
      continue
    a = np.asarray(arrays[f])
    if a.shape != shape:
      want = "(N, " + ", ".join(str(d) for d in shape[1:]) + ")"
      want = want.replace(", )", ")")
      raise _err(path, f, f"has shape {a.shape}, expected {want} with N = "
                 f"{n} frames and J = {j} joints of layout {layout}")
    if f != "valid" and not np.isfinite(a).all():
      bad = np.argwhere(~np.isfinite(a.reshape(n, -1)).all(-1))[:5, 0]
      raise _err(path, f, f"has NaN/inf values (first frames: {bad.tolist()})")
  conf = np.asarray(arrays["conf"])
  if conf.size and (conf.min() < 0 or conf.max() > 1):
    raise _err(path, "conf", f"values must lie in [0, 1], found "
               f"[{conf.min():.3g}, {conf.max():.3g}]")
  if "factor" in arrays and np.any(np.asarray(arrays["factor"]) <= 0):
    raise _err(path, "factor", "must be > 0")
  off = np.asarray(arrays["seq_offsets"])
  s = np.asarray(arrays["seq_name"]).shape[0]
  if off.shape != (s + 1,) or off[0] != 0 or off[-1] != n or np.any(
      np.diff(off) <= 0):
    raise _err(path, "seq_offsets", f"expected (S+1,) = ({s + 1},) strictly "
               f"increasing offsets from 0 to N = {n}")
  for f in _PER_SEQ:
    a = np.asarray(arrays[f])
    want = (s, 2) if f == "seq_image_size" else (s,)
    if a.shape != want:
      raise _err(path, f, f"has shape {a.shape}, expected {want} (S = {s} "
                 "sequences)")
  if len(set(np.asarray(arrays["seq_name"]).tolist())) != s:
    raise _err(path, "seq_name", "sequence names must be unique")
  if np.any(np.asarray(arrays["seq_image_size"]) <= 0):
    raise _err(path, "seq_image_size", "width and height must be > 0")


_DTYPES = {"kp2d": np.float32, "conf": np.float32, "kp3d": np.float32,
           "kp3d_image": np.float32, "factor": np.float32, "valid": bool,
           "seq_offsets": np.int64, "seq_image_size": np.int32,
           "seq_fps": np.float32, "schema_version": np.int64,
           "synthetic": bool}


def save(path: str, arrays: dict) -> None:
  """Validates and writes `arrays` to `path` atomically.

  The file is written next to its destination and renamed into place only
  when complete, so an error or a kill never leaves a half-written file, and
  an existing file survives a failed write.
  """
  arrays = dict(arrays)
  arrays.setdefault("schema_version", SCHEMA_VERSION)
  arrays.setdefault("synthetic", False)
  out = {}
  for k, v in arrays.items():
    if v is None:
      continue
    a = np.asarray(v)
    if k in _DTYPES:
      a = a.astype(_DTYPES[k])
    elif a.dtype.kind in "OSU":
      a = a.astype(str)
    out[k] = a
  validate(out, path)
  with fileio.atomic_path(path) as tmp, open(tmp, "wb") as f:
    np.savez(f, **out)


def _mmap_member(path: str, fobj, info: zipfile.ZipInfo) -> np.ndarray:
  """Memory-maps one stored (uncompressed) .npy member of a zip file."""
  fobj.seek(info.header_offset)
  local = fobj.read(30)
  name_len = int.from_bytes(local[26:28], "little")
  extra_len = int.from_bytes(local[28:30], "little")
  fobj.seek(info.header_offset + 30 + name_len + extra_len)
  version = np.lib.format.read_magic(fobj)
  read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                 else np.lib.format.read_array_header_2_0)
  shape, fortran, dtype = read_header(fobj)
  if dtype.hasobject:
    raise DataError(f"{path}: field '{info.filename[:-4]}': holds Python "
                    "objects; the schema stores plain arrays only")
  if not shape or int(np.prod(shape)) == 0:
    fobj.seek(info.header_offset + 30 + name_len + extra_len)
    return np.lib.format.read_array(fobj)
  return np.memmap(path, dtype=dtype, mode="r", offset=fobj.tell(),
                   shape=shape, order="F" if fortran else "C")


_NUMPY_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")


def not_numpy(path: str) -> str | None:
  """Why `path` is no .npz / .npy file by its first bytes, or None.

  A file without NumPy's or zip's magic is something else (a text file
  renamed .npz, a video): say so, instead of the pickle error `np.load`
  raises for any unknown bytes.
  """
  try:
    with open(path, "rb") as f:
      head = f.read(64)
  except OSError:
    return None     # the reader's own error names it
  if head.startswith(_NUMPY_MAGIC):
    return None
  if not head:
    return "is empty (0 bytes)"
  try:
    text = head.decode("utf-8").split("\n")[0][:30]
  except UnicodeDecodeError:
    return (f"is not NumPy data (it starts with bytes {head[:8]!r}, not "
            "NumPy's or zip's magic)")
  return f"is a text file (it starts {text!r}), not NumPy data"


def load(path: str, mmap: bool = True) -> PoseData:
  """Opens and validates a split file; arrays are memory-mapped if possible."""
  if not os.path.exists(path):
    # errno and filename: the entry points print it as one line.
    raise FileNotFoundError(errno.ENOENT, "no such data file (prepare one "
                            "with tools/prepare_*.py, see docs/data.md)",
                            path)
  try:
    zf = zipfile.ZipFile(path)
  except zipfile.BadZipFile as e:
    raise DataError(errors.bad_input(
        path, not_numpy(path) or f"is not a readable .npz file ({e})",
        "a split file prepared by tools/prepare_*.py")) from None
  arrays = {}
  with zf, open(path, "rb") as fobj:
    for info in zf.infolist():
      if not info.filename.endswith(".npy"):
        continue
      key = info.filename[:-4]
      if mmap and info.compress_type == zipfile.ZIP_STORED:
        arrays[key] = _mmap_member(path, fobj, info)
      else:
        with zf.open(info) as member:
          try:
            arrays[key] = np.lib.format.read_array(member, allow_pickle=False)
          except ValueError:
            raise DataError(f"{path}: field '{key}': holds Python objects; "
                            "the schema stores plain arrays only") from None
  for k, v in arrays.items():
    if v.ndim == 0:
      arrays[k] = v[()] if not isinstance(v, np.memmap) else np.array(v)[()]
  validate(arrays, path)
  return PoseData(path=path, arrays=arrays)


def natural_key(name) -> list:
  """Sort key that orders names as people do: 'TS2' < 'TS10'."""
  return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(name))]
