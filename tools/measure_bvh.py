r"""Lifts a keypoint file, writes each track's BVH and reads it back with the
project's BVH reader: how far the file's joints are from the lifted ones.

  python tools/measure_bvh.py --input=../shared/data/wild2d/short_clips_detectron2_coco17.npz
  python tools/measure_bvh.py --input=... --workdir=runs/mocap   # or --model=DIR

Per track and over all: the read-back error (mm) against the lifted
camera-frame joints, the lifted bones' mean deviation from their median
length (what the BVH cannot follow: its bones have one length), and the
error against the lifted joints with every bone set to its median length
along its own direction (what remains: the pelvis and shoulder girdles'
deformation).
"""

import os
import tempfile

from absl import flags
import numpy as np

from opformer_jax import cli
from opformer_jax import errors
from opformer_jax.formats import bvh
from opformer_jax import skeleton

_INPUT = flags.DEFINE_string("input", None, "Keypoint file (infer formats).")
_MODEL = flags.DEFINE_string("model", None, "A pretrained.save folder.")
_WORKDIR = flags.DEFINE_string("workdir", None, "A training run.")
_OUTPUT = flags.DEFINE_string("output", None, "Where the outputs go "
                              "(default: a temporary folder).")
flags.mark_flag_as_required("input")

_PARENTS = np.asarray(skeleton.H36M.parents)


def median_length_joints(joints):
  """(F, 17, 3) joints with each bone at its median length, same direction."""
  lengths = np.median(np.linalg.norm(
      joints[:, 1:] - joints[:, _PARENTS[1:]], axis=-1), axis=0)
  out = joints.copy()
  for j in range(1, len(_PARENTS)):
    d = joints[:, j] - joints[:, _PARENTS[j]]
    d = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)
    out[:, j] = out[:, _PARENTS[j]] + d * lengths[j - 1]
  return out


def _track_errors(stem):
  """(read-back error (F, 17), bone deviation (F, 16), error vs median-length
  joints (F, 17)), mm."""
  res = np.load(stem + ".npz")
  joints = (res["pose3d_mm"] + res["root_cam_mm"][:, None]).astype(np.float64)
  parsed = bvh.parse_bvh(stem + ".bvh")
  back = bvh.bvh_positions(parsed)[:, [parsed.joints.index(n)
                                       for n in skeleton.H36M.joints]]
  back = bvh.camera_to_bvh(back * 10)    # cm, y up -> mm, camera axes
  bones = np.linalg.norm(joints[:, 1:] - joints[:, _PARENTS[1:]], axis=-1)
  return (np.linalg.norm(back - joints, axis=-1),
          np.abs(bones - np.median(bones, axis=0)),
          np.linalg.norm(back - median_length_joints(joints), axis=-1))


def _print(name, err, dev, rest):
  """Means over frames and joints (bones); inputs (F, 17), (F, 16), (F, 17)."""
  print(f"{name:24s} {len(err):6d} frames: read-back {err.mean():6.1f} mm "
        f"(p95 {np.percentile(err, 95):6.1f}), bone-length deviation "
        f"{dev.mean():5.1f} mm, vs median-length joints {rest.mean():5.1f} "
        "mm")


def main(argv):
  del argv
  from opformer_jax.infer import lift  # pylint: disable=g-import-not-at-top
  opts = lift.Options(render="none", bvh=True)
  if _OUTPUT.value:
    lift.check_output(_OUTPUT.value)
  tracks = lift.read_tracks(_INPUT.value, opts)   # before any output
  model, config, name = lift.load_model(workdir=_WORKDIR.value,
                                        model_dir=_MODEL.value)
  if config.model.layout != "h36m17":
    raise errors.UserError(f"{name}: its layout is {config.model.layout}; "
                           "expected an H36M-17 model (measure_bvh compares "
                           "H36M-17 outputs)")
  out_dir = _OUTPUT.value or tempfile.mkdtemp(prefix="measure_bvh_")
  res = lift.infer_file(model, config, _INPUT.value, out_dir, opts,
                        tracks=tracks)
  print(f"{name}: {res['frames']} frames in {len(res['tracks'])} tracks, "
        f"outputs in {out_dir}")
  total = []
  for track, files in res["tracks"].items():
    stem = os.path.splitext(files[0])[0]
    total.append(_track_errors(stem))
    _print(track, *total[-1])
  _print("all", *(np.concatenate([t[k] for t in total]) for k in range(3)))


if __name__ == "__main__":
  cli.run(main)
