"""Detection -> 2D file -> lifting: a stand-in detector, then BlazePose."""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from opformer_jax import errors
from opformer_jax.formats import blazepose
from opformer_jax.formats import keypoint_formats
from opformer_jax.infer import detect
from opformer_jax.infer import from_video
from opformer_jax.infer import lift

import video_clips



@pytest.fixture(name="write_clip")
def _write_clip():
  video_clips.need_av()
  return video_clips.write_clip
REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _result(points):
  """A `Pose.process` result: (33, 3) normalised x, y, visibility or None."""
  if points is None:
    return types.SimpleNamespace(pose_landmarks=None)
  lms = [types.SimpleNamespace(x=x, y=y, visibility=v) for x, y, v in points]
  return types.SimpleNamespace(
      pose_landmarks=types.SimpleNamespace(landmark=lms))


class _FakePose:
  """Finds a person except in frames whose mean brightness is 0."""

  def __init__(self, seed=0):
    self.points = np.random.default_rng(seed).uniform(0.2, 0.8, (33, 3))

  def process(self, rgb):
    return _result(None if rgb.mean() == 0 else self.points)

  def close(self):
    pass


def test_landmarks_px_scales_and_keeps_visibility():
  pts = np.array([[0.5, 0.25, 0.9]] * 33)
  pts[3] = (0.1, 1.0, 0.0)
  out = detect.landmarks_px(_result(pts), 640, 480)
  np.testing.assert_allclose(out[0], [320, 120, 0.9], rtol=1e-6)
  np.testing.assert_allclose(out[3, :2], [64, 480])
  assert 0 < out[3, 2] <= 1e-3   # not read as a missed joint
  assert detect.landmarks_px(_result(None), 640, 480) is None


def _clip(write_clip, path, dark, n=10):
  imgs = [np.zeros((48, 64, 3), np.uint8) if i in dark else
          np.full((48, 64, 3), 120, np.uint8) for i in range(n)]
  return str(write_clip(path, imgs, fps=20))


def test_missed_frames_are_interpolated_and_flagged(write_clip, tmp_path,
                                                    monkeypatch):
  monkeypatch.setattr(detect, "_pose_solution", _FakePose)
  path = _clip(write_clip, tmp_path / "walk.mov", dark={3, 4})
  out2d = from_video.detect_to_file(path, str(tmp_path / "out"),
                                    progress=False)
  assert os.path.basename(out2d) == "walk_2d.npz"
  (track,) = keypoint_formats.load_h36m(out2d, "array")
  assert track.name == "walk" and track.image_size == (64, 48)
  assert track.fps == pytest.approx(20)
  np.testing.assert_array_equal(np.flatnonzero(track.interpolated), [3, 4])
  expect = blazepose.to_h36m_raw(_FakePose().points[None] * [64, 48, 1])[0]
  np.testing.assert_allclose(track.kp2d[3], expect[:, :2], rtol=1e-5)
  assert (track.conf[3] == 0).all()


def test_nobody_in_most_frames_is_one_line_and_writes_nothing(
    write_clip, tmp_path, monkeypatch):
  monkeypatch.setattr(detect, "_pose_solution", _FakePose)
  path = _clip(write_clip, tmp_path / "empty_room.mov", dark=set(range(8)))
  out = tmp_path / "out"
  with pytest.raises(errors.DataError, match=r"empty_room.mov: a person was "
                     r"found in only 2 of 10 frames"):
    from_video.detect_to_file(path, str(out), progress=False)
  assert not out.exists() or not os.listdir(out)


def test_start_end_select_by_seconds(write_clip, tmp_path, monkeypatch):
  monkeypatch.setattr(detect, "_pose_solution", _FakePose)
  path = _clip(write_clip, tmp_path / "c.mov", dark=set(), n=20)
  dets = detect.detect_video(path, start_s=0.25, end_s=0.5, progress=False)
  np.testing.assert_array_equal(dets.frame_ids, [5, 6, 7, 8, 9])
  np.testing.assert_allclose(dets.times_s, np.arange(5, 10) / 20)
  with pytest.raises(errors.UserError, match=r"--start=2 --end=1: expected "
                     r"0 <= start < end"):
    from_video.detect_to_file(path, str(tmp_path / "o"), 2.0, 1.0)


def test_a_variable_rate_clip_is_lifted_at_even_times(write_clip, tmp_path):
  # Frames at uneven times whose colour codes their index; a person whose
  # landmarks move 100 px per second.
  times = [0.0, 0.1, 0.15, 0.2, 0.5, 0.6]
  imgs = [np.full((32, 48, 3), 40 * i, np.uint8) for i in range(6)]
  clip = write_clip(tmp_path / "vfr.mov", imgs, times_s=times)
  lm = np.zeros((6, 33, 3), np.float32)
  lm[..., 0] = 100 * np.asarray(times)[:, None] + 10
  lm[..., 1], lm[..., 2] = 20, 0.9
  dets = detect.Detections(lm, np.ones(6, bool), np.asarray(times),
                           np.arange(6), (48, 32))
  rate = 10.0   # 5 intervals over 0.5 s
  assert from_video.write_2d(str(tmp_path / "v_2d.npz"), "v", dets, rate)
  kp = np.load(tmp_path / "v_2d.npz")["v"]
  # Rows at 0, 0.1, ..., 0.5 s: x = 100 t + 10 on every joint.
  np.testing.assert_allclose(kp[:, 0, 0], 100 * np.arange(6) / rate + 10,
                             atol=1e-3)
  # The render's frame of each row is the real frame nearest its time:
  # 0 -> 0, 0.1 -> 1, 0.2 -> 3, 0.3 -> 3 (0.2 is nearer than 0.5), 0.4 ->
  # 4, 0.5 -> 4.
  frames = list(from_video.background(str(clip), rate=rate)(range(6)))
  assert [int(f[0, 0, 0]) // 40 for f in frames] == [0, 1, 3, 3, 4, 4]
  # An even clip is written as detected and each row gets its own frame.
  even = detect.Detections(lm, np.ones(6, bool), np.arange(6) / 25,
                           np.arange(6), (48, 32))
  assert not from_video.write_2d(str(tmp_path / "e_2d.npz"), "e", even, 25)
  clip = write_clip(tmp_path / "even.mov", imgs, fps=25)
  frames = list(from_video.background(str(clip), rate=25.0)([0, 2, 2, 5]))
  assert [int(f[0, 0, 0]) // 40 for f in frames] == [0, 2, 2, 5]


def test_missing_mediapipe_is_one_line_naming_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "mediapipe.python.solutions", None)
  with pytest.raises(errors.UserError, match=r'pip install -e "\.\[video\]"'):
    detect._pose_solution()  # pylint: disable=protected-access


def test_cli_bad_video_is_one_line_exit_2(tmp_path):
  bad = tmp_path / "holiday.mp4"
  bad.write_bytes(b"\x00" * 1000)
  out = tmp_path / "out"
  proc = subprocess.run(
      [sys.executable, "-m", "opformer_jax.infer", f"--input={bad}",
       f"--output={out}"], capture_output=True, text=True, cwd=REPO,
      env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = [l for l in proc.stderr.splitlines() if "holiday.mp4" in l]
  # With the extra: ffmpeg's verdict; without: the install line.
  assert len(lines) == 1 and ("expected a video" in lines[0]
                              or 'pip install -e ".[video]"' in lines[0])
  assert not any(n.endswith((".npz", ".json", ".gif"))
                 for n in (os.listdir(out) if out.exists() else []))


def test_blazepose_end_to_end_on_a_real_person(write_clip, tmp_path):
  pytest.importorskip("mediapipe", reason="BlazePose needs mediapipe: see "
                      "docs/video.md")
  clip = write_clip(tmp_path / "hopper.mp4",
                    video_clips.person_clip_frames(24), fps=24,
                    codec="libx264")
  out = tmp_path / "out"
  opts = lift.Options(render="mp4", render_fps=12)
  res = lift.infer(str(clip), str(out), opts)
  assert res["frames"] == 24
  names = sorted(os.listdir(out))
  for n in ("hopper.json", "hopper.mp4", "hopper.npz", "hopper_2d.npz"):
    assert n in names
  assert not [n for n in names if n.startswith(".tmp")]
  kp = np.load(out / "hopper_2d.npz")["hopper"]
  assert (kp[..., 2] > 0).any(-1).all()   # a person in every frame
  # The nose lies on the pasted portrait (x 100 + 6 i .. + 512, y 60 +- 20
  # .. + 600) and moves right with it, about 6 px per frame.
  nose = kp[:, 9, :2]
  assert ((nose[:, 0] > 100) & (nose[:, 0] < 800)).all()
  assert ((nose[:, 1] > 40) & (nose[:, 1] < 680)).all()
  assert np.polyfit(np.arange(24), nose[:, 0], 1)[0] == pytest.approx(6, abs=2)
  first = dict(np.load(out / "hopper.npz"))
  meta = json.loads(str(first["meta"]))
  assert meta["fps"] == pytest.approx(24) and meta["image_size"] == [1280,
                                                                     720]
  # The 2D file lifts again, without detection, to the same 3D.
  again = tmp_path / "again"
  lift.infer(str(out / "hopper_2d.npz"), str(again),
             lift.Options(render="none"))
  np.testing.assert_allclose(np.load(again / "hopper.npz")["pose3d"],
                             first["pose3d"], atol=1e-5)
