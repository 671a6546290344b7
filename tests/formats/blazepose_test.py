"""BlazePose landmarks -> H36M-17 against joints computed by hand."""

import numpy as np
import pytest

from opformer_jax import errors
from opformer_jax import skeleton
from opformer_jax.formats import blazepose
from opformer_jax.formats import keypoint_formats

J = {n: i for i, n in enumerate(blazepose.BLAZEPOSE33_JOINTS)}
H = {n: i for i, n in enumerate(skeleton.H36M.joints)}


def _landmarks(num_frames=3, seed=0):
  rng = np.random.default_rng(seed)
  lm = np.empty((num_frames, 33, 3), np.float32)
  lm[..., :2] = rng.uniform(10, 700, (num_frames, 33, 2))
  lm[..., 2] = rng.uniform(0.2, 1.0, (num_frames, 33))
  return lm


def test_names_follow_mediapipe_order():
  assert blazepose.NUM_LANDMARKS == 33
  # Spot checks against mediapipe's PoseLandmark enum values.
  assert (J["nose"], J["l_eye"], J["r_eye"], J["l_shoulder"], J["r_hip"],
          J["r_ankle"], J["r_foot_index"]) == (0, 2, 5, 11, 24, 28, 32)


def test_mapping_matches_hand_computed_joints():
  lm = _landmarks()
  out = blazepose.to_h36m_raw(lm)
  assert out.shape == (3, 17, 3)
  xy, c = lm[..., :2], lm[..., 2]
  hip = (xy[:, J["l_hip"]] + xy[:, J["r_hip"]]) / 2
  thorax = (xy[:, J["l_shoulder"]] + xy[:, J["r_shoulder"]]) / 2
  np.testing.assert_allclose(out[:, H["hip"], :2], hip, rtol=1e-5)
  np.testing.assert_allclose(out[:, H["thorax"], :2], thorax, rtol=1e-5)
  np.testing.assert_allclose(out[:, H["spine"], :2], (hip + thorax) / 2,
                             rtol=1e-5)
  np.testing.assert_allclose(
      out[:, H["head"], :2],
      xy[:, J["l_eye"]] + xy[:, J["r_eye"]] - xy[:, J["nose"]], rtol=1e-4)
  for name in ("l_knee", "r_wrist", "nose", "r_ankle"):
    np.testing.assert_array_equal(out[:, H[name], :2], xy[:, J[name]])
    np.testing.assert_array_equal(out[:, H[name], 2], c[:, J[name]])
  np.testing.assert_allclose(
      out[:, H["hip"], 2], np.minimum(c[:, J["l_hip"]], c[:, J["r_hip"]]))


def test_missed_frames_are_filled_and_flagged_on_read_back(tmp_path):
  lm = _landmarks(6)
  lm[2:4] = 0   # nobody found in frames 2 and 3
  raw = blazepose.to_h36m_raw(lm)
  assert not raw[2:4].any()
  path = tmp_path / "clip_2d.npz"
  np.savez(path, clip=raw, image_size=np.array([1280, 720]), fps=25.0)
  (track,) = keypoint_formats.load_h36m(str(path), "array")
  np.testing.assert_array_equal(track.interpolated,
                                [False, False, True, True, False, False])
  assert (track.conf[2:4] == 0).all() and (track.conf[[0, 5]] > 0).all()
  mid = (raw[1, :, :2] * 2 + raw[4, :, :2]) / 3   # linear in time
  np.testing.assert_allclose(track.kp2d[2], mid, rtol=1e-5)
  assert track.image_size == (1280, 720) and track.fps == 25.0


def test_too_few_frames_with_a_person_is_one_line():
  with pytest.raises(errors.DataError, match=r"clip.mp4: a person was found "
                     r"in only 1 of 4 frames \(25%\)"):
    blazepose.check_found("clip.mp4", [True, False, False, False])
  with pytest.raises(errors.DataError, match="no frame decoded"):
    blazepose.check_found("clip.mp4", [])
  blazepose.check_found("clip.mp4", [True, True, False, True])


def test_wrong_landmark_count_is_refused():
  with pytest.raises(ValueError, match="33"):
    blazepose.to_coco17(np.zeros((2, 17, 3)))
