"""BlazePose's 33 landmarks (MediaPipe Pose) -> the model's H36M-17 skeleton.

BlazePose (`mediapipe.solutions.pose`) gives per frame 33 landmarks with
x, y normalised by the image width / height and a ``visibility`` in [0, 1]
(the probability that the landmark is in the image and not occluded). Its
first 33 names include the 17 COCO keypoints under other names, so the
landmarks are reduced to COCO-17 and converted to H36M-17 by the same rules
as a COCO-17 detector's output (`keypoint_formats.to_h36m`, table in its
module docstring): Hip = mid(hips), Thorax = mid(shoulders), Spine = their
mid-point, Head = the nose mirrored through the eyes' mid-point. BlazePose's
extra landmarks (inner / outer eye corners, mouth, hands, heels, toes) are
not used by the model.

Visibility is the confidence. A frame where the detector found nobody is
all zeros with confidence 0: a missed frame, filled in by
`keypoint_formats.fill_missing` and flagged ``interpolated`` like a missed
frame of any other detector.
"""

import numpy as np

from opformer_jax import errors
from opformer_jax.formats import keypoint_formats

# mediapipe.solutions.pose.PoseLandmark order, in our l_ / r_ spelling.
BLAZEPOSE33_JOINTS = (
    "nose", "l_eye_inner", "l_eye", "l_eye_outer", "r_eye_inner", "r_eye",
    "r_eye_outer", "l_ear", "r_ear", "mouth_left", "mouth_right",
    "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist",
    "l_pinky", "r_pinky", "l_index", "r_index", "l_thumb", "r_thumb",
    "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle", "l_heel",
    "r_heel", "l_foot_index", "r_foot_index")
NUM_LANDMARKS = len(BLAZEPOSE33_JOINTS)
# BlazePose index of each COCO-17 keypoint, by name.
COCO17_FROM_BLAZEPOSE = tuple(
    BLAZEPOSE33_JOINTS.index(n) for n in keypoint_formats.COCO17_JOINTS)
# Fewer frames with a person than this share: no lifting (noise, not motion).
MIN_FOUND_FRACTION = 0.5


def to_coco17(landmarks) -> np.ndarray:
  """(..., 33, C) BlazePose landmarks -> (..., 17, C) in COCO-17 order."""
  landmarks = np.asarray(landmarks)
  if landmarks.shape[-2] != NUM_LANDMARKS:
    raise ValueError(f"landmarks have shape {landmarks.shape}; expected "
                     f"(..., {NUM_LANDMARKS}, C) BlazePose landmarks")
  return landmarks[..., COCO17_FROM_BLAZEPOSE, :]


def to_h36m_raw(landmarks, name="video"):
  """BlazePose landmarks -> H36M-17 keypoints, gaps left as gaps.

  Args:
    landmarks: (F, 33, 3) x px, y px, visibility; a frame without a person
      is all zeros.
    name: the video, for messages.

  Returns:
    (F, 17, 3) float32 x px, y px, confidence (H36M-17 order); derived joints
    get the minimum visibility of their sources, missed frames stay (0, 0)
    with confidence 0, so the array reads back (`keypoint_formats`'s
    ``array`` format) as the same track.
  """
  coco = to_coco17(np.asarray(landmarks, np.float32))
  track = keypoint_formats.Track(
      name=name, kp2d=coco[..., :2], conf=coco[..., 2], layout="coco17",
      image_size=None, fps=None, frame_ids=np.arange(len(coco)),
      interpolated=np.zeros(len(coco), bool))
  h36m = keypoint_formats.to_h36m(track)
  return np.concatenate([h36m.kp2d, h36m.conf[..., None]], -1)


def check_found(where: str, found) -> None:
  """Raises DataError when a person was found in too few frames.

  Args:
    where: the video, for the message.
    found: (F,) bool, a person detected in the frame.
  """
  found = np.asarray(found, bool)
  if found.size == 0:
    raise errors.DataError(errors.bad_input(
        where, "no frame decoded (in the --start/--end range)",
        "a video with at least one frame"))
  share = float(found.mean())
  if share < MIN_FOUND_FRACTION:
    raise errors.DataError(errors.bad_input(
        where, f"a person was found in only {int(found.sum())} of "
        f"{found.size} frames ({share:.0%})", "a person visible in at least "
        f"{MIN_FOUND_FRACTION:.0%} of the frames (lifting the rest would be "
        "noise)"))
