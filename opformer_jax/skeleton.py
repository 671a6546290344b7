"""Skeleton tables: joint orders, parents, flips and OPFormer's part tables.

Everything here is a plain constant (tuples and small numpy arrays built from
them), so model code can close over it without it becoming model state.

Two joint orders are supported:

* ``h36m17``: Human3.6M-17 (MotionBERT, VideoPose3D, MMPose), root = hip 0.
* ``mpi17``: MPI-INF-3DHP-17 (MotionAGFormer / P-STMO), root = pelvis 14.

OPFormer splits a skeleton into an Origin joint and five parts (right leg,
left leg, trunk, left arm, right arm) and prepends the Origin to each part
("OParts"). Paper Table 6 also moves the Origin to the spine or thorax. Our
rule for that, applied identically to both orders: the chosen origin leaves
the trunk and the hip (pelvis) takes its place there; the limbs are unchanged.
With ``with_origin=False`` (paper Table 4, "independent parts") the five parts
have no shared token and the origin joint forms a sixth, single-token part, so
every joint still passes through the part block exactly once.
"""

import dataclasses
import functools

import numpy as np

PART_NAMES = ("right_leg", "left_leg", "trunk", "left_arm", "right_arm")
ORIGINS = ("hip", "spine", "thorax")


@dataclasses.dataclass(frozen=True)
class Layout:
  """One joint order. All fields are tuples of ints / strs."""
  name: str
  joints: tuple[str, ...]
  parents: tuple[int, ...]
  left: tuple[int, ...]   # swapped with `right` by a horizontal flip
  right: tuple[int, ...]
  # origin choice -> (origin joint, the five parts in PART_NAMES order).
  parts: dict

  @property
  def num_joints(self) -> int:
    return len(self.joints)

  @property
  def root(self) -> int:
    return self.parents.index(-1)

  @property
  def flip_perm(self) -> tuple[int, ...]:
    """`flipped[..., j, :] = pose[..., flip_perm[j], :]` (then negate x)."""
    perm = list(range(self.num_joints))
    for l, r in zip(self.left, self.right):
      perm[l], perm[r] = r, l
    return tuple(perm)

  @property
  def bones(self) -> tuple[tuple[int, int], ...]:
    return tuple((p, j) for j, p in enumerate(self.parents) if p >= 0)


H36M = Layout(
    name="h36m17",
    joints=("hip", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
            "spine", "thorax", "nose", "head", "l_shoulder", "l_elbow",
            "l_wrist", "r_shoulder", "r_elbow", "r_wrist"),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    left=(4, 5, 6, 11, 12, 13),
    right=(1, 2, 3, 14, 15, 16),
    parts={
        "hip": (0, ((1, 2, 3), (4, 5, 6), (7, 8, 9, 10), (11, 12, 13),
                    (14, 15, 16))),
        "spine": (7, ((1, 2, 3), (4, 5, 6), (0, 8, 9, 10), (11, 12, 13),
                      (14, 15, 16))),
        "thorax": (8, ((1, 2, 3), (4, 5, 6), (7, 0, 9, 10), (11, 12, 13),
                       (14, 15, 16))),
    },
)

MPI = Layout(
    name="mpi17",
    joints=("head_top", "neck", "r_shoulder", "r_elbow", "r_wrist",
            "l_shoulder", "l_elbow", "l_wrist", "r_hip", "r_knee", "r_ankle",
            "l_hip", "l_knee", "l_ankle", "pelvis", "spine", "head"),
    parents=(16, 15, 1, 2, 3, 1, 5, 6, 14, 8, 9, 14, 11, 12, -1, 14, 1),
    left=(5, 6, 7, 11, 12, 13),
    right=(2, 3, 4, 8, 9, 10),
    # Trunk in H36M order spine, thorax, nose, head = spine, neck, head,
    # head_top here; MPI's "neck" plays H36M's thorax.
    parts={
        "hip": (14, ((8, 9, 10), (11, 12, 13), (15, 1, 16, 0), (5, 6, 7),
                     (2, 3, 4))),
        "spine": (15, ((8, 9, 10), (11, 12, 13), (14, 1, 16, 0), (5, 6, 7),
                       (2, 3, 4))),
        "thorax": (1, ((8, 9, 10), (11, 12, 13), (15, 14, 16, 0), (5, 6, 7),
                       (2, 3, 4))),
    },
)

LAYOUTS = {H36M.name: H36M, MPI.name: MPI}

# The H36M-17 joints (H36M.joints order) under the names used by
# 3d-pose-baseline and the mocap files' mappings: "RFoot" / "LFoot" are the
# ankles, "Nose" is Human3.6M's neck base.
H36M_JOINT_NAMES = ("Hip", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot",
                    "Spine", "Thorax", "Nose", "Head", "LShoulder", "LElbow",
                    "LWrist", "RShoulder", "RElbow", "RWrist")

# H36M index -> MPI index of the same anatomical joint.
H36M_TO_MPI = (14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4)
# The 14 MPI joints scored by PCK/AUC (pelvis, spine, head excluded).
MPI_PCK_JOINTS = tuple(range(14))
# Human3.6M raw 32-joint mocap -> H36M-17.
H36M32_TO_17 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)


def get_layout(name: str) -> Layout:
  if name not in LAYOUTS:
    raise ValueError(
        f"Unknown joint layout {name!r}; expected one of {sorted(LAYOUTS)}.")
  return LAYOUTS[name]


@dataclasses.dataclass(frozen=True)
class PartTable:
  """Index tables for skeleton separation and recombination.

  Attributes:
    parts: token joints of each (O)Part, the origin first when present.
    origin: the origin joint, or None for independent parts.
    num_joints: J.
  """
  parts: tuple[tuple[int, ...], ...]
  origin: int | None
  num_joints: int

  @property
  def num_parts(self) -> int:
    return len(self.parts)

  @property
  def max_len(self) -> int:
    return max(len(p) for p in self.parts)

  @functools.cached_property
  def part_idx(self) -> np.ndarray:
    """(P, L) int32 joint index of each token; padding repeats token 0."""
    idx = np.zeros((self.num_parts, self.max_len), np.int32)
    for p, joints in enumerate(self.parts):
      idx[p, :len(joints)] = joints
      idx[p, len(joints):] = joints[0]
    return idx

  @functools.cached_property
  def part_len(self) -> np.ndarray:
    """(P,) int32 number of real tokens per part."""
    return np.array([len(p) for p in self.parts], np.int32)

  # The unpadded token layout of the shared-weight part block: the P origin
  # copies first (when there is an origin), then every other joint once, in
  # part order; 21 tokens for H36M with an origin, 17 without.

  @functools.cached_property
  def token_joints(self) -> np.ndarray:
    """(N_tok,) int32 joint of each token."""
    origin = [self.origin] * self.num_parts if self.origin is not None else []
    rest = [j for p in self.parts for j in p if j != self.origin]
    return np.array(origin + rest, np.int32)

  @functools.cached_property
  def group_tokens(self) -> np.ndarray:
    """(P, L) int32 token of each padded OPart slot (padding repeats the
    part's first token; it is masked out of the keys)."""
    origin = self.origin is not None
    out = np.zeros((self.num_parts, self.max_len), np.int32)
    nxt = self.num_parts if origin else 0
    for p, joints in enumerate(self.parts):
      toks = []
      for j in joints:
        if j == self.origin:
          toks.append(p)
        else:
          toks.append(nxt)
          nxt += 1
      out[p] = toks + [toks[0]] * (self.max_len - len(toks))
    return out

  @functools.cached_property
  def token_slots(self) -> np.ndarray:
    """(N_tok,) int32 padded slot (p * L + i) holding each token."""
    out = np.zeros(len(self.token_joints), np.int32)
    for p in range(self.num_parts):
      for i in range(self.part_len[p]):
        out[self.group_tokens[p, i]] = p * self.max_len + i
    return out

  @functools.cached_property
  def joint_tokens(self) -> np.ndarray:
    """(J,) int32 token whose output each joint takes. The origin maps to
    token 0, which the model overwrites with the merged origin feature."""
    out = np.zeros(self.num_joints, np.int32)
    for t, j in enumerate(self.token_joints):
      if j != self.origin:
        out[j] = t
    return out

  @functools.cached_property
  def recombine_idx(self) -> np.ndarray:
    """(J,) int32 index into the flattened ``P * L`` part tokens.

    With an origin, index ``P * L`` denotes the merged origin feature, which
    the model appends after the part tokens.
    """
    out = np.full((self.num_joints,), -1, np.int32)
    for p, joints in enumerate(self.parts):
      for i, j in enumerate(joints):
        if j == self.origin:
          continue
        assert out[j] < 0, f"joint {j} in two parts"
        out[j] = p * self.max_len + i
    if self.origin is not None:
      out[self.origin] = self.num_parts * self.max_len
    assert (out >= 0).all(), "every joint must be in a part"
    return out


@functools.lru_cache(maxsize=None)
def part_table(layout: str = "h36m17", origin: str = "hip",
               with_origin: bool = True) -> PartTable:
  """The OPart table for a joint order and origin choice (paper Table 6)."""
  lay = get_layout(layout)
  if origin not in lay.parts:
    raise ValueError(f"Unknown origin {origin!r}; expected one of {ORIGINS}.")
  origin_joint, parts = lay.parts[origin]
  if with_origin:
    oparts = tuple((origin_joint,) + p for p in parts)
    return PartTable(oparts, origin_joint, lay.num_joints)
  return PartTable(parts + ((origin_joint,),), None, lay.num_joints)


def flip_pose(pose: np.ndarray, layout: str = "h36m17") -> np.ndarray:
  """Horizontal flip about x = 0 of (..., J, C>=1) arrays.

  Negates channel 0 (x) and swaps left/right joints; other channels (y, z,
  confidence) move with their joints unchanged. Works on numpy and jax arrays.
  """
  perm = np.asarray(get_layout(layout).flip_perm)
  flipped = pose[..., perm, :]
  sign = np.ones((pose.shape[-1],), np.float32)
  sign[0] = -1.0
  return flipped * sign.astype(pose.dtype)
