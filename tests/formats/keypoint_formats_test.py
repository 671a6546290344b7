"""Tests for keypoint_formats: readers, people, gap filling, conversion.

Fixtures are written by the tests in each real format, with its quirks:
1-based MMPose frame ids, AlphaPose's non-identity ``idx`` lists, OpenPose's
all-zero "lost" people, empty frames and unpadded file names, the lifting
demos' all-zero rows for frames without a person and HRNet scores above 1.
"""

import json

import numpy as np
from PIL import Image
import pytest

from opformer_jax.formats import keypoint_formats as kf
from opformer_jax.errors import DataError

# A standing person facing the camera, px from the mid-hip (y down), with
# every joint name of every layout.
_BODY = {
    "nose": (0, -170), "l_eye": (7, -178), "r_eye": (-7, -178),
    "l_ear": (15, -173), "r_ear": (-15, -173), "l_shoulder": (40, -130),
    "r_shoulder": (-40, -130), "l_elbow": (50, -70), "r_elbow": (-50, -70),
    "l_wrist": (55, -15), "r_wrist": (-55, -15), "l_hip": (25, 0),
    "r_hip": (-25, 0), "l_knee": (27, 90), "r_knee": (-27, 90),
    "l_ankle": (28, 180), "r_ankle": (-28, 180), "head": (0, -205),
    "neck": (0, -128), "hip": (0, 2), "mid_hip": (0, 1), "spine": (0, -65),
    "thorax": (0, -130), "l_big_toe": (35, 195), "r_big_toe": (-35, 195),
    "l_small_toe": (40, 192), "r_small_toe": (-40, 192),
    "l_heel": (25, 185), "r_heel": (-25, 185)}


def walker(layout, num_frames, start=(300, 400), velocity=(4, 0), scale=1.0,
           seed=0, jitter=1.0):
  """(F, K, 2) px of a person walking in `layout`, with jitter (px)."""
  rng = np.random.default_rng(seed)
  body = np.array([_BODY[n] for n in kf.JOINT_NAMES[layout]], np.float64)
  t = np.arange(num_frames)[:, None, None]
  kp = body[None] * scale + np.asarray(start) + np.asarray(velocity) * t
  return (kp + rng.normal(0, jitter, kp.shape)).astype(np.float32)


def _coco_frames(num_frames, seed=0):
  """(F, 17, 2) px of a walking COCO-17 person and (F, 17) scores."""
  rng = np.random.default_rng(seed)
  kp = walker("coco17", num_frames, seed=seed)
  sc = rng.uniform(0.3, 0.99, (num_frames, 17)).astype(np.float32)
  return kp, sc


# ------------------------------------------------------------- conversion


def test_coco_to_h36m_hand_checked():
  kp, sc = _coco_frames(3)
  track = kf.make_track("t", kp, sc, "coco17")
  h36m = kf.to_h36m(track)
  assert h36m.layout == "h36m17" and h36m.kp2d.shape == (3, 17, 2)
  hip = (kp[:, 11] + kp[:, 12]) / 2
  thorax = (kp[:, 5] + kp[:, 6]) / 2
  np.testing.assert_allclose(h36m.kp2d[:, 0], hip, rtol=1e-6)
  np.testing.assert_allclose(h36m.kp2d[:, 8], thorax, rtol=1e-6)
  np.testing.assert_allclose(h36m.kp2d[:, 7], (hip + thorax) / 2, rtol=1e-6)
  np.testing.assert_allclose(h36m.kp2d[:, 9], kp[:, 0])
  np.testing.assert_allclose(h36m.kp2d[:, 10],
                             kp[:, 1] + kp[:, 2] - kp[:, 0], rtol=1e-5)
  # Limbs 1:1 (H36M <- COCO): RHip 12, RAnkle 16, LKnee 13, LWrist 9,
  # RShoulder 6, RWrist 10.
  for h, c in [(1, 12), (3, 16), (5, 13), (13, 9), (14, 6), (16, 10)]:
    np.testing.assert_array_equal(h36m.kp2d[:, h], kp[:, c])
    np.testing.assert_array_equal(h36m.conf[:, h], sc[:, c])
  np.testing.assert_allclose(h36m.conf[:, 0], sc[:, [11, 12]].min(1))
  np.testing.assert_allclose(h36m.conf[:, 7], sc[:, [5, 6, 11, 12]].min(1))
  np.testing.assert_allclose(h36m.conf[:, 10], sc[:, [0, 1, 2]].min(1))


def test_halpe_to_h36m_hand_checked():
  rng = np.random.default_rng(1)
  kp = rng.uniform(10, 500, (2, 26, 2)).astype(np.float32)
  sc = rng.uniform(0.2, 1.0, (2, 26)).astype(np.float32)
  h36m = kf.to_h36m(kf.make_track("t", kp, sc, "halpe26"))
  np.testing.assert_array_equal(h36m.kp2d[:, 0], kp[:, 19])   # hip
  np.testing.assert_array_equal(h36m.kp2d[:, 8], kp[:, 18])   # neck
  np.testing.assert_array_equal(h36m.kp2d[:, 10], kp[:, 17])  # head
  np.testing.assert_array_equal(h36m.kp2d[:, 9], kp[:, 0])    # nose
  np.testing.assert_allclose(h36m.kp2d[:, 7], (kp[:, 18] + kp[:, 19]) / 2)
  np.testing.assert_array_equal(h36m.kp2d[:, 4], kp[:, 11])   # l_hip
  np.testing.assert_allclose(h36m.conf[:, 7], sc[:, [18, 19]].min(1))
  np.testing.assert_array_equal(h36m.conf[:, 0], sc[:, 19])


def test_normalize_track_numbers_and_size_errors():
  kp = np.zeros((1, 17, 2), np.float32) + [640.0, 360.0]
  kp[0, 1] = [1280.0, 0.0]
  track = kf.make_track("t", kp, np.full((1, 17), 0.5), "h36m17",
                        image_size=(1280, 720))
  x = kf.normalize_track(track)
  assert x.shape == (1, 17, 3) and x.dtype == np.float32
  np.testing.assert_allclose(x[0, 0], [0.0, 0.0, 0.5], atol=1e-7)
  # y = 0 px -> 0 / w * 2 - h / w = -0.5625.
  np.testing.assert_allclose(x[0, 1], [1.0, -0.5625, 0.5], atol=1e-7)
  # A flag overrides the file: w = 640 -> x = 640 / 640 * 2 - 1 = 1.
  np.testing.assert_allclose(kf.normalize_track(track, (640, 480))[0, 0, 0],
                             1.0)
  no_size = kf.make_track("clip", kp, None, "h36m17")
  with pytest.raises(ValueError, match="clip.*image size"):
    kf.normalize_track(no_size)


# ------------------------------------------------------------ gap filling


def test_fill_missing_interpolates_and_holds_ends():
  kp = np.tile(np.arange(6, dtype=np.float32)[:, None, None] * 10 + 5,
               (1, 17, 2))
  conf = np.ones((6, 17), np.float32)
  kp[2, 3] = 0.0         # (0, 0) = not found
  kp[3, 3] = np.nan      # NaN
  conf[0, 5] = 0.0       # confidence 0, first frame: held from frame 1
  kp[5, 7] = np.nan      # last frame: held from frame 4
  out, c, interp = kf.fill_missing(kp, conf)
  np.testing.assert_allclose(out[2, 3], [25.0, 25.0])
  np.testing.assert_allclose(out[3, 3], [35.0, 35.0])
  np.testing.assert_allclose(out[0, 5], out[1, 5])
  np.testing.assert_allclose(out[5, 7], [45.0, 45.0])
  assert np.isfinite(out).all()
  assert c[2, 3] == c[3, 3] == c[0, 5] == c[5, 7] == 0.0
  assert c.sum() == 6 * 17 - 4
  np.testing.assert_array_equal(interp, [True, False, True, True, False,
                                         True])


def test_fill_missing_errors_and_warnings(caplog):
  with pytest.raises(DataError, match="clip.mp4.*no valid keypoint"):
    kf.fill_missing(np.full((4, 17, 2), np.nan), np.ones((4, 17)),
                    "clip.mp4")
  with pytest.raises(DataError, match="clip.mp4.*no frames"):
    kf.fill_missing(np.zeros((0, 17, 2)), np.zeros((0, 17)), "clip.mp4")
  kp, _ = _coco_frames(3)
  conf = np.full((3, 17), 0.5)
  conf[0, 0] = 3.2
  _, c, _ = kf.fill_missing(kp, conf)
  assert "1 confidences outside [0, 1] (range 0.5..3.2)" in caplog.text
  assert c[0, 0] == 1.0
  kp[:, 3] = 0.0  # An ear never detected: placed at the centroid.
  out, c, interp = kf.fill_missing(kp, np.ones((3, 17)))
  assert "joints [3] are never detected" in caplog.text
  others = np.delete(kp, 3, axis=1)
  np.testing.assert_allclose(out[:, 3], others.mean(1), rtol=1e-6)
  assert (c[:, 3] == 0).all() and interp.all()


# ----------------------------------------------------------------- readers


def test_videopose3d_custom_npz(tmp_path):
  kp_a, _ = _coco_frames(5)
  kp_b, _ = _coco_frames(3, seed=2)
  path = tmp_path / "data_2d_custom_myvideos.npz"
  np.savez_compressed(
      path,
      positions_2d={"a.mp4": {"custom": [kp_a]},
                    "b.mp4": {"custom": [kp_b]}},
      metadata={"layout_name": "coco", "num_joints": 17,
                "keypoints_symmetry": [[1, 3, 5], [2, 4, 6]],
                "video_metadata": {"a.mp4": {"w": 1920, "h": 1080},
                                   "b.mp4": {"w": 640, "h": 480}}})
  assert kf.detect_format(str(path)) == "videopose3d"
  tracks = kf.read_tracks(str(path))
  assert [t.name for t in tracks] == ["a.mp4", "b.mp4"]
  assert tracks[0].layout == "coco17"
  assert tracks[0].image_size == (1920, 1080)
  assert tracks[1].image_size == (640, 480)
  np.testing.assert_array_equal(tracks[0].kp2d, kp_a)
  assert (tracks[0].conf == 1).all() and not tracks[0].interpolated.any()
  h36m = kf.load_h36m(str(path))[1]
  np.testing.assert_allclose(h36m.kp2d[:, 0],
                             (kp_b[:, 11] + kp_b[:, 12]) / 2, rtol=1e-6)


def test_videopose3d_wrong_joint_count(tmp_path):
  path = tmp_path / "bad.npz"
  np.savez(path, positions_2d={"v": {"custom": [np.ones((4, 16, 2))]}},
           metadata={"layout_name": "coco", "video_metadata": {}})
  with pytest.raises(DataError, match=r"bad.npz.*positions_2d\['v'\]"
                     r"\['custom'\]\[0\].*\(4, 16, 2\).*\(F, 17, 2\)"):
    kf.read_tracks(str(path))


def _mmpose_instance(kp, sc):
  # MMPose's split_instances: bbox is a 1-tuple holding [x1, y1, x2, y2].
  lo, hi = kp.min(0), kp.max(0)
  return {"keypoints": kp.tolist(), "keypoint_scores": sc.tolist(),
          "bbox": [[*lo.tolist(), *hi.tolist()]], "bbox_score": 0.9}


def test_mmpose_demo_json_main_person_and_empty_frame(tmp_path):
  kp, sc = _coco_frames(4)
  small = kp[1] * 0.1 + 20  # A smaller, more confident bystander.
  frames = []
  for f in range(4):
    inst = [] if f == 2 else [_mmpose_instance(kp[f], sc[f])]
    if f == 1:
      inst.insert(0, _mmpose_instance(small, np.ones(17)))
    frames.append({"frame_id": f + 1, "instances": inst})  # 1-based ids
  path = tmp_path / "results_clip.json"
  path.write_text(json.dumps({"meta_info": {"dataset_name": "coco"},
                              "instance_info": frames}))
  assert kf.detect_format(str(path)) == "mmpose"
  (track,) = kf.read_tracks(str(path))
  assert track.name == "results_clip" and track.layout == "coco17"
  np.testing.assert_array_equal(track.frame_ids, [1, 2, 3, 4])
  np.testing.assert_allclose(track.kp2d[1], kp[1])  # The larger person.
  np.testing.assert_allclose(track.kp2d[2], (kp[1] + kp[3]) / 2, rtol=1e-6)
  np.testing.assert_allclose(track.conf[[0, 1, 3]], sc[[0, 1, 3]])
  assert (track.conf[2] == 0).all()
  np.testing.assert_array_equal(track.interpolated,
                                [False, False, True, False])
  assert track.image_size is None


def test_mmpose_inferencer_json_and_single_image(tmp_path):
  kp, sc = _coco_frames(3)
  video = [{"frame_id": f, "instances": [_mmpose_instance(kp[f], sc[f])]}
           for f in range(3)]
  path = tmp_path / "video.json"
  path.write_text(json.dumps(video))
  (track,) = kf.read_tracks(str(path))
  np.testing.assert_array_equal(track.frame_ids, [0, 1, 2])
  np.testing.assert_allclose(track.kp2d, kp)
  image = tmp_path / "img.json"
  image.write_text(json.dumps([_mmpose_instance(kp[0], sc[0])]))
  (track,) = kf.read_tracks(str(image), fmt="mmpose")
  assert track.num_frames == 1
  np.testing.assert_allclose(track.kp2d[0], kp[0])


def test_mmpose_3d_keypoints_rejected(tmp_path):
  path = tmp_path / "lifted.json"
  path.write_text(json.dumps([{"frame_id": 0, "instances": [
      {"keypoints": np.ones((17, 3)).tolist(),
       "keypoint_scores": np.ones(17).tolist()}]}]))
  with pytest.raises(DataError, match=r"lifted.json.*\[0\]\['instances'\]"
                     r"\[0\]\['keypoints'\].*\(17, 3\).*\(K, 2\)"):
    kf.read_tracks(str(path))


def _alphapose(image_id, kp, sc, score=0.8):
  flat = np.concatenate([kp, sc[:, None]], 1).reshape(-1)
  return {"image_id": image_id, "category_id": 1,
          "keypoints": flat.tolist(), "score": score, "idx": [1]}


def test_alphapose_coco17(tmp_path):
  kp, sc = _coco_frames(4)
  dets = [_alphapose("1.jpg", kp[1], sc[1]),
          _alphapose("0.jpg", kp[0], sc[0]),
          _alphapose("0.jpg", kp[0] * 0.2, sc[0], score=0.99),
          _alphapose("3.jpg", kp[3], sc[3])]   # Frame 2: nobody detected.
  path = tmp_path / "alphapose-results.json"
  path.write_text(json.dumps(dets))
  assert kf.detect_format(str(path)) == "alphapose"
  (track,) = kf.read_tracks(str(path))
  assert track.layout == "coco17"
  np.testing.assert_array_equal(track.frame_ids, [0, 1, 2, 3])
  np.testing.assert_allclose(track.kp2d[0], kp[0])
  np.testing.assert_allclose(track.kp2d[2], (kp[1] + kp[3]) / 2, rtol=1e-6)
  np.testing.assert_allclose(track.conf[3], sc[3])
  np.testing.assert_array_equal(track.interpolated,
                                [False, False, True, False])


def test_alphapose_halpe26(tmp_path):
  rng = np.random.default_rng(3)
  kp = rng.uniform(10, 400, (3, 26, 2)).astype(np.float32)
  sc = rng.uniform(0.2, 1.0, (3, 26)).astype(np.float32)
  path = tmp_path / "halpe.json"
  path.write_text(json.dumps(
      [_alphapose(f"frame_{f:04d}.png", kp[f], sc[f]) for f in range(3)]))
  (track,) = kf.read_tracks(str(path))
  assert track.layout == "halpe26"
  (h36m,) = kf.load_h36m(str(path))
  np.testing.assert_allclose(h36m.kp2d[:, 0], kp[:, 19])
  np.testing.assert_allclose(h36m.kp2d[:, 10], kp[:, 17])
  np.testing.assert_allclose(h36m.conf[:, 8], sc[:, 18], rtol=1e-6)


def test_alphapose_bad_keypoint_count(tmp_path):
  path = tmp_path / "ap.json"
  path.write_text(json.dumps([{"image_id": "0.jpg", "category_id": 1,
                               "keypoints": [1.0] * 50, "score": 1.0}]))
  with pytest.raises(DataError, match=r"ap.json.*\[0\]\['keypoints'\] has 50"):
    kf.read_tracks(str(path))
  path.write_text(json.dumps([{"image_id": "0.jpg", "category_id": 1,
                               "keypoints": [1.0] * 60, "score": 1.0}]))
  with pytest.raises(DataError, match="20 keypoints per person; expected 17"):
    kf.read_tracks(str(path))


def test_h36m_arrays(tmp_path):
  rng = np.random.default_rng(4)
  arr = rng.uniform(1, 900, (6, 17, 3)).astype(np.float32)
  arr[..., 2] = rng.uniform(0.1, 1.0, (6, 17))
  npy = tmp_path / "walk.npy"
  np.save(npy, arr)
  (track,) = kf.read_tracks(str(npy))
  assert track.name == "walk" and track.layout == "h36m17"
  np.testing.assert_array_equal(track.kp2d, arr[..., :2])
  np.testing.assert_array_equal(track.conf, arr[..., 2])
  npz = tmp_path / "clips.npz"
  np.savez(npz, run=arr[..., :2], jump=arr[:3], image_size=[1000, 1002],
           fps=50.0)
  tracks = {t.name: t for t in kf.read_tracks(str(npz))}
  assert sorted(tracks) == ["jump", "run"]
  assert tracks["run"].image_size == (1000, 1002)
  assert tracks["run"].fps == 50.0 and (tracks["run"].conf == 1).all()
  assert kf.to_h36m(tracks["jump"]) is tracks["jump"]


def test_array_wrong_shape(tmp_path):
  path = tmp_path / "bad.npz"
  np.savez(path, seq=np.ones((5, 16, 2)))
  with pytest.raises(DataError, match=r"bad.npz: field 'seq' has shape "
                     r"\(5, 16, 2\); expected \(F, 17, 2\)"):
    kf.read_tracks(str(path))


def test_empty_and_all_missing_tracks(tmp_path):
  empty = tmp_path / "empty.npy"
  np.save(empty, np.zeros((0, 17, 2), np.float32))
  with pytest.raises(DataError, match="empty.npy.*no frames"):
    kf.read_tracks(str(empty))
  nan = tmp_path / "nan.npz"
  np.savez(nan, lost=np.full((4, 17, 2), np.nan))
  with pytest.raises(DataError, match="nan.npz: field 'lost': 68 keypoints "
                     "are NaN or infinite"):
    kf.read_tracks(str(nan))
  zeros = tmp_path / "zeros.npz"
  np.savez(zeros, lost=np.zeros((4, 17, 2)))
  with pytest.raises(DataError, match="zeros.npz: field 'lost': no valid"):
    kf.read_tracks(str(zeros))
  nobody = tmp_path / "nobody.json"
  nobody.write_text(json.dumps([{"frame_id": 0, "instances": []}]))
  with pytest.raises(DataError, match="nobody.json: no person detected"):
    kf.read_tracks(str(nobody))


def test_unknown_formats(tmp_path):
  txt = tmp_path / "keypoints.txt"
  txt.write_text("1 2 3")
  with pytest.raises(DataError, match=r"keypoints.txt: unknown keypoint "
                     r"file type '.txt'"):
    kf.read_tracks(str(txt))
  other = tmp_path / "other.json"
  other.write_text(json.dumps({"persons": []}))
  with pytest.raises(DataError, match="other.json: unrecognised JSON"):
    kf.read_tracks(str(other))
  with pytest.raises(ValueError, match="Unknown keypoint format 'csv'"):
    kf.read_tracks(str(other), fmt="csv")
  with pytest.raises(FileNotFoundError, match="missing.json"):
    kf.read_tracks(str(tmp_path / "missing.json"))


def test_real_detectron2_detections(shared_data):
  path = shared_data / "wild2d" / "short_clips_detectron2_coco17.npz"
  if not path.exists():
    pytest.skip(f"{path} not found")
  raw = np.load(path, allow_pickle=True)["positions_2d"].item()
  tracks = kf.load_h36m(str(path))
  lengths = {t.name: t.num_frames for t in tracks}
  assert lengths == {k: v["custom"][0].shape[0] for k, v in raw.items()}
  assert sum(lengths.values()) == 1925
  for track in tracks:
    kp = raw[track.name]["custom"][0]
    assert track.layout == "h36m17" and track.image_size == (1280, 720)
    np.testing.assert_allclose(track.kp2d[:, 0],
                               (kp[:, 11] + kp[:, 12]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(track.kp2d[:, 16], kp[:, 10])
    x = kf.normalize_track(track)
    assert x.shape == (track.num_frames, 17, 3)
    assert np.isfinite(x).all() and (x[..., 2] == 1).all()
    # Keypoints inside the 1280 x 720 frame stay in [-1, 1] x [-h/w, h/w];
    # the extrapolated Head may leave the frame a little.
    body = np.delete(x, 10, axis=1)
    assert np.abs(body[..., 0]).max() <= 1.0
    assert np.abs(body[..., 1]).max() <= 720 / 1280 + 1e-6


# ---------------------------------------------------------- OpenPose layouts


def test_body25_and_coco18_to_h36m_hand_checked():
  for layout, (nose, neck, r_sho, l_sho, r_hip, l_hip, r_eye, l_eye,
               r_wri, l_ank) in [
                   ("body25", (0, 1, 2, 5, 9, 12, 15, 16, 4, 14)),
                   ("coco18", (0, 1, 2, 5, 8, 11, 14, 15, 4, 13))]:
    k = len(kf.JOINT_NAMES[layout])
    rng = np.random.default_rng(k)
    kp = rng.uniform(10, 500, (2, k, 2)).astype(np.float32)
    sc = rng.uniform(0.2, 1.0, (2, k)).astype(np.float32)
    h36m = kf.to_h36m(kf.make_track("t", kp, sc, layout))
    hip = (kp[:, r_hip] + kp[:, l_hip]) / 2
    np.testing.assert_allclose(h36m.kp2d[:, 0], hip, rtol=1e-6)
    np.testing.assert_array_equal(h36m.kp2d[:, 8], kp[:, neck])
    np.testing.assert_allclose(h36m.kp2d[:, 7], (hip + kp[:, neck]) / 2,
                               rtol=1e-6)
    np.testing.assert_array_equal(h36m.kp2d[:, 9], kp[:, nose])
    np.testing.assert_allclose(
        h36m.kp2d[:, 10], kp[:, r_eye] + kp[:, l_eye] - kp[:, nose],
        rtol=1e-5)
    np.testing.assert_array_equal(h36m.kp2d[:, 1], kp[:, r_hip])
    np.testing.assert_array_equal(h36m.kp2d[:, 11], kp[:, l_sho])
    np.testing.assert_array_equal(h36m.kp2d[:, 14], kp[:, r_sho])
    np.testing.assert_array_equal(h36m.kp2d[:, 16], kp[:, r_wri])
    np.testing.assert_array_equal(h36m.kp2d[:, 6], kp[:, l_ank])
    np.testing.assert_allclose(h36m.conf[:, 7],
                               sc[:, [r_hip, l_hip, neck]].min(1))
    np.testing.assert_allclose(h36m.conf[:, 10],
                               sc[:, [nose, r_eye, l_eye]].min(1))


def test_every_layout_gives_the_same_skeleton():
  # One person seen through COCO-17, COCO-18 and BODY_25: identical H36M-17
  # except the Thorax, which OpenPose detects as its Neck (here 2 px below
  # mid-shoulders) and which the Spine averages in.
  out = {}
  for layout in ("coco17", "coco18", "body25"):
    kp = walker(layout, 1, jitter=0)
    out[layout] = kf.to_h36m(kf.make_track("t", kp, None, layout)).kp2d[0]
  np.testing.assert_array_equal(out["coco18"], out["body25"])
  same = [j for j in range(17) if j not in (7, 8)]
  np.testing.assert_allclose(out["coco17"][same], out["body25"][same])
  np.testing.assert_allclose(out["body25"][8], [300, 400 - 128])
  np.testing.assert_allclose(out["coco17"][8], [300, 400 - 130])
  np.testing.assert_allclose(out["body25"][7], [300, 400 - 64])


# ----------------------------------------------------- lifting demo npz


def _demo_npz(tmp_path, rec, video="dance", **extra):
  """Writes rec as the demos do: np.savez_compressed(reconstruction=...)."""
  folder = tmp_path / "demo" / "output" / video / "input_2D"
  folder.mkdir(parents=True)
  path = folder / "keypoints.npz"
  np.savez_compressed(path, reconstruction=rec, **extra)
  return path


def _two_people_h36m(num_frames=30):
  """(2, F, 17, 2): person 0 throughout, person 1 from frame 10 only.

  Person 1 is absent (all zeros, as HRNet's demo writes) in frames 0-9 and
  14, and person 0 in frame 20.
  """
  rec = np.stack([walker("h36m17", num_frames, (200, 400), (3, 0)),
                  walker("h36m17", num_frames, (700, 380), (-2, 0), 0.8,
                         seed=1)])
  rec[1, :10] = 0
  rec[1, 14] = 0
  rec[0, 20] = 0
  return rec


def test_demo_npz_mhformer_two_people(tmp_path):
  rec = _two_people_h36m()
  path = _demo_npz(tmp_path, rec)
  assert kf.detect_format(str(path)) == "demo_npz"
  (main,) = kf.read_tracks(str(path))
  assert main.name == "dance" and main.layout == "h36m17"
  assert main.image_size is None and main.person is None
  np.testing.assert_array_equal(main.frame_ids, np.arange(30))
  np.testing.assert_array_equal(main.kp2d[19], rec[0, 19])
  np.testing.assert_allclose(main.kp2d[20], (rec[0, 19] + rec[0, 21]) / 2,
                             rtol=1e-6)
  assert (main.conf[20] == 0).all() and main.interpolated.sum() == 1
  assert (main.conf[19] == 1).all()   # No scores in MHFormer's file.
  both = kf.read_tracks(str(path), persons="all")
  assert [t.name for t in both] == ["dance_person0", "dance_person1"]
  assert [t.person for t in both] == [0, 1]
  np.testing.assert_array_equal(both[1].frame_ids, np.arange(10, 30))
  np.testing.assert_array_equal(both[1].kp2d[0], rec[1, 10])
  np.testing.assert_array_equal(both[1].interpolated,
                                np.arange(10, 30) == 14)


def test_demo_npz_motionagformer_scores_in_the_last_channel(tmp_path,
                                                           caplog):
  rec = _two_people_h36m()
  scores = np.random.default_rng(0).uniform(0.3, 0.7, rec.shape[:3])
  scores[0, 5, 3] = 1.04   # HRNet heatmap maxima overshoot 1.
  scores[1] = np.where(rec[1].any(-1), 0.95, 0.0)
  path = _demo_npz(tmp_path, np.concatenate([rec, scores[..., None]], -1))
  tracks = kf.read_tracks(str(path), persons="all")
  assert "1 confidences outside [0, 1] (range 0..1.04)" in caplog.text
  np.testing.assert_allclose(tracks[0].conf[4], scores[0, 4], rtol=1e-6)
  assert tracks[0].conf[5, 3] == 1.0
  np.testing.assert_array_equal(tracks[0].kp2d[4], rec[0, 4])
  # main = the most confident in total: person 1 (19 frames x 0.95 = 18.05)
  # beats person 0, seen longer but less clearly (29 frames x ~0.5).
  assert sum(tracks[0].conf.mean(1)) < 15 < sum(tracks[1].conf.mean(1))
  (main,) = kf.read_tracks(str(path))
  np.testing.assert_array_equal(main.frame_ids, np.arange(10, 30))
  # A separate `scores` field (P, F, 17) is read as well.
  path2 = _demo_npz(tmp_path, rec, video="v2", scores=scores * 0.5)
  (t0, _) = kf.read_tracks(str(path2), persons="all")
  np.testing.assert_allclose(t0.conf[4], scores[0, 4] * 0.5, rtol=1e-6)


def test_demo_npz_h36m_conversion_is_identity_and_one_person(tmp_path):
  rec = walker("h36m17", 12)
  path = tmp_path / "keypoints.npz"
  np.savez_compressed(path, reconstruction=rec[None])
  (track,) = kf.load_h36m(str(path))
  assert track.name == "keypoints"
  np.testing.assert_array_equal(track.kp2d, rec)
  # The single-person (F, 17, 2) variant some forks save.
  np.savez_compressed(path, reconstruction=rec)
  np.testing.assert_array_equal(kf.load_h36m(str(path))[0].kp2d, rec)


# ----------------------------------------------------------------- OpenPose


def _openpose_person(kp, sc, pid=-1):
  flat = np.concatenate([kp, sc[:, None]], 1).reshape(-1)
  return {"person_id": [pid], "pose_keypoints_2d": flat.tolist(),
          "face_keypoints_2d": [], "hand_left_keypoints_2d": [],
          "hand_right_keypoints_2d": [], "pose_keypoints_3d": [],
          "face_keypoints_3d": [], "hand_left_keypoints_3d": [],
          "hand_right_keypoints_3d": []}


def _write_openpose(folder, frames, name):
  """One {"version", "people"} JSON per frame; `name(f)` gives the file."""
  folder.mkdir(parents=True)
  for f, people in enumerate(frames):
    (folder / name(f)).write_text(json.dumps(
        {"version": 1.3, "people": people}))


def _openpose_video(layout, num_frames=12):
  """Two people; b is missing in frame 4, frame 7 is empty, in frame 9 a
  lost person is listed with all-zero keypoints, a's right wrist is not
  found (0, 0, 0) in frame 2."""
  k = len(kf.JOINT_NAMES[layout])
  a = walker(layout, num_frames, (200, 400), (5, 0))
  b = walker(layout, num_frames, (800, 420), (-3, 0), 0.7, seed=1)
  sc_a = np.full((num_frames, k), 0.8, np.float32)
  sc_b = np.full((num_frames, k), 0.6, np.float32)
  wrist = kf.JOINT_NAMES[layout].index("r_wrist")
  a[2, wrist], sc_a[2, wrist] = 0, 0
  frames = []
  for f in range(num_frames):
    people = [] if f == 7 else [_openpose_person(a[f], sc_a[f])]
    if f not in (4, 7):
      people.insert(0, _openpose_person(b[f], sc_b[f]))
    if f == 9:
      people.append(_openpose_person(np.zeros((k, 2)), np.zeros(k)))
    frames.append(people)
  return a, b, frames


def test_openpose_body25_folder(tmp_path):
  a, b, frames = _openpose_video("body25")
  folder = tmp_path / "clip_json"
  _write_openpose(folder, frames, lambda f: f"clip_{f:012d}_keypoints.json")
  (folder / "clip.mp4").write_text("not a keypoint file")  # Ignored.
  assert kf.detect_format(str(folder)) == "openpose"
  (main,) = kf.read_tracks(str(folder))
  assert main.name == "clip_json" and main.layout == "body25"
  np.testing.assert_array_equal(main.frame_ids, np.arange(12))
  np.testing.assert_array_equal(main.kp2d[0], a[0])
  # Frame 7 (empty) is interpolated; a's wrist in frame 2 too.
  np.testing.assert_allclose(main.kp2d[7], (a[6] + a[8]) / 2, rtol=1e-6)
  np.testing.assert_array_equal(main.interpolated,
                                np.isin(np.arange(12), [2, 7]))
  assert main.conf[2, 4] == 0 and main.conf[3, 4] == pytest.approx(0.8)
  tracks = kf.load_h36m(str(folder), persons="all")
  assert [t.name for t in tracks] == ["clip_json_person0",
                                      "clip_json_person1"]
  track_b = tracks[0]   # First listed in frame 0.
  np.testing.assert_array_equal(track_b.interpolated,
                                np.isin(np.arange(12), [4, 7]))
  np.testing.assert_allclose(track_b.kp2d[0, 0], (b[0, 9] + b[0, 12]) / 2,
                             rtol=1e-6)   # H36M hip = mid(RHip, LHip).
  np.testing.assert_array_equal(track_b.kp2d[0, 8], b[0, 1])  # Neck.


def test_openpose_coco18_unpadded_names_in_natural_order(tmp_path):
  a, _, frames = _openpose_video("coco18")
  folder = tmp_path / "shots"
  _write_openpose(folder, frames, lambda f: f"img{f}_keypoints.json")
  (track,) = kf.read_tracks(str(folder))
  assert track.layout == "coco18"
  np.testing.assert_array_equal(track.frame_ids, np.arange(12))
  # img10 comes after img9, not after img1: a walks right every frame.
  assert (np.diff(track.kp2d[:, 0, 0]) > 0).all()
  np.testing.assert_array_equal(track.kp2d[10], a[10])
  # One OpenPose file on its own is one frame.
  (one,) = kf.read_tracks(str(folder / "img3_keypoints.json"),
                          persons="main")
  assert one.name == "img3" and one.num_frames == 1


def test_openpose_tracking_ids(tmp_path):
  kp = walker("body25", 3)
  sc = np.full((3, 25), 0.9, np.float32)
  frames = [[_openpose_person(kp[f], sc[f], pid=5)] for f in range(3)]
  _write_openpose(tmp_path / "t", frames,
                  lambda f: f"t_{f:012d}_keypoints.json")
  (track,) = kf.read_tracks(str(tmp_path / "t"), persons="all")
  assert track.name == "t_person5" and track.person == 5


def test_openpose_errors(tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(DataError, match="empty: is a folder without OpenPose"):
    kf.read_tracks(str(empty))
  mpi = tmp_path / "mpi"
  _write_openpose(mpi, [[_openpose_person(np.ones((15, 2)), np.ones(15))]],
                  lambda f: f"m_{f}_keypoints.json")
  with pytest.raises(DataError, match=r"15 keypoints per person; expected "
                     r"25 \(body25\), 18 \(coco18\)"):
    kf.read_tracks(str(mpi))
  bad = tmp_path / "bad"
  _write_openpose(bad, [{"people": []}], lambda f: "x_0_keypoints.json")
  (bad / "x_0_keypoints.json").write_text(json.dumps({"people": {}}))
  with pytest.raises(DataError, match="x_0_keypoints.json: no 'people' list"):
    kf.read_tracks(str(bad))


# ------------------------------------------------------------ several people


def test_alphapose_tracked_idx_names_people(tmp_path):
  a = walker("coco17", 6, (200, 400))
  b = walker("coco17", 6, (600, 400), seed=1)
  sc = np.full(17, 0.9, np.float32)
  dets = []
  for f in range(6):
    dets.append(_alphapose(f"{f}.jpg", b[f], sc) | {"idx": 7})
    if f != 3:
      dets.append(_alphapose(f"{f}.jpg", a[f], sc) | {"idx": 2})
  path = tmp_path / "tracked.json"
  path.write_text(json.dumps(dets))
  tracks = kf.read_tracks(str(path), persons="all")
  assert [t.name for t in tracks] == ["tracked_person2", "tracked_person7"]
  np.testing.assert_array_equal(tracks[0].kp2d[5], a[5])
  assert tracks[0].interpolated[3] and not tracks[1].interpolated.any()
  # main: b, seen in every frame.
  np.testing.assert_array_equal(kf.read_tracks(str(path))[0].kp2d, b)


def test_mmpose_track_id(tmp_path):
  a = walker("coco17", 4, (200, 400))
  b = walker("coco17", 4, (600, 400), seed=1)
  sc = np.full(17, 0.9, np.float32)
  frames = [{"frame_id": f, "instances": [
      _mmpose_instance(b[f], sc) | {"track_id": 1},
      _mmpose_instance(a[f], sc) | {"track_id": 0}]} for f in range(4)]
  path = tmp_path / "tracked.json"
  path.write_text(json.dumps({"meta_info": {}, "instance_info": frames}))
  tracks = kf.read_tracks(str(path), persons="all")
  assert [t.person for t in tracks] == [0, 1]
  np.testing.assert_array_equal(tracks[0].kp2d, a)


def test_mmpose_untracked_people_crossing_paths(tmp_path):
  # Two people walk towards each other and cross; the farther one (b) is
  # hidden behind a for frames 23-26. No ids: association must keep them
  # apart (instances listed in random order, as detectors do).
  num_frames = 50
  a = walker("coco17", num_frames, (200, 400), (8, 0), seed=1)
  b = walker("coco17", num_frames, (600, 420), (-8, 0), 0.8, seed=2)
  rng = np.random.default_rng(0)
  frames = []
  for f in range(num_frames):
    insts = [_mmpose_instance(a[f], np.full(17, 0.9))]
    if f not in range(23, 27):
      insts.append(_mmpose_instance(b[f], np.full(17, 0.7)))
    rng.shuffle(insts)
    frames.append({"frame_id": f + 1, "instances": insts})
  path = tmp_path / "results_crossing.json"
  path.write_text(json.dumps({"meta_info": {}, "instance_info": frames}))
  tracks = kf.read_tracks(str(path), persons="all")
  assert len(tracks) == 2
  track_a, track_b = sorted(tracks, key=lambda t: t.kp2d[0, 0, 0])
  np.testing.assert_allclose(track_a.kp2d, a, atol=1e-4)
  assert not track_a.interpolated.any()
  np.testing.assert_array_equal(track_b.interpolated,
                                np.isin(np.arange(50), range(23, 27)))
  keep = ~track_b.interpolated
  np.testing.assert_allclose(track_b.kp2d[keep], b[keep], atol=1e-4)
  # The hidden frames are filled between b's positions at 22 and 27.
  np.testing.assert_allclose(track_b.kp2d[25], b[22] + (b[27] - b[22]) * 0.6,
                             atol=1e-3)
  (main,) = kf.read_tracks(str(path))
  assert main.name == "results_crossing"
  np.testing.assert_allclose(main.kp2d, a, atol=1e-4)


# ------------------------------------------------------------ readable errors


def _png(path):
  Image.new("RGB", (8, 8), (200, 30, 30)).save(path, format="PNG")
  return path


def _one_line(excinfo):
  assert "\n" not in str(excinfo.value)
  return str(excinfo.value)


def test_png_passed_as_keypoints(tmp_path):
  png = _png(tmp_path / "frame.png")
  with pytest.raises(DataError, match=r"frame.png: unknown keypoint file type "
                     r"'.png' \(a PNG image\); expected .npz") as e:
    kf.read_tracks(str(png))
  _one_line(e)
  for suffix, reason in [(".npz", "is a PNG image, not NumPy keypoints"),
                         (".npy", "is a PNG image, not NumPy keypoints"),
                         (".json", "is a PNG image, not JSON")]:
    renamed = _png(tmp_path / f"frame{suffix}")
    with pytest.raises(DataError, match=f"frame{suffix}: {reason}; expected"):
      kf.read_tracks(str(renamed))


def test_truncated_files(tmp_path):
  path = _demo_npz(tmp_path, _two_people_h36m())
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2])
  with pytest.raises(DataError, match="keypoints.npz: cannot be read as NumPy "
                     "data, truncated or damaged") as e:
    kf.read_tracks(str(path))
  _one_line(e)
  npy = tmp_path / "walk.npy"
  np.save(npy, walker("h36m17", 20))
  npy.write_bytes(npy.read_bytes()[:500])
  with pytest.raises(DataError, match="walk.npy: cannot be read as NumPy"):
    kf.read_tracks(str(npy))
  js = tmp_path / "ap.json"
  js.write_text(json.dumps([_alphapose("0.jpg", *_coco_frames(1)[0][:1],
                                       np.ones(17))])[:100])
  with pytest.raises(DataError, match=r"ap.json: is not valid JSON \(.* at "
                     r"line 1 column \d+; truncated\?\); expected a JSON"):
    kf.read_tracks(str(js))


@pytest.mark.parametrize("content,fmt,message", [
    ({"instance_info": {"frame_id": 0}}, "mmpose",
     r"'instance_info' is not a list of objects; expected \[\{'frame_id'"),
    ([{"frame_id": 0, "instances": [{"bbox": [0, 0, 1, 1]}]}], "mmpose",
     r"\[0\]\['instances'\]\[0\] has no 'keypoints'; expected"),
    ([{"frame_id": 0, "instances": [{"keypoints": [[1, 2], [3]]}]}], "mmpose",
     r"\[0\]\['instances'\]\[0\]\['keypoints'\] is not an array of numbers "
     r"\(rows of different lengths\)"),
    ([{"frame_id": 0, "instances": [{"keypoints": [["a", "b"]] * 17}]}],
     "mmpose", r"\[0\]\['instances'\]\[0\]\['keypoints'\] is not an array "
     r"of numbers \(it holds "
     r"text\); expected \[\[x, y\], \.\.\.\] pixels"),
    (["0.jpg", "1.jpg"], "alphapose",
     r"AlphaPose results are not a list of objects; expected"),
    ({"people": [{"face_keypoints_2d": []}]}, "openpose",
     r"people\[0\] has no 'pose_keypoints_2d'"),
    ({"version": 1.3}, "auto", r"unrecognised JSON keypoints; expected "
     r"MMPose predictions"),
])
def test_json_of_the_wrong_structure(tmp_path, content, fmt, message):
  path = tmp_path / "kp.json"
  path.write_text(json.dumps(content))
  with pytest.raises(DataError, match="kp.json: " + message) as e:
    kf.read_tracks(str(path), fmt=fmt)
  _one_line(e)


def test_wrong_shapes_name_the_field(tmp_path):
  path = _demo_npz(tmp_path, np.ones((2, 30, 16, 2), np.float32))
  with pytest.raises(DataError, match=r"keypoints.npz: field 'reconstruction' "
                     r"has shape \(2, 30, 16, 2\); expected \(persons, F, 17, "
                     r"2\) pixels"):
    kf.read_tracks(str(path))
  path = _demo_npz(tmp_path, _two_people_h36m(), video="v2",
                   scores=np.ones((2, 29, 17)))
  with pytest.raises(DataError, match=r"field 'scores' has shape \(2, 29, 17\)"
                     r"; expected \(2, 30, 17\)"):
    kf.read_tracks(str(path))
  path = tmp_path / "kp3d.npy"
  np.save(path, np.ones((10, 17, 4)))
  with pytest.raises(DataError, match=r"kp3d.npy: the array has shape "
                     r"\(10, 17, 4\); expected \(F, 17, 2\) or \(F, 17, 3\)"):
    kf.read_tracks(str(path))


def test_nan_and_inf_are_errors_naming_field_and_place(tmp_path):
  arr = walker("h36m17", 6)
  arr[2, 3, 1] = np.nan
  path = tmp_path / "walk.npz"
  np.savez(path, seq=arr)
  with pytest.raises(DataError, match=r"walk.npz: field 'seq': 1 keypoints are "
                     r"NaN or infinite \(first at frame 2, joint 3\); expected "
                     r"finite pixel coordinates; mark a missed joint with "
                     r"\(0, 0\)") as e:
    kf.read_tracks(str(path))
  _one_line(e)
  rec = _two_people_h36m()
  rec[1, 12, 5, 0] = np.inf
  with pytest.raises(DataError, match=r"field 'reconstruction': 1 keypoints "
                     r"are NaN or infinite \(first at person 1, frame 12, "
                     r"joint 5\)"):
    kf.read_tracks(str(_demo_npz(tmp_path, rec)))
  kp, sc = _coco_frames(2)
  frames = [{"frame_id": f, "instances": [_mmpose_instance(kp[f], sc[f])]}
            for f in range(2)]
  frames[1]["instances"][0]["keypoint_scores"][4] = float("nan")
  js = tmp_path / "mm.json"
  js.write_text(json.dumps(frames))  # Python writes NaN as JSON NaN.
  with pytest.raises(DataError, match=r"mm.json: \[1\]\['instances'\]\[0\]: 1 "
                     r"confidences are NaN or infinite \(first at joint 4\)"):
    kf.read_tracks(str(js))


def test_confidence_outside_the_score_range(tmp_path, caplog):
  # A third channel holding depth in mm, or percentages, is no confidence.
  arr = walker("h36m17", 5)
  depth = np.concatenate([arr, np.full((5, 17, 1), 4500.0)], -1)
  np.save(tmp_path / "xyz.npy", depth)
  with pytest.raises(DataError, match=r"xyz.npy: confidences "
                     r"range from 4500 to 4500 \(first outside at frame 0, "
                     r"joint 0\); expected scores in \[0, 1\]") as e:
    kf.read_tracks(str(tmp_path / "xyz.npy"))
  _one_line(e)
  kp, _ = _coco_frames(1)
  path = tmp_path / "percent.json"
  path.write_text(json.dumps([_alphapose("0.jpg", kp[0], np.full(17, 87.0))]))
  with pytest.raises(DataError, match=r"percent.json: \[0\]: confidences range "
                     r"from 87 to 87"):
    kf.read_tracks(str(path))
  # Detector overshoot is tolerated: RTMPose-like 1.3 is clipped, a lost
  # joint's -0.2 is a missed joint.
  conf = np.full((5, 17), 0.8, np.float32)
  conf[1, 2], conf[3, 4] = 1.3, -0.2
  track = kf.make_track("t", arr, conf, "h36m17")
  assert "2 confidences outside [0, 1] (range -0.2..1.3)" in caplog.text
  assert track.conf[1, 2] == 1.0 and track.conf[3, 4] == 0.0
  assert track.interpolated.tolist() == [False, False, False, True, False]


def test_missing_file_and_image_size_are_user_errors(tmp_path):
  with pytest.raises(FileNotFoundError) as e:
    kf.read_tracks(str(tmp_path / "nope.json"))
  assert e.value.filename == str(tmp_path / "nope.json")
  track = kf.make_track("clip", walker("h36m17", 2), None, "h36m17")
  with pytest.raises(DataError, match=r"clip: the keypoint file stores no "
                     r"image size; expected the video's size as "
                     r"--image_size=WIDTH,HEIGHT"):
    kf.normalize_track(track)


def test_openpose_folder_of_two_videos_is_an_error(tmp_path):
  kp = walker("body25", 2)
  frames = [[_openpose_person(kp[f], np.ones(25))] for f in range(2)]
  folder = tmp_path / "mixed"
  _write_openpose(folder, frames, lambda f: f"a_{f:012d}_keypoints.json")
  (folder / "b_000000000000_keypoints.json").write_text(
      (folder / "a_000000000000_keypoints.json").read_text())
  with pytest.raises(DataError, match=r"mixed: holds the frames of 2 videos "
                     r"\('a_', 'b_', \.\.\.\); expected one video's"):
    kf.read_tracks(str(folder))
