"""Which detection is which person: 2D people linked across frames.

Detectors output the people of each frame separately. `link` turns the
detections of a video into person tracks, in this order of preference:

1. **The file's own identities**: AlphaPose's ``idx`` (a number when it ran
   with ``--pose_track`` or ``--pose_flow``; without tracking it writes a list
   of the box ids that pose NMS merged, which are not identities), MMPose's
   ``track_id`` and OpenPose's ``person_id`` (>= 0 with ``--tracking``). They
   are used when every detection has one and no frame repeats one; otherwise
   the file is associated as if it had none (logged).
2. **Association frame to frame** (`associate`): each open track predicts its
   keypoints at the new frame from its last detection moved at constant
   velocity (the mean step of the joints seen in both of its last two
   detections). The cost of a track and a detection is the mean distance
   over the joints valid in both, divided by the track's body size (the
   diagonal of the box around the valid keypoints, median of its last 10
   detections); the Hungarian algorithm
   (`scipy.optimize.linear_sum_assignment`) pairs tracks and detections at
   least total cost, and a pair is linked only when its cost is at most
   ``max_dist * sqrt(gap)`` (default 0.5 body sizes; gap = frames since the
   track was last seen).
   A detection left over starts a new track; a track unseen for more than
   ``max_gap`` frames is closed. Comparing whole poses, not only roots, keeps
   two people apart when their roots cross; the velocity carries each one
   through the crossing and through frames where one is hidden.

The **main person** (`main_track`) is the track with the largest total
confidence, the sum over its frames of the mean keypoint confidence (missed
joints count 0, scores clipped to [0, 1]): the person seen longest and most
clearly. Ties go to the larger median body size.

A joint is valid where its x, y are finite, not exactly (0, 0) (the
detectors' "not found") and its score is > 0. A detection without any valid
joint is dropped before linking (the person is absent from that frame).
"""

from __future__ import annotations

import collections
import dataclasses
import functools

from absl import logging
import numpy as np
from scipy import optimize


@dataclasses.dataclass(frozen=True)
class Detection:
  """One person in one frame.

  Attributes:
    frame: source frame number.
    kp: (K, 2) float32 pixels.
    score: (K,) float32 keypoint confidences.
    track_id: the file's identity of this person, or None.
  """
  frame: int
  kp: np.ndarray
  score: np.ndarray
  track_id: int | None = None

  @functools.cached_property
  def valid(self) -> np.ndarray:
    """(K,) bool: joints that were detected (NaN scores are not > 0)."""
    return (np.isfinite(self.kp).all(-1) & ~(self.kp == 0).all(-1) &
            (self.score > 0))

  @functools.cached_property
  def root(self) -> np.ndarray:
    """(2,) centroid of the valid joints (NaN when there is none)."""
    valid = self.valid
    return self.kp[valid].mean(0) if valid.any() else np.full(2, np.nan)

  @functools.cached_property
  def size(self) -> float:
    """Diagonal of the box around the valid joints, px (>= 1)."""
    pts = self.kp[self.valid]
    if len(pts) < 2:
      return 1.0
    return max(float(np.linalg.norm(pts.max(0) - pts.min(0))), 1.0)

  @functools.cached_property
  def confidence(self) -> float:
    """Mean over all K joints of the clipped score, 0 for missed joints."""
    return float(np.where(self.valid, np.clip(self.score, 0.0, 1.0),
                          0.0).mean())


Track = list  # list[Detection], one per frame, in frame order.


def link(detections, max_dist: float = 0.5, max_gap: int = 30,
         where: str = "") -> tuple[list[Track], list[int]]:
  """Person tracks of a video: the file's ids if usable, else `associate`.

  Args:
    detections: iterable of `Detection` (any order).
    max_dist, max_gap: `associate`'s gate and longest gap.
    where: file named in log messages.

  Returns:
    (tracks, ids): tracks (lists of Detection in frame order) in order of
    first appearance (then of id), detections without a valid joint
    dropped; ids = the file's person ids where they were used, else
    0, 1, ... in that order.
  """
  dets = [d for d in detections if d.valid.any()]
  tracks = group_by_id(dets, where)
  if tracks is not None:
    return tracks, [t[0].track_id for t in tracks]
  tracks = associate(dets, max_dist, max_gap)
  return tracks, list(range(len(tracks)))


def group_by_id(dets, where: str = "") -> list[Track] | None:
  """Groups detections by `track_id`; None when the ids are not identities.

  Ids are identities when every detection has one and no frame holds the
  same id twice.
  """
  if not dets or any(d.track_id is None for d in dets):
    return None
  seen = set()
  for d in dets:
    if (d.frame, d.track_id) in seen:
      logging.info("%s: person id %s appears twice in frame %d; ids are not "
                   "identities, associating people by position instead.",
                   where, d.track_id, d.frame)
      return None
    seen.add((d.frame, d.track_id))
  groups = collections.defaultdict(list)
  for d in sorted(dets, key=lambda d: d.frame):
    groups[d.track_id].append(d)
  return sorted(groups.values(), key=lambda t: (t[0].frame, t[0].track_id))


@dataclasses.dataclass
class _Open:
  """A track being built: its detections and constant-velocity state."""
  serial: int           # creation order, for a stable output order
  dets: list
  velocity: np.ndarray  # (2,) px per frame

  @property
  def last(self) -> Detection:
    return self.dets[-1]

  @property
  def size(self) -> float:
    """Median body size of the last 10 detections: one partial detection
    (a few joints, a small box) does not shrink the gate."""
    return float(np.median([d.size for d in self.dets[-10:]]))

  def add(self, det: Detection) -> None:
    """Appends `det`; velocity = mean step of the joints seen in both (a
    centroid step would jump when a detection finds only part of the
    body)."""
    last = self.last
    both = last.valid & det.valid
    step = (det.kp[both] - last.kp[both]).mean(0) if both.any() else (
        det.root - last.root)
    self.velocity = step / (det.frame - last.frame)
    self.dets.append(det)


def _costs(live, frame: int, dets) -> np.ndarray:
  """(tracks, detections) mean joint distance to each track's prediction,
  in units of the track's body size (module docstring)."""
  gap = np.array([frame - t.last.frame for t in live], np.float64)
  velocity = np.stack([t.velocity for t in live])              # (T, 2)
  pred = (np.stack([t.last.kp for t in live]) +
          velocity[:, None] * gap[:, None, None])              # (T, K, 2)
  kp = np.stack([d.kp for d in dets])                          # (D, K, 2)
  both = (np.stack([t.last.valid for t in live])[:, None] &
          np.stack([d.valid for d in dets])[None])             # (T, D, K)
  dist = np.linalg.norm(pred[:, None] - kp[None], axis=-1)
  count = both.sum(-1)
  mean = np.where(both, dist, 0.0).sum(-1) / np.maximum(count, 1)
  # No joint seen in both: compare the roots.
  pred_root = (np.stack([t.last.root for t in live]) +
               velocity * gap[:, None])
  root_dist = np.linalg.norm(pred_root[:, None] -
                             np.stack([d.root for d in dets])[None], axis=-1)
  size = np.array([t.size for t in live])
  return np.where(count > 0, mean, root_dist) / size[:, None]


def associate(dets, max_dist: float = 0.5, max_gap: int = 30) -> list[Track]:
  """Links detections frame to frame (module docstring, step 2).

  Args:
    dets: `Detection`s with at least one valid joint; `track_id` ignored.
    max_dist: gate, in body sizes per sqrt(frame of gap).
    max_gap: frames a track may go unseen and still be continued.

  Returns:
    Tracks in order of first appearance.
  """
  by_frame = collections.defaultdict(list)
  for d in dets:
    by_frame[d.frame].append(d)
  done, live = [], []
  for frame in sorted(by_frame):
    frame_dets = by_frame[frame]
    done += [t for t in live if frame - t.last.frame > max_gap]
    live = [t for t in live if frame - t.last.frame <= max_gap]
    matched = set()
    if live:
      cost = _costs(live, frame, frame_dets)
      gaps = np.array([frame - t.last.frame for t in live], np.float64)
      gate = max_dist * np.sqrt(gaps)[:, None]
      rows, cols = optimize.linear_sum_assignment(
          np.where(cost <= gate, cost, 1e6))
      for r, c in zip(rows, cols):
        if cost[r, c] <= gate[r, 0]:
          live[r].add(frame_dets[c])
          matched.add(c)
    for i, d in enumerate(frame_dets):
      if i not in matched:
        live.append(_Open(len(done) + len(live), [d], np.zeros(2)))
  return [t.dets for t in sorted(done + live, key=lambda t: t.serial)]


def track_confidence(track: Track) -> float:
  """Sum over the track's frames of `Detection.confidence`."""
  return float(sum(d.confidence for d in track))


def main_track(tracks: list[Track]) -> int:
  """Index of the main person (module docstring); tracks must not be empty."""
  if not tracks:
    raise ValueError("main_track needs at least one track")

  def key(i):
    return (track_confidence(tracks[i]),
            float(np.median([d.size for d in tracks[i]])))
  return max(range(len(tracks)), key=key)

