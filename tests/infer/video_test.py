"""Streaming decode: rotation, timestamps, odd sizes, image folders, errors."""

import os
import sys

import numpy as np
import pytest
from PIL import Image

from opformer_jax import errors
from opformer_jax.infer import video

import video_clips


@pytest.fixture(name="write_clip")
def _write_clip():
  video_clips.need_av()
  return video_clips.write_clip



def test_without_the_extra_a_video_is_one_line_naming_it(tmp_path,
                                                        monkeypatch):
  monkeypatch.setitem(sys.modules, "av", None)   # as if not installed
  clip = tmp_path / "clip.mp4"
  clip.write_bytes(b"\0" * 10)
  with pytest.raises(errors.UserError, match=r'clip.mp4: video input needs '
                     r'PyAV and MediaPipe: pip install -e "\.\[video\]"'):
    video.probe(str(clip))


def _gradient(h, w, i=0):
  y, x = np.mgrid[:h, :w]
  return np.stack([x * 255 // max(1, w - 1), y * 255 // max(1, h - 1),
                   np.full_like(x, (40 * i) % 256)], -1).astype(np.uint8)


@pytest.mark.parametrize("ext", [".mov", ".avi"])
def test_odd_size_frames_decode_exactly_with_times(write_clip, tmp_path,
                                                   ext):
  imgs = [_gradient(47, 63, i) for i in range(5)]
  path = write_clip(tmp_path / f"odd{ext}", imgs, fps=25)
  info = video.probe(str(path))
  assert info.size == (63, 47) and info.rotation == 0
  out = list(video.frames(str(path)))
  assert [f.index for f in out] == [0, 1, 2, 3, 4]
  np.testing.assert_allclose([f.time_s for f in out],
                             np.arange(5) / 25, atol=1e-6)
  for f, img in zip(out, imgs):
    np.testing.assert_array_equal(f.rgb, img)
  assert video.frame_rate([f.time_s for f in out]) == pytest.approx(25)


@pytest.mark.parametrize("rotation,k", [(90, 1), (-90, 3), (180, 2)])
def test_display_rotation_is_applied(write_clip, tmp_path, rotation, k):
  img = np.zeros((48, 64, 3), np.uint8)
  img[:12, :16] = 255      # a white top-left corner
  path = write_clip(tmp_path / "phone.mp4", [img] * 2, rotation=rotation,
                    codec="libx264")
  info = video.probe(str(path))
  assert info.rotation % 360 == rotation % 360
  (first, _) = list(video.frames(str(path)))
  expect = np.rot90(img, k)   # ffmpeg's autorotate shows it so
  assert first.rgb.shape == expect.shape
  assert info.size == (expect.shape[1], expect.shape[0])
  assert np.abs(first.rgb.astype(int) - expect).mean() < 8


def test_variable_rate_uses_timestamps(write_clip, tmp_path):
  times = [0.0, 0.04, 0.08, 0.2, 0.24, 0.5]
  path = write_clip(tmp_path / "vfr.mov", [_gradient(16, 16, i)
                                           for i in range(6)], times_s=times)
  got = [f.time_s for f in video.frames(str(path))]
  np.testing.assert_allclose(got, times, atol=2e-3)
  assert video.frame_rate(got) == pytest.approx(5 / 0.5, rel=1e-2)
  # --start / --end cut by time, not by frame count.
  cut = list(video.frames(str(path), start_s=0.1, end_s=0.3))
  assert [f.index for f in cut] == [3, 4]


def test_even_times_only_for_an_uneven_file():
  assert video.even_times(np.arange(10) / 25 + 0.0004, 25.0) is None
  assert video.even_times([0.0], 25.0) is None
  times = [0.0, 0.04, 0.08, 0.2, 0.24, 0.5]
  np.testing.assert_allclose(video.even_times(times, 10.0),
                             [0.0, 0.1, 0.2, 0.3, 0.4, 0.5])


def test_resample_interpolates_between_found_frames_keeps_gaps():
  # x = 100 * t at frames with a person; the frame at 0.3 s has nobody.
  times = np.array([0.0, 0.1, 0.3, 0.4, 0.8])
  kp = np.zeros((5, 2, 3), np.float32)
  for i, t in enumerate(times):
    kp[i, :, 0], kp[i, :, 1], kp[i, :, 2] = 100 * t, 7.0, 0.9
  kp[2] = 0
  grid = np.array([0.0, 0.05, 0.2, 0.28, 0.6, 0.8])
  out = video.resample(kp, times, grid)
  # 0.05: between two found frames, x = 5. 0.2: midway 0.1 (found) .. 0.3
  # (missed): the later one is as near and is taken (a gap). 0.28: nearer
  # the missed frame. 0.6: midway 0.4 .. 0.8, x = 60.
  np.testing.assert_allclose(out[:, 0, 0], [0, 5, 0, 0, 60, 80], atol=1e-4)
  np.testing.assert_allclose(out[:, 0, 2], [0.9, 0.9, 0, 0, 0.9, 0.9])
  np.testing.assert_allclose(out[[0, 1, 4, 5], 1, 1], 7.0)


def test_one_frame_and_zero_frames(write_clip, tmp_path):
  one = write_clip(tmp_path / "one.mov", [_gradient(20, 30)])
  assert len(list(video.frames(str(one)))) == 1
  assert video.frame_rate([0.0], fallback=24) == 24
  empty = write_clip(tmp_path / "empty.mov", [])
  with pytest.raises(errors.DataError, match="empty.mov: "):
    video.probe(str(empty))


def test_not_a_video_and_truncated_are_one_line(write_clip, tmp_path):
  text = tmp_path / "notes.mp4"
  text.write_text("not a video at all\n" * 20)
  with pytest.raises(errors.DataError, match=r"notes.mp4: ffmpeg cannot "
                     r"open it .*; expected a video"):
    video.probe(str(text))
  full = write_clip(tmp_path / "full.mp4", [_gradient(32, 32, i)
                                            for i in range(20)],
                    codec="libx264")
  cut = tmp_path / "cut.mp4"
  cut.write_bytes(full.read_bytes()[:len(full.read_bytes()) // 2])
  with pytest.raises(errors.DataError, match=r"cut.mp4: .*expected a video"
                     ) as e:
    list(video.frames(str(cut)))
  assert "\n" not in str(e.value)
  # Index first (faststart): the cut file opens, then ends early.
  fast = tmp_path / "fast.mp4"
  rng = np.random.default_rng(0)   # noise: the frames dominate the file
  write_clip(fast, rng.integers(0, 256, (50, 48, 64, 3), np.uint8),
             codec="libx264", options={"movflags": "faststart"})
  data = fast.read_bytes()
  fast.write_bytes(data[:len(data) // 2])
  with pytest.raises(errors.DataError, match=r"fast.mp4: only \d+ of the 50 "
                     r"frames its index lists could be decoded"):
    list(video.frames(str(fast)))
  with pytest.raises(errors.DataError, match="missing.mp4: no such file"):
    video.probe(str(tmp_path / "missing.mp4"))


def test_image_folder_natural_order_and_errors(tmp_path):
  folder = tmp_path / "frames"
  folder.mkdir()
  for i in (1, 2, 10):
    Image.fromarray(_gradient(9, 11, i)).save(folder / f"f{i}.png")
  assert video.is_video_input(str(folder))
  out = list(video.frames(str(folder), fps=10))
  assert [f.time_s for f in out] == pytest.approx([0, 0.1, 0.2])
  np.testing.assert_array_equal(out[2].rgb, _gradient(9, 11, 10))
  assert video.probe(str(folder)).size == (11, 9)
  Image.fromarray(_gradient(5, 5)).save(folder / "f11.png")
  with pytest.raises(errors.DataError, match=r"f11.png: image is 5x5 px"):
    list(video.frames(str(folder)))
  empty = tmp_path / "nothing"
  empty.mkdir()
  assert video.is_video_input(str(empty))   # probe says what it expected
  (empty / "clip_000000000000_keypoints.json").write_text("{}")
  assert not video.is_video_input(str(empty))   # an OpenPose folder
  os.remove(empty / "clip_000000000000_keypoints.json")
  with pytest.raises(errors.DataError, match="nothing: folder holds no "
                     "images"):
    video.probe(str(empty))


def test_frames_stream_lazily_and_prefetch_reraises(write_clip, tmp_path):
  path = write_clip(tmp_path / "long.mov", [_gradient(8, 8, i)
                                            for i in range(40)])
  gen = video.frames(str(path))
  assert next(gen).index == 0   # a generator: nothing decoded ahead
  gen.close()
  got = [f.index for f in video.prefetch(video.frames(str(path)), depth=2)]
  assert got == list(range(40))

  def broken():
    yield 1
    raise errors.DataError("x.mp4: damaged")
  it = video.prefetch(broken())
  assert next(it) == 1
  with pytest.raises(errors.DataError, match="damaged"):
    next(it)


def test_is_video_input_by_extension(tmp_path):
  del tmp_path
  assert video.is_video_input("clip.MP4") and video.is_video_input("a.webm")
  assert not video.is_video_input("keypoints.json")
  assert not video.is_video_input("clip_2d.npz")
  assert os.path.splitext("x.mov")[1] in video.VIDEO_EXTENSIONS
