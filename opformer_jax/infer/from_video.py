"""A video (or image folder) as the input of `python -m opformer_jax.infer`.

BlazePose (`infer.detect`) finds the person's 2D landmarks in every frame
of the --start/--end range (seconds); they are mapped to H36M-17
(`formats.blazepose`) and written, before lifting, as

  <output>/<video>_2d.npz   <video>: (F, 17, 3) x px, y px, confidence in
                            H36M-17 order, (0, 0, 0) where nobody was found;
                            image_size (w, h); fps, the mean rate of the
                            frames' timestamps (a variable-rate file's
                            keypoints resampled to that even rate).

That file is an ``array`` keypoint file: ``--input=<video>_2d.npz`` lifts
the same detections again without detecting, to the same outputs. The
lifting itself is that of any keypoint file (`infer.lift`); the render
draws the skeleton on the video frames, decoded a second time rather than
kept.
"""

from __future__ import annotations

import os

import numpy as np

from opformer_jax import errors
from opformer_jax import fileio
from opformer_jax.formats import blazepose
from opformer_jax.infer import detect
from opformer_jax.infer import video


def _stem(path: str) -> str:
  base = os.path.basename(os.path.normpath(path))
  base = os.path.splitext(base)[0] or "video"
  return "".join(c if c.isalnum() or c in "-_." else "_" for c in base)


def write_2d(path: str, name: str, dets: detect.Detections,
             fps: float) -> bool:
  """Writes the detections as an ``array`` keypoint file (atomically), on
  the even grid of `fps` (`video.resample`) if their times are uneven.

  Returns:
    Whether they were resampled (a variable-rate file).
  """
  kp = blazepose.to_h36m_raw(dets.landmarks, name)
  grid = video.even_times(dets.times_s, fps)
  if grid is not None:
    kp = video.resample(kp, dets.times_s, grid)
  with fileio.atomic_path(path) as tmp, open(tmp, "wb") as f:
    np.savez(f, **{name: kp}, image_size=np.asarray(dets.size, np.int64),
             fps=np.float64(fps))
  return grid is not None


def check_range(start_s: float, end_s: float | None) -> None:
  """Refuses a --start/--end range that holds no time."""
  if start_s < 0 or (end_s is not None and end_s <= start_s):
    end = "(the end)" if end_s is None else f"{end_s:g}"
    raise errors.UserError(
        f"--start={start_s:g} --end={end}: expected 0 <= start < end "
        "(seconds from the video's first frame)")


def detect_to_file(input_path: str, out_dir: str, start_s: float = 0.0,
                   end_s: float | None = None, fps: float | None = None,
                   progress: bool = True) -> str:
  """Detects 2D in `input_path` and writes ``<out_dir>/<video>_2d.npz``.

  Raises:
    errors.DataError: not a video, damaged, or a person in fewer than
      half the frames (nothing is written then).

  Returns:
    The 2D file's path.
  """
  check_range(start_s, end_s)
  info = video.probe(input_path, fps)
  total = None
  if info.num_frames and info.rate:
    lo = int(start_s * info.rate)
    hi = info.num_frames if end_s is None else min(
        info.num_frames, int(np.ceil(end_s * info.rate)))
    total = max(0, hi - lo)
  dets = detect.detect_video(input_path, start_s, end_s, fps,
                             progress=progress, total=total)
  blazepose.check_found(input_path, dets.found)
  rate = (fps or info.rate) if os.path.isdir(input_path) else (
      video.frame_rate(dets.times_s, info.rate))
  name = _stem(input_path)
  out = os.path.join(out_dir, f"{name}_2d.npz")
  if write_2d(out, name, dets, rate):
    steps = np.diff(dets.times_s)
    print(f"{input_path} has a variable frame rate ({1 / steps.max():.3g} to "
          f"{1 / max(steps.min(), 1e-9):.3g} frames/s): its keypoints are "
          f"resampled to an even {rate:.3g} frames/s for the model")
  missed = int((~dets.found).sum())
  print(f"Detected a person in {len(dets.found) - missed} of "
        f"{len(dets.found)} frames of {input_path} ({dets.size[0]}x"
        f"{dets.size[1]} px, {rate:.3g} frames/s); 2D keypoints in {out}")
  return out


def background(input_path: str, start_s: float = 0.0,
               end_s: float | None = None, fps: float | None = None,
               rate: float = 30.0):
  """For `render.render_animation`: rows -> their video frames, streamed.

  Row r of the 2D file is at time t0 + r / `rate` (its fps; t0 the first
  frame of the range), so each row gets the frame nearest that time: frame
  r itself for a constant-rate file, the nearest real frame for a
  resampled variable-rate one. The frames are decoded again and only the
  drawn ones kept.
  """
  def frames_of(rows):
    wanted = iter(sorted(int(r) for r in rows))
    nxt = next(wanted, None)
    prev = t0 = None
    for frame in video.frames(input_path, start_s, end_s, fps):
      t0 = frame.time_s if t0 is None else t0
      while nxt is not None and frame.time_s >= t0 + nxt / rate:
        t = t0 + nxt / rate
        closer = prev is not None and t - prev.time_s < frame.time_s - t
        yield (prev if closer else frame).rgb
        nxt = next(wanted, None)
      if nxt is None:
        return
      prev = frame
    while nxt is not None and prev is not None:   # rows after the last frame
      yield prev.rgb
      nxt = next(wanted, None)
  return frames_of
