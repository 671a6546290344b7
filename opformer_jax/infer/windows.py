"""Whole-sequence prediction with a fixed-length clip model (SPEC.md §5).

The lifter sees clips of exactly T frames. `predict_sequence` covers a
sequence of any length F:

* F > T: windows of T frames start every `stride = round(T * (1 - overlap))`
  frames, plus one window ending on the last frame (VideoPose3D-style, so no
  tail is dropped). Each frame's prediction is the weighted mean of the
  windows covering it, with a Hann taper per window position,
  `w(t) = sin^2(pi * (t + 0.5) / T)`: a window's edge frames, which see the
  least temporal context, count least, and the blend has no seams. Every
  weight is positive, so the sequence's first and last frames (covered by one
  window each) get exactly that window's prediction.
* F <= T: the sequence is resampled up to T frames by index repetition,
  `idx = floor(arange(T) * F / T)` (MotionAGFormer's deterministic resample;
  MotionBERT trains on short sources resampled the same way), predicted in one
  window, and each frame gets the mean of the predictions of its copies.
  F == T therefore reproduces a single-window call exactly.

Windows go through `apply_fn` in batches of a fixed size, the last batch
padded with copies of its final window, so a jitted `apply_fn` compiles once.
Optional flip test-time augmentation (`model.flip_tta`, the one the
evaluation uses) averages `f(x)` with `flip(f(flip(x)))` per batch of
windows (PROTOCOL.md §3.2) before blending.
"""

from collections.abc import Callable
import functools

import numpy as np
from tqdm import tqdm

from opformer_jax import model as model_lib
from opformer_jax import skeleton


def window_weights(num_frames: int) -> np.ndarray:
  """(T,) float64 Hann taper, positive everywhere, peak 1 at the centre."""
  t = np.arange(num_frames, dtype=np.float64)
  return np.sin(np.pi * (t + 0.5) / num_frames) ** 2


def window_starts(length: int, num_frames: int, stride: int) -> np.ndarray:
  """Start frames of the windows covering `length` frames (length >= T)."""
  starts = list(range(0, length - num_frames + 1, stride))
  if starts[-1] != length - num_frames:
    starts.append(length - num_frames)
  return np.asarray(starts, np.int64)


def _run_batched(apply_fn, clips, batch_size, progress=False):
  """apply_fn over (N, T, J, C) clips in fixed (B, T, J, C) batches."""
  num = clips.shape[0]
  out = []
  for lo in tqdm(range(0, num, batch_size), desc="lift 3D", unit="batch",
                 disable=not progress):
    batch = clips[lo:lo + batch_size]
    real = batch.shape[0]
    if real < batch_size:
      pad = np.repeat(batch[-1:], batch_size - real, axis=0)
      batch = np.concatenate([batch, pad], axis=0)
    pred = np.asarray(apply_fn(batch), np.float32)
    if pred.shape[:3] != batch.shape[:3] or pred.ndim != 4:
      raise ValueError(
          f"apply_fn returned shape {pred.shape} for a batch of shape "
          f"{batch.shape}; expected (B, T, J, 3) = {batch.shape[:3] + (3,)}.")
    out.append(pred[:real])
  return np.concatenate(out, axis=0)


def predict_sequence(
    apply_fn: Callable[[np.ndarray], np.ndarray],
    kp2d,
    num_frames: int,
    *,
    overlap: float = 0.5,
    flip_tta: bool = False,
    layout: str = "h36m17",
    batch_size: int = 8,
    progress: bool = False,
) -> np.ndarray:
  """3D prediction for a whole sequence (windowing in the module docstring).

  Args:
    apply_fn: (B, T, J, 3) float32 normalised input -> (B, T, J, 3)
      prediction (numpy or jax array); always called with B = `batch_size`.
    kp2d: (F, J, 3) normalised (x, y, conf), F >= 1.
    num_frames: T, the clip length the model takes.
    overlap: fraction of T shared by consecutive windows, in [0, 1).
    flip_tta: average with the horizontally flipped prediction.
    layout: joint order (for the flip and the joint-count check).
    batch_size: windows per `apply_fn` call.
    progress: show a progress bar over the batches of windows.

  Returns:
    (F, J, 3) float32 prediction, in `apply_fn`'s units.
  """
  kp2d = np.asarray(kp2d, np.float32)
  num_joints = skeleton.get_layout(layout).num_joints
  if kp2d.ndim != 3 or kp2d.shape[1:] != (num_joints, 3):
    raise ValueError(f"kp2d has shape {kp2d.shape}; expected (F, "
                     f"{num_joints}, 3) normalised (x, y, conf) for {layout}.")
  length = kp2d.shape[0]
  if length == 0:
    raise ValueError("kp2d has no frames.")
  if not np.isfinite(kp2d).all():
    raise ValueError("kp2d holds NaN or inf; fill missing keypoints first "
                     "(keypoint_formats.fill_missing).")
  if num_frames < 1 or batch_size < 1:
    raise ValueError(f"num_frames ({num_frames}) and batch_size "
                     f"({batch_size}) must be positive.")
  if not 0 <= overlap < 1:
    raise ValueError(f"overlap must be in [0, 1), got {overlap}.")

  if length <= num_frames:
    idx = (np.arange(num_frames) * length // num_frames)[None]
    weights = np.ones((1, num_frames))
  else:
    stride = max(1, round(num_frames * (1 - overlap)))
    starts = window_starts(length, num_frames, stride)
    idx = starts[:, None] + np.arange(num_frames)
    weights = np.tile(window_weights(num_frames), (len(starts), 1))

  if flip_tta:
    apply_fn = functools.partial(model_lib.flip_tta, apply_fn, layout=layout)
  # (N, T, J, 3)
  pred = _run_batched(apply_fn, kp2d[idx], batch_size, progress)

  total = np.zeros((length,) + pred.shape[2:], np.float64)
  weight_sum = np.zeros((length,), np.float64)
  np.add.at(total, idx, weights[..., None, None] * pred)
  np.add.at(weight_sum, idx, weights)
  return (total / weight_sum[:, None, None]).astype(np.float32)
