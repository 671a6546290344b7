"""Is lifted motion usable where there is no 3D truth? Figures a user sees.

On real detections (`../shared/data/wild2d`, `tools/measure_wild.py`, the
default model's card) nothing says where the joints really were, but a
usable output keeps each bone one length, the left and right limbs equal,
a standing foot still and the joints free of frame-to-frame jitter. Per
lifted track, mean over frames:

* bones: |l - median l| of each bone's length over time (mm);
* symmetry: |left - right| length of the paired limb bones (thigh, shin,
  upper arm, forearm; mm);
* skating: 3D speed (mm/frame, camera frame, root trajectory included) of
  an ankle in the frames where the 2D says it stands still (its 2D speed
  under 0.5 % of the person's 2D height per frame for at least 5 frames,
  detected with confidence > 0.3);
* accel: mean joint acceleration |p[t+1] - 2 p[t] + p[t-1]| of the
  root-relative joints (mm/frame^2; jitter raises it).
"""

import os

import numpy as np

from opformer_jax.infer import lift
from opformer_jax import skeleton

# The real Detectron2 COCO-17 detections of the shared data (wild2d).
WILD2D_FILES = ("short_clips_detectron2_coco17.npz",
                "exercises_detectron2_coco17.npz")


def wild2d_paths() -> list[str]:
  """The WILD2D_FILES under $OPFORMER_SHARED_DATA (default: ../shared/data
  beside the repository)."""
  root = os.environ.get("OPFORMER_SHARED_DATA", os.path.join(
      os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
  return [os.path.join(root, "wild2d", f) for f in WILD2D_FILES]


FIGURES = ("bones", "symmetry", "skating", "accel")
STILL_FRACTION = 0.005    # of the 2D height per frame
STILL_FRAMES = 5
MIN_CONF = 0.3
_H36M = skeleton.H36M
_BONES = np.asarray(_H36M.bones)
_BONE_OF = {_H36M.joints[c]: i for i, (_, c) in enumerate(_H36M.bones)}
# (left, right) rows of _BONES of the paired limb bones: those whose parent
# is a left joint too (thigh, shin, upper arm, forearm), by child name.
_PAIRS = [(i, _BONE_OF["r_" + _H36M.joints[c][2:]])
          for i, (p, c) in enumerate(_H36M.bones)
          if _H36M.joints[p].startswith("l_")]


def _runs_at_least(mask, n):
  """(F,) bool: True inside runs of `mask` at least `n` long."""
  out = np.zeros_like(mask)
  start = None
  for i, m in enumerate(np.append(mask, False)):
    if m and start is None:
      start = i
    elif not m and start is not None:
      if i - start >= n:
        out[start:i] = True
      start = None
  return out


def track_figures(pose_mm, root_mm, kp2d, conf):
  """Figures of one lifted track -> {figure: (sum, count)}.

  Args:
    pose_mm: (F, 17, 3) root-relative joints, mm.
    root_mm: (F, 3) root position in the camera frame, mm.
    kp2d: (F, 17, 2) the 2D input, px; conf: (F, 17) its confidences.
  """
  lengths = np.linalg.norm(pose_mm[:, _BONES[:, 1]] - pose_mm[:, _BONES[:, 0]],
                           axis=-1)                             # (F, 16)
  dev = np.abs(lengths - np.median(lengths, axis=0))
  sym = np.abs(lengths[:, [l for l, _ in _PAIRS]] -
               lengths[:, [r for _, r in _PAIRS]])
  acc = np.linalg.norm(pose_mm[2:] - 2 * pose_mm[1:-1] + pose_mm[:-2], axis=-1)
  joints = pose_mm + root_mm[:, None]
  height = np.median(np.ptp(kp2d[..., 1], axis=1))
  skate = []
  for j in (_H36M.joints.index("l_ankle"), _H36M.joints.index("r_ankle")):
    speed2d = np.linalg.norm(np.diff(kp2d[:, j], axis=0), axis=-1)
    seen = (conf[1:, j] > MIN_CONF) & (conf[:-1, j] > MIN_CONF)
    still = _runs_at_least((speed2d < STILL_FRACTION * height) & seen,
                           STILL_FRAMES)
    skate.append(np.linalg.norm(np.diff(joints[:, j], axis=0),
                                axis=-1)[still])
  skate = np.concatenate(skate)
  return {"bones": (dev.sum(), dev.size), "symmetry": (sym.sum(), sym.size),
          "skating": (skate.sum(), skate.size),
          "accel": (acc.sum(), acc.size)}


def _add(total, figs):
  """Sums {figure: (sum, count)} of `figs` into `total`."""
  for k, (v, n) in figs.items():
    s0, n0 = total.get(k, (0.0, 0))
    total[k] = (s0 + v, n0 + n)
  return total


def _means(total, frames):
  return {**{k: float(v / n) if n else float("nan")
             for k, (v, n) in total.items()}, "frames": frames}


def measure(model, config, paths) -> dict:
  """Lifts each keypoint file in `paths` as `infer` does (flip TTA, 50 %
  overlap, mm from the default stature).

  Returns:
    {file name: {figure: mean, 'frames': F}} and the same over all files
    under 'all'.
  """
  opts = lift.Options(render="none")
  apply_fn = lift.make_apply_fn(model)
  out, everything, all_frames = {}, {}, 0
  for path in paths:
    total, frames = {}, 0
    for track in lift.read_tracks(path, opts):
      res, _ = lift.lift_track(apply_fn, track, config, opts)
      total = _add(total, track_figures(res["pose3d_mm"], res["root_cam_mm"],
                                        res["kp2d"], res["conf"]))
      frames += len(res["pose3d_mm"])
    out[os.path.basename(path)] = _means(total, frames)
    everything = _add(everything, total)
    all_frames += frames
  out["all"] = _means(everything, all_frames)
  return out


def table(res) -> str:
  """`measure`'s figures as aligned text rows, one per file."""
  rows = [f"{'file':40s} {'frames':>6s} " +
          " ".join(f"{k:>8s}" for k in FIGURES)]
  for file, figs in res.items():
    rows.append(f"{file:40s} {figs['frames']:6d} " +
                " ".join(f"{figs[k]:8.1f}" for k in FIGURES))
  return "\n".join(rows)
