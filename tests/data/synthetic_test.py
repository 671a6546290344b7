"""Tests of the built-in synthetic dataset."""

import os

import numpy as np
import pytest

from opformer_jax.data import camera
from opformer_jax.data import dataset
from opformer_jax import skeleton
from opformer_jax.data import synthetic

SMALL = dict(train_subjects=2, test_subjects=1, takes=1, frames=60,
             cameras_per_take=2)


def _bone_lengths(kp3d):
  return np.stack([np.linalg.norm(kp3d[:, j] - kp3d[:, p], axis=-1)
                   for p, j in skeleton.H36M.bones], -1)


def test_deterministic_given_seed():
  a = synthetic.make_splits(seed=3, **SMALL)
  b = synthetic.make_splits(seed=3, **SMALL)
  c = synthetic.make_splits(seed=4, **SMALL)
  for split in ("train", "test"):
    assert a[split].keys() == b[split].keys()
    for key in a[split]:
      np.testing.assert_array_equal(a[split][key], b[split][key])
  assert not np.allclose(a["train"]["kp3d"], c["train"]["kp3d"])


def test_sizes_labels_and_subjects():
  splits = synthetic.make_splits(seed=0, **SMALL)
  train, test = splits["train"], splits["test"]
  # subjects x 7 actions x takes x cameras x frames.
  assert len(train["kp2d"]) == 2 * 7 * 1 * 2 * 60
  assert len(test["kp2d"]) == 1 * 7 * 1 * 2 * 60
  assert set(train["seq_action"]) == set(synthetic.ACTIONS)
  assert set(train["seq_subject"]) == {"SYN01", "SYN02"}
  assert set(test["seq_subject"]) == {"SYN03"}
  assert train["synthetic"] and "SYNTHETIC" in train["source"]
  np.testing.assert_allclose(train["seq_fps"], 50.0)


def test_bone_lengths_constant_and_human():
  splits = synthetic.make_splits(seed=1, **SMALL)
  for arrays in splits.values():
    off = arrays["seq_offsets"]
    for s in range(len(off) - 1):
      bones = _bone_lengths(arrays["kp3d"][off[s]:off[s + 1]].astype(float))
      assert np.ptp(bones, axis=0).max() < 0.01        # mm, float32 noise
  bones = _bone_lengths(splits["train"]["kp3d"][:1].astype(float))[0]
  # H36M-17 bones: (0,1) hip, (1,2) thigh, (2,3) shin, ... (15,16) forearm.
  assert 100 < bones[0] < 160 and 360 < bones[1] < 540
  assert 360 < bones[2] < 540 and 200 < bones[-1] < 300


def test_labels_consistent_with_2d():
  splits = synthetic.make_splits(seed=2, noise_px=0.0, **SMALL)
  cams = {c.camera_id: c for c in synthetic.builtin_cameras()}
  for arrays in splits.values():
    assert arrays["input_2d"] == "gt"
    off = arrays["seq_offsets"]
    for s, cam_id in enumerate(arrays["seq_camera"]):
      frames = slice(off[s], off[s + 1])
      cam = cams[cam_id]
      kp3d = arrays["kp3d"][frames].astype(np.float64)
      proj = camera.project(kp3d, cam.f, cam.c)
      np.testing.assert_allclose(arrays["kp2d"][frames], proj, atol=1e-3)
      np.testing.assert_allclose(arrays["kp3d_image"][frames][..., :2], proj,
                                 atol=1e-3)
      w, h = arrays["seq_image_size"][s]
      assert (proj >= 0).all() and (proj[..., 0] < w).all()
      assert (proj[..., 1] < h).all()
      # Feet on the floor (world z = 0, ankles at ANKLE_HEIGHT_MM) except in
      # jumps.
      world = kp3d @ cam.R_world_to_cam + cam.center_world_mm
      lowest = world[:, (3, 6), 2].min(1)
      assert lowest.min() == pytest.approx(synthetic.ANKLE_HEIGHT_MM, abs=0.1)
      if arrays["seq_action"][s] != "JumpingJacks":
        np.testing.assert_allclose(lowest, synthetic.ANKLE_HEIGHT_MM,
                                   atol=0.1)


def test_noise_and_confidence():
  noisy = synthetic.make_splits(seed=2, noise_px=1.5, **SMALL)["train"]
  clean = synthetic.make_splits(seed=2, noise_px=0.0, **SMALL)["train"]
  np.testing.assert_array_equal(noisy["kp3d"], clean["kp3d"])
  err = np.linalg.norm(noisy["kp2d"] - clean["kp2d"], axis=-1)
  assert 1.0 < np.median(err) < 3.0
  assert noisy["input_2d"] == "detected"
  assert np.corrcoef(err.ravel(), noisy["conf"].ravel())[0, 1] < -0.3


def test_actions_differ():
  """Each action label is a distinct motion: per-joint speed profiles of
  the root-relative pose separate them."""
  rng = np.random.default_rng(0)
  stats = {}
  for action in synthetic.ACTIONS:
    w = synthetic.motion(action, synthetic.BONES, 150, rng)
    rel = w - w[:, :1]
    stats[action] = np.abs(np.diff(rel, axis=0)).mean((0, 2))
  names = list(stats)
  for i, a in enumerate(names):
    for b in names[i + 1:]:
      assert np.abs(stats[a] - stats[b]).max() > 0.5, (a, b)


def test_generate_and_ensure_default(tmp_path):
  train, test = synthetic.ensure_default(str(tmp_path), **SMALL)
  data = dataset.load(train)
  assert data.synthetic and data.num_frames == 2 * 7 * 2 * 60
  assert dataset.load(test).num_frames == 7 * 2 * 60
  stamp = os.stat(train).st_mtime_ns
  assert synthetic.ensure_default(str(tmp_path), **SMALL) == (train, test)
  assert os.stat(train).st_mtime_ns == stamp           # reused
  synthetic.ensure_default(str(tmp_path), seed=1, **SMALL)
  assert os.stat(train).st_mtime_ns != stamp           # other arguments
  assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]
