"""BVH animation files: read (parse + forward kinematics) and write.

A BVH file is a joint hierarchy (HIERARCHY: names, OFFSETs from the parent,
the CHANNELS each joint animates) and one line of channel values per frame
(MOTION). Rotation channels compose in the listed order: "Zrotation
Xrotation Yrotation" means R = Rz Rx Ry acting on column vectors (intrinsic
Z, X, Y), angles in degrees. The reader names End Sites '<parent>_end'.

`write_bvh` turns an H36M-17 joint sequence into a BVH animation of the
H36M-17 hierarchy (joints named as `skeleton.H36M` names them, root `hip`
with position channels, every other joint "Zrotation Xrotation Yrotation"):

* Rest pose (the OFFSETs): a T-pose, y up, facing +z (its left is +x), each
  bone as long as its median length over the sequence. The pelvis and the
  thorax carry three children each; their directions (hips, shoulders) are
  the sequence's median directions in the parent's frame, since one rigid
  rotation must place all three.
* Rotations. Each joint's global rotation takes its rest frame to the frame
  built from the bone to its (first) child and a twist reference: the hips'
  line for the pelvis, the shoulders' line for spine, thorax and neck, and
  the limb's bend axis (upper bone x lower bone) for hips, knees, shoulders
  and elbows, leaning on the pelvis line (legs) or the trunk's up axis (arms)
  where a limb is nearly straight. So a knee or elbow bent by more than
  ~12 degrees turns about one axis only. Leaf joints (ankles, wrists, head)
  keep their parent's rotation; the pelvis and thorax are then re-fitted to
  all three of their children (`_fit_girdles`).
* Forward kinematics of the file reproduces every joint exactly where the
  bone lengths equal their medians and the pelvis and shoulder girdles move
  rigidly; otherwise a joint is off by its bones' length change (and the
  girdles' deformation, spread over their children by a weighted
  least-squares rotation).
"""

from __future__ import annotations

import dataclasses
import re
import warnings

import numpy as np
from scipy.spatial.transform import Rotation

from opformer_jax import errors
from opformer_jax import fileio
from opformer_jax import skeleton


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


# ---------------------------------------------------------------------------
# Writing an H36M-17 sequence.
# ---------------------------------------------------------------------------

_X, _Y, _Z = np.eye(3)
# Rest direction of the bone ending at each single-child joint's child and
# at the primary children of the pelvis and thorax (T-pose, y up, facing +z).
_REST_DIR = {"spine": _Y, "thorax": _Y, "nose": _Y, "head": _Y,
             "r_knee": -_Y, "r_ankle": -_Y, "l_knee": -_Y, "l_ankle": -_Y,
             "l_elbow": _X, "l_wrist": _X, "r_elbow": -_X, "r_wrist": -_X}
# Joint -> (primary child, twist reference, the reference's rest direction).
# 'a-b': joint a minus joint b. 'bend:a,b,c|d-e': a limb's bend axis
# (b - a) x (c - b), leaning on the fallback d - e where the limb is nearly
# straight; 'bend+' also turns the axis to the fallback's side, so a knee
# that overextends bends backwards instead of flipping its twist.
_FRAMES = {
    "hip": ("spine", "l_hip-r_hip", _X),
    "spine": ("thorax", "l_shoulder-r_shoulder", _X),
    "thorax": ("nose", "l_shoulder-r_shoulder", _X),
    "nose": ("head", "l_shoulder-r_shoulder", _X),
    "r_hip": ("r_knee", "bend+:r_hip,r_knee,r_ankle|l_hip-r_hip", _X),
    "r_knee": ("r_ankle", "bend+:r_hip,r_knee,r_ankle|l_hip-r_hip", _X),
    "l_hip": ("l_knee", "bend+:l_hip,l_knee,l_ankle|l_hip-r_hip", _X),
    "l_knee": ("l_ankle", "bend+:l_hip,l_knee,l_ankle|l_hip-r_hip", _X),
    "l_shoulder": ("l_elbow", "bend:l_shoulder,l_elbow,l_wrist|thorax-nose",
                   -_Y),
    "l_elbow": ("l_wrist", "bend:l_shoulder,l_elbow,l_wrist|thorax-nose",
                -_Y),
    "r_shoulder": ("r_elbow", "bend:r_shoulder,r_elbow,r_wrist|nose-thorax",
                   _Y),
    "r_elbow": ("r_wrist", "bend:r_shoulder,r_elbow,r_wrist|nose-thorax",
                _Y),
}
# End Sites of the leaf joints: rest direction and length over the bone
# into the leaf (a foot forward, a hand along the forearm, the crown).
_END_SITES = {"r_ankle": (_Z, 0.4), "l_ankle": (_Z, 0.4), "head": (_Y, 0.25),
              "l_wrist": (_X, 0.3), "r_wrist": (-_X, 0.3)}
# The fallback's weight is _STRAIGHT_WEIGHT (1 - sin(bend) / _STRAIGHT_SIN)^2
# below _STRAIGHT_SIN and 0 above, so a limb bent more than ~11.5 degrees
# turns about its bend axis alone.
_STRAIGHT_WEIGHT, _STRAIGHT_SIN = 0.1, 0.2
ROTATION_ORDER = "ZXY"


def camera_to_bvh(kp3d):
  """Camera axes (x right, y down, z away) -> BVH (x, y up, z towards the
  camera): (x, -y, -z), a rotation by 180 degrees about x."""
  kp3d = np.asarray(kp3d, np.float64)
  return kp3d * np.array([1.0, -1.0, -1.0])


def _unit(v):
  n = np.linalg.norm(v, axis=-1, keepdims=True)
  return v / np.maximum(n, 1e-12)


def _twist_reference(spec: str, kp3d):
  """(F, 3) twist reference vector of a `_FRAMES` spec."""
  idx = skeleton.H36M.joints.index
  if not spec.startswith("bend"):
    a, b = spec.split("-")
    return kp3d[:, idx(a)] - kp3d[:, idx(b)]
  kind, _, rest = spec.partition(":")
  limb, _, fallback = rest.partition("|")
  a, b, c = (kp3d[:, idx(n)] for n in limb.split(","))
  axis = np.cross(_unit(b - a), _unit(c - b))       # |axis| = sin(bend)
  d, e = fallback.split("-")
  toward = _unit(kp3d[:, idx(d)] - kp3d[:, idx(e)])
  if kind == "bend+":
    axis = axis * np.where((axis * toward).sum(-1, keepdims=True) < 0, -1, 1)
  sin = np.linalg.norm(axis, axis=-1, keepdims=True)
  weight = _STRAIGHT_WEIGHT * np.clip(1 - sin / _STRAIGHT_SIN, 0, 1) ** 2
  return axis + weight * toward


def _frame(primary, secondary):
  """(..., 3, 3) orthonormal frames, columns (p, s orthogonalised, p x s)."""
  a = _unit(primary)
  b = secondary - (secondary * a).sum(-1, keepdims=True) * a
  # A reference parallel to the bone fixes no twist: take any normal.
  other = np.where(np.abs(a[..., :1]) < 0.9, _X, _Y)
  spare = np.cross(a, other)
  small = np.linalg.norm(b, axis=-1, keepdims=True) < 1e-9
  b = _unit(np.where(small, spare, b))
  return np.stack([a, b, np.cross(a, b)], -1)


def _global_rotations(kp3d):
  """{joint index: (F, 3, 3) rotation from the rest pose} for the joints
  with children."""
  idx = skeleton.H36M.joints.index
  rots = {}
  for joint, (child, spec, rest_ref) in _FRAMES.items():
    j = idx(joint)
    posed = _frame(kp3d[:, idx(child)] - kp3d[:, j],
                   _twist_reference(spec, kp3d))
    rest = _frame(_REST_DIR[child], rest_ref)
    rots[j] = posed @ rest.T
  return rots


def _rest_offsets(kp3d, rots):
  """(J, 3) T-pose offsets with the sequence's median bone lengths."""
  lay = skeleton.H36M
  offsets = np.zeros((lay.num_joints, 3))
  for j, p in enumerate(lay.parents):
    if p < 0:
      continue
    bone = kp3d[:, j] - kp3d[:, p]
    name = lay.joints[j]
    if name in _REST_DIR:
      direction = _REST_DIR[name]
    else:
      # A girdle joint: its median direction in the parent's rest frame.
      local = np.einsum("fji,fj->fi", rots[p], _unit(bone))
      direction = _unit(np.median(local, axis=0))
    offsets[j] = np.median(np.linalg.norm(bone, axis=-1)) * direction
  return offsets


def _fit_girdles(kp3d, rots, offsets):
  """Re-fits the pelvis and thorax rotations to all three children at once.

  Their children do not keep fixed angles (a shrug moves the shoulders
  against the neck), so no rotation places all three exactly: the weighted
  least-squares rotation spreads the miss, each child weighted by its
  squared bone length times the joints it carries.
  """
  lay = skeleton.H36M
  carried = np.ones(lay.num_joints)
  for j in range(lay.num_joints - 1, 0, -1):
    carried[lay.parents[j]] += carried[j]
  girdles = [j for j in rots if lay.parents.count(j) > 1]
  for g in girdles:
    kids = [c for c, p in enumerate(lay.parents) if p == g]
    weights = carried[kids] * (offsets[kids] ** 2).sum(-1)
    rots[g] = align_rotations(_unit(kp3d[:, kids] - kp3d[:, g:g + 1]),
                              _unit(offsets[kids]), weights)
  return rots


def align_rotations(posed, rest, weights):
  """Per frame, the rotation R minimising sum_k w_k |posed_k - R rest_k|^2.

  `Rotation.align_vectors` (the Kabsch algorithm) for a batch of frames:
  scipy's solves one frame per call (~1 ms), this one all at once.

  Args:
    posed: (F, K, 3) vectors per frame.
    rest: (K, 3) the same vectors in the rest frame.
    weights: (K,) non-negative.

  Returns:
    (F, 3, 3) rotation matrices (det +1).
  """
  h = np.einsum("k,ki,fkj->fij", weights, rest, posed)
  u, _, vt = np.linalg.svd(h)
  # Flip the weakest axis where the best orthogonal map is a reflection.
  d = np.sign(np.linalg.det(np.swapaxes(vt, -1, -2) @ np.swapaxes(u, -1, -2)))
  vt[:, 2] *= d[:, None]
  return np.swapaxes(vt, -1, -2) @ np.swapaxes(u, -1, -2)


def _local_euler(rots, num_frames):
  """(F, J, 3) local ZXY Euler angles (degrees), unwrapped over time."""
  lay = skeleton.H36M
  eye = np.broadcast_to(np.eye(3), (num_frames, 3, 3))
  glob = {}
  angles = np.zeros((num_frames, lay.num_joints, 3))
  for j, p in enumerate(lay.parents):
    parent = glob[p] if p >= 0 else eye
    glob[j] = rots.get(j, parent)
    local = np.swapaxes(parent, -1, -2) @ glob[j]
    with warnings.catch_warnings():
      # Gimbal lock: scipy still returns angles that compose to `local`.
      warnings.simplefilter("ignore", UserWarning)
      angles[:, j] = Rotation.from_matrix(local).as_euler(
          ROTATION_ORDER, degrees=True)
  return np.unwrap(angles, period=360.0, axis=0)


def h36m_to_bvh(kp3d, fps: float) -> Bvh:
  """An H36M-17 joint sequence -> a `Bvh` animation (module docstring).

  Args:
    kp3d: (F, 17, 3) joints in the BVH world frame (y up; see
      `camera_to_bvh`), any unit; the root's path becomes its position
      channels.
    fps: frame rate.

  Returns:
    The animation: joints = `skeleton.H36M.joints` + End Sites.
  """
  kp3d = np.asarray(kp3d, np.float64)
  lay = skeleton.H36M
  if kp3d.ndim != 3 or kp3d.shape[1:] != (lay.num_joints, 3) or not len(kp3d):
    raise ValueError(f"kp3d has shape {kp3d.shape}; expected (F, 17, 3) "
                     "H36M-17 joints, F >= 1")
  if not np.isfinite(kp3d).all():
    raise ValueError("kp3d holds NaN or inf")
  rots = _global_rotations(kp3d)
  offsets = _rest_offsets(kp3d, rots)
  rots = _fit_girdles(kp3d, rots, offsets)
  angles = _local_euler(rots, len(kp3d))
  names, parents = list(lay.joints), list(lay.parents)
  rot_channels = tuple(f"{a}rotation" for a in ROTATION_ORDER)
  channels = [("Xposition", "Yposition", "Zposition") + rot_channels] + [
      rot_channels] * (lay.num_joints - 1)
  all_offsets = list(offsets)
  for leaf, (direction, frac) in _END_SITES.items():
    j = lay.joints.index(leaf)
    names.append(f"{leaf}_end")
    parents.append(j)
    channels.append(())
    all_offsets.append(direction * frac * np.linalg.norm(offsets[j]))
  motion = np.concatenate([kp3d[:, lay.root], angles.reshape(len(kp3d), -1)],
                          axis=1)
  return Bvh(tuple(names), tuple(parents), np.array(all_offsets),
             tuple(channels), 1.0 / fps, motion)


def _hierarchy_lines(bvh: Bvh, j: int, depth: int):
  pad = "  " * depth
  children = [c for c, p in enumerate(bvh.parents) if p == j]
  offset = " ".join(f"{v:.6f}" for v in bvh.offsets[j])
  if not bvh.channels[j]:
    return [f"{pad}End Site", f"{pad}{{", f"{pad}  OFFSET {offset}",
            f"{pad}}}"]
  kind = "ROOT" if bvh.parents[j] < 0 else "JOINT"
  lines = [f"{pad}{kind} {bvh.joints[j]}", f"{pad}{{",
           f"{pad}  OFFSET {offset}",
           f"{pad}  CHANNELS {len(bvh.channels[j])} "
           + " ".join(bvh.channels[j])]
  for c in children:
    lines += _hierarchy_lines(bvh, c, depth + 1)
  return lines + [f"{pad}}}"]


def format_bvh(bvh: Bvh) -> str:
  """The text of a BVH file. End Sites (no channels) must come after
  their joint's channelled children in `bvh.joints`, as `parse_bvh` and
  `h36m_to_bvh` order them, so MOTION columns follow the hierarchy."""
  order = []
  stack = [bvh.parents.index(-1)]
  while stack:
    j = stack.pop()
    order.append(j)
    stack.extend(reversed([c for c, p in enumerate(bvh.parents) if p == j]))
  if [j for j in order if bvh.channels[j]] != [
      j for j in range(len(bvh.joints)) if bvh.channels[j]]:
    raise ValueError("joints with channels are not in hierarchy order")
  lines = ["HIERARCHY"] + _hierarchy_lines(bvh, order[0], 0)
  lines += ["MOTION", f"Frames: {len(bvh.motion)}",
            f"Frame Time: {bvh.frame_time:.8f}"]
  lines += [" ".join(f"{v:.6f}" for v in row) for row in bvh.motion]
  return "\n".join(lines) + "\n"


def write_bvh(path: str, kp3d, fps: float, *, units_per_mm: float = 0.1,
              camera_axes: bool = True) -> Bvh:
  """Writes an H36M-17 sequence as a BVH animation (atomically).

  Args:
    path: the .bvh file.
    kp3d: (F, 17, 3) joints in mm: camera axes (x right, y down, z away;
      `camera_axes`) or already y-up BVH axes. Include the root's
      trajectory to make the skeleton move through space.
    fps: frame rate.
    units_per_mm: file units per mm (default 0.1: centimetres).
    camera_axes: convert from camera axes with `camera_to_bvh`.

  Returns:
    The written animation (file units).
  """
  kp3d = np.asarray(kp3d, np.float64)
  if camera_axes:
    kp3d = camera_to_bvh(kp3d)
  bvh = h36m_to_bvh(kp3d * units_per_mm, fps)
  fileio.write_text(path, format_bvh(bvh))
  return bvh
