"""Tests of the mocap converter: BVH forward kinematics, real CMU data through
real Human3.6M calibrations, random cameras, noise, resampling, splits."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from opformer_jax import errors
from opformer_jax.data import camera
from opformer_jax.data import convert_util
from opformer_jax.data import dataset
from opformer_jax.data import mocap

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Root at (1, 2, 3) with channels Z, X, Y rotation (that order); one child
# joint (offset (0, 2, 0), X-then-Z channels) with an End Site.
TINY_BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Spine
  {
    OFFSET 0 2 0
    CHANNELS 3 Xrotation Zrotation Yrotation
    End Site
    {
      OFFSET 0 1 0
    }
  }
}
MOTION
Frames: 2
Frame Time: .0083333
1 2 3 0 0 0 0 0 0
1 2 3 90 90 0 0 90 0
"""


def test_bvh_forward_kinematics_hand_computed(tmp_path):
  path = tmp_path / "tiny.bvh"
  path.write_text(TINY_BVH)
  bvh = mocap.parse_bvh(str(path))
  assert bvh.joints == ("Hips", "Spine", "Spine_end")
  assert bvh.parents == (-1, 0, 1)
  assert bvh.fps == 120.0
  pos = mocap.bvh_positions(bvh)
  np.testing.assert_allclose(pos[0], [[1, 2, 3], [1, 4, 3], [1, 5, 3]],
                             atol=1e-12)
  # Frame 1: root R = Rz(90) Rx(90). Rx(90) (0, 2, 0) = (0, 0, 2), then
  # Rz(90) leaves it: Spine = (1, 2, 5). (X-then-Z order would give
  # Rx(90) Rz(90) (0, 2, 0) = (-2, 0, 0).) Spine R = root R Rx(0) Rz(90):
  # Rz(90) (0, 1, 0) = (-1, 0, 0); Rx(90) (-1, 0, 0) = (-1, 0, 0); Rz(90)
  # (-1, 0, 0) = (0, -1, 0): the End Site is at (1, 1, 5).
  np.testing.assert_allclose(pos[1], [[1, 2, 3], [1, 2, 5], [1, 1, 5]],
                             atol=1e-12)


def test_bvh_errors(tmp_path):
  path = tmp_path / "bad.bvh"
  path.write_text(TINY_BVH.replace("1 2 3 0 0 0 0 0 0\n", "1 2 3 0\n"))
  with pytest.raises(dataset.DataError, match=r"bad\.bvh: MOTION: 13 values, "
                     r"expected Frames x channels = 2 x 9"):
    mocap.parse_bvh(str(path))
  path.write_text(TINY_BVH)
  with pytest.raises(dataset.DataError, match="has no such joint"):
    mocap.read_bvh(str(path))        # the CMU mapping needs CMU joints


def test_bvh_matches_cmu_subject131(shared_data):
  """The BVH importer with the default mapping reproduces the npz made from
  the same files: same world frame (y up), same units, to float32 precision.
  """
  ref = np.load(shared_data / "mocap" / "cmu_subject131.npz")
  meta = json.loads(str(ref["__meta__"]))
  kp3d, fps = mocap.read_bvh(str(shared_data / "mocap" / "bvh" /
                                 "131_01.bvh"))
  want = ref["131_01"].astype(np.float64)
  assert kp3d.shape == want.shape and fps == meta["fps"] == 120
  np.testing.assert_allclose(kp3d, want, rtol=0, atol=1e-3)
  # The mapping table is the one the npz documents.
  documented = json.loads(meta["mapping"].split(";")[0])
  ours = {k: mocap.CMU_BVH_MAPPING[v] for k, v in mocap.H36M_NAMES.items()
          if k in documented}
  assert ours == documented


def _check_views(arrays, cams, noise_free=True):
  """Every frame inside its image; 2D = projection of kp3d; labels agree."""
  off = arrays["seq_offsets"]
  for s, name in enumerate(arrays["seq_name"]):
    frames = slice(off[s], off[s + 1])
    w, h = arrays["seq_image_size"][s]
    kp2d, kp3d = arrays["kp2d"][frames], arrays["kp3d"][frames]
    assert (kp2d >= 0).all() and (kp2d[..., 0] < w).all()
    assert (kp2d[..., 1] < h).all() and (kp3d[..., 2] > 1000).all()
    if cams is not None and noise_free:
      subject = name.split("/")[-2]
      cam = cams[(subject, arrays["seq_camera"][s])]
      np.testing.assert_allclose(
          kp2d, camera.project(kp3d, cam.f, cam.c, cam.k, cam.p), atol=0.02)
    # Image-space label: (u_j - u_root) factor = X_j Z_root / Z_j - X_root
    # (y likewise, times fy / fx); depth exact (camera.image_space_label).
    img = arrays["kp3d_image"][frames].astype(np.float64)
    factor = arrays["factor"][frames, None].astype(np.float64)
    z_root = kp3d[:, :1, 2].astype(np.float64)
    ratio = z_root / kp3d[..., 2]
    np.testing.assert_allclose((img[..., 0] - img[:, :1, 0]) * factor,
                               kp3d[..., 0] * ratio - kp3d[:, :1, 0],
                               atol=0.1)
    fy_fx = (img[..., 1] - img[:, :1, 1]) * factor / (
        kp3d[..., 1] * ratio - kp3d[:, :1, 1] + 1e-9)
    assert np.median(np.abs(fy_fx - 1)) < 0.01
    np.testing.assert_allclose(img[..., 2] * factor, kp3d[..., 2] - z_root,
                               atol=0.1)


def test_real_mocap_through_real_calibrations(shared_data):
  files = [str(shared_data / "mocap" / f) for f in
           ("cmu_gait.npz", "cmu_actions.npz", "cmu_subject131.npz")]
  json_path = str(shared_data / "cameras" / "h36m_cameras.json")
  items = mocap.read_inputs(files)
  gaps = convert_util.Gaps()
  # Default calibrations: the copy shipped with the package.
  splits = mocap.convert_sequences(items, "h36m", fps=50.0, gaps=gaps)
  assert not gaps.counts                       # nothing left out
  cams = camera.load_h36m_cameras(json_path)
  source_frames = sum(int((len(kp3d) - 1) * 50 / 120) + 1
                      for _, _, kp3d, _, _ in items)
  kept = sum(len(a["kp2d"]) for a in splits.values())
  assert kept >= 0.98 * 4 * source_frames      # 4 cameras, little cut
  for arrays in splits.values():
    _check_views(arrays, cams)
    np.testing.assert_array_equal(arrays["conf"], 1.0)
    assert arrays["input_2d"] == "gt"
  val = ("cmu_gait/16_", "cmu_gait/35_", "cmu_actions/test/")
  assert all(n.startswith(val) for n in splits["test"]["seq_name"])
  assert not any(n.startswith(val) for n in splits["train"]["seq_name"])
  np.testing.assert_allclose(splits["train"]["seq_fps"], 50.0)


def _walk_npz(path, frames=360, fps=120.0):
  """A y-up joint npz: a rigid 17-joint figure walking 4 m along x."""
  rng = np.random.default_rng(0)
  body = np.zeros((17, 3))
  body[:, 1] = np.linspace(900, 1700, 17)   # y up
  body[[3, 6], 1] = 80.0                    # ankles
  body[:, 0] = rng.uniform(-200, 200, 17)
  body[:, 2] = rng.uniform(-100, 100, 17)
  body[0] = [0, 950, 0]
  path_x = np.linspace(-2000, 2000, frames)
  seq = body + np.stack([path_x, 0 * path_x, 0 * path_x], -1)[:, None]
  meta = json.dumps({"fps": fps, "up_axis": "y", "units": "mm"})
  np.savez(path, walk_01=seq.astype(np.float32), __meta__=meta)
  return seq


def test_random_cameras_fit_the_motion(tmp_path, caplog):
  _walk_npz(tmp_path / "mine.npz")
  with caplog.at_level("WARNING"):
    paths = mocap.convert([str(tmp_path / "mine.npz")], str(tmp_path / "out"),
                          cameras="random", noise_px=0.0, val_subjects=[],
                          seed=3)
  # No validation split asked for: train.npz only, and said so.
  assert list(paths) == ["train"]
  assert "no validation split asked for" in caplog.text
  data = dataset.load(paths["train"])
  assert data.num_seqs == 4 and data.num_frames == 4 * 150  # 360 @120 -> 150
  _check_views(data.arrays, None)
  assert all(str(c).startswith("random") for c in data.seq_camera)


def test_resample_is_linear_interpolation():
  t = np.arange(13, dtype=float) / 120
  ramp = np.stack([t, 2 * t, -t], -1)[:, None].repeat(17, 1)
  out = mocap.resample(ramp, 120.0, 50.0)
  assert len(out) == 6                   # 0 .. 0.1 s at 50 fps
  np.testing.assert_allclose(out[:, 0, 0], np.arange(6) / 50, atol=1e-12)
  assert mocap.resample(ramp, 50.0, 50.0) is ramp


def test_world_placement():
  rng = np.random.default_rng(1)
  seq = rng.normal(0, 300, (20, 17, 3)) + [500, 1000, -300]
  zup = mocap.to_z_up(seq, "y")
  np.testing.assert_allclose(zup[..., 2], seq[..., 1])   # y up -> z up
  np.testing.assert_allclose(zup[..., 1], -seq[..., 2])
  # A proper rotation: the triple product of three joints keeps its sign.
  a, b, c = seq[0, 1] - seq[0, 0], seq[0, 2] - seq[0, 0], seq[0, 3] - seq[0, 0]
  a2, b2, c2 = zup[0, 1] - zup[0, 0], zup[0, 2] - zup[0, 0], zup[0, 3] - zup[
      0, 0]
  assert np.dot(np.cross(a, b), c) == pytest.approx(np.dot(np.cross(a2, b2),
                                                           c2))
  placed = mocap.place(zup, (100.0, -200.0), yaw=0.7)
  np.testing.assert_allclose(placed[:, 0, :2].mean(0), [100, -200], atol=1e-9)
  assert placed[:, (3, 6), 2].min() == pytest.approx(mocap.ANKLE_HEIGHT_MM)
  # Turning about the vertical keeps the shape.
  np.testing.assert_allclose(
      np.linalg.norm(placed[:, 5] - placed[:, 4], axis=-1),
      np.linalg.norm(zup[:, 5] - zup[:, 4], axis=-1))


def test_detector_noise():
  rng = np.random.default_rng(2)
  kp2d = rng.uniform(200, 800, (4000, 17, 2))
  noisy, conf = mocap.detector_noise(np.random.default_rng(5), kp2d, 2.0,
                                     outlier_prob=0.01)
  again, _ = mocap.detector_noise(np.random.default_rng(5), kp2d, 2.0,
                                  outlier_prob=0.01)
  np.testing.assert_array_equal(noisy, again)
  err = np.linalg.norm(noisy - kp2d, axis=-1)
  # Hip (scale 1.0): per-axis std 2 px -> Rayleigh mean 2 sqrt(pi / 2).
  inliers = err[:, 0][err[:, 0] < 20]
  assert inliers.mean() == pytest.approx(2 * np.sqrt(np.pi / 2), rel=0.05)
  outliers = err > 40
  assert 0.005 < outliers.mean() < 0.015
  assert conf[outliers].max() < 0.1 and conf[~outliers].mean() > 0.85
  assert np.corrcoef(err.ravel(), conf.ravel())[0, 1] < -0.5
  assert 0 <= conf.min() and conf.max() <= 1
  clean, ones = mocap.detector_noise(rng, kp2d, 0.0)
  np.testing.assert_allclose(clean, kp2d, atol=1e-3)
  np.testing.assert_array_equal(ones, 1.0)


def test_validation_split_rule():
  val = mocap.DEFAULT_VAL
  assert mocap.is_validation("cmu_gait", "16_15", val)
  assert mocap.is_validation("cmu_gait", "35_01", val)
  assert not mocap.is_validation("cmu_gait", "160_01", val)
  assert not mocap.is_validation("cmu_gait", "02_01", val)
  assert mocap.is_validation("cmu_actions", "test/jumping/jumping_1", val)
  assert not mocap.is_validation("cmu_actions", "train/jumping/jumping_1",
                                 val)
  assert mocap.is_validation("walks", "walk_02", ["walks/walk_0"])


def _multi_npz(path, names, frames=90):
  """A y-up joint npz of several copies of `_walk_npz`'s figure, shifted."""
  seq = _walk_npz(path, frames=frames)
  arrays = {name: (seq + [0, 0, 300 * i]).astype(np.float32)
            for i, name in enumerate(names)}
  np.savez(path, **arrays, __meta__=json.dumps({"fps": 120.0,
                                                "up_axis": "y"}))


def test_action_regex_names_the_actions(tmp_path, caplog):
  _multi_npz(tmp_path / "mine.npz", ["walk_01", "walk_02", "jump_01",
                                     "Stretching"])
  with caplog.at_level("WARNING"):
    paths = mocap.convert([str(tmp_path / "mine.npz")], str(tmp_path / "out"),
                          cameras="random", val_subjects=["mine/walk_02"],
                          action_regex=r"/(?P<action>[a-z]+)_\d+$")
  train, test = dataset.load(paths["train"]), dataset.load(paths["test"])
  actions = {str(n).split("/")[1]: str(a)
             for n, a in zip(train.seq_name, train.seq_action)}
  assert actions == {"walk_01": "walk", "jump_01": "jump",
                     "Stretching": "mine"}   # no match: the file stem
  assert set(test.seq_action.tolist()) == {"walk"}
  assert "--action_regex matched 3 of 4 sequence names (not e.g. " \
         "mine/Stretching)" in caplog.text
  # Without a regex the action is the file stem (names have no folder).
  items = mocap.read_inputs([str(tmp_path / "mine.npz")])
  plain = mocap.convert_sequences(items, "random", val_subjects=[])
  assert set(plain["train"]["seq_action"].tolist()) == {"mine"}
  for bad, message in (("[a-z", "is not a regular expression"),
                       ("(?P<verb>[a-z]+)", "has no group named 'action'")):
    with pytest.raises(errors.UserError, match=message):
      mocap.convert([str(tmp_path / "mine.npz")], str(tmp_path / "x"),
                    action_regex=bad)


def test_empty_split_and_gaps(tmp_path):
  _multi_npz(tmp_path / "mine.npz", ["walk_01", "walk_02"])
  # The default validation split (CMU subjects 16, 35, ...) selects none of
  # these names: an error, not a silently missing test.npz.
  with pytest.raises(dataset.DataError,
                     match=r"mine\.npz: split 'test' came out empty \(no "
                     r"sequence of --val_subjects=16,35,cmu_actions/test/ "
                     r"\(a number N: CMU subject N"):
    mocap.convert([str(tmp_path / "mine.npz")], str(tmp_path / "out"))
  assert not os.path.exists(tmp_path / "out")
  # A sequence shorter than min_frames and one never in view (a 170 m
  # giant) are left out, one warning each (four cameras for the giant).
  seq = _walk_npz(tmp_path / "w.npz", frames=90)
  items = [("mine", "walk", seq, 120.0, "y"),
           ("mine", "short", seq[:40], 120.0, "y"),
           ("mine", "giant", seq * 100, 120.0, "y")]
  gaps = convert_util.Gaps()
  splits = mocap.convert_sequences(items, "h36m", val_subjects=[],
                                   gaps=gaps)
  names = {n.split("/")[1] for n in splits["train"]["seq_name"]}
  assert names == {"walk"}
  assert gaps.counts == {"sequence shorter than min_frames": 1,
                         "camera view without min_frames frames in view": 4}
  assert gaps.warnings[0] == ("mine/short: 17 frames at 50 fps; left out")
  with pytest.raises(dataset.DataError, match=r"mine/short: 17 frames at 50 "
                     r"fps; expected at least --min_frames=27 \(--strict"):
    mocap.convert_sequences(items, "h36m", val_subjects=[],
                            gaps=convert_util.Gaps(strict=True))


def _run_tool(tool, *args):
  run = subprocess.run([sys.executable, os.path.join(REPO, "tools",
                                                     f"{tool}.py"), *args],
                       capture_output=True, text=True, check=False, cwd=REPO)
  return run


def test_prepare_mocap_tool_errors_are_one_line(tmp_path):
  _multi_npz(tmp_path / "mine.npz", ["walk_01", "walk_02"])
  data = (tmp_path / "mine.npz").read_bytes()
  (tmp_path / "cut.npz").write_bytes(data[:len(data) // 2])
  out = str(tmp_path / "out")
  for args, line in (
      ([f"--inputs={tmp_path / 'cut.npz'}"],
       f"error: {tmp_path / 'cut.npz'}: not a readable .npz file ("),
      ([f"--inputs={tmp_path / 'mine.npz'}", "--action_regex=(?P<x>a)"],
       "error: --action_regex: '(?P<x>a)' has no group named 'action'; "
       "expected a pattern with (?P<action>...)")):
    run = _run_tool("prepare_mocap", *args, f"--output_dir={out}")
    assert run.returncode == 2, run.stderr
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert run.stderr.startswith(line) and "Traceback" not in run.stderr
  assert not os.path.exists(out)


@pytest.mark.parametrize("tool", ["prepare_h36m", "prepare_3dhp",
                                  "prepare_mocap"])
def test_cli_help(tool):
  out = subprocess.run([sys.executable, os.path.join(REPO, "tools",
                                                     f"{tool}.py"), "--help"],
                       capture_output=True, text=True, check=False)
  assert "--output_dir" in out.stdout, out.stderr
