"""BVH animation files: read (parse + forward kinematics).

A BVH file is a joint hierarchy (HIERARCHY: names, OFFSETs from the parent,
the CHANNELS each joint animates) and one line of channel values per frame
(MOTION). Rotation channels compose in the listed order: "Zrotation
Xrotation Yrotation" means R = Rz Rx Ry acting on column vectors (intrinsic
Z, X, Y), angles in degrees. End Sites are named '<parent>_end'.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
from scipy.spatial.transform import Rotation

from opformer_jax import errors


@dataclasses.dataclass(frozen=True)
class Bvh:
  """A parsed BVH file.

  Attributes:
    joints: joint names in file order; End Sites are '<parent>_end'.
    parents: parent index per joint (-1 for the root).
    offsets: (J, 3) offsets from the parent, file units.
    channels: channel names per joint (empty for End Sites).
    frame_time: seconds per frame.
    motion: (F, C) channel values (degrees for rotations).
  """
  joints: tuple
  parents: tuple
  offsets: np.ndarray
  channels: tuple
  frame_time: float
  motion: np.ndarray

  @property
  def fps(self) -> float:
    # Files store the frame time rounded ('.0083333'): snap to an integer
    # rate when that is what it means.
    fps = 1.0 / self.frame_time
    return float(round(fps)) if abs(fps - round(fps)) < 0.01 else fps


def _parse_hierarchy(path, head: str):
  """HIERARCHY text -> (joints, parents, offsets, channels) lists."""
  tokens = head.split()
  joints, parents, offsets, channels = [], [], [], []
  stack = []
  i = tokens.index("HIERARCHY") + 1
  try:
    while i < len(tokens):
      tok = tokens[i]
      if tok in ("ROOT", "JOINT"):
        joints.append(tokens[i + 1])
        parents.append(stack[-1] if stack else -1)
        i += 2
      elif tok == "End":
        parent = joints[stack[-1]]
        name = f"{parent}_end"
        k = 1
        while name in joints:
          k += 1
          name = f"{parent}_end{k}"
        joints.append(name)
        parents.append(stack[-1])
        channels.append(())
        i += 2
      elif tok == "{":
        stack.append(len(joints) - 1)
        i += 1
      elif tok == "}":
        stack.pop()
        i += 1
      elif tok == "OFFSET":
        offsets.append([float(t) for t in tokens[i + 1:i + 4]])
        i += 4
      elif tok == "CHANNELS":
        n = int(tokens[i + 1])
        channels.append(tuple(tokens[i + 2:i + 2 + n]))
        i += 2 + n
      else:
        raise ValueError(f"unexpected token {tok!r}")
  except (ValueError, IndexError) as e:
    raise errors.DataError(f"{path}: HIERARCHY: {e}") from None
  if stack or len(offsets) != len(joints) or len(channels) != len(joints):
    raise errors.DataError(f"{path}: HIERARCHY: unbalanced braces or a "
                           "joint without OFFSET / CHANNELS")
  for ch in channels:
    for c in ch:
      if c[1:] not in ("position", "rotation") or c[0] not in "XYZ":
        raise errors.DataError(f"{path}: HIERARCHY: unknown channel {c!r}")
  return joints, parents, offsets, channels


def parse_bvh(path: str) -> Bvh:
  """Parses a BVH file (HIERARCHY and MOTION sections)."""
  with open(path) as fobj:
    text = fobj.read()
  head, sep, motion_text = text.partition("MOTION")
  if not sep or "HIERARCHY" not in head:
    raise errors.DataError(f"{path}: not a BVH file (needs HIERARCHY and "
                           "MOTION sections)")
  joints, parents, offsets, channels = _parse_hierarchy(path, head)
  m = re.search(r"Frames:\s*(\d+)\s*Frame Time:\s*([0-9.eE+-]+)(.*)",
                motion_text, re.S)
  if not m:
    raise errors.DataError(f"{path}: MOTION: expected 'Frames:' and "
                           "'Frame Time:' lines")
  num_frames, frame_time = int(m.group(1)), float(m.group(2))
  num_channels = sum(len(c) for c in channels)
  try:
    values = np.array(m.group(3).split(), np.float64)
  except ValueError as e:
    raise errors.DataError(f"{path}: MOTION: {e}") from None
  if values.size != num_frames * num_channels or frame_time <= 0:
    raise errors.DataError(
        f"{path}: MOTION: {values.size} values, expected Frames x channels "
        f"= {num_frames} x {num_channels} (and Frame Time > 0)")
  motion = values.reshape(num_frames, num_channels)
  if not np.isfinite(motion).all():
    raise errors.DataError(f"{path}: MOTION: NaN/inf values")
  return Bvh(tuple(joints), tuple(parents), np.array(offsets), tuple(channels),
             frame_time, motion)


def bvh_positions(bvh: Bvh) -> np.ndarray:
  """Forward kinematics: (F, J, 3) world positions of all joints and End
  Sites, file units.

  A joint's rotation channels compose in the listed order (for "Zrotation
  Xrotation Yrotation", R = Rz Rx Ry acting on column vectors); its position
  is the parent's position plus the parent's global rotation applied to
  (OFFSET + position channels).
  """
  num_frames = len(bvh.motion)
  num_joints = len(bvh.joints)
  pos = np.zeros((num_frames, num_joints, 3))
  rot = np.zeros((num_frames, num_joints, 3, 3))
  col = 0
  for j in range(num_joints):
    local_t = np.broadcast_to(bvh.offsets[j], (num_frames, 3)).copy()
    local_r = Rotation.identity(num_frames)
    for ch in bvh.channels[j]:
      values = bvh.motion[:, col]
      col += 1
      if ch.endswith("position"):
        local_t[:, "XYZ".index(ch[0])] += values
      else:
        # r1 * r2 is the matrix product R1 R2: later channels act first.
        local_r = local_r * Rotation.from_euler(
            ch[0].lower(), values[:, None], degrees=True)
    local_r = local_r.as_matrix()
    p = bvh.parents[j]
    if p < 0:
      pos[:, j], rot[:, j] = local_t, local_r
    else:
      pos[:, j] = pos[:, p] + np.einsum("fij,fj->fi", rot[:, p], local_t)
      rot[:, j] = rot[:, p] @ local_r
  return pos
