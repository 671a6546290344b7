"""Where a config's splits are: one resolution for every entry point.

Training, evaluation, the benchmark and the tools all call `resolve(config)`
before they read `config.data.train_path` / `test_path`, so a config that
trains also evaluates. The built-in synthetic dataset (`data.name =
'synthetic'` without paths) is generated once into the user cache and reused;
any other dataset must name its files. `validation_subset` cuts the fixed
part of a test split that validation during training scores.
"""

import math
import os

import ml_collections
import numpy as np

from opformer_jax import errors
from opformer_jax.data import dataset

SPLITS = ("train", "test")
CACHE_DIR = "~/.cache/opformer_jax/synthetic"


def resolve(config: ml_collections.ConfigDict,
            splits=SPLITS) -> ml_collections.ConfigDict:
  """`config` with the paths of `splits` filled in and checked to be set.

  Args:
    config: the experiment config.
    splits: the splits the caller reads ('train', 'test').

  Returns:
    `config` itself when nothing was missing, else a locked copy with the
    built-in synthetic dataset's paths filled in (generated into
    `~/.cache/opformer_jax/synthetic` on first use, a few seconds).

  Raises:
    errors.ConfigError: a needed path is not set and `data.name` is not
      'synthetic'.
    errors.DataError: a path that is set names no file (`check_files`).
  """
  check_files(config, splits)
  d = config.data
  missing = [s for s in splits if not d[f"{s}_path"]]
  if not missing:
    return config
  if d.name != "synthetic":
    raise errors.ConfigError(
        f"config.data.{missing[0]}_path is not set; expected the "
        f"{missing[0]} split of a prepared dataset (e.g. "
        "configs/h36m.py:data_dir=DIR, or "
        f"--config.data.{missing[0]}_path=DIR/{missing[0]}.npz)")
  from opformer_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  default = dict(zip(SPLITS, synthetic.ensure_default(
      os.path.expanduser(CACHE_DIR))))
  config = ml_collections.ConfigDict(config.to_dict())
  for split in missing:
    config.data[f"{split}_path"] = default[split]
  config.lock()
  return config


def check_files(config: ml_collections.ConfigDict, splits=SPLITS) -> None:
  """Raises a one-line `errors.DataError` unless every set path of `splits`
  is an existing NumPy file (checked before a run creates anything; the
  schema itself is checked when the file is read)."""
  for split in splits:
    path = config.data[f"{split}_path"]
    if not path:
      continue
    if os.path.isdir(path):
      what = "is a directory"
    elif not os.path.exists(path):
      what = "no such data file"
    else:
      what = dataset.not_numpy(path)   # a text file renamed .npz, ...
      if what is None:
        continue
    raise errors.DataError(errors.bad_input(
        f"config.data.{split}_path={path}", what,
        "a split file prepared by tools/prepare_*.py (docs/data.md)"))


def validation_subset(test_path: str, out_path: str, max_clips: int,
                      num_frames: int, stride: int,
                      centered: bool = False) -> str:
  """Writes a fixed subset of a test split for validation during training.

  The same centred stretch of every sequence, long enough for about
  `max_clips` evaluation clips in all (clips of `num_frames` frames every
  `stride` frames; with `centered`, one window per frame as in the 3DHP
  protocol), so every subject, action and camera counts; when there are
  more sequences than clips, one clip of evenly spaced sequences. The
  subset depends only on the arguments, so every run and resume scores the
  same frames.

  Returns:
    `out_path` (written atomically, project schema).
  """
  data = dataset.load(test_path)
  lengths = data.seq_lengths
  num_seqs = len(lengths)
  seqs = np.arange(num_seqs)
  if num_seqs > max_clips:
    seqs = np.unique(np.round(np.linspace(0, num_seqs - 1, max_clips))
                     ).astype(int)
  clips_each = math.ceil(max_clips / len(seqs))
  want = clips_each if centered else (clips_each - 1) * stride + num_frames
  frames, new_lengths = [], []
  for s in seqs:
    n = int(min(lengths[s], want))
    start = data.seq_frames(s).start + (int(lengths[s]) - n) // 2
    frames.append(np.arange(start, start + n))
    new_lengths.append(n)
  frames = np.concatenate(frames)
  arrays = {}
  for key, value in data.arrays.items():
    if key == "seq_offsets":
      arrays[key] = np.concatenate([[0], np.cumsum(new_lengths)])
    elif key.startswith("seq_"):
      arrays[key] = np.asarray(value)[seqs]
    elif np.ndim(value) and len(value) == data.num_frames:
      arrays[key] = np.asarray(value[frames])
    else:
      arrays[key] = value
  arrays["source"] = (f"{data.arrays['source']} [validation subset of "
                      f"{len(frames)} frames of {len(seqs)} sequences]")
  dataset.save(out_path, arrays)
  return out_path
