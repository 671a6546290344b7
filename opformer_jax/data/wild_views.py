"""Training data that looks like users' videos: mocap seen by random phone and
tripod cameras, with the joints a COCO-17 detector yields.

Every 3D sequence (CMU motion capture read by `mocap.read_inputs`, or the
built-in procedural motion of `synthetic.motion`) is resampled to a video
frame rate, placed in a z-up world, and filmed by several random virtual
cameras (`random_video_camera`):

* image sizes of real video (1920x1080, 1280x720, portrait 1080x1920 and
  720x1280, 3840x2160, 640x480, 1000x1000), a horizontal field of view of
  the longer side from 30 (zoom) to 80 degrees (phone wide angle), the
  camera 0.3 to 2.5 m above the floor at any yaw around the subject, at the
  distance where the subject fills 25-90 % of the image height;
* the subject's mean position anywhere in the central 60 % of the frame;
* 'tripod' cameras stand still with a small roll (and pan, aiming at the
  root path smoothed over ~2 s, when the subject travels over 1.5 m);
  'handheld' cameras follow the subject (root path smoothed over ~1 s) and
  shake (smooth random rotations of ~1 degree, roll up to 8 degrees).

A COCO-17 face (nose, eyes, ears) is built on the mocap head (`coco17_3d`),
and the points a detector family labels differently from the mocap are
placed as its 2D convention does (`Convention`, `detector_points_3d`: hips
higher and wider than the hip joint centres for COCO-17 / BODY_25 and
BlazePose; Halpe-26's own head top, neck and pelvis); each training view
draws its own placement (`random_convention`). The 3D points are projected,
perturbed by a detector-like noise model (`detect`: jitter proportional to
the person's size, temporally correlated; rare outliers; short left/right
swaps of arms or legs; dropped joints, whole missed frames, joints outside
the image dropped; confidences falling with the error, or all 1 as in files
without scores), and then go through exactly what inference does with a
detector file: `keypoint_formats.make_track` (missing joints interpolated
over time, confidence 0) and `keypoint_formats.to_h36m` (Spine, Thorax,
Head, Hip derived from COCO-17 or Halpe-26). Labels are the mocap's H36M-17
joints in the camera frame (`kp3d`, mm) with MotionBERT's image-space label
and 2.5D factor (`camera.image_space_label`), so `label_space='image'`
trains a model whose output, like infer's, is in pixels at the root depth.

The CMU validation split (`mocap.DEFAULT_VAL`: subjects 16 and 35,
cmu_actions/test/) is held out of 'train' and written as 'test_clean' (exact
projections of the COCO-17 points, every joint in view, conf 1) and
'test_noisy' (the noise model at a fixed moderate level), both with the hips
at the joint centres, and 'test_noisy_<convention>' for each of
`VAL_CONVENTIONS` (same cameras and noise, the convention's placement;
`validation_splits`). Everything derives from one seed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.spatial.transform import Rotation

from opformer_jax.data import camera as camera_lib
from opformer_jax.data import convert_util
from opformer_jax.data import mocap
from opformer_jax.data import synthetic
from opformer_jax.formats import keypoint_formats
from opformer_jax import errors

GENERATOR_VERSION = 4
# The CMU joint files (../shared/data/mocap) the default model is made from.
MOCAP_FILES = ("cmu_gait.npz", "cmu_actions.npz", "cmu_subject131.npz")
IMAGE_SIZES = ((1920, 1080), (1280, 720), (1080, 1920), (720, 1280),
               (3840, 2160), (640, 480), (1000, 1000))
FPS_CHOICES = (25.0, 30.0, 30.0, 50.0, 60.0)
VAL_FPS = 30.0
# COCO-17 face points around the mocap head joint (H36M 10, CMU 'head' end),
# in the head frame (forward, left, up), mm, for a head whose upper-neck to
# head joint distance is _HEAD_REF_MM (CMU: 92 mm).
_HEAD_REF_MM = 92.0
_FACE_MM = {"nose": (100.0, 0.0, -25.0), "l_eye": (80.0, 32.0, 10.0),
            "r_eye": (80.0, -32.0, 10.0), "l_ear": (-5.0, 75.0, 0.0),
            "r_ear": (-5.0, -75.0, 0.0)}
_H36M = {name: i for i, name in enumerate(
    keypoint_formats.JOINT_NAMES["h36m17"])}
_COCO = keypoint_formats.COCO17_JOINTS
# Detector jitter scale per COCO-17 joint (face precise, hips and distal
# limbs least precise).
_COCO_NOISE = np.array([0.5, 0.5, 0.5, 0.8, 0.8, 1.0, 1.0, 1.2, 1.2, 1.5,
                        1.5, 1.4, 1.4, 1.1, 1.1, 1.3, 1.3])
# Halpe-26's extra points: head top, neck, pelvis and six foot points (the
# foot points are not used by the H36M conversion).
_HALPE_NOISE = np.concatenate([_COCO_NOISE, [0.8, 0.8, 1.4] + [1.3] * 6])
# Left/right COCO-17 pairs a detector swaps: arms, legs.
_SWAP_GROUPS = (((7, 8), (9, 10)), ((13, 14), (15, 16)))


@dataclasses.dataclass(frozen=True)
class NoiseModel:
  """Detector-like corruption of clean 2D (see `detect`); fields are ranges
  (low, high) drawn once per view, or probabilities per joint-frame."""
  # std / person box height; calibrated on the Detectron2 detections of
  # ../shared/data/wild2d, whose frame-to-frame second difference is
  # 0.009-0.018 of the box height per joint (median over videos).
  jitter_frac: tuple = (0.002, 0.008)
  correlated: float = 0.6              # share of jitter smooth over ~5 frames
  outlier_prob: float = 0.002
  outlier_frac: tuple = (0.1, 0.3)     # jump / box diagonal
  swap_prob: float = 0.002             # per frame: a short L/R swap starts
  drop_prob: float = 0.003             # per joint-frame: a drop run starts
  drop_len: tuple = (1, 15)
  miss_frame_prob: float = 0.002       # per frame: a missed-person run
  no_scores_prob: float = 0.3          # per view: file without confidences


VAL_NOISE = dataclasses.replace(NoiseModel(), jitter_frac=(0.005, 0.005),
                                no_scores_prob=0.0)


@dataclasses.dataclass(frozen=True)
class Convention:
  """Where a family of 2D detectors puts the points that are not the
  mocap's joint centres (docs/default_model.md, "2D conventions").

  Attributes:
    layout: the keypoints the detector writes, converted to H36M-17 by
      `keypoint_formats.to_h36m`: 'coco17' (Head extrapolated from the face,
      Thorax = mid-shoulders) or 'halpe26' (its own head top, neck and
      pelvis).
    hip_mm: (up, out, forward) offset of each hip keypoint from the mocap
      hip joint centre, mm, in the pelvis frame (up: root to thorax; out:
      away from the midline; forward: the way the pelvis faces).
    neck_up_mm: Halpe's neck above the shoulders' midpoint, along the trunk.
  """
  layout: str = "coco17"
  hip_mm: tuple = (0.0, 0.0, 0.0)
  neck_up_mm: float = 0.0


# Modelled placements (no paired detections in the data to measure them):
# human-labelled hips sit 30-50 mm off the mocap hip joint centres (Needham
# et al. 2021, Sci. Rep. 11:20673, OpenPose and AlphaPose), taken here as
# higher and wider; BlazePose's hips as higher and wider still; Halpe's head
# is the head top and its neck the base of the neck. OpenPose BODY_25 and
# COCO-18 share COCO-17's labels (Neck = mid-shoulders, MidHip = mid-hips)
# and conversion, so 'coco17' stands for them too.
CONVENTIONS = {
    "joint_centres": Convention(),
    "coco17": Convention(hip_mm=(40.0, 30.0, 0.0)),
    "halpe26": Convention("halpe26", hip_mm=(40.0, 30.0, 0.0),
                          neck_up_mm=30.0),
    "blazepose": Convention(hip_mm=(70.0, 45.0, 0.0)),
}
# Training mix: per view, hips anywhere in this box (every named detector
# convention with 15 mm margin; the mocap's joint centres, which no detector
# writes, lie outside it: the wider -20..90 mm up, 0..60 mm out cost the
# named ones 1.4-2.9 mm at depth 2, docs/default_model.md) and the Halpe
# layout in this share of the views.
MIX_HIP_MM = ((25.0, 85.0), (15.0, 60.0), (-15.0, 15.0))
MIX_HALPE = 0.25
MIX_NECK_MM = (0.0, 50.0)
# Held-out noisy views are also written as these conventions place them.
VAL_CONVENTIONS = ("coco17", "halpe26", "blazepose")
VAL_SPLITS = ("test_clean", "test_noisy") + tuple(
    f"test_noisy_{c}" for c in VAL_CONVENTIONS)


def random_convention(rng: np.random.Generator) -> Convention:
  """One draw of the training mix (`MIX_HIP_MM`, `MIX_HALPE`)."""
  hip = tuple(float(rng.uniform(lo, hi)) for lo, hi in MIX_HIP_MM)
  if rng.random() < MIX_HALPE:
    return Convention("halpe26", hip, float(rng.uniform(*MIX_NECK_MM)))
  return Convention("coco17", hip)


# ---------------------------------------------------------------------------
# Skeleton: COCO-17 points from H36M-17 mocap joints.
# ---------------------------------------------------------------------------


def _unit(v):
  return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def coco17_3d(kp3d: np.ndarray, head_turn=None) -> np.ndarray:
  """(F, 17, 3) H36M-17 joints (mm, any frame) -> (F, 17, 3) COCO-17.

  Limbs and hips are the H36M joints; the face is `_FACE_MM` in a head frame
  with 'up' from the upper neck (9) to the head joint (10), 'left' from the
  shoulders made orthogonal to it, scaled by the head size.

  Args:
    kp3d: H36M-17 joints.
    head_turn: optional (F, 2) head yaw and pitch (radians) relative to the
      shoulders; the mocap has no head orientation beyond its up axis.
  """
  j = _H36M
  up = _unit(kp3d[:, j["head"]] - kp3d[:, j["nose"]])
  left = kp3d[:, j["l_shoulder"]] - kp3d[:, j["r_shoulder"]]
  left = _unit(left - np.sum(left * up, -1, keepdims=True) * up)
  fwd = np.cross(left, up)
  if head_turn is not None:
    rot = Rotation.from_rotvec(up * head_turn[:, :1]) * Rotation.from_rotvec(
        left * head_turn[:, 1:])
    fwd, left = rot.apply(fwd), rot.apply(left)
    up = np.cross(fwd, left)
  scale = (np.linalg.norm(kp3d[:, j["head"]] - kp3d[:, j["nose"]], axis=-1)
           / _HEAD_REF_MM)[:, None]
  out = np.empty(kp3d.shape[:1] + (17, 3))
  for k, name in enumerate(_COCO):
    if name in _FACE_MM:
      a, b, c = _FACE_MM[name]
      out[:, k] = kp3d[:, j["head"]] + scale * (a * fwd + b * left + c * up)
    else:
      out[:, k] = kp3d[:, j[name]]
  return out


def detector_points_3d(kp3d: np.ndarray, convention: Convention,
                       head_turn=None) -> np.ndarray:
  """(F, 17, 3) H36M-17 joints (mm) -> the 3D points a detector of
  `convention` labels: (F, 17, 3) COCO-17 or (F, 26, 3) Halpe-26.

  COCO-17 as `coco17_3d`, the hips moved by `convention.hip_mm` in the
  pelvis frame. Halpe-26 adds the mocap head joint as head top, the neck
  `neck_up_mm` above the shoulders' midpoint, the pelvis as the hips'
  midpoint and the foot points at the ankles.
  """
  j = _H36M
  pts = coco17_3d(kp3d, head_turn)
  up = _unit(kp3d[:, j["thorax"]] - kp3d[:, j["hip"]])
  out = kp3d[:, j["l_hip"]] - kp3d[:, j["r_hip"]]
  out = _unit(out - np.sum(out * up, -1, keepdims=True) * up)
  fwd = np.cross(out, up)
  a, b, c = convention.hip_mm
  for k, side in ((_COCO.index("l_hip"), 1.0), (_COCO.index("r_hip"), -1.0)):
    pts[:, k] += a * up + side * b * out + c * fwd
  if convention.layout == "coco17":
    return pts
  neck = (pts[:, _COCO.index("l_shoulder")] + pts[:, _COCO.index("r_shoulder")]
          ) / 2 + convention.neck_up_mm * up
  pelvis = (pts[:, _COCO.index("l_hip")] + pts[:, _COCO.index("r_hip")]) / 2
  ankles = pts[:, [_COCO.index("l_ankle"), _COCO.index("r_ankle")]]
  # Halpe's feet: l/r big toe, l/r small toe, l/r heel.
  feet = np.concatenate([ankles] * 3, axis=1)
  return np.concatenate([pts, kp3d[:, None, j["head"]], neck[:, None],
                         pelvis[:, None], feet], axis=1)


def _smooth_noise(rng, shape, width):
  """Unit-variance noise smoothed over `width` frames along axis 0."""
  if width <= 1 or shape[0] < 2:
    return rng.normal(size=shape)
  x = uniform_filter1d(rng.normal(size=shape), width, axis=0, mode="reflect")
  return x / max(float(x.std()), 1e-9)


# ---------------------------------------------------------------------------
# Cameras.
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VideoCamera:
  """A pinhole camera that may move: per-frame rotation and centre.

  Attributes:
    R: (F, 3, 3) world-to-camera rotations.
    center: (F, 3) camera centres, world mm.
    f, c: (2,) focal length and principal point, px.
    width, height: image size, px.
    kind: 'tripod' or 'handheld'.
  """
  R: np.ndarray
  center: np.ndarray
  f: np.ndarray
  c: np.ndarray
  width: int
  height: int
  kind: str

  def to_camera(self, points_world):
    """(F, J, 3) world mm -> (F, J, 3) camera-frame mm."""
    return np.einsum("fij,fkj->fki", self.R,
                     points_world - self.center[:, None])


def look_at_frames(centres, targets) -> np.ndarray:
  """`camera.look_at` for every frame: (F, 3) centres and targets (mm) ->
  (F, 3, 3) world-to-camera rotations (no roll, world z up)."""
  forward = _unit(np.asarray(targets, np.float64) - centres)
  right = np.cross(forward, [0.0, 0.0, 1.0])
  if (np.linalg.norm(right, axis=-1) < 1e-6).any():
    raise ValueError("look_at_frames: a camera looks straight up or down")
  right = _unit(right)
  return np.stack([right, np.cross(forward, right), forward], axis=1)


def _aim_rotation(direction_cam):
  """Rotation taking the optical axis e_z to the unit `direction_cam`."""
  rot, _ = Rotation.align_vectors([direction_cam], [[0.0, 0.0, 1.0]])
  return rot.as_matrix()


def random_video_camera(rng: np.random.Generator, world: np.ndarray,
                        handheld: bool | None = None) -> VideoCamera:
  """A random tripod or handheld camera filming a z-up sequence (module
  docstring); `world` (F, 17, 3) mm H36M-17, feet on the floor z = 0."""
  num = len(world)
  w, h = IMAGE_SIZES[rng.integers(len(IMAGE_SIZES))]
  fov = np.deg2rad(rng.uniform(30.0, 80.0))
  focal = max(w, h) / 2 / np.tan(fov / 2)
  f = focal * np.array([1.0, 1.0 + rng.normal(0.0, 1e-3)])
  c = np.array([w, h]) / 2 * (1 + rng.uniform(-0.02, 0.02, 2))
  height_mm = float(np.median(world[:, _H36M["head"], 2])) + 100.0
  fill = rng.uniform(0.25, 0.9)
  dist = max(focal * height_mm / (fill * h), 1500.0)
  root = world[:, 0]
  target = root.mean(0)
  az = rng.uniform(-np.pi, np.pi)
  cam_h = rng.uniform(300.0, 2500.0)
  horiz = np.sqrt(max(dist ** 2 - (cam_h - target[2]) ** 2, 1e6))
  centre = np.array([target[0] + horiz * np.cos(az),
                     target[1] + horiz * np.sin(az), cam_h])
  handheld = rng.random() < 0.5 if handheld is None else handheld
  # Where the subject's mean position appears in the image.
  uv = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.25, 0.75) * h])
  offset = _aim_rotation(_unit(np.append((uv - c) / f, 1.0)))
  if handheld:
    aim = uniform_filter1d(root, min(num, 31), axis=0, mode="nearest")
    roll = np.deg2rad(rng.uniform(-8, 8) + 1.0 * _smooth_noise(
        rng, (num,), 15))
    shake = np.deg2rad(0.7) * _smooth_noise(rng, (num, 2), 9)
    centres = centre + 30.0 * _smooth_noise(rng, (num, 3), 25)
  else:
    # A tripod pans after a subject who walks away; otherwise it stays.
    extent = np.ptp(root[:, :2], axis=0).max()
    aim = (uniform_filter1d(root, min(num, 61), axis=0, mode="nearest")
           if extent > 1500.0 else np.repeat(target[None], num, 0))
    roll = np.full(num, np.deg2rad(rng.uniform(-2, 2)))
    shake = np.zeros((num, 2))
    centres = np.repeat(centre[None], num, 0)
  jitter = Rotation.from_euler("xyz", np.stack(
      [shake[:, 0], shake[:, 1], roll], -1)).as_matrix()
  rots = offset @ jitter @ look_at_frames(centres, aim)
  return VideoCamera(R=rots, center=centres, f=f, c=c, width=int(w),
                     height=int(h), kind="handheld" if handheld else "tripod")


# ---------------------------------------------------------------------------
# Detector-like 2D.
# ---------------------------------------------------------------------------


def _runs_mask(rng, num, start_prob, length, shape_rest=()):
  """(num, *shape_rest) bool: runs of `length` (low, high) frames that start
  with probability `start_prob` per frame (and per trailing element)."""
  starts = rng.random((num,) + shape_rest) < start_prob
  mask = np.zeros_like(starts)
  for idx in zip(*np.nonzero(starts)):
    n = rng.integers(length[0], length[1] + 1)
    mask[(slice(idx[0], idx[0] + n),) + tuple(idx[1:])] = True
  return mask


def _swap_limbs(rng, kp2d, prob):
  """Left/right swaps of an arm or leg pair for 2-10 frames."""
  out = kp2d.copy()
  for start in np.flatnonzero(rng.random(len(kp2d)) < prob):
    end = start + rng.integers(2, 11)
    for l, r in _SWAP_GROUPS[rng.integers(len(_SWAP_GROUPS))]:
      out[start:end, [l, r]] = kp2d[start:end, [r, l]]
  return out


def detect(rng: np.random.Generator, kp2d: np.ndarray, width: int,
           height: int, noise: NoiseModel | None):
  """Clean COCO-17 projections -> what a detector file holds.

  Args:
    rng: numpy Generator.
    kp2d: (F, J, 2) px, exact projections of COCO-17 (J = 17) or
      Halpe-26 (J = 26) points.
    width, height: image size; joints outside it are dropped.
    noise: the corruption; None = none (joints outside the image are still
      dropped).

  Returns:
    kp2d (F, J, 2) float64 with (0, 0) at dropped joints and conf (F, J)
    in [0, 1], 0 at dropped joints.
  """
  num = len(kp2d)
  lo, hi = kp2d.min(1), kp2d.max(1)
  box_h = np.maximum(hi[:, 1] - lo[:, 1], 1.0)[:, None, None]
  conf = np.ones(kp2d.shape[:2])
  out = kp2d.copy()
  if noise is not None:
    scale = _COCO_NOISE if kp2d.shape[1] == 17 else _HALPE_NOISE
    sigma = rng.uniform(*noise.jitter_frac) * box_h * scale[:, None]
    a = noise.correlated
    jit = (np.sqrt(1 - a ** 2) * rng.normal(size=kp2d.shape)
           + a * _smooth_noise(rng, kp2d.shape, 5)) * sigma
    diag = np.linalg.norm(hi - lo, axis=-1)[:, None]
    outlier = rng.random(kp2d.shape[:2]) < noise.outlier_prob
    angle = rng.uniform(0, 2 * np.pi, kp2d.shape[:2])
    jump = rng.uniform(*noise.outlier_frac, kp2d.shape[:2]) * diag
    jit = np.where(outlier[..., None], np.stack(
        [np.cos(angle), np.sin(angle)], -1) * jump[..., None], jit)
    out = _swap_limbs(rng, kp2d + jit, noise.swap_prob)
    err = np.linalg.norm(out - kp2d, axis=-1)
    if rng.random() >= noise.no_scores_prob:
      conf = 0.95 * np.exp(-0.5 * (err / np.maximum(
          2.5 * sigma[..., 0], 1e-9)) ** 2)
      conf = np.clip(conf + rng.normal(0.0, 0.03, conf.shape), 0.05, 1.0)
    dropped = (_runs_mask(rng, num, noise.drop_prob, noise.drop_len,
                           kp2d.shape[1:2])
               | _runs_mask(rng, num, noise.miss_frame_prob, (1, 5))[:, None])
    conf[dropped] = 0.0
  outside = ((kp2d[..., 0] < 0) | (kp2d[..., 0] > width - 1)
             | (kp2d[..., 1] < 0) | (kp2d[..., 1] > height - 1))
  conf[outside] = 0.0
  out[conf == 0] = 0.0   # the detectors' "not found", with confidence 0
  return out, conf


def to_h36m_input(kp2d_coco, conf, image_size, name="view",
                  layout="coco17"):
  """Detector COCO-17 (or Halpe-26) -> H36M-17 exactly as inference reads
  a file (`keypoint_formats.make_track` then `to_h36m`).

  Returns:
    kp2d (F, 17, 2) float32 px, conf (F, 17) float32.
  """
  # "Joints never detected" (e.g. feet below the frame) is expected here;
  # the warning would fill the log.
  absl_logger = logging.getLogger("absl")
  level = absl_logger.level
  absl_logger.setLevel(logging.ERROR)
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      track = keypoint_formats.make_track(name, kp2d_coco, conf, layout,
                                          image_size=image_size)
  finally:
    absl_logger.setLevel(level)
  track = keypoint_formats.to_h36m(track)
  return track.kp2d, track.conf


# ---------------------------------------------------------------------------
# Sequences -> views -> schema arrays.
# ---------------------------------------------------------------------------


def _visible_runs(kp3d_cam, kp2d, cam, min_frames, all_in_view):
  """Frame runs to keep: every joint in front and in the image, or (not
  `all_in_view`) at least 12 of the 17 COCO joints, both hips among them."""
  w, h = cam.width, cam.height
  inside = ((kp3d_cam[..., 2] > 200) & (kp2d[..., 0] >= 0)
            & (kp2d[..., 0] <= w - 1) & (kp2d[..., 1] >= 0)
            & (kp2d[..., 1] <= h - 1))
  keep = inside.all(-1) if all_in_view else (
      inside.sum(-1) >= 12) & inside[:, [11, 12]].all(-1)
  return mocap._runs(keep, min_frames)  # pylint: disable=protected-access


def film(rng, world, name, cam, fps, noise, *, clean=False,
         all_in_view=False, min_frames=27,
         convention: Convention = CONVENTIONS["joint_centres"]):
  """One sequence through one camera -> list of per-sequence dicts
  (`convert_util.pack` format), one per in-view run of frames (`clean`:
  exact 2D, conf 1; `all_in_view`: only frames with every joint in view;
  `convention`: where the detector places hips, head and neck)."""
  h36m_cam = cam.to_camera(world)
  head_turn = np.deg2rad([25.0, 12.0]) * _smooth_noise(
      rng, (len(world), 2), int(fps))
  pts_cam = detector_points_3d(h36m_cam, convention,
                               None if clean else head_turn)
  pts_2d = camera_lib.project(pts_cam, cam.f, cam.c)
  seqs = []
  for k, (s, e) in enumerate(_visible_runs(pts_cam[:, :17], pts_2d[:, :17],
                                           cam, min_frames, all_in_view)):
    det, conf = detect(rng, pts_2d[s:e], cam.width, cam.height,
                       None if clean else noise)
    try:
      kp2d, conf = to_h36m_input(det, conf, (cam.width, cam.height), name,
                                 convention.layout)
    except errors.DataError:
      continue   # every joint dropped in every frame of the run
    kp3d_image, factor = camera_lib.image_space_label(h36m_cam[s:e], cam.f,
                                                      cam.c)
    seqs.append({"name": f"{name}#{k}", "camera": cam.kind,
                 "image_size": (cam.width, cam.height), "fps": fps,
                 "kp2d": kp2d, "conf": conf,
                 "kp3d": h36m_cam[s:e].astype(np.float32),
                 "kp3d_image": kp3d_image, "factor": factor})
  return seqs


def _in_world(kp3d, src_fps, fps, up_axis, rng):
  """Mocap joints -> resampled to `fps`, z-up, random heading, mean root
  at the origin, feet on the floor."""
  world = mocap.to_z_up(mocap.resample(kp3d, src_fps, fps), up_axis)
  return mocap.place(world, (0.0, 0.0), rng.uniform(0, 2 * np.pi))


def _train_views(rng, world_fn, name, subject, action, views, noise,
                 min_frames, mix):
  """`views` random cameras (each its own frame rate) of one sequence;
  `world_fn(fps)` gives the world joints at a frame rate; `mix`: each view
  with its own `random_convention`, else the joint centres."""
  out = []
  for v in range(views):
    fps = FPS_CHOICES[rng.integers(len(FPS_CHOICES))]
    world = world_fn(fps)
    cam = random_video_camera(rng, world)
    convention = (random_convention(rng) if mix
                  else CONVENTIONS["joint_centres"])
    for seq in film(rng, world, f"{name}/view{v}", cam, fps, noise,
                    min_frames=min_frames, convention=convention):
      out.append(dict(seq, subject=subject, action=action))
  return out


def _val_views(rng, world, name, subject, action, views, min_frames,
               conventions):
  """The validation views of one held-out sequence, clean and noisy through
  the same cameras and frames (every joint in view; tripod and handheld
  alternate), the noisy views also as each of `conventions` ({split:
  Convention}) places the points, with the same cameras and noise draws."""
  out = {s: [] for s in ("test_clean", "test_noisy", *conventions)}
  for v in range(views):
    cam = random_video_camera(rng, world, handheld=bool(v % 2))
    centres = CONVENTIONS["joint_centres"]
    for clean, todo in ((True, {"test_clean": centres}),
                        (False, {"test_noisy": centres, **conventions})):
      seed = rng.integers(2 ** 63)
      for split, conv in todo.items():
        for seq in film(np.random.default_rng(seed), world,
                        f"{name}/view{v}", cam, VAL_FPS, VAL_NOISE,
                        clean=clean, all_in_view=True, min_frames=min_frames,
                        convention=conv):
          out[split].append(dict(seq, subject=subject, action=action))
  return out


def validation_splits(items, seed: int = 0, val_views: int = 2,
                      val_subjects=mocap.DEFAULT_VAL, min_frames: int = 27,
                      conventions: dict | None = None) -> dict:
  """The held-out views of `make_splits` (same seed: same cameras, frames
  and noise), noisy also as each of `conventions` places the points.

  Args:
    items, seed, val_views, val_subjects, min_frames: as `make_splits`.
    conventions: {split name: Convention}; default 'test_noisy_<name>' for
      each of `VAL_CONVENTIONS`.

  Returns:
    {split: [per-sequence dicts]} ('test_clean', 'test_noisy', *conventions).
  """
  if conventions is None:
    conventions = {f"test_noisy_{c}": CONVENTIONS[c] for c in VAL_CONVENTIONS}
  out = {s: [] for s in ("test_clean", "test_noisy", *conventions)}
  for i, (stem, name, kp3d, src_fps, up) in enumerate(items):
    if not mocap.is_validation(stem, name, val_subjects):
      continue
    rng = np.random.default_rng([seed, i])
    subject, action = mocap._subject_action(stem, name)  # pylint: disable=protected-access
    world = _in_world(kp3d, src_fps, VAL_FPS, up, rng)
    for split, seqs in _val_views(rng, world, f"{stem}/{name}", subject,
                                  action, val_views, min_frames,
                                  conventions).items():
      out[split] += seqs
  return out


def _synthetic_views(seed, subjects, takes, seconds, views, noise,
                     min_frames, mix):
  """The built-in procedural motion (`synthetic.motion`) through random
  video cameras: subjects x actions x takes sequences, train only."""
  seqs = []
  for si in range(subjects):
    bones = synthetic.random_bones(np.random.default_rng([seed, 7, si]))
    for ai, action in enumerate(synthetic.ACTIONS):
      for take in range(takes):
        rng = np.random.default_rng([seed, 7, si, ai, take])
        motion_seed = int(rng.integers(2 ** 31))

        def world_fn(fps, motion_seed=motion_seed):
          return synthetic.motion(action, bones, int(seconds * fps),
                                  np.random.default_rng(motion_seed), fps)
        seqs += _train_views(rng, world_fn, f"synthetic/SYN{si + 1:02d}/"
                             f"{action}/take{take + 1}", f"SYN{si + 1:02d}",
                             action, views, noise, min_frames, mix)
  return seqs


def make_splits(items, seed: int = 0, views: int = 8, val_views: int = 2,
                val_subjects=mocap.DEFAULT_VAL, synthetic_subjects: int = 4,
                synthetic_takes: int = 2, synthetic_seconds: float = 8.0,
                noise: NoiseModel = NoiseModel(), min_frames: int = 27,
                mix: bool = True, progress: bool = False) -> dict:
  """Mocap items (`mocap.read_inputs`) + synthetic motion -> schema arrays.

  Args:
    items: [(stem, name, (F, 17, 3) mm, fps, up_axis)].
    seed: everything random derives from it.
    views: random cameras per training sequence.
    val_views: cameras per validation sequence.
    val_subjects: held-out entries (`mocap.is_validation`).
    synthetic_subjects, synthetic_takes, synthetic_seconds: the procedural
      motion added to training (0 subjects: none).
    noise: the detector model of the training views.
    min_frames: shortest in-view run kept (the model's T).
    mix: training views with the 2D conventions' placements
      (`random_convention`), else all at the mocap's joint centres.

  Returns:
    {'train', *VAL_SPLITS: arrays for `dataset.save`}: the validation views
    at the joint centres ('test_clean', 'test_noisy') and, noisy, as each of
    `VAL_CONVENTIONS` ('test_noisy_coco17', ...).
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  splits = {"train": [], **validation_splits(items, seed, val_views,
                                             val_subjects, min_frames)}
  for i, (stem, name, kp3d, src_fps, up) in enumerate(
      tqdm(items, disable=not progress, desc="sequences")):
    if mocap.is_validation(stem, name, val_subjects):
      continue
    rng = np.random.default_rng([seed, i])
    subject, action = mocap._subject_action(stem, name)  # pylint: disable=protected-access
    full = f"{stem}/{name}"
    heading = rng.uniform(0, 2 * np.pi)
    world_fn = lambda fps, kp3d=kp3d, src_fps=src_fps, up=up, h=heading: (
        mocap.place(mocap.to_z_up(mocap.resample(kp3d, src_fps, fps), up),
                    (0.0, 0.0), h))
    splits["train"] += _train_views(rng, world_fn, full, subject, action,
                                    views, noise, min_frames, mix)
  if synthetic_subjects:
    splits["train"] += _synthetic_views(seed, synthetic_subjects,
                                        synthetic_takes, synthetic_seconds,
                                        views, noise, min_frames, mix)
  source = (f"wild views v{GENERATOR_VERSION} (seed {seed}, {views} train / "
            f"{val_views} val cameras per sequence, COCO-17-derived 2D"
            f"{', convention mix' if mix else ''}) of "
            f"{', '.join(sorted({s for s, *_ in items}))}"
            + (f" + synthetic motion ({synthetic_subjects} subjects)"
               if synthetic_subjects else ""))
  out = {}
  for split, seqs in splits.items():
    if seqs:
      # Even clean inputs are 'detected': COCO-derived Hip, Spine, Thorax,
      # Nose and Head are not projections of the labels' joints.
      out[split] = convert_util.pack(seqs, layout="h36m17", source=source,
                                     input_2d="detected")
  return out


def mocap_inputs(mocap_dir: str, flag: str = "--mocap_dir") -> list[str]:
  """The paths of `MOCAP_FILES` in `mocap_dir`; raises errors.UserError
  (one line naming `flag` and the missing files) when any is absent."""
  paths = [os.path.join(mocap_dir, f) for f in MOCAP_FILES]
  missing = [f for f, p in zip(MOCAP_FILES, paths) if not os.path.isfile(p)]
  if missing:
    raise errors.UserError(
        f"{flag}={mocap_dir}: missing {', '.join(missing)}; expected the CMU "
        "joint files of ../shared/data/mocap")
  return paths


def generate(inputs, output_dir: str, seed: int = 0, **kwargs) -> dict:
  """Reads mocap `inputs` (npz / BVH paths), writes `output_dir/{train,
  *VAL_SPLITS}.npz` (validated first, each atomic); `kwargs` go to
  `make_splits`. Returns {split: path}."""
  items = mocap.read_inputs(inputs)
  return convert_util.write_splits(make_splits(items, seed, **kwargs),
                                   output_dir)
