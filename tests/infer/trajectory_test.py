"""Tests of the camera-frame root trajectory: exact on pinhole projections,
posture-independent body scale, robust depth, real mocap through real
Human3.6M cameras."""

import math

import numpy as np
import pytest

from opformer_jax.infer import trajectory
from opformer_jax import skeleton

# A standing H36M-17 skeleton in camera axes (x right, y down, z away), mm,
# root at the origin: legs and trunk straight up and down.
_STAND = np.array([
    (0, 0, 0), (-120, 0, 0), (-120, 450, 0), (-120, 880, 0), (120, 0, 0),
    (120, 450, 0), (120, 880, 0), (0, -240, 0), (0, -490, 0), (0, -600, 0),
    (0, -720, 0), (160, -470, 0), (160, -200, 0), (160, 40, 0),
    (-160, -470, 0), (-160, -200, 0), (-160, 40, 0)], np.float64)


def _project(joints_cam, focal, centre):
  return joints_cam[..., :2] / joints_cam[..., 2:] * focal + centre


def _moving(num_frames, seed=0):
  """Random root-relative poses (the standing one, jittered) on a path 3-6 m
  from the camera: (pose (F, 17, 3), root (F, 3))."""
  rng = np.random.default_rng(seed)
  pose = _STAND + rng.normal(0, 60, (num_frames, 17, 3))
  pose -= pose[:, :1]
  t = np.linspace(0, 1, num_frames)[:, None]
  root = np.concatenate([-800 + 1600 * t, 100 + 50 * np.sin(6 * t),
                         3000 + 3000 * t], -1)
  return pose, root


def test_default_focal_length_is_a_65_degree_field_of_view():
  # tan(32.5 deg) = 0.63707: f = 1920 / 2 / 0.63707.
  assert trajectory.default_focal_px((1920, 1080)) == pytest.approx(1506.9,
                                                                    abs=0.1)
  f = trajectory.default_focal_px((1000, 1000))
  assert 2 * math.degrees(math.atan(500 / f)) == pytest.approx(65.0)
  # An upright phone video: 65 degrees along its long (vertical) side.
  assert trajectory.default_focal_px((1080, 1920)) == pytest.approx(
      trajectory.default_focal_px((1920, 1080)))


def test_body_height_hand_computed_and_posture_independent():
  # Straight skeleton: leg 450 + 430, trunk 240 + 250 + 110 + 120 = 720.
  want = (450 + 430 + 720) * trajectory.CHAIN_TO_STANDING
  assert trajectory.body_height(_STAND[None]) == pytest.approx(want)
  # Squatting (knees forward, ankles back) with the trunk bent 60 degrees
  # forward keeps every bone length: the head-ankle distance halves, the
  # height stays.
  squat = _STAND.copy()
  for knee, ankle in ((2, 3), (5, 6)):
    squat[knee] = squat[knee - 1] + (0, 450 * 0.6, -450 * 0.8)
    squat[ankle] = squat[knee] + (0, 430 * 0.6, 430 * 0.8)
  c, s = math.cos(math.radians(60)), math.sin(math.radians(60))
  squat[7:] = squat[7:] @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
  assert trajectory.body_height(squat[None]) == pytest.approx(want)
  # Frame-to-frame length errors of a lifted pose: the median wins.
  frames = np.stack([_STAND] * 3 + [_STAND * 1.3] * 2)
  assert trajectory.body_height(frames) == pytest.approx(want)
  scale = trajectory.metric_scale(_STAND[None] / 4, "h36m17", 1800.0)
  assert scale == pytest.approx(4 * 1800 * 0.9 / want)


def test_exact_on_pinhole_projections():
  pose, root = _moving(50)
  focal, centre = 1200.0, np.array([640.0, 360.0])
  kp2d = _project(pose + root[:, None], focal, centre)
  got = trajectory.root_trajectory(pose, kp2d, focal_px=focal,
                                   principal_px=centre)
  np.testing.assert_allclose(got, root, atol=1e-6)
  # Scale errors carry into the path: a 10 % larger pose puts the person
  # 10 % farther along the same rays.
  got = trajectory.root_trajectory(pose * 1.1, kp2d, focal_px=focal,
                                   principal_px=centre)
  np.testing.assert_allclose(got, root * 1.1, rtol=1e-9)


def test_a_2p5d_pose_in_pixels_walking_away():
  """An image-space (2.5D) pose is in px at the root's depth: it shrinks as
  the person recedes. Scaled frame by frame to the stature, it gives the
  metric pose back, and so the path."""
  _, root = _moving(40, seed=3)
  pose = _STAND * np.ones((40, 1, 1))      # rigid: its height is exact
  focal, centre = 1100.0, np.array([960.0, 540.0])
  kp2d = _project(pose + root[:, None], focal, centre)
  pose_px = pose * focal / root[:, 2:3, None]         # 2.5D label units
  stature = trajectory.body_height(pose) / trajectory.HEAD_ANKLE_PER_STATURE
  scale = trajectory.metric_scale(pose_px, "h36m17", stature)
  np.testing.assert_allclose(scale, root[:, 2] / focal, rtol=1e-9)
  got = trajectory.root_trajectory(pose_px * scale[:, None, None], kp2d,
                                   focal_px=focal, principal_px=centre)
  np.testing.assert_allclose(got, root, rtol=1e-9)


def test_confidence_weights_and_running_median():
  pose, root = _moving(21, seed=1)
  focal, centre = 1000.0, np.array([500.0, 500.0])
  kp2d = _project(pose + root[:, None], focal, centre)
  conf = np.ones(kp2d.shape[:2])
  kp2d[:, 13] += 300.0                     # a wrist detected far off ...
  conf[:, 13] = 0.0                        # ... with confidence 0
  got = trajectory.root_trajectory(pose, kp2d, conf, focal_px=focal,
                                   principal_px=centre)
  np.testing.assert_allclose(got, root, atol=1e-6)
  # One frame's lifted pose twice too big: its depth doubles, and a 5-frame
  # running median (of log depth) takes it back among its neighbours': the
  # path recedes, so the median of frames 8, 9, 11, 12 and the doubled 10
  # is frame 11's depth.
  depth = trajectory.frame_depths(pose, kp2d, conf, focal, centre)
  bad = pose.copy()
  bad[10] *= 2
  raw = trajectory.frame_depths(bad, kp2d, conf, focal, centre)
  assert raw[10] == pytest.approx(2 * depth[10])
  smooth = trajectory.smooth_depths(raw, 5)
  assert smooth[10] == pytest.approx(depth[11], rel=1e-12)
  # Frames without spread (every joint at one point) borrow a neighbour's.
  flat = raw.copy()
  flat[3] = np.nan
  np.testing.assert_allclose(trajectory.smooth_depths(flat, 1)[3],
                             (raw[2] * raw[4]) ** 0.5)
  with pytest.raises(ValueError, match="no spread"):
    trajectory.smooth_depths(np.full(4, np.nan), 3)


def test_poses_that_contradict_their_2d():
  pose, root = _moving(9, seed=2)
  focal, centre = 1000.0, np.array([500.0, 500.0])
  kp2d = _project(pose + root[:, None], focal, centre)
  # One frame mirrored left-right: its signed depth is negative, so it takes
  # its neighbours' (geometric mean: the path is smooth).
  bad = pose.copy()
  bad[4, :, :2] *= -1
  got = trajectory.root_trajectory(bad, kp2d, focal_px=focal,
                                   principal_px=centre)
  np.testing.assert_allclose(np.delete(got, 4, 0), np.delete(root, 4, 0),
                             atol=1e-6)
  assert got[4, 2] == pytest.approx((root[3, 2] * root[5, 2]) ** 0.5)
  # Every frame upside down (a wrong joint order, an untrained model): the
  # unsigned extent ratio still places the person at about the right
  # distance (the joints' own depths now bend the perspective the wrong
  # way).
  bad = pose * [-1, -1, 1]
  got = trajectory.root_trajectory(bad, kp2d, focal_px=focal,
                                   principal_px=centre)
  np.testing.assert_allclose(got[:, 2], root[:, 2], rtol=0.05)


def test_cmu_validation_through_h36m_cameras(shared_data):
  """Real motion seen by a real (distorting) Human3.6M camera; the GT
  root-relative pose isolates the trajectory method: the miss is the lens
  distortion the pinhole model ignores (~1 % of the distance)."""
  from opformer_jax.data import camera
  from opformer_jax.data import mocap
  items = [it for it in mocap.read_inputs(
      [str(shared_data / "mocap" / "cmu_gait.npz")])
           if it[1] == "16_15"]
  cams = camera.load_h36m_cameras(
      str(shared_data / "cameras" / "h36m_cameras.json"))
  split = mocap.convert_sequences(items, "h36m", cams, val_subjects=("16",))
  split = split["test"]
  off = split["seq_offsets"]
  errors = []
  for s, name in enumerate(split["seq_name"]):
    subject, cam_id = name.split("#")[0].split("/")[-2:]
    cam = cams[(subject, cam_id)]
    kp3d = split["kp3d"][off[s]:off[s + 1]].astype(np.float64)
    got = trajectory.root_trajectory(
        kp3d - kp3d[:, :1], split["kp2d"][off[s]:off[s + 1]],
        focal_px=float(cam.f.mean()), principal_px=cam.c, window=25)
    errors.append(np.linalg.norm(got - kp3d[:, 0], axis=-1) /
                  np.linalg.norm(kp3d[:, 0], axis=-1))
  assert len(errors) == 4
  assert np.concatenate(errors).mean() < 0.03


def test_mpi_layout_uses_its_chain():
  mpi = np.empty_like(_STAND)
  mpi[list(skeleton.H36M_TO_MPI)] = _STAND
  assert trajectory.body_height(mpi[None], "mpi17") == pytest.approx(
      trajectory.body_height(_STAND[None], "h36m17"))
