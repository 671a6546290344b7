"""Cameras: screen normalisation (PROTOCOL.md §2.4) and pinhole projection.

Normalisation follows MotionBERT / MotionAGFormer exactly:
  xy_n = xy_px / w * 2 - [1, h / w],   z_n = z / w * 2,
so the image centre maps to about 0 and x spans [-1, 1]. Root-relative
normalised labels convert back to millimetres with `scale_mm = factor * w / 2`
(factor = the 2.5D factor in mm/px for image-space labels, 1 for labels that
are camera-frame millimetres normalised as if they were pixels).

`w` and `h` below are scalars or arrays that broadcast against
`xy.shape[:-1]`, e.g. shape (N, 1) for per-frame sizes of (N, J, C) poses.
"""

import numpy as np


def normalize_screen(xy, w, h) -> np.ndarray:
  """(..., C>=2) pixels -> normalised x, y; channels after y pass through."""
  xy = np.asarray(xy, np.float32)
  w = np.asarray(w, np.float32)
  h = np.asarray(h, np.float32)
  out = xy.copy()
  out[..., 0] = xy[..., 0] / w * 2 - 1
  out[..., 1] = xy[..., 1] / w * 2 - h / w
  return out


def denormalize_screen(xy_n, w, h) -> np.ndarray:
  """Inverse of `normalize_screen` on x, y; other channels pass through."""
  xy_n = np.asarray(xy_n, np.float32)
  w = np.asarray(w, np.float32)
  h = np.asarray(h, np.float32)
  out = xy_n.copy()
  out[..., 0] = (xy_n[..., 0] + 1) * w / 2
  out[..., 1] = (xy_n[..., 1] + h / w) * w / 2
  return out


def normalize_label(kp3d_image, w, h) -> np.ndarray:
  """Image-space 3D label (px, px, px) -> normalised units (MotionBERT)."""
  out = normalize_screen(kp3d_image, w, h)
  out[..., 2] = np.asarray(kp3d_image, np.float32)[..., 2] / np.asarray(
      w, np.float32) * 2
  return out
