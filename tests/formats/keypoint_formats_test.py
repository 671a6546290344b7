"""Tests for keypoint_formats: readers, gap filling, H36M conversion."""

import json

import numpy as np
import pytest

from opformer_jax.formats import keypoint_formats as kf
from opformer_jax.data.dataset import DataError


def _coco_frames(num_frames, seed=0):
  """(F, 17, 2) plausible px keypoints (no zeros) and (F, 17) scores."""
  rng = np.random.default_rng(seed)
  kp = rng.uniform(50, 600, (num_frames, 17, 2)).astype(np.float32)
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


def test_fill_missing_errors_and_warnings():
  with pytest.raises(DataError, match="clip.mp4.*no valid keypoint"):
    kf.fill_missing(np.full((4, 17, 2), np.nan), np.ones((4, 17)),
                    "clip.mp4")
  with pytest.raises(DataError, match="clip.mp4.*no frames"):
    kf.fill_missing(np.zeros((0, 17, 2)), np.zeros((0, 17)), "clip.mp4")
  kp, _ = _coco_frames(3)
  conf = np.full((3, 17), 0.5)
  conf[0, 0] = 3.2
  with pytest.warns(UserWarning, match="1 confidences outside"):
    _, c, _ = kf.fill_missing(kp, conf)
  assert c[0, 0] == 1.0
  kp[:, 3] = 0.0  # An ear never detected: placed at the centroid.
  with pytest.warns(UserWarning, match=r"joints \[3\] are never detected"):
    out, c, interp = kf.fill_missing(kp, np.ones((3, 17)))
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
  with pytest.raises(DataError, match="nan.npz: field 'lost'.*no valid"):
    kf.read_tracks(str(nan))
  nobody = tmp_path / "nobody.json"
  nobody.write_text(json.dumps([{"frame_id": 0, "instances": []}]))
  with pytest.raises(DataError, match="nobody.json: no frame with a"):
    kf.read_tracks(str(nobody))


def test_unknown_formats(tmp_path):
  txt = tmp_path / "keypoints.txt"
  txt.write_text("1 2 3")
  with pytest.raises(DataError, match=r"keypoints.txt: unknown keypoint "
                     r"file type '.txt'"):
    kf.read_tracks(str(txt))
  other = tmp_path / "other.json"
  other.write_text(json.dumps({"people": []}))
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
