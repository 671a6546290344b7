"""Pose metrics and the Human3.6M / MPI-INF-3DHP scoring protocols (numpy).

Pure numpy, float64 internally; every function takes poses in millimetres
with joints on the second-to-last axis, `(..., J, 3)`, and the evaluators
take what the model produced after denormalisation (PROTOCOL.md §3-4).

Per-frame metrics (return one value per pose, mm unless stated):

* `mpjpe`: mean over joints of the Euclidean error (protocol #1).
* `p_mpjpe`: MPJPE after a per-frame similarity Procrustes alignment of the
  prediction to the GT (protocol #2), exactly PROTOCOL.md §3.5.
* `n_mpjpe`: MPJPE after a scale-only alignment (VideoPose3D protocol #3).
* `mpjve`: velocity error (mm/frame) and `accel_error` (mm/frame^2) on
  sequences `(..., T, J, 3)`.
* `per_joint_error`, `pck`, `pck_curve`, `auc` (MPI-INF-3DHP, PROTOCOL.md §4).

Accumulators:

* `H36MEvaluator`: clip predictions -> per-frame errors averaged over the
  clips covering each frame, an optional skip list of sequences (the
  Human3.6M protocol passes its S9 list, `protocols.is_skipped`), action-
  and frame-averaged means (MotionBERT / MotionAGFormer `evaluate`,
  reference-impls.md §2.3).
* `MPI3DHPEvaluator`: centre-frame predictions -> PCK@150 / AUC over the 14
  MATLAB joints, MPJPE over all 17, per sequence and pooled ("All").
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from opformer_jax import skeleton
from opformer_jax.data import dataset

# MPI-INF-3DHP joint groups of `mpii_get_pck_auc_joint_groups.m`, converted
# from 1-based MATLAB to 0-based MPI-17 indices. Together they are the 14
# joints of `skeleton.MPI_PCK_JOINTS`; pelvis, spine and head are not scored.
MPI_JOINT_GROUPS = (
    ("Head", (0,)), ("Neck", (1,)), ("Shoulder", (2, 5)), ("Elbow", (3, 6)),
    ("Wrist", (4, 7)), ("Hip", (8, 11)), ("Knee", (9, 12)),
    ("Ankle", (10, 13)))
PCK_THRESHOLD = 150.0
# `thresh = 0:5:150` in mpii_compute_3d_pck.m: 31 values, 0 included.
AUC_THRESHOLDS = np.arange(0.0, 151.0, 5.0)

METRICS = ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve", "accel_error")



def _pair(pred, gt, min_ndim=2):
  pred = np.asarray(pred, np.float64)
  gt = np.asarray(gt, np.float64)
  if pred.shape != gt.shape or pred.ndim < min_ndim or pred.shape[-1] != 3:
    raise ValueError(
        f"pred and gt must have the same shape (..., J, 3) with at least "
        f"{min_ndim} axes; got pred {pred.shape} and gt {gt.shape}")
  return pred, gt


def per_joint_error(pred, gt) -> np.ndarray:
  """Euclidean error of every joint.

  Args:
    pred: (..., J, 3) mm.
    gt: (..., J, 3) mm.

  Returns:
    (..., J) mm.
  """
  pred, gt = _pair(pred, gt)
  return np.linalg.norm(pred - gt, axis=-1)


def mpjpe(pred, gt) -> np.ndarray:
  """Mean per-joint position error of each pose (protocol #1).

  No alignment here: callers make both sides root-relative first, so the
  root's zero error is part of the mean, as in the reference code.

  Args:
    pred: (..., J, 3) mm.
    gt: (..., J, 3) mm.

  Returns:
    (...) mm.
  """
  return per_joint_error(pred, gt).mean(axis=-1)


def procrustes_align(pred, gt, eps: float = 1e-12) -> np.ndarray:
  """Per-pose similarity (rotation, scale, translation) alignment to `gt`.

  PROTOCOL.md §3.5, identical to `p_mpjpe` in MotionBERT / VideoPose3D:
  centre both poses, normalise by the Frobenius norm, SVD of X^T Y (X = GT,
  Y = prediction), R = V U^T; when det R < 0 negate the last column of V and
  the last singular value (so a mirror image is never aligned away); scale
  a = sum(s) * |X| / |Y|; translate. A collapsed prediction (all joints at
  one point) gets scale 0 and lands on the GT centroid.

  Args:
    pred: (..., J, 3) mm.
    gt: (..., J, 3) mm.
    eps: floor for the Frobenius norms.

  Returns:
    (..., J, 3) the aligned prediction, mm.
  """
  pred, gt = _pair(pred, gt)
  mu_x = gt.mean(axis=-2, keepdims=True)
  mu_y = pred.mean(axis=-2, keepdims=True)
  x0 = gt - mu_x
  y0 = pred - mu_y
  norm_x = np.maximum(np.sqrt((x0**2).sum(axis=(-2, -1), keepdims=True)), eps)
  norm_y = np.maximum(np.sqrt((y0**2).sum(axis=(-2, -1), keepdims=True)), eps)
  x0 = x0 / norm_x
  y0 = y0 / norm_y
  h = np.swapaxes(x0, -1, -2) @ y0
  u, s, vt = np.linalg.svd(h)
  v = np.swapaxes(vt, -1, -2)
  ut = np.swapaxes(u, -1, -2)
  sign = np.where(np.linalg.det(v @ ut) < 0, -1.0, 1.0)
  v[..., :, -1] *= sign[..., None]
  s[..., -1] *= sign
  r = v @ ut
  a = s.sum(axis=-1)[..., None, None] * norm_x / norm_y
  t = mu_x - a * (mu_y @ r)
  return a * (pred @ r) + t


def p_mpjpe(pred, gt) -> np.ndarray:
  """MPJPE after per-pose similarity Procrustes alignment (protocol #2).

  Args:
    pred: (..., J, 3) mm.
    gt: (..., J, 3) mm.

  Returns:
    (...) mm.
  """
  return mpjpe(procrustes_align(pred, gt), gt)


def n_mpjpe(pred, gt) -> np.ndarray:
  """MPJPE after a per-pose scale-only alignment (VideoPose3D protocol #3).

  s = sum(gt . pred) / sum(pred . pred) over the joints of each pose; no
  centring (inputs are root-relative).

  Args:
    pred: (..., J, 3) mm.
    gt: (..., J, 3) mm.

  Returns:
    (...) mm.
  """
  pred, gt = _pair(pred, gt)
  num = (gt * pred).sum(axis=(-2, -1), keepdims=True)
  den = np.maximum((pred * pred).sum(axis=(-2, -1), keepdims=True), 1e-12)
  return mpjpe(num / den * pred, gt)


def mpjve(pred, gt) -> np.ndarray:
  """Mean per-joint velocity error (VideoPose3D `mean_velocity_error`).

  Args:
    pred: (..., T, J, 3) mm, consecutive frames of one sequence.
    gt: (..., T, J, 3) mm.

  Returns:
    (..., T-1) mm/frame; entry i is mean_j |(P[i+1] - P[i])_pred - (...)_gt|,
    the backward difference at frame i+1.
  """
  pred, gt = _pair(pred, gt, min_ndim=3)
  return mpjpe(np.diff(pred, axis=-3), np.diff(gt, axis=-3))


def accel_error(pred, gt) -> np.ndarray:
  """Mean per-joint acceleration error (MotionAGFormer `acc_error`).

  Args:
    pred: (..., T, J, 3) mm, consecutive frames of one sequence.
    gt: (..., T, J, 3) mm.

  Returns:
    (..., T-2) mm/frame^2; entry i is
    mean_j |(P[i] - 2 P[i+1] + P[i+2])_pred - (...)_gt|, the central second
    difference at frame i+1.
  """
  pred, gt = _pair(pred, gt, min_ndim=3)
  return mpjpe(np.diff(pred, n=2, axis=-3), np.diff(gt, n=2, axis=-3))


def pck_curve(err, thresholds, joints: Sequence[int] | None = None):
  """Fraction of (pose, joint) errors strictly below each threshold.

  Args:
    err: (N, J) per-joint errors, mm.
    thresholds: (K,) mm.
    joints: columns of `err` to score; None = all.

  Returns:
    (K,) fractions in [0, 1].
  """
  err = np.asarray(err, np.float64)
  if err.ndim != 2:
    raise ValueError(f"err must be (N, J) per-joint errors; got {err.shape}")
  if joints is not None:
    err = err[:, list(joints)]
  if err.size == 0:
    raise ValueError("err holds no (frame, joint) errors to score")
  thresholds = np.asarray(thresholds, np.float64)
  return (err[None] < thresholds[:, None, None]).mean(axis=(1, 2))


def pck(err, threshold: float = PCK_THRESHOLD,
        joints: Sequence[int] | None = None) -> float:
  """Percentage of correct keypoints: 100 * #(err < threshold) / #(err).

  Strict `<`, as `mpii_compute_3d_pck.m`: an error of exactly 150 mm misses.

  Args:
    err: (N, J) per-joint errors, mm.
    threshold: mm.
    joints: columns of `err` to score; None = all (3DHP: pass
      `skeleton.MPI_PCK_JOINTS`).

  Returns:
    percent.
  """
  return 100.0 * float(pck_curve(err, [threshold], joints)[0])


def auc(err, joints: Sequence[int] | None = None,
        thresholds=AUC_THRESHOLDS) -> float:
  """Area under the PCK curve: 100 * mean PCK over 0, 5, ..., 150 mm.

  Args:
    err: (N, J) per-joint errors, mm.
    joints: columns of `err` to score; None = all.
    thresholds: mm; the default is MATLAB's `0:5:150` (31 values).

  Returns:
    percent.
  """
  return 100.0 * float(pck_curve(err, thresholds, joints).mean())


def _mean_where(total, count):
  """Per-item means of accumulated sums; NaN where nothing was added."""
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _nanmean(x):
  x = np.asarray(x, np.float64)
  x = x[np.isfinite(x)]
  return float(x.mean()) if x.size else float("nan")


class H36MEvaluator:
  """Accumulates clip predictions into the Human3.6M test protocol.

  PROTOCOL.md §3 / reference-impls.md §2.3. Each `add` scores a batch of
  clips (root-relative mm, after flip TTA and denormalisation) frame by
  frame; every per-frame error is summed into a global array indexed by the
  dataset frame, with an occurrence count, so a frame covered by several
  clips (overlapping strides, the VideoPose3D last-clip tail, resampled short
  sequences) is averaged over its occurrences and counted once.

  Temporal errors are computed inside each clip, never across clips, as in
  MotionAGFormer. Edge frames: the velocity error of a clip's frame t >= 1
  uses P[t] - P[t-1] (backward difference), so a clip's first frame has
  none; the acceleration error of frame t uses the central difference
  P[t-1] - 2 P[t] + P[t+1], so a clip's first and last frames have none.
  A frame with no value in any clip is left out of that metric's means
  (each metric keeps its own occurrence count). MotionAGFormer instead
  stores the central difference of t+1 at t and lets the last two frames of
  every clip count as 0 under the MPJPE count, which scales its number by
  about (T-2)/T.

  Works for any dataset: actions are whatever labels `frame_action` holds,
  and `skip_fn=None` scores every sequence.
  """

  def __init__(self, frame_action, frame_seq_name, *,
               skip_fn: Callable[[str], bool] | None = None,
               root: int = 0):
    """Sets up empty accumulators over a test split.

    Args:
      frame_action: (N,) str action label of every frame of the split.
      frame_seq_name: (N,) str sequence (video) name of every frame.
      skip_fn: sequence name -> True when its frames are not scored
        (Human3.6M: `protocols.is_skipped`, the S9 list); None = skip
        nothing.
      root: root joint index; both sides are made relative to it in `add`.
    """
    frame_action = np.asarray(frame_action)
    frame_seq_name = np.asarray(frame_seq_name)
    if frame_action.ndim != 1 or frame_seq_name.shape != frame_action.shape:
      raise ValueError(
          f"frame_action and frame_seq_name must both be (N,); got "
          f"{frame_action.shape} and {frame_seq_name.shape}")
    self.num_frames = int(frame_action.shape[0])
    self.root = root
    self._action_names, self._frame_action = np.unique(
        frame_action.astype(str), return_inverse=True)
    seq_names, self._frame_seq = np.unique(frame_seq_name.astype(str),
                                           return_inverse=True)
    seq_skipped = np.array([bool(skip_fn(s)) if skip_fn else False
                            for s in seq_names], bool)
    self.skipped_sequences = [str(s) for s in seq_names[seq_skipped]]
    self._frame_skipped = seq_skipped[self._frame_seq]
    self.num_joints = None
    n = self.num_frames
    self._sum = {m: np.zeros(n) for m in METRICS}
    self._count = {m: np.zeros(n, np.int64) for m in METRICS}
    self._joint_sum = None

  @classmethod
  def from_data(cls, data, **kwargs) -> "H36MEvaluator":
    """An evaluator over a `dataset.PoseData` split (seq_action, seq_name)."""
    frame_seq = data.frame_seq()
    return cls(np.asarray(data.seq_action)[frame_seq],
               np.asarray(data.seq_name)[frame_seq], **kwargs)

  def add(self, pred_mm, gt_mm, frame_idx, mask=None) -> None:
    """Scores a batch of clips.

    Args:
      pred_mm: (B, T, J, 3) predicted poses, mm (made root-relative here).
      gt_mm: (B, T, J, 3) ground truth, mm (made root-relative here).
      frame_idx: (B, T) int dataset frame of every clip slot; the T frames
        of a clip are consecutive frames of one sequence (repeats allowed).
      mask: (B,) bool, False for padding clips; None = all real.
    """
    pred = np.asarray(pred_mm, np.float64)
    gt = np.asarray(gt_mm, np.float64)
    if pred.ndim != 4 or pred.shape[-1] != 3 or gt.shape != pred.shape:
      raise ValueError(f"pred_mm and gt_mm must both be (B, T, J, 3); got "
                       f"{pred.shape} and {gt.shape}")
    b, t, j, _ = pred.shape
    if self.num_joints is None:
      self.num_joints = j
      self._joint_sum = np.zeros((self.num_frames, j))
    elif j != self.num_joints:
      raise ValueError(f"pred_mm has J={j} joints, earlier batches had "
                       f"{self.num_joints}")
    frame_idx = np.asarray(frame_idx)
    if frame_idx.shape != (b, t) or not np.issubdtype(frame_idx.dtype,
                                                      np.integer):
      raise ValueError(f"frame_idx must be ({b}, {t}) int; got "
                       f"{frame_idx.shape} {frame_idx.dtype}")
    mask = np.ones((b,), bool) if mask is None else np.asarray(mask, bool)
    if mask.shape != (b,):
      raise ValueError(f"mask must be ({b},) bool; got {mask.shape}")
    pred, gt, frame_idx = pred[mask], gt[mask], frame_idx[mask]
    if not frame_idx.size:
      return
    if frame_idx.min() < 0 or frame_idx.max() >= self.num_frames:
      raise ValueError(f"frame_idx outside [0, {self.num_frames})")
    if not (np.isfinite(pred).all() and np.isfinite(gt).all()):
      raise ValueError("pred_mm or gt_mm holds NaN/inf values")
    seq = self._frame_seq[frame_idx]
    if (seq != seq[:, :1]).any():
      raise ValueError("a clip's frame_idx spans two sequences; clips must "
                       "stay inside one sequence")
    keep = ~self._frame_skipped[frame_idx[:, 0]]
    pred, gt, frame_idx = pred[keep], gt[keep], frame_idx[keep]
    if not frame_idx.size:
      return
    pred = pred - pred[..., self.root:self.root + 1, :]
    gt = gt - gt[..., self.root:self.root + 1, :]

    # np.add.at, not `+=` with fancy indexing: a frame repeated inside one
    # clip (a resampled short sequence) must count every occurrence.
    def acc(metric, idx, value):
      np.add.at(self._sum[metric], idx.ravel(), value.ravel())
      np.add.at(self._count[metric], idx.ravel(), 1)

    jpe = per_joint_error(pred, gt)
    np.add.at(self._joint_sum, frame_idx.ravel(), jpe.reshape(-1, j))
    acc("mpjpe", frame_idx, jpe.mean(-1))
    acc("p_mpjpe", frame_idx, p_mpjpe(pred, gt))
    acc("n_mpjpe", frame_idx, n_mpjpe(pred, gt))
    if t >= 2:
      acc("mpjve", frame_idx[:, 1:], mpjve(pred, gt))
    if t >= 3:
      acc("accel_error", frame_idx[:, 1:-1], accel_error(pred, gt))

  def result(self) -> dict:
    """The protocol's numbers.

    Returns:
      A dict (mm, mm/frame for mpjve, mm/frame^2 for accel_error):
        'protocol': 'h36m'.
        'actions': action labels with scored frames, sorted.
        'per_action': {action: {metric: mean over its frames,
          'num_frames': int}} for metric in METRICS.
        'action_avg': {metric: unweighted mean of the per-action means}
          (the paper's number).
        'frame_avg': {metric: mean over all scored frames}.
        'per_joint_mpjpe': (J,) list, action-averaged (its mean is
          action_avg['mpjpe']); 'per_joint_mpjpe_frame_avg': (J,) list.
        'num_frames': scored frames (covered by a clip, not skipped).
        'num_skipped_frames': frames of skipped sequences.
        'num_uncovered_frames': frames of other sequences no clip covered
          (e.g. MotionBERT's dropped tails).
        'skipped_sequences': names of the skipped sequences.
        'per_frame': {'frame_idx': (F,) int array, 'mpjpe': (F,) array} of
          the scored frames (for the histogram; numpy, not JSON).
    """
    pose_count = self._count["mpjpe"]
    scored = pose_count > 0
    if not scored.any():
      raise ValueError("no frame was scored: add() received no clips outside "
                       "the skip list")
    per_frame = {m: _mean_where(self._sum[m], self._count[m])
                 for m in METRICS}
    joint = self._joint_sum / np.maximum(pose_count, 1)[:, None]
    action_ids = np.unique(self._frame_action[scored])
    per_action, joint_by_action = {}, []
    for a in action_ids:
      sel = scored & (self._frame_action == a)
      row = {m: _nanmean(per_frame[m][sel]) for m in METRICS}
      row["num_frames"] = int(sel.sum())
      per_action[str(self._action_names[a])] = row
      joint_by_action.append(joint[sel].mean(axis=0))
    return {
        "protocol": "h36m",
        "actions": list(per_action),
        "per_action": per_action,
        "action_avg": {m: _nanmean([r[m] for r in per_action.values()])
                       for m in METRICS},
        "frame_avg": {m: _nanmean(per_frame[m][scored]) for m in METRICS},
        "per_joint_mpjpe": np.mean(joint_by_action, axis=0).tolist(),
        "per_joint_mpjpe_frame_avg": joint[scored].mean(axis=0).tolist(),
        "num_frames": int(scored.sum()),
        "num_skipped_frames": int(self._frame_skipped.sum()),
        "num_uncovered_frames": int((~scored & ~self._frame_skipped).sum()),
        "skipped_sequences": self.skipped_sequences,
        "per_frame": {"frame_idx": np.flatnonzero(scored),
                      "mpjpe": per_frame["mpjpe"][scored]},
    }


class MPI3DHPEvaluator:
  """MPI-INF-3DHP test protocol on centre-frame predictions (PROTOCOL.md §4).

  Matches `mpii_evaluate_errors.m` / `mpii_compute_3d_pck.m`: per-joint
  errors of root-relative poses; PCK@150 (strict <) and AUC (thresholds
  0:5:150) over the 14 joints of `MPI_JOINT_GROUPS`; "Total" = the joint-count
  weighted mean over groups = the pooled fraction over the 14 joints; MPJPE
  over all 17 joints. Results per sequence and pooled over all frames
  ("All", the number papers report).
  """

  def __init__(self, *, root: int = skeleton.MPI.root,
               groups=MPI_JOINT_GROUPS):
    """Sets up empty accumulators.

    Args:
      root: root joint (pelvis, 14); both sides are made relative to it.
      groups: ((name, joint indices), ...) scored by PCK/AUC.
    """
    self.root = root
    self.groups = tuple((name, tuple(j)) for name, j in groups)
    self.pck_joints = tuple(j for _, js in self.groups for j in js)
    self._err = []
    self._seq = []

  def add(self, pred_mm, gt_mm, seq_name, mask=None) -> None:
    """Scores a batch of frames (one prediction per valid test frame).

    Args:
      pred_mm: (B, J, 3) predicted centre-frame poses, mm.
      gt_mm: (B, J, 3) ground truth, mm.
      seq_name: (B,) str test sequence of each frame ('TS1'..'TS6').
      mask: (B,) bool, False for padding; None = all real.
    """
    pred = np.asarray(pred_mm, np.float64)
    gt = np.asarray(gt_mm, np.float64)
    if pred.ndim != 3 or pred.shape[-1] != 3 or gt.shape != pred.shape:
      raise ValueError(f"pred_mm and gt_mm must both be (B, J, 3); got "
                       f"{pred.shape} and {gt.shape}")
    if pred.shape[1] != skeleton.MPI.num_joints:
      raise ValueError(f"pred_mm has J={pred.shape[1]} joints; the MPI-17 "
                       f"protocol needs {skeleton.MPI.num_joints}")
    seq_name = np.asarray(seq_name).astype(str)
    b = pred.shape[0]
    mask = np.ones((b,), bool) if mask is None else np.asarray(mask, bool)
    if seq_name.shape != (b,) or mask.shape != (b,):
      raise ValueError(f"seq_name and mask must be ({b},); got "
                       f"{seq_name.shape} and {mask.shape}")
    pred, gt, seq_name = pred[mask], gt[mask], seq_name[mask]
    if not (np.isfinite(pred).all() and np.isfinite(gt).all()):
      raise ValueError("pred_mm or gt_mm holds NaN/inf values")
    pred = pred - pred[:, self.root:self.root + 1]
    gt = gt - gt[:, self.root:self.root + 1]
    self._err.append(per_joint_error(pred, gt))
    self._seq.append(seq_name)

  def _score(self, err) -> dict:
    groups = {name: {"pck": pck(err, joints=js), "auc": auc(err, joints=js)}
              for name, js in self.groups}
    return {"pck": pck(err, joints=self.pck_joints),
            "auc": auc(err, joints=self.pck_joints),
            "mpjpe": float(err.mean()),
            "num_frames": int(err.shape[0]),
            "groups": groups,
            "per_joint_mpjpe": err.mean(axis=0).tolist()}

  def result(self) -> dict:
    """The protocol's numbers (percent for PCK/AUC, mm for MPJPE).

    Returns:
      A dict:
        'protocol': 'mpi3dhp'.
        'pooled': scores over all frames (MATLAB "All"): 'pck', 'auc',
          'mpjpe', 'num_frames', 'groups' {group: {'pck', 'auc'}},
          'per_joint_mpjpe' (J,) list, and 'pck_curve' {'thresholds',
          'pck'} (percent at 0, 5, ..., 150 mm).
        'sequences': sequence names, sorted.
        'per_sequence': {name: the same scores as 'pooled', no curve}.
        'per_frame': {'mpjpe': (F,) array} (numpy, not JSON).
    """
    if not self._err:
      raise ValueError("no frame was scored: add() was never called with "
                       "real frames")
    err = np.concatenate(self._err)
    seq = np.concatenate(self._seq)
    names = sorted(set(seq.tolist()), key=dataset.natural_key)
    pooled = self._score(err)
    pooled["pck_curve"] = {
        "thresholds": AUC_THRESHOLDS.tolist(),
        "pck": (100 * pck_curve(err, AUC_THRESHOLDS,
                                self.pck_joints)).tolist()}
    return {"protocol": "mpi3dhp",
            "pooled": pooled,
            "sequences": names,
            "per_sequence": {s: self._score(err[seq == s]) for s in names},
            "per_frame": {"mpjpe": err.mean(axis=1)}}

