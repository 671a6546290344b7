"""The root's camera-frame path from a lifted pose and its 2D track.

The lifter predicts a root-relative pose; where the person is in the camera
frame follows from the pinhole geometry once the body's metric size and
the focal length are known:

* Body scale. Each frame of the lifted pose is scaled so its standing
  height (head joint to ankles) is `HEAD_ANKLE_PER_STATURE` x the
  subject's stature (`--subject_height_mm`, default `DEFAULT_STATURE_MM`).
  The height is the sum of the frame's shin, thigh and trunk-and-neck bone
  lengths (x `CHAIN_TO_STANDING`), so it does not depend on posture (a
  squat or a sit does not shrink the subject), under a running median over
  `window` frames. Per frame, because a 2.5D (image-space) pose is in
  pixels at the root's depth: its size carries the distance.
* Focal length. `--focal_px`, else `default_focal_px`: a field of view of
  `DEFAULT_HFOV_DEG` across the image's longer side (typical of phone main
  cameras and webcams, which film 60-75 degrees across; an upright phone
  video has its long side vertical); principal point at the image centre.
* Depth. With the root on its 2D position, X = x_r Z and Y = y_r Z
  (x, y = (u - c) / f), every joint j gives one equation per image axis,
  Z (x_j - x_r) = P_jx - x_j P_jz (P = root-relative metric pose): the
  joints' 2D spread against the lifted pose's projected spread, with the
  perspective of each joint's own depth. The confidence-weighted least
  squares over the joints gives Z per frame (unbiased by lifting errors
  that are uncorrelated with the 2D, unlike extent ratios, which noise
  inflates: 1.1 % vs 1.9 % (joints) or 3.5 % (bones) of the distance with
  30 mm of joint noise on the CMU validation motion); a running median over
  `window` frames (of log Z) removes the jitter that frame-to-frame errors
  of the lifted pose put in it, and frames where the pose contradicts its
  2D (Z <= 0) take their neighbours' depth. X and Y then follow from the root's 2D
  track, which the detector measures directly.

Depth is only as good as the assumed stature and focal length: Z scales
with both (a 5 % taller subject or a 5 % longer focal length put them 5 %
farther); X and Y scale with the stature only.
"""

import math

from absl import logging
import numpy as np
from scipy import ndimage

from opformer_jax import errors
from opformer_jax import skeleton

# Field of view across the longer image side when no focal length is given.
DEFAULT_HFOV_DEG = 65.0
# An adult's standing height when none is given (mm).
DEFAULT_STATURE_MM = 1700.0
# Head joint to ankle joints over stature: the ankles are ~4.5 % of the
# stature above the floor, the lifters' head joint (H36M head, COCO-derived
# 2 mid(eyes) - nose) ~5 % below the top of the head.
HEAD_ANKLE_PER_STATURE = 0.90
# Standing head-ankle distance over the chain sum of `body_height`; measured
# on the CMU mocap of ../shared/data (0.959 walking, 0.962 actions; upright
# frames = the 90th percentile of the head-ankle distance).
CHAIN_TO_STANDING = 0.96
# Depth smoothing window (seconds) used by `infer` (`window` frames).
SMOOTH_S = 0.5


def default_focal_px(image_size) -> float:
  """Focal length (px) giving `DEFAULT_HFOV_DEG` across the image's longer
  side (the sensor's long side, also when a phone films upright)."""
  side = float(max(image_size[0], image_size[1]))
  return side / (2 * math.tan(math.radians(DEFAULT_HFOV_DEG) / 2))


def _chain(layout: str):
  """(leg bones (child joints, right + left), trunk/neck child joints)."""
  lay = skeleton.get_layout(layout)
  idx = lay.joints.index
  head = "head" if layout == "h36m17" else "head_top"
  legs = [idx(j) for j in ("r_knee", "r_ankle", "l_knee", "l_ankle")]
  # The trunk from the root up to the head joint, one bone per joint.
  trunk, j = [], idx(head)
  while lay.parents[j] != lay.root:
    trunk.append(j)
    j = lay.parents[j]
  trunk.append(j)
  return legs, trunk


def _bone_lengths(pose, layout):
  pose = np.asarray(pose, np.float64)
  parents = np.asarray(skeleton.get_layout(layout).parents)
  return np.linalg.norm(pose - pose[:, np.maximum(parents, 0)], axis=-1)


def _chain_height(bones, layout):
  """(..., J) bone lengths -> (...) standing heights."""
  legs, trunk = _chain(layout)
  return (bones[..., legs].sum(-1) / 2 + bones[..., trunk].sum(-1)
          ) * CHAIN_TO_STANDING


def body_height(pose, layout: str = "h36m17") -> float:
  """Standing head-to-ankle height of a pose sequence, in its units.

  Posture-independent: from each bone's median length over the frames,
  (mean leg (thigh + shin) + root-to-head chain) x `CHAIN_TO_STANDING`.

  Args:
    pose: (F, J, 3) joints (any origin).
    layout: joint order.
  """
  bones = np.median(_bone_lengths(pose, layout), axis=0)
  return float(_chain_height(bones, layout))


def metric_scale(pose, layout: str = "h36m17",
                 stature_mm: float | None = None,
                 window: int = 1) -> np.ndarray:
  """Per-frame factors taking `pose` to mm for a subject of `stature_mm`.

  Each frame's standing height (as `body_height`, from that frame's bones)
  is taken to `HEAD_ANKLE_PER_STATURE` x the stature, after a running
  median over `window` frames. Per frame, because an image-space (2.5D)
  pose is in pixels at the root's depth: it shrinks as the person walks
  away, and one factor for the whole track would hide that.

  Args:
    pose: (F, J, 3) root-relative pose, any unit.
    layout: joint order.
    stature_mm: the subject's standing height; None = `DEFAULT_STATURE_MM`.
    window: frames of the running median on the heights.

  Returns:
    (F,) float64 mm per pose unit.
  """
  stature_mm = stature_mm or DEFAULT_STATURE_MM
  heights = _running_log_median(
      _chain_height(_bone_lengths(pose, layout), layout), window,
      "the pose has no size (all joints at one point)")
  return stature_mm * HEAD_ANKLE_PER_STATURE / heights


def frame_depths(pose_mm, kp2d_px, conf, focal_px: float, principal_px,
                 root: int = 0) -> np.ndarray:
  """Per-frame root depth (mm) by least squares over the joints.

  Args:
    pose_mm: (F, J, 3) root-relative pose, camera axes (x right, y down,
      z away), mm.
    kp2d_px: (F, J, 2) the 2D keypoints it was lifted from (px).
    conf: (F, J) confidences (weights); None = all 1.
    focal_px: focal length (px).
    principal_px: (cx, cy) px.
    root: root joint index.

  Returns:
    (F,) float64 depth of the root; NaN where the joints have no 2D
    spread, <= 0 where the pose contradicts its 2D (both are filled from
    the neighbours by `smooth_depths`).
  """
  pose = np.asarray(pose_mm, np.float64)
  xy = (np.asarray(kp2d_px, np.float64) - np.asarray(principal_px)) / focal_px
  w = np.ones(pose.shape[:2]) if conf is None else np.asarray(conf, np.float64)
  a = xy - xy[:, root:root + 1]                          # (F, J, 2)
  b = pose[..., :2] - xy * pose[..., 2:3]                # (F, J, 2)
  num = (w[..., None] * a * b).sum((1, 2))
  den = (w[..., None] * a * a).sum((1, 2))
  with np.errstate(invalid="ignore", divide="ignore"):
    depth = np.where(den > 0, num / den, np.nan)
    if not (depth > 0).any():
      # The pose contradicts its 2D everywhere (an untrained model, a
      # wrong joint order): the unsigned extent ratio still gives a scale.
      logging.warning("the lifted pose does not match its 2D input in any "
                      "frame; root depth from the extent ratio instead")
      depth = np.sqrt((w[..., None] * b * b).sum((1, 2)) / den)
  return depth


def _running_log_median(values, window: int, empty: str) -> np.ndarray:
  """Running median of log(values) over `window` frames (edges: nearest);
  frames without a positive value take their neighbours'."""
  values = np.asarray(values, np.float64)
  ok = np.isfinite(values) & (values > 0)
  if not ok.any():
    raise errors.DataError(empty)
  frames = np.arange(len(values))
  log_v = np.interp(frames, frames[ok], np.log(values[ok]))
  if window > 1:
    log_v = ndimage.median_filter(log_v, size=int(window), mode="nearest")
  return np.exp(log_v)


def smooth_depths(depth, window: int) -> np.ndarray:
  """Running median of log depth over `window` frames (edges: nearest);
  frames without a valid depth take their neighbours' value."""
  return _running_log_median(
      depth, window, "no frame gives a root depth: the 2D keypoints have "
      "no spread (all joints at one point?)")


def root_trajectory(pose_mm, kp2d_px, conf=None, *, focal_px: float,
                    principal_px, layout: str = "h36m17",
                    window: int = 1) -> np.ndarray:
  """The root's camera-frame position per frame (mm).

  Args:
    pose_mm: (F, J, 3) root-relative lifted pose in mm, camera axes.
    kp2d_px: (F, J, 2) its 2D input (px, same joint order).
    conf: (F, J) 2D confidences, the joints' weights (None = 1).
    focal_px: focal length (px), e.g. `default_focal_px(image_size)`.
    principal_px: (cx, cy), e.g. the image centre.
    layout: joint order.
    window: frames of the running median on depth (1 = none).

  Returns:
    (F, 3) float64 (X, Y, Z) mm: x right, y down, z away from the camera.
  """
  root = skeleton.get_layout(layout).root
  depth = smooth_depths(frame_depths(pose_mm, kp2d_px, conf, focal_px,
                                     principal_px, root), window)
  xy = (np.asarray(kp2d_px, np.float64)[:, root] -
        np.asarray(principal_px)) / focal_px
  return np.concatenate([xy * depth[:, None], depth[:, None]], -1)
