"""Plausibility figures against motions whose figures are known by hand."""

import numpy as np

from opformer_jax.infer import plausibility
from opformer_jax import skeleton

H36M = skeleton.H36M
J = H36M.joints.index


def _standing(frames=20):
  """(F, 17, 3) mm: a T-ish pose, left and right limbs of equal length."""
  pose = np.zeros((17, 3))
  for side, x in (("r", -100.0), ("l", 100.0)):
    pose[J(f"{side}_hip")] = (x, 0, 0)
    pose[J(f"{side}_knee")] = (x, 450, 0)
    pose[J(f"{side}_ankle")] = (x, 900, 0)
    pose[J(f"{side}_shoulder")] = (1.5 * x, -500, 0)
    pose[J(f"{side}_elbow")] = (3 * x, -500, 0)
    pose[J(f"{side}_wrist")] = (4.5 * x, -500, 0)
  pose[J("spine")] = (0, -250, 0)
  pose[J("thorax")] = (0, -500, 0)
  pose[J("nose")] = (0, -550, 0)
  pose[J("head")] = (0, -650, 0)
  return np.repeat(pose[None], frames, axis=0)


def _figures(pose, root, kp2d=None, conf=None):
  kp2d = pose[..., :2] / 2 if kp2d is None else kp2d
  conf = np.ones(pose.shape[:2]) if conf is None else conf
  figs = plausibility.track_figures(pose, root, kp2d, conf)
  return {k: v / n if n else np.nan for k, (v, n) in figs.items()}


def test_a_rigid_still_symmetric_body_scores_zero():
  pose = _standing()
  f = _figures(pose, np.zeros((len(pose), 3)))
  assert f == {"bones": 0.0, "symmetry": 0.0, "skating": 0.0, "accel": 0.0}


def test_bone_and_symmetry_figures_match_hand_computation():
  pose = _standing(4)
  # Odd frames: the left shin 30 mm longer (its ankle 30 mm lower).
  pose[1::2, J("l_ankle"), 1] += 30
  f = _figures(pose, np.zeros((4, 3)))
  # Shin lengths 450, 480, 450, 480 -> median 465, |dev| 15 on 1 of 16 bones.
  np.testing.assert_allclose(f["bones"], 15 / 16)
  # Four paired bones; only the shin differs, by 30 mm in half the frames.
  np.testing.assert_allclose(f["symmetry"], 30 / 2 / 4)
  # The ankle's acceleration |+30 - 0 + 30| = 60 or 60 mm on 1 of 17 joints.
  np.testing.assert_allclose(f["accel"], 60 / 17)


def test_skating_is_the_3d_speed_of_a_foot_the_2d_shows_still():
  frames = 12
  pose = _standing(frames)
  root = np.zeros((frames, 3))
  root[:, 2] = 5000 + 7.0 * np.arange(frames)   # drifting away 7 mm/frame
  kp2d = pose[..., :2] / 2     # the 2D stands still throughout
  f = _figures(pose, root, kp2d)
  np.testing.assert_allclose(f["skating"], 7.0)
  # A foot seen moving in 2D is not counted: no still frames, no figure.
  kp2d = kp2d.copy()
  kp2d[:, [J("l_ankle"), J("r_ankle")], 0] += 20.0 * np.arange(frames)[:,
                                                                      None]
  assert np.isnan(_figures(pose, root, kp2d)["skating"])


def test_still_runs_shorter_than_the_minimum_are_not_stance():
  mask = np.array([1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1], bool)
  out = plausibility._runs_at_least(mask, 5)   # pylint: disable=protected-access
  np.testing.assert_array_equal(out, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0])


def test_undetected_ankles_are_not_stance():
  frames = 12
  pose = _standing(frames)
  root = np.zeros((frames, 3))
  root[:, 2] = 7.0 * np.arange(frames)
  conf = np.ones((frames, 17))
  conf[:, [J("l_ankle"), J("r_ankle")]] = 0.1
  assert np.isnan(_figures(pose, root, conf=conf)["skating"])
