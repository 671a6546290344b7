"""Tests of the Human3.6M names and of the three readers, on tiny fixtures
written here in the exact source formats."""

import json
import os
import pickle
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from opformer_jax import skeleton
from opformer_jax.data import camera
from opformer_jax.data import convert_util
from opformer_jax.data import dataset
from opformer_jax.data import h36m
from opformer_jax.data import synthetic

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
# PROTOCOL.md §3.4: the S9 takes the evaluation skips (Greeting 2,
# SittingDown 2, Waiting 1), written out here independently of the code.
SKIPPED = ("s_09_act_05_subact_02", "s_09_act_10_subact_02",
           "s_09_act_13_subact_01")

# Human3.6M's own S9 file names (as VideoPose3D / 3d-pose-baseline keep them).
S9_NAMES = ("Directions 1", "Directions", "Discussion 1", "Discussion 2",
            "Eating 1", "Eating", "Greeting 1", "Greeting", "Phoning 1",
            "Phoning", "Photo 1", "Photo", "Posing 1", "Posing",
            "Purchases 1", "Purchases", "Sitting 1", "Sitting",
            "SittingDown 1", "SittingDown", "Smoking 1", "Smoking",
            "Waiting 1", "Waiting", "WalkDog 1", "WalkDog", "Walking 1",
            "Walking", "WalkTogether 1", "WalkTogether")


def test_action_canonicalisation():
  assert h36m.split_action_name("TakingPhoto 1") == ("Photo", 1)
  assert h36m.split_action_name("takingphoto") == ("Photo", None)
  assert h36m.split_action_name("WalkingDog_2") == ("WalkDog", 2)
  assert h36m.split_action_name("Walk Together 1") == ("WalkTogether", 1)
  assert h36m.split_action_name("SittingDown") == ("SittingDown", None)
  assert h36m.canonical_action("sitting 2") == "Sitting"
  with pytest.raises(ValueError, match="unknown Human3.6M action"):
    h36m.canonical_action("Dancing")
  assert [h36m.ACTION_IDS[a] for a in ("Directions", "Photo", "WalkDog",
                                       "WalkTogether")] == [2, 12, 15, 16]


def test_subaction_rule_reproduces_skip_list():
  subacts = h36m.subaction_numbers(S9_NAMES)
  assert subacts["Greeting"] == 2 and subacts["Greeting 1"] == 1
  assert subacts["SittingDown"] == 2 and subacts["Waiting 1"] == 1
  assert h36m.subaction_numbers(["Photo", "Photo 2"]) == {"Photo": 1,
                                                          "Photo 2": 2}
  assert h36m.subaction_numbers(["Eating"]) == {"Eating": 1}
  # S5's "Discussion 2" / "Discussion 3" are its two takes, 1 and 2.
  assert h36m.subaction_numbers(["Discussion 2", "Discussion 3"]) == {
      "Discussion 2": 1, "Discussion 3": 2}
  skipped = {name for name in S9_NAMES if h36m.source_id(
      "S9", name, subacts[name], "58860488")[:-6] in SKIPPED}
  assert skipped == {"Greeting", "SittingDown", "Waiting 1"}
  with pytest.raises(ValueError, match="ambiguous"):
    h36m.subaction_numbers(["Eating", "eating"])
  # Human3.6M has two takes of every action: a lone "X 2" (its sibling "X 1"
  # missing from a mirror) keeps number 2.
  assert h36m.subaction_numbers(["Discussion 2"]) == {"Discussion 2": 2}


def test_source_ids():
  name = h36m.source_id("S11", "WalkingDog 1", 1, "60457274")
  assert name == "s_11_act_15_subact_01_ca_04"
  assert h36m.parse_source(name) == {"subject": "S11", "action": "WalkDog",
                                     "subaction": 1, "camera_id": "60457274"}
  assert h36m.source_id("S9", "Waiting", 1, "55011271") == (
      "s_09_act_13_subact_01_ca_02")
  with pytest.raises(ValueError):
    h36m.parse_source("s_09_act_17_subact_01_ca_01")


# ---------------------------------------------------------------------------
# Fixtures.
# ---------------------------------------------------------------------------

SUBJECTS = ("S1", "S9", "S11", "S5")


def _calibrations():
  """{(subject, id): Camera}: the built-in synthetic rig, with Human3.6M
  ids and lens distortion, shifted a little per subject."""
  cams = {}
  for si, subject in enumerate(SUBJECTS):
    for base in synthetic.builtin_cameras():
      centre = base.center_world_mm + [40.0 * si, -30.0 * si, 10.0 * si]
      cams[(subject, base.camera_id)] = camera.make_camera(
          camera.look_at(centre, (0, 0, 800)), centre, base.f, base.c,
          (-0.2, 0.24, -0.003), (-0.0014, -0.001), base.width, base.height,
          base.camera_id, subject)
  return cams


def _write_json_cameras(path, cams):
  entries = [{"subject": c.subject, "camera_id": c.camera_id,
              "width": c.width, "height": c.height,
              "R_world_to_cam": c.R_world_to_cam.tolist(),
              "center_world_mm": c.center_world_mm.tolist(),
              "f": c.f.tolist(), "c": c.c.tolist(), "k": c.k.tolist(),
              "p": c.p.tolist()} for c in cams.values()]
  with open(path, "w") as f:
    json.dump({"convention": "X_cam = R (X - C)", "cameras": entries}, f)


def _write_h5_cameras(path, cams):
  """3d-pose-baseline's cameras.h5: R stored transposed, Name as codes."""
  with h5py.File(path, "w") as hf:
    for (subject, cam_id), c in cams.items():
      g = hf.create_group(f"subject{subject[1:]}/camera"
                          f"{h36m.CAMERA_IDS.index(cam_id) + 1}")
      g["R"] = c.R_world_to_cam.T
      g["T"] = c.center_world_mm[:, None]
      g["f"], g["c"] = c.f[:, None], c.c[:, None]
      g["k"], g["p"] = c.k[:, None], c.p[:, None]
      g["Name"] = np.array([ord(ch) for ch in cam_id], np.uint8)


def _world17(seed, frames):
  """(F, 17, 3) world mm, z up, near the capture centre."""
  rng = np.random.default_rng(seed)
  action = synthetic.ACTIONS[seed % len(synthetic.ACTIONS)]
  return synthetic.motion(action, synthetic.BONES, frames, rng)


def _world32(world17, seed):
  rng = np.random.default_rng(seed)
  out = world17[:, :1] + rng.normal(0, 100, (len(world17), 32, 3))
  out[:, skeleton.H36M32_TO_17] = world17
  return out


def _kp3d(world17, cam):
  return (world17 - cam.center_world_mm) @ cam.R_world_to_cam.T


# ---------------------------------------------------------------------------
# (a) MotionBERT pickle.
# ---------------------------------------------------------------------------


def _motionbert_split(sources, frames, rng, test):
  n = len(sources) * frames
  out = {"joint_2d": rng.uniform(0, 1000, (n, 17, 2)),
         "joint3d_image": rng.uniform(-100, 1000, (n, 17, 3)),
         "source": [s for s in sources for _ in range(frames)],
         "camera_name": [h36m.parse_source(s)["camera_id"] for s in sources
                         for _ in range(frames)]}
  if test:
    out["confidence"] = rng.uniform(0, 1, (n, 17, 1))
    out["2.5d_factor"] = rng.uniform(3, 6, n)
    out["joints_2.5d_image"] = (out["joint3d_image"]
                                * out["2.5d_factor"][:, None, None])
    out["action"] = [h36m.ACTION_IDS[h36m.parse_source(s)["action"]]
                     for s in sources for _ in range(frames)]
  else:
    out["confidence"] = rng.uniform(0, 1, (n, 17))
  return out


def _write_motionbert(path, seed=0):
  rng = np.random.default_rng(seed)
  data = {"train": _motionbert_split(["s_01_act_02_subact_01_ca_01",
                                      "s_01_act_02_subact_01_ca_04",
                                      "s_05_act_12_subact_02_ca_02"], 7, rng,
                                     False),
          "test": _motionbert_split(["s_09_act_05_subact_02_ca_03",
                                     "s_11_act_16_subact_01_ca_01"], 5, rng,
                                    True)}
  with open(path, "wb") as f:
    pickle.dump(data, f)
  return data


def test_motionbert_pickle(tmp_path):
  path = tmp_path / "h36m_sh_conf_cam_source_final.pkl"
  src = _write_motionbert(path)
  splits = h36m.read_motionbert_pkl(str(path))
  train, test = splits["train"], splits["test"]
  assert train["seq_name"].tolist() == ["s_01_act_02_subact_01_ca_01",
                                        "s_01_act_02_subact_01_ca_04",
                                        "s_05_act_12_subact_02_ca_02"]
  assert train["seq_offsets"].tolist() == [0, 7, 14, 21]
  assert train["seq_subject"].tolist() == ["S1", "S1", "S5"]
  assert train["seq_action"].tolist() == ["Directions", "Directions", "Photo"]
  assert train["seq_image_size"].tolist() == [[1000, 1002], [1000, 1002],
                                              [1000, 1000]]
  assert "factor" not in train and "kp3d" not in train
  np.testing.assert_array_equal(train["kp2d"], src["train"]["joint_2d"])
  np.testing.assert_array_equal(train["conf"], src["train"]["confidence"])
  np.testing.assert_array_equal(train["kp3d_image"],
                                src["train"]["joint3d_image"])
  np.testing.assert_array_equal(test["conf"],
                                src["test"]["confidence"][..., 0])
  np.testing.assert_array_equal(test["factor"], src["test"]["2.5d_factor"])
  assert test["seq_action"].tolist() == ["Greeting", "WalkTogether"]
  assert test["seq_name"][0][:-6] in SKIPPED
  paths = h36m.convert("motionbert_pkl", str(path), str(tmp_path / "out"))
  data = dataset.load(paths["test"])
  assert data.layout == "h36m17" and data.input_2d == "detected"
  assert data.kp3d is None and data.factor is not None
  np.testing.assert_allclose(data.seq_fps, 50.0)


def test_motionbert_pickle_without_confidence_and_checks(tmp_path, caplog):
  path = tmp_path / "mb.pkl"
  rng = np.random.default_rng(1)
  test = _motionbert_split(["s_09_act_02_subact_01_ca_01"], 4, rng, True)
  del test["confidence"]
  test["joints_2.5d_image"] = test["joints_2.5d_image"] + 5.0
  with open(path, "wb") as f:
    pickle.dump({"test": test}, f)
  with caplog.at_level("WARNING"):
    out = h36m.read_motionbert_pkl(str(path))["test"]
  np.testing.assert_array_equal(out["conf"], 1.0)
  assert "joints_2.5d_image" in caplog.text and "differs" in caplog.text


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["test"].pop("joint3d_image"),
     r"\['test'\]\['joint3d_image'\] is missing"),
    (lambda d: d["test"].update(joint_2d=np.zeros((10, 16, 2))),
     r"joint_2d'\]: has shape \(10, 16, 2\), expected \(N, 17, 2\)"),
    (lambda d: d["test"]["joint3d_image"].__setitem__((3, 4, 0), np.nan),
     r"joint3d_image'\]: has NaN/inf values \(first rows along axis 0: "
     r"\[3\]\)"),
    (lambda d: d["test"].update(camera_name=["12345678"] * 10),
     r"camera_name'\]: unknown camera '12345678'"),
    (lambda d: d["test"].update(source=["s_09_act_02_subact_01_ca_01"] * 5
                                + ["s_09_act_03_subact_01_ca_01"] * 3
                                + ["s_09_act_02_subact_01_ca_01"] * 2),
     "are not contiguous"),
])
def test_motionbert_pickle_errors(tmp_path, mutate, message):
  rng = np.random.default_rng(2)
  data = {"test": _motionbert_split(["s_09_act_02_subact_01_ca_01",
                                     "s_11_act_03_subact_01_ca_01"], 5, rng,
                                    True)}
  mutate(data)
  path = tmp_path / "bad.pkl"
  with open(path, "wb") as f:
    pickle.dump(data, f)
  with pytest.raises(dataset.DataError, match=message) as err:
    h36m.read_motionbert_pkl(str(path))
  assert str(path) in str(err.value)


# ---------------------------------------------------------------------------
# (b) VideoPose3D npz pair.
# ---------------------------------------------------------------------------

VP3D_ACTIONS = {"S1": ("Walking 1", "Walking"),
                "S9": ("Greeting", "Greeting 1"),
                "S11": ("Directions", "Directions 1")}


def _write_videopose3d(tmp_path, cams, frames=12, extra_2d=3, name="cpn"):
  """Writes data_3d_h36m.npz and data_2d_h36m_<name>.npz; returns the world
  (mm, 17 joints) and 2D arrays used."""
  pos3d, pos2d, world = {}, {}, {}
  seed = 0
  for subject, actions in VP3D_ACTIONS.items():
    pos3d[subject], pos2d[subject] = {}, {}
    for action in actions:
      w17 = _world17(seed, frames)
      world[(subject, action)] = w17
      pos3d[subject][action] = (_world32(w17, seed) / 1000).astype(np.float32)
      rng = np.random.default_rng(100 + seed)
      pos2d[subject][action] = [
          rng.uniform(0, 1000, (frames + extra_2d, 17, 2)).astype(np.float32)
          for _ in h36m.CAMERA_IDS]
      seed += 1
  np.savez_compressed(tmp_path / "data_3d_h36m.npz", positions_3d=pos3d)
  meta = {"layout_name": "h36m", "num_joints": 17,
          "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
  np.savez_compressed(tmp_path / f"data_2d_h36m_{name}.npz",
                      positions_2d=pos2d, metadata=meta)
  _write_json_cameras(tmp_path / "cams.json", cams)
  return world, pos2d


def test_videopose3d(tmp_path):
  cams = _calibrations()
  world, pos2d = _write_videopose3d(tmp_path, cams)
  splits = h36m.read_videopose3d(str(tmp_path / "data_3d_h36m.npz"),
                                 str(tmp_path / "data_2d_h36m_cpn.npz"),
                                 str(tmp_path / "cams.json"))
  train, test = splits["train"], splits["test"]
  assert train["input_2d"] == "detected"
  # S1 Walking 1 -> subact 1, Walking -> 2; 4 cameras each.
  assert train["seq_name"].tolist()[:5] == [
      "s_01_act_14_subact_02_ca_01", "s_01_act_14_subact_02_ca_02",
      "s_01_act_14_subact_02_ca_03", "s_01_act_14_subact_02_ca_04",
      "s_01_act_14_subact_01_ca_01"]
  # S11 "Directions" (corrupt video) is dropped, "Directions 1" kept.
  names = test["seq_name"].tolist()
  assert "s_11_act_02_subact_01_ca_01" in names
  assert not any(n.startswith("s_11_act_02_subact_02") for n in names)
  assert len(names) == 4 * 3
  # S9 "Greeting" beside "Greeting 1" is sub-action 2: skipped.
  s = names.index("s_09_act_05_subact_02_ca_03")
  assert names[s][:-6] in SKIPPED
  frames = slice(test["seq_offsets"][s], test["seq_offsets"][s + 1])
  cam = cams[("S9", "58860488")]
  kp3d = _kp3d(world[("S9", "Greeting")], cam)
  # float32 metres in the file: ~0.1 mm resolution.
  np.testing.assert_allclose(test["kp3d"][frames], kp3d, atol=0.5)
  np.testing.assert_allclose(test["kp2d"][frames],
                             pos2d["S9"]["Greeting"][2][:12])
  img, factor = camera.image_space_label(test["kp3d"][frames], cam.f, cam.c)
  np.testing.assert_allclose(test["kp3d_image"][frames], img, atol=1e-3)
  np.testing.assert_allclose(test["factor"][frames], factor, rtol=1e-6)
  assert test["seq_image_size"][s].tolist() == [1000, 1000]
  np.testing.assert_array_equal(test["conf"], 1.0)


def test_videopose3d_gt_modes(tmp_path):
  cams = _calibrations()
  world, _ = _write_videopose3d(tmp_path, cams, name="gt")
  gt_file = h36m.read_videopose3d(str(tmp_path / "data_3d_h36m.npz"),
                                  str(tmp_path / "data_2d_h36m_gt.npz"),
                                  str(tmp_path / "cams.json"))
  assert gt_file["train"]["input_2d"] == "gt"
  projected = h36m.read_videopose3d(str(tmp_path / "data_3d_h36m.npz"),
                                    cameras=str(tmp_path / "cams.json"))
  train = projected["train"]
  assert train["input_2d"] == "gt"
  cam = cams[("S1", "54138969")]
  kp3d = _kp3d(world[("S1", "Walking 1")], cam)
  s = train["seq_name"].tolist().index("s_01_act_14_subact_01_ca_01")
  frames = slice(train["seq_offsets"][s], train["seq_offsets"][s + 1])
  want = camera.project(kp3d, cam.f, cam.c, cam.k, cam.p)
  np.testing.assert_allclose(train["kp2d"][frames], want, atol=0.05)
  # Lens distortion moves the GT 2D away from the undistorted label.
  assert np.abs(train["kp2d"] - train["kp3d_image"][..., :2]).max() > 1.0


def _rewrite_2d(tmp_path, name, fn):
  path = tmp_path / f"data_2d_h36m_{name}.npz"
  with np.load(path, allow_pickle=True) as z:
    pos2d, meta = z["positions_2d"].item(), z["metadata"].item()
  fn(pos2d)
  np.savez_compressed(path, positions_2d=pos2d, metadata=meta)


@pytest.mark.parametrize("fn, message", [
    (lambda p: p["S1"]["Walking"].__setitem__(1, np.zeros((15, 16, 2))),
     r"positions_2d\['S1'\]\['Walking'\]\[1\]: has shape \(15, 16, 2\), "
     r"expected \(F, 17, 2\)"),
    (lambda p: p["S1"]["Walking"][0].__setitem__((2, 3, 1), np.nan),
     r"positions_2d\['S1'\]\['Walking'\]\[0\]: has NaN/inf"),
    (lambda p: p["S1"]["Walking"].__setitem__(3, np.zeros((5, 17, 2))),
     r"\[3\]: has 5 frames, fewer than the 12 3D frames"),
])
def test_videopose3d_errors(tmp_path, fn, message):
  _write_videopose3d(tmp_path, _calibrations())
  _rewrite_2d(tmp_path, "cpn", fn)
  path_2d = str(tmp_path / "data_2d_h36m_cpn.npz")
  with pytest.raises(dataset.DataError, match=message) as err:
    h36m.read_videopose3d(str(tmp_path / "data_3d_h36m.npz"), path_2d,
                          str(tmp_path / "cams.json"))
  assert path_2d in str(err.value)


def test_videopose3d_unknown_camera(tmp_path):
  cams = _calibrations()
  _write_videopose3d(tmp_path, cams)
  del cams[("S9", "55011271")]
  _write_json_cameras(tmp_path / "cams.json", cams)
  with pytest.raises(dataset.DataError,
                     match="no calibration for camera 55011271 of S9"):
    h36m.read_videopose3d(str(tmp_path / "data_3d_h36m.npz"),
                          str(tmp_path / "data_2d_h36m_cpn.npz"),
                          str(tmp_path / "cams.json"))


def test_failed_conversion_leaves_output_untouched(tmp_path):
  _write_videopose3d(tmp_path, _calibrations())
  out = tmp_path / "out"
  args = ("videopose3d", str(tmp_path / "data_3d_h36m.npz"), str(out))
  kwargs = {"input_2d_path": str(tmp_path / "data_2d_h36m_cpn.npz"),
            "cameras": str(tmp_path / "cams.json")}
  paths = h36m.convert(*args, **kwargs)
  before = {k: open(p, "rb").read() for k, p in paths.items()}
  # The test split breaks, the train split would convert fine.
  _rewrite_2d(tmp_path, "cpn", lambda p: p["S11"]["Directions 1"][0]
              .__setitem__((0, 0, 0), np.inf))
  with pytest.raises(dataset.DataError):
    h36m.convert(*args, **kwargs)
  assert {k: open(p, "rb").read() for k, p in paths.items()} == before
  assert sorted(os.listdir(out)) == ["test.npz", "train.npz"]


# ---------------------------------------------------------------------------
# (c) 3d-pose-baseline folder.
# ---------------------------------------------------------------------------

# 3D file name -> Stacked Hourglass file name variant (same take).
MARTINEZ = {"S1": {"Directions 1": "Directions_1", "Directions": "Directions",
                   "Photo": "TakingPhoto"},
            "S9": {"WalkDog 1": "WalkingDog 1"}}


def _write_martinez(root, cams, frames=10, takes=None):
  """Writes the h36m/ folder of `takes` (default MARTINEZ); returns
  {(subject, 3D name, cam): (world mm (F, 17, 3), H36M-ordered 2D (F, 17, 2)
  placed into the SH file)}."""
  truth = {}
  seed = 0
  for subject, names in (takes or MARTINEZ).items():
    os.makedirs(root / subject / "MyPoses" / "3D_positions")
    os.makedirs(root / subject / "StackedHourglass")
    for name3d, name_sh in names.items():
      w17 = _world17(seed, frames)
      flat = _world32(w17, seed).reshape(frames, 96).T
      with h5py.File(root / subject / "MyPoses" / "3D_positions" /
                     f"{name3d}.h5", "w") as hf:
        hf["3D_positions"] = flat
      for cam_id in h36m.CAMERA_IDS:
        kp2d = np.random.default_rng(seed).uniform(0, 1000, (frames, 17, 2))
        sh = np.zeros((frames, 16, 2))
        for j, joint in enumerate(skeleton.H36M_JOINT_NAMES):
          if joint in h36m.SH_JOINTS:
            sh[:, h36m.SH_JOINTS.index(joint)] = kp2d[:, j]
        with h5py.File(root / subject / "StackedHourglass" /
                       f"{name_sh}.{cam_id}.h5", "w") as hf:
          hf["poses"] = sh
        truth[(subject, name3d, cam_id)] = (w17, kp2d)
        seed += 1
  _write_h5_cameras(root / "cameras.h5", cams)
  return truth


def test_martinez_cameras_h5_transposed_r(tmp_path):
  cams = _calibrations()
  _write_h5_cameras(tmp_path / "cameras.h5", cams)
  loaded = h36m.load_martinez_cameras(str(tmp_path / "cameras.h5"))
  assert set(loaded) == set(cams)
  for key, cam in cams.items():
    np.testing.assert_allclose(loaded[key].R_world_to_cam, cam.R_world_to_cam)
    np.testing.assert_allclose(loaded[key].center_world_mm,
                               cam.center_world_mm)
    np.testing.assert_allclose(loaded[key].p, cam.p)
    assert (loaded[key].width, loaded[key].height) == h36m.IMAGE_SIZES[key[1]]


def test_martinez_folder(tmp_path):
  cams = _calibrations()
  truth = _write_martinez(tmp_path / "h36m", cams)
  splits = h36m.read_martinez(str(tmp_path / "h36m"))
  train, test = splits["train"], splits["test"]
  assert train["input_2d"] == "detected"
  assert "SH" in str(train["source"]) or "Hourglass" in str(train["source"])
  names = train["seq_name"].tolist()
  # "Directions 1" -> subact 1, "Directions" -> 2, Photo (alone) -> 1.
  assert sorted({n[:-6] for n in names}) == [
      "s_01_act_02_subact_01", "s_01_act_02_subact_02",
      "s_01_act_12_subact_01"]
  assert test["seq_name"].tolist()[0] == "s_09_act_15_subact_01_ca_01"
  for split, subject, name3d, action, subact in (
      (train, "S1", "Directions", "Directions", 2),
      (train, "S1", "Photo", "Photo", 1),
      (test, "S9", "WalkDog 1", "WalkDog", 1)):
    for cam_id in h36m.CAMERA_IDS:
      w17, kp2d = truth[(subject, name3d, cam_id)]
      s = split["seq_name"].tolist().index(
          h36m.source_id(subject, action, subact, cam_id))
      frames = slice(split["seq_offsets"][s], split["seq_offsets"][s + 1])
      # Camera frame through R.T of the stored (transposed) rotation.
      np.testing.assert_allclose(split["kp3d"][frames],
                                 _kp3d(w17, cams[(subject, cam_id)]),
                                 atol=1e-2)
      got = split["kp2d"][frames]
      other = [j for j in range(17) if j != h36m.NOSE]
      np.testing.assert_allclose(got[:, other], kp2d[:, other], atol=1e-3)
      # Nose = midpoint of the detected Thorax and Head.
      np.testing.assert_allclose(got[:, 9], (kp2d[:, 8] + kp2d[:, 10]) / 2,
                                 atol=1e-3)
      assert split["seq_action"][s] == action
  np.testing.assert_array_equal(train["conf"], 1.0)


def test_sh_mapping_by_name():
  sh = np.arange(16 * 2, dtype=float).reshape(1, 16, 2)
  out = h36m.sh_to_h36m(sh)
  # SH "Spine" (7) -> H36M spine 7, SH "Thorax" (8) -> thorax 8, SH "Hip" (6)
  # -> root 0, SH "RWrist" (10) -> H36M 16, SH "LShoulder" (13) -> H36M 11.
  for h36m_j, sh_j in ((7, 7), (8, 8), (0, 6), (16, 10), (11, 13), (3, 0),
                       (10, 9)):
    np.testing.assert_array_equal(out[0, h36m_j], sh[0, sh_j])
  np.testing.assert_array_equal(out[0, 9], (sh[0, 8] + sh[0, 9]) / 2)


def test_martinez_gt_mode_and_missing_detections(tmp_path):
  cams = _calibrations()
  truth = _write_martinez(tmp_path / "h36m", cams)
  gt = h36m.read_martinez(str(tmp_path / "h36m"), input_2d="gt")["test"]
  w17, _ = truth[("S9", "WalkDog 1", "58860488")]
  cam = cams[("S9", "58860488")]
  s = gt["seq_name"].tolist().index("s_09_act_15_subact_01_ca_03")
  frames = slice(gt["seq_offsets"][s], gt["seq_offsets"][s + 1])
  np.testing.assert_allclose(
      gt["kp2d"][frames],
      camera.project(_kp3d(w17, cam), cam.f, cam.c, cam.k, cam.p), atol=1e-2)
  os.remove(tmp_path / "h36m" / "S9" / "StackedHourglass" /
            "WalkingDog 1.60457274.h5")
  gaps = convert_util.Gaps()
  test = h36m.read_martinez(str(tmp_path / "h36m"), gaps=gaps)["test"]
  assert test["seq_name"].tolist() == [
      f"s_09_act_15_subact_01_ca_0{i}" for i in (1, 2, 3)]
  assert gaps.counts == {h36m.NO_2D_VIEW: 1}
  with pytest.raises(dataset.DataError,
                     match=r"S9/StackedHourglass/WalkDog 1\.60457274\.h5: "
                     r"missing \(no detections of S9 'WalkDog 1' camera "
                     r"60457274 .*\); expected detections for every camera "
                     r"of every take \(--strict"):
    h36m.read_martinez(str(tmp_path / "h36m"),
                       gaps=convert_util.Gaps(strict=True))
  # No detections of any camera of a take: one gap for the take.
  for cam_id in h36m.CAMERA_IDS[:3]:
    os.remove(tmp_path / "h36m" / "S9" / "StackedHourglass" /
              f"WalkingDog 1.{cam_id}.h5")
  gaps = convert_util.Gaps()
  assert "test" not in h36m.read_martinez(str(tmp_path / "h36m"), gaps=gaps)
  assert gaps.counts == {h36m.NO_2D_TAKE: 1}
  assert "S9 'WalkDog 1'" in gaps.warnings[0]


# The public release's gaps (issue 11): no detections of S11 "Directions"
# camera 54138969 (damaged video), and a mirror without S5's "Discussion 2"
# 3D file. S5 names its takes "Discussion 2" / "Discussion 3" (sub-actions
# 1 and 2); S11 has "Directions 1" and "Directions" (sub-actions 1 and 2).
RELEASE = {"S5": {"Discussion 2": "Discussion 2",
                  "Discussion 3": "Discussion 3", "Photo": "TakingPhoto"},
           "S11": {"Directions 1": "Directions 1",
                   "Directions": "Directions"}}
S11_GAP = os.path.join("S11", "StackedHourglass", "Directions.54138969.h5")
S5_GAP = os.path.join("S5", "MyPoses", "3D_positions", "Discussion 2.h5")


def _release_folders(tmp_path, remove=(S11_GAP, S5_GAP)):
  """A complete h36m/ folder and a copy with the release's gaps."""
  _write_martinez(tmp_path / "complete", _calibrations(), takes=RELEASE)
  shutil.copytree(tmp_path / "complete", tmp_path / "release")
  for path in remove:
    os.remove(tmp_path / "release" / path)
  return str(tmp_path / "complete"), str(tmp_path / "release")


def _per_sequence(arrays) -> dict:
  """{sequence name: {field: bytes}} of a split's arrays."""
  out = {}
  off = arrays["seq_offsets"]
  for s, name in enumerate(arrays["seq_name"].tolist()):
    frames = slice(off[s], off[s + 1])
    out[name] = {k: np.ascontiguousarray(arrays[k][frames]).tobytes()
                 for k in ("kp2d", "conf", "kp3d", "kp3d_image", "factor")
                 if k in arrays}
    out[name].update({k: np.asarray(arrays[k][s]).tobytes() for k in (
        "seq_subject", "seq_action", "seq_camera", "seq_image_size",
        "seq_fps")})
  return out


def _assert_same_sequences(full, gapped, missing):
  """`gapped` holds exactly `full`'s sequences less `missing`, each one
  byte-identical to the complete conversion's."""
  full, gapped = _per_sequence(full), _per_sequence(gapped)
  assert set(full) - set(gapped) == set(missing)
  assert set(gapped) <= set(full)
  for name, fields in gapped.items():
    assert fields == full[name], name


@pytest.mark.parametrize("input_2d", ["detected", "gt"])
def test_martinez_release_gaps(tmp_path, input_2d):
  complete, release = _release_folders(tmp_path)
  full = h36m.read_martinez(complete, input_2d=input_2d)
  gaps = convert_util.Gaps()
  got = h36m.read_martinez(release, input_2d=input_2d, gaps=gaps)
  discussion_1 = {f"s_05_act_03_subact_01_ca_0{i}" for i in range(1, 5)}
  _assert_same_sequences(full["train"], got["train"], discussion_1)
  # "Discussion 3" stays sub-action 2 without its sibling's 3D file.
  assert "s_05_act_03_subact_02_ca_01" in got["train"]["seq_name"]
  if input_2d == "detected":
    _assert_same_sequences(full["test"], got["test"],
                           {"s_11_act_02_subact_02_ca_01"})
    assert gaps.counts == {h36m.NO_2D_VIEW: 1, h36m.NO_3D_TAKE: 1}
    assert gaps.summary() == ("left out: 1 x camera view without 2D "
                              "detections, 1 x take without 3D")
  else:   # The GT projection needs no detections.
    _assert_same_sequences(full["test"], got["test"], set())
    assert gaps.counts == {h36m.NO_3D_TAKE: 1}
  # One warning per gap, naming the file.
  assert len(gaps.warnings) == sum(gaps.counts.values())
  assert (os.path.join(release, S5_GAP) + ": missing (StackedHourglass/ has "
          "detections of S5 'Discussion 2'); left out") in gaps.warnings
  if input_2d == "detected":
    assert gaps.warnings[-1].startswith(os.path.join(release, S11_GAP))


def test_martinez_strict_and_empty_split(tmp_path):
  _, release = _release_folders(tmp_path, remove=(S11_GAP,))
  with pytest.raises(dataset.DataError) as err:
    h36m.convert("martinez", release, str(tmp_path / "out"),
                 gaps=convert_util.Gaps(strict=True))
  assert str(err.value).startswith(os.path.join(release, S11_GAP) +
                                   ": missing (no detections of S11 "
                                   "'Directions' camera 54138969")
  assert "\n" not in str(err.value)
  assert not os.path.exists(tmp_path / "out")
  # S11 without any 3D: its two takes are left out, the test split comes
  # out empty: an error, no file written.
  shutil.rmtree(os.path.join(release, "S11", "MyPoses"))
  gaps = convert_util.Gaps()
  assert "test" not in h36m.read_martinez(release, gaps=gaps)
  assert gaps.counts == {h36m.NO_3D_TAKE: 2}
  with pytest.raises(dataset.DataError,
                     match=r"split 'test' came out empty \(no sequence of the "
                     r"test subjects S9, S11\); expected sequences in every "
                     r"split \(train, test\)"):
    h36m.convert("martinez", release, str(tmp_path / "out"))
  assert not os.path.exists(tmp_path / "out")


def _truncate(path):
  data = open(path, "rb").read()
  with open(path, "wb") as f:
    f.write(data[:len(data) // 2])
  return str(path)


@pytest.mark.parametrize("damaged", [
    "pkl", "data_3d_h36m.npz", "data_2d_h36m_cpn.npz", "sh_h5", "3d_h5",
    "cameras.h5"])
def test_damaged_files_are_one_line_errors(tmp_path, damaged):
  cams = _calibrations()
  if damaged == "pkl":
    _write_motionbert(tmp_path / "mb.pkl")
    path = _truncate(tmp_path / "mb.pkl")
    read = lambda: h36m.read_motionbert_pkl(path)  # noqa: E731
  elif damaged.endswith(".npz"):
    _write_videopose3d(tmp_path, cams)
    path = _truncate(tmp_path / damaged)
    read = lambda: h36m.read_videopose3d(  # noqa: E731
        str(tmp_path / "data_3d_h36m.npz"),
        str(tmp_path / "data_2d_h36m_cpn.npz"), str(tmp_path / "cams.json"))
  else:
    _write_martinez(tmp_path / "h36m", cams)
    path = _truncate(tmp_path / "h36m" / {
        "sh_h5": "S1/StackedHourglass/TakingPhoto.55011271.h5",
        "3d_h5": "S9/MyPoses/3D_positions/WalkDog 1.h5",
        "cameras.h5": "cameras.h5"}[damaged])
    read = lambda: h36m.read_martinez(str(tmp_path / "h36m"))  # noqa: E731
  with pytest.raises(dataset.DataError, match="not a readable") as err:
    read()
  assert str(err.value).startswith(path + ": not a readable")
  assert "\n" not in str(err.value) and "; expected " in str(err.value)


def test_videopose3d_default_cameras_are_the_packaged_ones(tmp_path):
  world, _ = _write_videopose3d(tmp_path, _calibrations())
  out = h36m.read_videopose3d(str(tmp_path / "data_3d_h36m.npz"))["train"]
  cam = camera.load_h36m_cameras()[("S1", "58860488")]
  s = out["seq_name"].tolist().index("s_01_act_14_subact_02_ca_03")
  frames = slice(out["seq_offsets"][s], out["seq_offsets"][s + 1])
  kp3d = _kp3d(world[("S1", "Walking")], cam)
  np.testing.assert_allclose(out["kp3d"][frames], kp3d, atol=0.5)
  np.testing.assert_allclose(
      out["kp2d"][frames], camera.project(kp3d, cam.f, cam.c, cam.k, cam.p),
      atol=0.05)


def _rewrite_3d(tmp_path, fn):
  path = tmp_path / "data_3d_h36m.npz"
  with np.load(path, allow_pickle=True) as z:
    pos3d = z["positions_3d"].item()
  fn(pos3d)
  np.savez_compressed(path, positions_3d=pos3d)


def test_videopose3d_gaps(tmp_path):
  cams = _calibrations()
  _write_videopose3d(tmp_path, cams)
  args = (str(tmp_path / "data_3d_h36m.npz"),
          str(tmp_path / "data_2d_h36m_cpn.npz"), str(tmp_path / "cams.json"))
  strict = convert_util.Gaps(strict=True)
  full = h36m.read_videopose3d(*args, gaps=strict)
  # S11 "Directions" is dropped by convention, even when strict.
  assert strict.counts == {"take with a corrupt video (S11 'Directions')": 1}
  # A 3D take missing ("Walking 1"; its sibling "Walking" stays sub-action
  # 2), a 2D take missing, an empty camera view.
  _rewrite_3d(tmp_path, lambda p: p["S1"].pop("Walking 1"))
  _rewrite_2d(tmp_path, "cpn", lambda p: p["S9"].pop("Greeting"))
  _rewrite_2d(tmp_path, "cpn", lambda p: p["S11"]["Directions 1"].__setitem__(
      2, np.zeros((0, 17, 2), np.float32)))
  gaps = convert_util.Gaps()
  got = h36m.read_videopose3d(*args, gaps=gaps)
  _assert_same_sequences(full["train"], got["train"], {
      f"s_01_act_14_subact_01_ca_0{i}" for i in range(1, 5)})
  _assert_same_sequences(full["test"], got["test"], {
      f"s_09_act_05_subact_02_ca_0{i}" for i in range(1, 5)} | {
          "s_11_act_02_subact_01_ca_03"})
  assert gaps.counts == {h36m.NO_3D_TAKE: 1, h36m.NO_2D_TAKE: 1,
                         h36m.NO_2D_VIEW: 1, "take with a corrupt video (S11 "
                         "'Directions')": 1}
  assert any("positions_2d['S9']['Greeting'] is missing (the 3D file has "
             "it); left out" in w for w in gaps.warnings)
  with pytest.raises(dataset.DataError,
                     match=r"data_3d_h36m\.npz: key positions_3d\['S1'\]"
                     r"\['Walking 1'\] is missing \(the 2D file has it\); "
                     r"expected 3D for every take \(--strict"):
    h36m.read_videopose3d(*args, gaps=convert_util.Gaps(strict=True))


def _run_tool(*args):
  return subprocess.run([sys.executable, os.path.join(REPO, "tools",
                                                      "prepare_h36m.py"),
                         *args], capture_output=True, text=True, check=False,
                        cwd=REPO)


def test_prepare_h36m_tool_gaps_summary_and_errors(tmp_path):
  _, release = _release_folders(tmp_path)
  out = str(tmp_path / "out")
  run = _run_tool("--layout=martinez", f"--input={release}",
                  f"--output_dir={out}")
  assert run.returncode == 0, run.stderr
  assert ("converted: train 8, test 7 sequences; left out: 1 x camera view "
          "without 2D detections, 1 x take without 3D") in run.stdout
  assert os.path.join(release, S11_GAP) + ": missing" in run.stderr
  assert sorted(os.listdir(out)) == ["test.npz", "train.npz"]
  # --strict: the first gap is an error; one line, exit status 2.
  run = _run_tool("--layout=martinez", f"--input={release}",
                  f"--output_dir={out}", "--strict")
  assert run.returncode == 2
  assert run.stderr.splitlines() == [
      f"error: {os.path.join(release, S5_GAP)}: missing (StackedHourglass/ "
      "has detections of S5 'Discussion 2'); expected a 3D file for every "
      "take (--strict makes every gap an error)"]
  assert "Traceback" not in run.stderr


def test_martinez_bad_3d_shape(tmp_path):
  _write_martinez(tmp_path / "h36m", _calibrations())
  bad = tmp_path / "h36m" / "S1" / "MyPoses" / "3D_positions" / "Photo.h5"
  with h5py.File(bad, "w") as hf:
    hf["3D_positions"] = np.zeros((51, 10))
  with pytest.raises(dataset.DataError,
                     match=r"Photo\.h5: key '3D_positions': has shape "
                     r"\(51, 10\), expected \(96, F\)"):
    h36m.read_martinez(str(tmp_path / "h36m"))
