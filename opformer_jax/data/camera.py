"""Cameras: screen normalisation (PROTOCOL.md §2.4) and pinhole projection.

Normalisation follows MotionBERT / MotionAGFormer exactly:
  xy_n = xy_px / w * 2 - [1, h / w],   z_n = z / w * 2,
so the image centre maps to about 0 and x spans [-1, 1]. Root-relative
normalised labels convert back to millimetres with `scale_mm = factor * w / 2`
(factor = the 2.5D factor in mm/px for image-space labels, 1 for labels that
are camera-frame millimetres normalised as if they were pixels).

`w` and `h` below are scalars or arrays that broadcast against
`xy.shape[:-1]`, e.g. shape (N, 1) for per-frame sizes of (N, J, C) poses.

The second half holds calibrated pinhole cameras for the converters:
`Camera` and `load_h36m_cameras` (Human3.6M convention X_cam =
R_world_to_cam @ (X_world - center_world_mm); the 44 Human3.6M calibrations
ship with the package, `H36M_CAMERAS_JSON`), `project` (with Human3.6M lens
distortion), `image_space_label` (MotionBERT's 2.5D label and factor) and
`random_camera`.
"""

import dataclasses
import json
import os

import numpy as np

from opformer_jax import errors

# The 44 Human3.6M calibrations (11 subjects x 4 cameras), package data: the
# numbers published with Human3.6M as redistributed in MMPose's Apache-2.0
# test data (the file's "source" field says so).
H36M_CAMERAS_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                 "h36m_cameras.json")


def normalize_screen(xy, w, h) -> np.ndarray:
  """(..., C>=2) pixels -> normalised x, y; channels after y pass through."""
  xy = np.asarray(xy, np.float32)
  w = np.asarray(w, np.float32)
  h = np.asarray(h, np.float32)
  out = xy.copy()
  out[..., 0] = xy[..., 0] / w * 2 - 1
  out[..., 1] = xy[..., 1] / w * 2 - h / w
  return out


def normalize_label(kp3d_image, w, h) -> np.ndarray:
  """Image-space 3D label (px, px, px) -> normalised units (MotionBERT)."""
  out = normalize_screen(kp3d_image, w, h)
  out[..., 2] = np.asarray(kp3d_image, np.float32)[..., 2] / np.asarray(
      w, np.float32) * 2
  return out


# ---------------------------------------------------------------------------
# Pinhole cameras (Human3.6M calibrations, random cameras, image-space labels).
#
# World frame: z up, millimetres (Human3.6M). Camera frame: x right, y down,
# z forward, millimetres. X_cam = R_world_to_cam @ (X_world - center_world_mm).
# ---------------------------------------------------------------------------

# Half the side of the square whose projection at the root depth defines the
# 2.5D box of MotionBERT / LCN / MMPose (a 2000 mm square).
BOX_HALF_MM = 1000.0


@dataclasses.dataclass(frozen=True)
class Camera:
  """One calibrated pinhole camera (Human3.6M conventions).

  Attributes:
    R_world_to_cam: (3, 3) rotation, rows = camera axes in world coordinates.
    center_world_mm: (3,) camera centre in the world, mm.
    f: (2,) focal lengths (fx, fy), px.
    c: (2,) principal point (cx, cy), px.
    k: (3,) radial distortion (Human3.6M calibration order).
    p: (2,) tangential distortion (Human3.6M calibration order; VideoPose3D
      stores the same two numbers swapped).
    width, height: image size, px.
    camera_id: e.g. '54138969'.
    subject: the calibration's subject, e.g. 'S1' ('' for random cameras).
  """
  R_world_to_cam: np.ndarray
  center_world_mm: np.ndarray
  f: np.ndarray
  c: np.ndarray
  k: np.ndarray
  p: np.ndarray
  width: int
  height: int
  camera_id: str
  subject: str = ""


def make_camera(R_world_to_cam, center_world_mm, f, c, k=(0, 0, 0),
                p=(0, 0), width=1000, height=1000, camera_id="",
                subject="") -> Camera:
  """Builds a `Camera` from array-likes, checking shapes."""
  arrays = {"R_world_to_cam": (R_world_to_cam, (3, 3)),
            "center_world_mm": (center_world_mm, (3,)), "f": (f, (2,)),
            "c": (c, (2,)), "k": (k, (3,)), "p": (p, (2,))}
  out = {}
  for name, (value, shape) in arrays.items():
    a = np.asarray(value, np.float64).reshape(-1)
    if a.size != int(np.prod(shape)) or not np.isfinite(a).all():
      raise ValueError(f"camera {subject} {camera_id}: '{name}' must be "
                       f"{shape} finite numbers, got {np.shape(value)}")
    out[name] = a.reshape(shape)
  return Camera(width=int(width), height=int(height), camera_id=str(camera_id),
                subject=str(subject), **out)


def load_h36m_cameras(json_path: str | None = None) -> dict:
  """Reads an `h36m_cameras.json` -> {(subject, camera_id): Camera}.

  Args:
    json_path: the file; None reads the calibrations shipped with the package
      (`H36M_CAMERAS_JSON`). It holds {'convention': str, 'cameras':
      [{subject, camera_id, width, height, R_world_to_cam, center_world_mm,
      f, c, k, p}, ...]} with X_cam = R_world_to_cam @ (X_world -
      center_world_mm).

  Raises:
    errors.DataError (one line naming the file) for a file that is not such
    a JSON object; FileNotFoundError for a missing one.
  """
  json_path = json_path or H36M_CAMERAS_JSON
  expected = ("a JSON object {'cameras': [{subject, camera_id, width, height, "
              "R_world_to_cam, center_world_mm, f, c, k, p}, ...]}")
  with open(json_path, "rb") as fobj:
    try:
      data = json.loads(fobj.read())
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
      raise errors.DataError(errors.bad_input(
          json_path, f"not JSON ({e})", expected)) from None
  entries = data.get("cameras") if isinstance(data, dict) else None
  if not isinstance(entries, list) or not entries:
    raise errors.DataError(errors.bad_input(json_path, "no 'cameras' list",
                                            expected))
  cams = {}
  for i, e in enumerate(entries):
    try:
      cam = make_camera(e["R_world_to_cam"], e["center_world_mm"], e["f"],
                        e["c"], e["k"], e["p"], e["width"], e["height"],
                        e["camera_id"], e["subject"])
    except (KeyError, TypeError, ValueError) as err:
      what = (f"lacks key {err}" if isinstance(err, KeyError) else str(err))
      raise errors.DataError(errors.bad_input(
          json_path, f"cameras[{i}]: {what}", expected)) from None
    cams[(cam.subject, cam.camera_id)] = cam
  return cams


def world_to_camera(points_world, camera: Camera) -> np.ndarray:
  """(..., 3) world mm -> (..., 3) camera-frame mm (float64)."""
  x = np.asarray(points_world, np.float64) - camera.center_world_mm
  return x @ camera.R_world_to_cam.T


def project(points_cam, f, c, k=None, p=None) -> np.ndarray:
  """Pinhole projection of (..., 3) camera-frame points to (..., 2) px.

  With `k` (3 radial) and/or `p` (2 tangential) coefficients this applies the
  Human3.6M lens model (3d-pose-baseline `project_point_radial`; VideoPose3D
  `project_to_2d` computes the same with p stored swapped): for x = X/Z,
  r2 = |x|^2,
    x_d = x (1 + k1 r2 + k2 r2^2 + k3 r2^3 + p1 y + p2 x) + (p2, p1) r2,
  then u = f x_d + c. `f`, `c` are (2,) or broadcast against (..., 2).
  """
  points_cam = np.asarray(points_cam, np.float64)
  xy = points_cam[..., :2] / points_cam[..., 2:3]
  if k is not None or p is not None:
    k = np.zeros(3) if k is None else np.asarray(k, np.float64)
    p = np.zeros(2) if p is None else np.asarray(p, np.float64)
    r2 = np.sum(xy**2, axis=-1, keepdims=True)
    radial = 1 + k[..., 0:1] * r2 + k[..., 1:2] * r2**2 + k[..., 2:3] * r2**3
    tan = p[..., 0:1] * xy[..., 1:2] + p[..., 1:2] * xy[..., 0:1]
    xy = xy * (radial + tan) + p[..., ::-1] * r2
  return xy * np.asarray(f, np.float64) + np.asarray(c, np.float64)


def image_space_label(kp3d_cam, f, c, root: int = 0):
  """Camera-frame 3D -> MotionBERT's image-space label and 2.5D factor.

  Follows LCN `gendb.py` / MotionBERT / MMPose `camera_to_image_coord`: the box
  is the projection of root +- 1000 mm in x at the root depth, so its width is
  box_w = 2000 fx / Z_root px; factor = 2000 / box_w = Z_root / fx (mm per px
  at the root depth); the label is (u, v, (Z - Z_root) / factor) with u, v the
  undistorted pinhole projection. Hence `(kp3d_image - kp3d_image[root]) *
  factor` approximates the root-relative camera-frame pose in mm (exactly in
  depth; in x, y up to the perspective of joints off the root depth).

  LCN scales depth by (box_w + 1) / 2000 instead of box_w / 2000 (a 0.2%
  difference at box_w ~ 450 px) and MMPose adds 0.001 to box_w; we use the
  exact ratio so that kp3d_image * factor is consistent in all three axes.

  Args:
    kp3d_cam: (N, J, 3) camera-frame joints, mm.
    f, c: (2,) or (N, 2) focal length and principal point, px.
    root: the root joint.

  Returns:
    kp3d_image (N, J, 3) float32 and factor (N,) float32.
  """
  kp3d_cam = np.asarray(kp3d_cam, np.float64)
  f = np.reshape(np.asarray(f, np.float64), (-1, 1, 2))
  c = np.reshape(np.asarray(c, np.float64), (-1, 1, 2))
  z_root = kp3d_cam[:, root:root + 1, 2]                     # (N, 1)
  box_w = 2 * BOX_HALF_MM * f[:, 0, 0:1] / z_root           # (N, 1)
  factor = 2 * BOX_HALF_MM / box_w                          # (N, 1)
  out = np.empty_like(kp3d_cam)
  out[..., :2] = project(kp3d_cam, f, c)
  out[..., 2] = (kp3d_cam[..., 2] - z_root) / factor
  return out.astype(np.float32), factor[:, 0].astype(np.float32)


def look_at(center_world_mm, target_world_mm) -> np.ndarray:
  """(3, 3) world-to-camera rotation of a camera at `center` looking at
  `target` with no roll (image x horizontal; world z up)."""
  forward = np.asarray(target_world_mm, np.float64) - np.asarray(
      center_world_mm, np.float64)
  forward /= np.linalg.norm(forward)
  right = np.cross(forward, [0.0, 0.0, 1.0])
  norm = np.linalg.norm(right)
  if norm < 1e-6:
    raise ValueError("look_at: camera looks straight up or down")
  right /= norm
  down = np.cross(forward, right)
  return np.stack([right, down, forward])


def random_camera(rng: np.random.Generator, target_world_mm=(0., 0., 900.),
                  distance_mm=(3500., 6500.), height_mm=(800., 2200.),
                  yaw=(-np.pi, np.pi), focal_ratio=(1.0, 1.5),
                  image_sizes=((1000, 1000), (1000, 1002), (1920, 1080),
                               (1280, 720), (1080, 1920)),
                  target_jitter_mm=200., camera_id="random") -> Camera:
  """A random, realistic pinhole camera looking at a subject.

  The camera stands at a horizontal `distance_mm` from `target_world_mm` at
  azimuth `yaw` (radians, world z up), at `height_mm` above the floor, and
  looks at the target (jittered by `target_jitter_mm`) without roll. Its focal
  length is `focal_ratio` times the shorter image side (Human3.6M: 1145 px
  for 1000 px, ratio 1.15), principal point at the image centre +-2%, no
  lens distortion. Ranges are (low, high) uniform.
  """
  target = np.asarray(target_world_mm, np.float64)
  az = rng.uniform(*yaw)
  dist = rng.uniform(*distance_mm)
  center = np.array([target[0] + dist * np.cos(az),
                     target[1] + dist * np.sin(az), rng.uniform(*height_mm)])
  aim = target + rng.normal(0.0, target_jitter_mm / 2, 3)
  w, h = image_sizes[rng.integers(len(image_sizes))]
  focal = rng.uniform(*focal_ratio) * min(w, h)
  f = focal * np.array([1.0, 1.0 + rng.normal(0.0, 1e-3)])
  c = np.array([w, h]) / 2 * (1 + rng.uniform(-0.02, 0.02, 2))
  return make_camera(look_at(center, aim), center, f, c, width=w, height=h,
                     camera_id=camera_id)
