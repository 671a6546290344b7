"""Grain input pipeline: clip windows over project NPZ files -> numpy batches.

This module owns everything between a split file (`dataset.py` schema) and
the host-local numpy batches the trainer and evaluator consume. It knows
nothing about models; turning batches into global jax Arrays is the
trainer's job.

Clips (PROTOCOL.md §2.5) are cut at load time, so one file serves every T:

* `clip_frames`: windows of T consecutive frames inside one sequence, every
  `stride` frames. `tail='drop'` drops the frames after the last full window
  (MotionBERT); `tail='last'` adds a final window ending at the last frame
  (VideoPose3D family). A sequence shorter than T gives one clip resampled to
  T frames with `floor(linspace(0, L, T, endpoint=False))` (MotionAGFormer's
  deterministic 3DHP resample). MotionBERT resamples at random (floor or ceil
  per position) and skips the fallback for the file's last sequence; ours is
  deterministic so that clips do not depend on a seed, and applies to every
  sequence.
* `centered_frames`: one T-window centred on each valid frame, edge-padded
  by repeating the sequence's first/last frame (MPI-INF-3DHP test protocol,
  PROTOCOL.md §4: only the centre frame `T // 2` is scored).

An element (one clip) is a dict of numpy arrays:

  kp2d       float32 (T, J, 3)  normalised input (x, y, conf), §2.4.
  kp3d       float32 (T, J, 3)  normalised root-relative label.
  scale_mm   float32 (T,)       kp3d * scale_mm = root-relative mm (NaN for
                                image-space labels of files without factor).
  frame_idx  int64   (T,)       global frame indices (occurrence averaging).
  seq        int32   ()         sequence index in the file.
  valid      bool    (T,)       the file's `valid` mask (all True without).
  center     int32   ()         only in 'centered' mode: the scored frame.

Label spaces (`config.data.label_space`):
  'image':  kp3d = camera.normalize_label(kp3d_image) - root,
            scale_mm = factor * w / 2 (MotionBERT, H36M).
  'camera': kp3d = (kp3d_mm - root) / w * 2, scale_mm = w / 2
            (MotionAGFormer's 3DHP normalisation: mm treated as pixels).

Training stream (`train_dataset`): source -> seed -> per-epoch shuffle ->
repeat forever -> random flip -> process shard `[pi::pc]` -> batch ->
worker processes. The stream is an endless sequence of epochs, each a fresh
permutation of all clips; batches may straddle epoch boundaries, so no clip
is ever dropped and `steps_per_epoch` just counts batches for schedules.
Process `pi` of `pc` gets stream elements `pi, pi + pc, ...`, so the local
batches of all processes at one step form exactly the global batch a single
process would see. The iterator state (`get_state`/`set_state`,
`grain.checkpoint`) resumes exactly, with or without workers.
"""

from __future__ import annotations

import math
import time

import grain
import numpy as np

from opformer_jax.data import camera
from opformer_jax.data import dataset
from opformer_jax import skeleton

TAILS = ("drop", "last")
EVAL_MODES = ("clips", "centered")
INPUT_2D = ("file", "gt")
LABEL_SPACES = ("image", "camera")
# Threads per process reading clips. The data is memory-mapped and the work
# is small numpy ops under the GIL: one background thread overlaps reading
# with the (GIL-free) jitted step, more only contend (measured on 2 cores,
# T = 243, B = 4: 1 thread ~3500 clips/s, 2 threads ~2500).
_READ_THREADS = 1


def _choice(name, value, allowed):
  if value not in allowed:
    raise ValueError(f"{name} is {value!r}; expected one of {allowed}")


def clip_frames(seq_lengths, num_frames: int, stride: int,
                tail: str = "drop") -> np.ndarray:
  """Sliding windows that never cross a sequence.

  Args:
    seq_lengths: (S,) frames per sequence; sequences are laid out back to
      back from frame 0 (as `seq_offsets` in the schema).
    num_frames: T.
    stride: frames between window starts (train T // 3, test T).
    tail: 'drop' or 'last' (see module docstring).

  Returns:
    (n_clips, T) int64 global frame indices, sequences in order, windows in
    time order inside each sequence.
  """
  _choice("tail", tail, TAILS)
  if num_frames < 1 or stride < 1:
    raise ValueError(f"num_frames ({num_frames}) and stride ({stride}) must "
                     "be >= 1")
  lengths = np.asarray(seq_lengths, np.int64)
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  window = np.arange(num_frames, dtype=np.int64)
  out = [np.zeros((0, num_frames), np.int64)]
  for off, n in zip(offsets[:-1], lengths):
    if n < num_frames:
      # floor(linspace(0, n, T, endpoint=False)) in exact integer form.
      local = (window * n // num_frames)[None]
    else:
      starts = np.arange(0, n - num_frames + 1, stride, dtype=np.int64)
      if tail == "last" and starts[-1] + num_frames < n:
        starts = np.append(starts, n - num_frames)
      local = starts[:, None] + window
    out.append(off + local)
  return np.concatenate(out)


def centered_frames(seq_lengths, num_frames: int, valid=None) -> np.ndarray:
  """One window per (valid) frame, centred on it, edge-padded.

  Args:
    seq_lengths: (S,) frames per sequence, laid out back to back.
    num_frames: T; the centre frame sits at window position T // 2.
    valid: optional (N,) bool; windows only for valid frames.

  Returns:
    (n_windows, T) int64 global frame indices; row i is centred on the i-th
    (valid) frame in file order and repeats the sequence's first/last frame
    where the window runs past an end.
  """
  lengths = np.asarray(seq_lengths, np.int64)
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  seq = np.repeat(np.arange(len(lengths)), lengths)
  centers = np.arange(offsets[-1], dtype=np.int64)
  if valid is not None:
    keep = np.asarray(valid, bool)
    centers, seq = centers[keep], seq[keep]
  rel = np.arange(num_frames, dtype=np.int64) - num_frames // 2
  return np.clip(centers[:, None] + rel, offsets[seq][:, None],
                 offsets[seq + 1][:, None] - 1)


class ClipSource:
  """Grain random-access source of normalised clips from one split file.

  The file is memory-mapped lazily on first access in each process and the
  arrays (and the clip table) are dropped when pickled, so grain workers
  re-open the file and share the page cache instead of receiving copies.
  Elements are described in the module docstring.
  """

  def __init__(self, path: str, num_frames: int, stride: int = 1, *,
               tail: str = "drop", mode: str = "clips",
               input_2d: str = "file", label_space: str = "image"):
    _choice("mode", mode, EVAL_MODES)
    _choice("tail", tail, TAILS)
    _choice("data.input_2d", input_2d, INPUT_2D)
    _choice("data.label_space", label_space, LABEL_SPACES)
    self.path = str(path)
    self.num_frames = int(num_frames)
    self.stride = int(stride)
    self.tail = tail
    self.mode = mode
    self.input_2d = input_2d
    self.label_space = label_space
    self._data = None     # dataset.PoseData, per process.
    self._clips = None    # (n_clips, T) int64 global frame indices.
    self._clip_seq = None  # (n_clips,) sequence of each clip.

  def __repr__(self):
    return (f"ClipSource(path={self.path!r}, num_frames={self.num_frames}, "
            f"stride={self.stride}, tail={self.tail!r}, mode={self.mode!r}, "
            f"input_2d={self.input_2d!r}, "
            f"label_space={self.label_space!r})")

  def __getstate__(self):
    state = dict(self.__dict__)
    state.update(_data=None, _clips=None, _clip_seq=None)
    return state

  def _open(self) -> dataset.PoseData:
    if self._data is None:
      data = dataset.load(self.path)
      self._check_fields(data)
      if self.mode == "clips":
        clips = clip_frames(data.seq_lengths, self.num_frames, self.stride,
                            self.tail)
      else:
        clips = centered_frames(data.seq_lengths, self.num_frames,
                                data.valid)
        if not len(clips):
          raise dataset.DataError(f"{self.path}: field 'valid': no valid "
                                  "frames to evaluate")
      self._clip_seq = (np.searchsorted(data.seq_offsets, clips[:, 0],
                                        side="right") - 1).astype(np.int32)
      self._clips = clips
      self._data = data
    return self._data

  def _check_fields(self, data):
    def need(field, why):
      if getattr(data, field) is None:
        raise dataset.DataError(
            f"{self.path}: field '{field}': missing, expected (N, J, 3); "
            f"{why}")
    if self.input_2d == "gt":
      why = "data.input_2d='gt' takes the input xy from the image-space label"
      if data.input_2d == "gt":
        why += ("; this file's kp2d already holds GT 2D, so use "
                "data.input_2d='file'")
      need("kp3d_image", why)
    if self.label_space == "image":
      need("kp3d_image", "data.label_space='image' needs the image-space "
           "label (use data.label_space='camera' for camera-frame kp3d)")
    else:
      need("kp3d", "data.label_space='camera' needs camera-frame kp3d in mm "
           "(use data.label_space='image' for image-space labels)")

  @property
  def layout(self) -> str:
    return self._open().layout

  @property
  def clips(self) -> np.ndarray:
    """(n_clips, T) int64 global frame indices of every element."""
    self._open()
    return self._clips

  def __len__(self) -> int:
    self._open()
    return len(self._clips)

  def __getitem__(self, index) -> dict[str, np.ndarray]:
    data = self._open()
    idx = self._clips[index]
    s = int(self._clip_seq[index])
    w, h = (float(v) for v in data.seq_image_size[s])
    t = self.num_frames
    root = skeleton.get_layout(data.layout).root
    needs_image = self.input_2d == "gt" or self.label_space == "image"
    image = data.kp3d_image[idx] if needs_image else None
    if self.input_2d == "file":
      xy, conf = data.kp2d[idx], data.conf[idx]
    else:
      xy = image[..., :2]
      conf = np.ones(xy.shape[:-1], np.float32)
    kp2d = np.concatenate([camera.normalize_screen(xy, w, h),
                           np.asarray(conf, np.float32)[..., None]], -1)
    if self.label_space == "image":
      label = camera.normalize_label(image, w, h)
      scale = (np.asarray(data.factor[idx], np.float32) * (w / 2)
               if data.factor is not None
               else np.full((t,), np.nan, np.float32))
    else:
      label = np.asarray(data.kp3d[idx], np.float32) / w * 2
      scale = np.full((t,), w / 2, np.float32)
    label = label - label[:, root:root + 1]
    valid = (np.asarray(data.valid[idx], bool) if data.valid is not None
             else np.ones((t,), bool))
    element = {
        "kp2d": kp2d.astype(np.float32),
        "kp3d": label.astype(np.float32),
        "scale_mm": scale.astype(np.float32),
        "frame_idx": np.array(idx, np.int64),
        "seq": np.int32(s),
        "valid": valid,
    }
    if self.mode == "centered":
      element["center"] = np.int32(t // 2)
    return element


class RandomFlip:
  """Horizontal flip of kp2d and kp3d with probability `prob` per clip.

  A grain `random_map` callable: the generator is seeded from the pipeline
  seed and the element's stream position, so flips are reproducible and
  survive a resume. Confidence moves with its joint (`skeleton.flip_pose`).
  """

  def __init__(self, layout: str, prob: float):
    self.layout = layout
    self.prob = float(prob)

  def __repr__(self):
    return f"RandomFlip(layout={self.layout!r}, prob={self.prob})"

  def __call__(self, element, rng: np.random.Generator):
    if rng.random() >= self.prob:
      return element
    out = dict(element)
    out["kp2d"] = skeleton.flip_pose(element["kp2d"], self.layout)
    out["kp3d"] = skeleton.flip_pose(element["kp3d"], self.layout)
    return out


def _process(process_index, process_count):
  if process_index is None or process_count is None:
    import jax  # pylint: disable=g-import-not-at-top
    process_index = (jax.process_index() if process_index is None
                     else process_index)
    process_count = (jax.process_count() if process_count is None
                     else process_count)
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} not in "
                     f"[0, {process_count})")
  return int(process_index), int(process_count)


def _local_batch(global_batch, process_count, name):
  if global_batch < 1 or global_batch % process_count:
    raise ValueError(f"{name} = {global_batch} must be a positive multiple "
                     f"of the process count {process_count}")
  return global_batch // process_count


def _ensure_flags_parsed():
  # grain's worker processes read absl flags; outside absl.app.run (tests,
  # notebooks, plain scripts) they are unparsed and grain would raise
  # UnparsedFlagAccessError. Marking them parsed keeps every default.
  from absl import flags  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def steps_per_epoch(n_clips: int, global_batch: int) -> int:
  """Full global batches per epoch (the remainder straddles into the next)."""
  if global_batch < 1:
    raise ValueError(f"global batch {global_batch} must be >= 1")
  return n_clips // global_batch


def train_dataset(config, process_index: int | None = None,
                  process_count: int | None = None):
  """The endless, shuffled, flipped training stream of this process.

  Args:
    config: the experiment config (`data`, `train.batch_size`, `seed`).
      Training clips use stride `data.train_stride` and always drop tails
      (MotionBERT); `data.num_workers` > 0 adds grain worker processes.
    process_index, process_count: default to jax.process_index/count().

  Returns:
    (ds, n_clips): `ds` a grain IterDataset of dict batches with leading
    dim `train.batch_size // process_count` (element keys and shapes as in
    the module docstring: kp2d (B, T, J, 3), ..., seq (B,)); `n_clips` the
    number of clips per epoch over all processes.
  """
  pi, pc = _process(process_index, process_count)
  d = config.data
  batch = _local_batch(config.train.batch_size, pc, "train.batch_size")
  if d.train_path is None:
    raise ValueError("config.data.train_path is not set")
  source = ClipSource(d.train_path, d.num_frames, d.train_stride,
                      tail="drop", input_2d=d.input_2d,
                      label_space=d.label_space)
  n_clips = len(source)
  if n_clips < config.train.batch_size:
    raise ValueError(f"{d.train_path}: {n_clips} clips of T = "
                     f"{d.num_frames} per epoch, fewer than one batch "
                     f"({config.train.batch_size})")
  ds = grain.MapDataset.source(source).seed(config.seed).shuffle().repeat()
  if d.flip_prob > 0:
    ds = ds.random_map(RandomFlip(source.layout, d.flip_prob))
  ds = ds[pi::pc].batch(batch, drop_remainder=True)
  it = ds.to_iter_dataset(grain.ReadOptions(
      num_threads=_READ_THREADS, prefetch_buffer_size=d.prefetch))
  if d.num_workers > 0:
    _ensure_flags_parsed()
    it = it.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=d.num_workers, per_worker_buffer_size=d.prefetch))
  return it, n_clips


class _EvalRows:
  """Row r of the padded, process-strided eval stream (see eval_batches)."""

  def __init__(self, source, n_clips, local_batch, process_index,
               process_count):
    self.source = source
    self.n_clips = n_clips
    self.local_batch = local_batch
    self.process_index = process_index
    self.process_count = process_count
    self.num_batches = math.ceil(n_clips / (local_batch * process_count))

  def __repr__(self):
    return (f"_EvalRows({self.source!r}, n_clips={self.n_clips}, "
            f"local_batch={self.local_batch}, "
            f"process={self.process_index}/{self.process_count})")

  def __len__(self):
    return self.num_batches * self.local_batch

  def __getitem__(self, row):
    clip = row * self.process_count + self.process_index
    real = clip < self.n_clips
    element = self.source[clip if real else self.n_clips - 1]
    element["mask"] = np.bool_(real)
    return element


def eval_batches(config, path: str | None = None, *, mode: str = "clips",
                 process_index: int | None = None,
                 process_count: int | None = None, max_clips: int = -1):
  """Ordered, unshuffled, fixed-shape evaluation batches of this process.

  Global batch k holds clips [k * B, (k + 1) * B) (B = eval.batch_size) in
  order; process pi's local row r of batch k is clip (k * B_l + r) * pc + pi
  (B_l = B // pc), i.e. processes take strided rows, so every process yields
  the same number of batches and concatenating the local batches in process
  order gives that global batch's clips (permuted). Rows past the last clip
  copy the last clip and have `mask` False, so shapes never change.

  Args:
    config: the experiment config (`data`, `eval.batch_size`).
    path: split file; defaults to `config.data.test_path`.
    mode: 'clips' (stride data.test_stride, tail data.test_tail; H36M) or
      'centered' (one window per valid frame; 3DHP); the evaluation
      protocol's `eval_mode`.
    process_index, process_count: default to jax.process_index/count().
    max_clips: > 0 evaluates only the first clips (quick validation).

  Returns:
    (ds, num_batches): `ds` a grain IterDataset of dict batches (the
    element keys of the module docstring with leading dim B_l, plus
    `mask` (B_l,) bool); `num_batches` per process.
  """
  pi, pc = _process(process_index, process_count)
  d = config.data
  path = path or d.test_path
  if path is None:
    raise ValueError("config.data.test_path is not set")
  batch = _local_batch(config.eval.batch_size, pc, "eval.batch_size")
  source = ClipSource(path, d.num_frames, d.test_stride, tail=d.test_tail,
                      mode=mode, input_2d=d.input_2d,
                      label_space=d.label_space)
  n_clips = len(source) if max_clips <= 0 else min(len(source), max_clips)
  rows = _EvalRows(source, n_clips, batch, pi, pc)
  ds = grain.MapDataset.source(rows).batch(batch, drop_remainder=True)
  it = ds.to_iter_dataset(grain.ReadOptions(
      num_threads=_READ_THREADS, prefetch_buffer_size=d.prefetch))
  return it, rows.num_batches


def measure_throughput(config, num_batches: int = 50) -> float:
  """Training-stream clips/s of this process, after one warm-up batch.

  The warm-up batch absorbs file opening and worker start-up; the figure is
  the steady rate at which `train_dataset(config)` yields clips when nothing
  else competes for the CPU.
  """
  ds, _ = train_dataset(config, 0, 1)
  it = iter(ds)
  try:
    next(it)
    start = time.perf_counter()
    for _ in range(num_batches):
      next(it)
    elapsed = time.perf_counter() - start
  finally:
    if hasattr(it, "close"):
      it.close()
  return num_batches * config.train.batch_size / elapsed
