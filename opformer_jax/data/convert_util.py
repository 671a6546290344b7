"""Shared plumbing of the data converters: reading, gaps, packing, writing.

Every converter (h36m, mpi3dhp, mocap, synthetic) turns its source into a
list of per-sequence dicts built by `sequence` (or `camera_sequence`, which
adds the image-space label of a calibrated camera)

  {'name', 'subject', 'action', 'camera', 'image_size': (w, h), 'fps',
   'kp2d': (F, J, 2), 'conf': (F, J), and some of 'kp3d', 'kp3d_image',
   'factor', 'valid'}

and `pack` concatenates them into the project NPZ schema (`dataset.py`).
`write_splits` validates every split before writing any, so a conversion that
fails leaves existing output files untouched.

Converters convert what is there: a piece the source lacks (a camera view
without detections, a take without 3D) is left out with one warning naming
it and counted in a `Gaps`; `Gaps(strict=True)` (the tools' `--strict`)
makes the first gap an error instead. A damaged file (truncated npz, h5 or
pickle) is always an error naming the file.
"""

from __future__ import annotations

import collections
import os
import time

from absl import logging
import numpy as np

from opformer_jax import errors
from opformer_jax.data import camera as camera_lib
from opformer_jax.data import dataset

_FRAME_KEYS = ("kp2d", "conf", "kp3d", "kp3d_image", "factor", "valid")


def one_line(e: BaseException) -> str:
  """An exception's message on one line (h5py and zipfile wrap theirs)."""
  return " ".join(str(e).split()) or type(e).__name__


def check_array(value, path, key, shape, finite=True) -> np.ndarray:
  """Returns `value` as an array after checking its shape and values.

  Args:
    value: the array read from a source file.
    path: the source file (for the message).
    key: the field or key inside the file, e.g. "positions_3d['S1']['Eating']".
    shape: expected shape; ints are fixed sizes, strings name free sizes
      (e.g. ('F', 17, 2)).
    finite: also reject NaN / inf values.

  Raises:
    dataset.DataError naming the file, the key and the expected shape.
  """
  want = "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1
                                                     else "") + ")"
  try:
    a = np.asarray(value)
  except Exception as e:  # pylint: disable=broad-except
    raise dataset.DataError(f"{path}: key {key}: not an array ({e}); "
                            f"expected shape {want}") from None
  ok = a.ndim == len(shape) and all(
      isinstance(d, str) or a.shape[i] == d for i, d in enumerate(shape))
  if not ok:
    raise dataset.DataError(f"{path}: key {key}: has shape {a.shape}, "
                            f"expected {want}")
  if a.dtype.kind not in "biuf":
    raise dataset.DataError(f"{path}: key {key}: has dtype {a.dtype}, "
                            f"expected numbers of shape {want}")
  if finite and a.dtype.kind == "f" and not np.isfinite(a).all():
    bad = np.argwhere(~np.isfinite(a.reshape(len(a), -1)).all(-1))[:5, 0]
    raise dataset.DataError(f"{path}: key {key}: has NaN/inf values (first "
                            f"rows along axis 0: {bad.tolist()})")
  return a


def read_npz(path: str, keys=None, allow_pickle: bool = False) -> dict:
  """Reads `keys` of an .npz file; a pickled 0-d object array is unwrapped.

  Args:
    path: the file.
    keys: the members to read (None: all); a key ending in '?' is optional
      (absent -> left out of the result).
    allow_pickle: the file stores pickled objects (VideoPose3D, 3DHP).

  Returns:
    {key: value} of the keys present.

  Raises:
    errors.DataError (one line naming the file) for a damaged or truncated
    file or a missing key; FileNotFoundError for a missing file.
  """
  out = {}
  what = dataset.not_numpy(path)
  if what:
    raise errors.DataError(errors.bad_input(path, what, "a numpy .npz "
                                            "archive"))
  try:
    z = np.load(path, allow_pickle=allow_pickle)
    if not isinstance(z, np.lib.npyio.NpzFile):
      raise errors.DataError(errors.bad_input(
          path, f"holds one array of shape {np.shape(z)}, not named arrays",
          "an .npz archive"))
    with z:
      for key in (z.files if keys is None else keys):
        name = key.rstrip("?")
        if name not in z.files:
          if key.endswith("?"):
            continue
          raise errors.DataError(errors.bad_input(
              path, f"key '{name}' is missing", f"keys {sorted(z.files)} to "
              f"include '{name}'"))
        value = z[name]
        out[name] = (value.item() if value.dtype == object and value.ndim == 0
                     else value)
  except Exception as e:  # pylint: disable=broad-except
    if isinstance(e, errors.DataError) or (isinstance(e, OSError)
                                           and e.filename):
      raise   # bad content already said, or a missing / unreadable file
    # A truncated zip raises BadZipFile, a damaged member zlib.error or
    # EOFError, a damaged pickle OSError or UnpicklingError: all one thing.
    raise errors.DataError(errors.bad_input(
        path, f"not a readable .npz file ({one_line(e)})",
        "a complete numpy .npz archive")) from None
  return out


def sequence(name, subject, action, camera, image_size, fps, kp2d,
             conf=None, **frames) -> dict:
  """One converted sequence (the dict `pack` takes).

  Args:
    name, subject, action, camera: its names (`camera` an id string).
    image_size: (width, height) px.
    fps: frame rate.
    kp2d: (F, J, 2) px.
    conf: (F, J) confidence; None = 1 (ground truth or detections without
      scores).
    **frames: optional per-frame fields (kp3d, kp3d_image, factor, valid).
  """
  kp2d = np.asarray(kp2d, np.float32)
  conf = (np.ones(kp2d.shape[:2], np.float32) if conf is None
          else np.asarray(conf, np.float32))
  return {"name": name, "subject": subject, "action": action,
          "camera": str(camera), "image_size": tuple(image_size), "fps": fps,
          "kp2d": kp2d, "conf": conf, **frames}


def camera_sequence(name, subject, action, cam, kp3d_cam, kp2d, fps,
                    conf=None) -> dict:
  """A sequence seen by a calibrated camera: kp3d (F, J, 3) camera-frame mm
  with its image-space label and 2.5D factor (`camera.image_space_label`)."""
  kp3d_image, factor = camera_lib.image_space_label(kp3d_cam, cam.f, cam.c)
  return sequence(name, subject, action, cam.camera_id,
                  (cam.width, cam.height), fps, kp2d, conf,
                  kp3d=np.asarray(kp3d_cam, np.float32),
                  kp3d_image=kp3d_image, factor=factor)


def pack(seqs, *, layout: str, input_2d: str, source: str,
         synthetic: bool = False) -> dict:
  """Concatenates per-sequence dicts (see module docstring) into schema
  arrays. Optional per-frame fields must be present in all or no sequence."""
  if not seqs:
    raise dataset.DataError(f"{source}: no sequences to write")
  out = {"layout": layout, "input_2d": input_2d, "source": source,
         "synthetic": bool(synthetic)}
  for key in _FRAME_KEYS:
    have = [key in s for s in seqs]
    if any(have) and not all(have):
      missing = seqs[have.index(False)]["name"]
      raise dataset.DataError(f"{source}: sequence {missing!r} lacks {key!r} "
                              "which other sequences have")
    if all(have):
      out[key] = np.concatenate([np.asarray(s[key]) for s in seqs])
  lengths = [len(s["kp2d"]) for s in seqs]
  out["seq_offsets"] = np.concatenate([[0], np.cumsum(lengths)])
  out["seq_name"] = np.array([s["name"] for s in seqs])
  out["seq_subject"] = np.array([s["subject"] for s in seqs])
  out["seq_action"] = np.array([s["action"] for s in seqs])
  out["seq_camera"] = np.array([s["camera"] for s in seqs])
  out["seq_image_size"] = np.array([s["image_size"] for s in seqs], np.int32)
  out["seq_fps"] = np.array([s["fps"] for s in seqs], np.float32)
  return out


def require_splits(splits: dict, source: str, selectors: dict) -> None:
  """Raises when a split came out empty, so no file silently goes missing.

  Args:
    splits: {split: arrays} as a reader returns them (empty splits absent).
    source: the input (for the message).
    selectors: {split: what selects its sequences}, e.g. {'test':
      'subjects S9, S11'}; every key must be in `splits`.
  """
  for split, selector in selectors.items():
    if split not in splits:
      raise errors.DataError(errors.bad_input(
          source, f"split '{split}' came out empty (no sequence of "
          f"{selector})", f"sequences in every split "
          f"({', '.join(selectors)})"))


class Gaps:
  """What a conversion left out, by kind, and whether a gap is an error.

  `leave_out` records a piece the source lacks: one warning naming it, or a
  DataError with `strict`. `drop` records what a converter leaves out by
  convention (VideoPose3D's corrupt S11 "Directions" video), never an error.
  """

  def __init__(self, strict: bool = False):
    self.strict = strict
    self.counts = collections.Counter()   # kind -> number left out
    self.warnings = []

  def leave_out(self, kind: str, path, what: str, expected: str) -> None:
    """Leaves out one `kind` (e.g. 'take without 3D'), or raises if strict.

    Args:
      kind: what is left out, singular ('camera view without 2D detections').
      path: the file or folder that lacks it.
      what: what is wrong, naming the sequence.
      expected: what a complete source has.
    """
    if self.strict:
      raise errors.DataError(errors.bad_input(
          path, what, f"{expected} (--strict makes every gap an error)"))
    self._record(kind, f"{errors.bad_input(path, what)}; left out")

  def drop(self, kind: str, path, what: str) -> None:
    """Leaves out `kind` by convention (strict or not)."""
    self._record(kind, f"{errors.bad_input(path, what)}; left out")

  def _record(self, kind, line):
    logging.warning("%s", line)
    self.warnings.append(line)
    self.counts[kind] += 1

  def summary(self) -> str:
    """'left out: 1 x take without 3D, ...' or 'left out: nothing'."""
    if not self.counts:
      return "left out: nothing"
    return "left out: " + ", ".join(f"{n} x {kind}" for kind, n in
                                    sorted(self.counts.items()))


def write_splits(splits: dict, output_dir: str) -> dict:
  """Writes {split_name: arrays} as `<output_dir>/<split_name>.npz`.

  All splits are validated before the first write and each write is atomic
  (`dataset.save`), so on a data error nothing already on disk changes.

  Returns:
    {split_name: path}.
  """
  paths = {name: os.path.join(output_dir, f"{name}.npz") for name in splits}
  for name, arrays in splits.items():
    dataset.validate(_as_saved(arrays), paths[name])
  for name, arrays in splits.items():
    dataset.save(paths[name], arrays)
  return paths


def _as_saved(arrays: dict) -> dict:
  """The arrays as `dataset.save` would store them (for validation)."""
  out = {k: v for k, v in arrays.items() if v is not None}
  out.setdefault("schema_version", dataset.SCHEMA_VERSION)
  out.setdefault("synthetic", False)
  return out


def describe(path: str) -> str:
  """One line for CLIs: frames, sequences, file size and what it holds."""
  data = dataset.load(path)
  size = os.path.getsize(path) / 2**20
  fields = [k for k in ("kp3d", "kp3d_image", "factor", "valid")
            if getattr(data, k) is not None]
  return (f"{path}: {data.num_frames:,} frames, {data.num_seqs:,} sequences, "
          f"{size:.1f} MiB, layout {data.layout}, input_2d {data.input_2d}, "
          f"fields kp2d conf {' '.join(fields)}"
          + (" [SYNTHETIC]" if data.synthetic else ""))


def run_cli(convert, strict: bool = False) -> Gaps:
  """Runs a converter for a tool: `convert(gaps)` returns {split: path}.

  Errors propagate: the tool runs under `cli.run`, which prints a data or
  file error as one line and exits with status 2. On success each written
  file is described, then what was converted and what was left out (by
  kind), and the time.

  Returns:
    The `Gaps` of the conversion.
  """
  start = time.time()
  gaps = Gaps(strict)
  paths = convert(gaps)
  counts = []
  for split, path in paths.items():
    print(describe(path))
    counts.append(f"{split} {dataset.load(path).num_seqs:,}")
  print(f"converted: {', '.join(counts)} sequences; {gaps.summary()}")
  print(f"done in {time.time() - start:.1f} s")
  return gaps
