"""Shared plumbing of the data converters: input checks, packing, writing.

Every converter (h36m, mpi3dhp, mocap, synthetic) turns its source into a
list of per-sequence dicts

  {'name', 'subject', 'action', 'camera', 'image_size': (w, h), 'fps',
   'kp2d': (F, J, 2), 'conf': (F, J), and some of 'kp3d', 'kp3d_image',
   'factor', 'valid'}

and `pack` concatenates them into the project NPZ schema (`dataset.py`).
`write_splits` validates every split before writing any, so a conversion that
fails leaves existing output files untouched.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from opformer_jax.data import dataset

_FRAME_KEYS = ("kp2d", "conf", "kp3d", "kp3d_image", "factor", "valid")


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


def run_cli(convert) -> None:
  """Runs a converter for a CLI: `convert()` returns {split: path}.

  Data and file errors end the program with a one-line message (exit 1);
  on success each written file is described and the time printed.
  """
  start = time.time()
  try:
    paths = convert()
  except (dataset.DataError, OSError) as e:
    sys.exit(f"error: {e}")
  for path in paths.values():
    print(describe(path))
  print(f"done in {time.time() - start:.1f} s")
