"""Tests of the BVH writer: read back with the project's reader, the joints
come back; offsets are median bone lengths; limbs bend about one axis."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from opformer_jax.formats import bvh
from opformer_jax import skeleton

H36M = skeleton.H36M
_IDX = H36M.joints.index
# A rest pose (y up, facing +z, left = +x; mm) with girdles that are not
# the writer's T-pose: hips and shoulders a little below / in front.
_REST = {"r_hip": (-130, -20, 10), "r_knee": (0, -440, 0),
         "r_ankle": (0, -430, 0), "l_hip": (130, -20, 10),
         "l_knee": (0, -440, 0), "l_ankle": (0, -430, 0),
         "spine": (0, 230, 0), "thorax": (0, 250, 0), "nose": (0, 110, 20),
         "head": (0, 120, 0), "l_shoulder": (150, -30, -10),
         "l_elbow": (280, 0, 0), "l_wrist": (250, 0, 0),
         "r_shoulder": (-150, -30, -10), "r_elbow": (-280, 0, 0),
         "r_wrist": (-250, 0, 0)}
# Joints whose local rotation in the generator is a hinge about x.
_HINGES = ("r_knee", "l_knee")


def rigid_motion(num_frames, seed=0, lengths=None):
  """Forward kinematics of random local rotations on `_REST`: (F, 17, 3) mm
  with constant bone lengths and rigid girdles, y up. Knees bend about
  their local x axis by 15-90 degrees (the shin goes backwards)."""
  rng = np.random.default_rng(seed)
  offsets = np.zeros((17, 3))
  for name, off in _REST.items():
    offsets[_IDX(name)] = off
  if lengths is not None:
    offsets = offsets * lengths[:, None]
  pos = np.zeros((num_frames, 17, 3))
  glob = [None] * 17
  for j, p in enumerate(H36M.parents):
    if H36M.joints[j] in _HINGES:
      local = Rotation.from_euler("x", rng.uniform(15, 90, (num_frames, 1)),
                                  degrees=True)
    else:
      local = Rotation.from_rotvec(rng.normal(0, 0.35, (num_frames, 3)))
    if p < 0:
      glob[j] = local
      pos[:, j] = rng.normal(0, 500, (num_frames, 3))
    else:
      glob[j] = glob[p] * local
      pos[:, j] = pos[:, p] + glob[p].apply(offsets[j])
  return pos


def read_back(path):
  """The H36M-17 joints of a BVH file, by name, with the project's reader."""
  parsed = bvh.parse_bvh(str(path))
  pos = bvh.bvh_positions(parsed)
  return parsed, pos[:, [parsed.joints.index(n) for n in H36M.joints]]


def test_constant_lengths_read_back_exactly(tmp_path):
  kp3d = rigid_motion(60)
  path = tmp_path / "a.bvh"
  bvh.write_bvh(str(path), kp3d, fps=25.0, units_per_mm=1.0,
                camera_axes=False)
  parsed, back = read_back(path)
  # Only the 6-decimal text of angles and offsets limits it.
  assert np.abs(back - kp3d).max() < 1e-3
  assert parsed.fps == 25.0 and parsed.motion.shape == (60, 6 + 16 * 3)
  # The hierarchy is H36M-17's, named as skeleton.py names it; every leaf
  # ends in an End Site.
  names = [n for n in parsed.joints if not n.endswith("_end")]
  assert names == list(H36M.joints)
  for j, name in enumerate(H36M.joints):
    p = H36M.parents[j]
    want = -1 if p < 0 else parsed.joints.index(H36M.joints[p])
    assert parsed.parents[parsed.joints.index(name)] == want
  assert {n for n in parsed.joints if n.endswith("_end")} == {
      "r_ankle_end", "l_ankle_end", "head_end", "l_wrist_end",
      "r_wrist_end"}
  assert parsed.channels[0] == ("Xposition", "Yposition", "Zposition",
                                "Zrotation", "Xrotation", "Yrotation")
  assert set(parsed.channels[1:]) - {()} == {
      ("Zrotation", "Xrotation", "Yrotation")}


def test_offsets_are_median_bone_lengths_and_errors_come_from_length_changes(
    tmp_path):
  kp3d = rigid_motion(9, seed=1)
  # Stretch the right shin in four frames: the ankle moves along the shin.
  shin = kp3d[:, _IDX("r_ankle")] - kp3d[:, _IDX("r_knee")]
  stretch = np.array([1, 1, 1, 1, 1, 1.1, 1.2, 0.9, 1.05])
  kp3d[:, _IDX("r_ankle")] = kp3d[:, _IDX("r_knee")] + shin * stretch[:, None]
  path = tmp_path / "b.bvh"
  written = bvh.write_bvh(str(path), kp3d, fps=30.0, units_per_mm=1.0,
                          camera_axes=False)
  length = np.linalg.norm(_REST["r_ankle"])           # median stretch: 1
  ankle_off = written.offsets[written.joints.index("r_ankle")]
  np.testing.assert_allclose(np.linalg.norm(ankle_off), length, rtol=1e-6)
  np.testing.assert_allclose(ankle_off / length, [0, -1, 0], atol=1e-9)
  _, back = read_back(path)
  err = np.linalg.norm(back - kp3d, axis=-1)
  np.testing.assert_allclose(err[:, _IDX("r_ankle")],
                             np.abs(stretch - 1) * length, atol=1e-3)
  others = np.delete(err, _IDX("r_ankle"), axis=1)
  assert others.max() < 1e-3


def test_knees_turn_about_one_axis(tmp_path):
  kp3d = rigid_motion(40, seed=2)
  written = bvh.write_bvh(str(tmp_path / "c.bvh"), kp3d, fps=30.0,
                          units_per_mm=1.0, camera_axes=False)
  angles = written.motion[:, 6:].reshape(40, 16, 3)
  for name in _HINGES:
    local = Rotation.from_euler("ZXY", angles[:, _IDX(name) - 1],
                                degrees=True)
    axis = local.as_rotvec()
    # The generator bent each knee about x by 15-90 degrees; the twist from
    # the leg's bend plane finds exactly that rotation.
    np.testing.assert_allclose(axis[:, 1:], 0, atol=1e-6)
    assert (np.degrees(axis[:, 0]) > 14.9).all()
    assert (np.degrees(axis[:, 0]) < 90.1).all()


def test_units_camera_axes_and_girdle_deformation(tmp_path):
  kp_up = rigid_motion(20, seed=3)
  # The same motion in camera axes (y down, z away) and in mm -> cm.
  kp_cam = kp_up * [1, -1, -1]
  path = tmp_path / "d.bvh"
  written = bvh.write_bvh(str(path), kp_cam, fps=50.0)   # cm, camera axes
  _, back = read_back(path)
  assert np.abs(back * 10 - kp_up).max() < 1e-2
  np.testing.assert_allclose(
      np.linalg.norm(written.offsets[_IDX("r_knee")]),
      np.linalg.norm(_REST["r_knee"]) / 10, rtol=1e-6)
  # Raising the left shoulder by 30 mm against the neck cannot be followed
  # by one thorax rotation: the weighted fit spreads the miss over the
  # neck, the left and the right arm instead of leaving the arm 30 mm off.
  shrug = kp_up.copy()
  for name in ("l_shoulder", "l_elbow", "l_wrist"):
    shrug[15:, _IDX(name), 1] += 30.0
  bvh.write_bvh(str(path), shrug, fps=50.0, units_per_mm=1.0,
                camera_axes=False)
  _, back = read_back(path)
  err = np.linalg.norm(back - shrug, axis=-1)
  assert err[:15].max() < 1e-3          # the rest pose is the unshrugged one
  shrugged = err[15:].mean(0)
  for name in ("nose", "l_shoulder", "r_shoulder"):
    assert 5.0 < shrugged[_IDX(name)] < 25.0, (name, shrugged)
  assert shrugged[:_IDX("nose")].max() < 1e-3      # legs and spine untouched


def test_align_rotations_matches_scipy():
  rng = np.random.default_rng(4)
  rest = rng.normal(size=(3, 3))
  weights = rng.uniform(0.5, 3.0, 3)
  posed = rng.normal(size=(20, 3, 3))
  got = bvh.align_rotations(posed, rest, weights)
  for f in range(20):
    want = Rotation.align_vectors(posed[f], rest, weights)[0].as_matrix()
    np.testing.assert_allclose(got[f], want, atol=1e-9)


def test_bad_input(tmp_path):
  with pytest.raises(ValueError, match=r"expected \(F, 17, 3\)"):
    bvh.write_bvh(str(tmp_path / "e.bvh"), np.zeros((5, 16, 3)), fps=30.0)
  bad = rigid_motion(3)
  bad[1, 4, 0] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    bvh.write_bvh(str(tmp_path / "e.bvh"), bad, fps=30.0)
  assert not (tmp_path / "e.bvh").exists()


def test_cmu_mocap_reads_back_within_girdle_deformation(shared_data,
                                                        tmp_path):
  """Real motion capture: bone lengths nearly constant, girdles not rigid."""
  with np.load(shared_data / "mocap" / "cmu_gait.npz") as z:
    kp3d = z["02_01"][:240].astype(np.float64)      # y up, mm
  path = tmp_path / "cmu.bvh"
  bvh.write_bvh(str(path), kp3d, fps=120.0, units_per_mm=1.0,
                camera_axes=False)
  _, back = read_back(path)
  err = np.linalg.norm(back - kp3d, axis=-1)
  assert err.mean() < 3.0 and err.max() < 15.0
