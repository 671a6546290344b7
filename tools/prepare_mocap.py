r"""Converts motion capture (joint npz, BVH) to the project NPZ schema by
projecting it through cameras: <output_dir>/train.npz and test.npz
(validation).

  # CMU mocap of ../shared/data through the Human3.6M calibrations:
  python tools/prepare_mocap.py \
      --inputs=../shared/data/mocap/cmu_gait.npz,\
../shared/data/mocap/cmu_actions.npz \
      --cameras=h36m --h36m_cameras=../shared/data/cameras/h36m_cameras.json \
      --noise_px=2 --output_dir=data/mocap

  # Your BVH files (CMU joint names) through random cameras:
  python tools/prepare_mocap.py --inputs=a.bvh,b.bvh --cameras=random \
      --val_subjects=b --output_dir=data/my_mocap

Joint npz: name -> (F, 17, 3) mm in H36M-17 order plus a `__meta__` JSON
(fps, up_axis). BVH: joints mapped to H36M-17 by name (--bvh_mapping, a JSON
file {h36m_joint: source_joint or [joints to average]}; default: the CMU
skeleton), scaled by --bvh_unit_mm.
"""

import json

from absl import app
from absl import flags

from opformer_jax.data import convert_util
from opformer_jax.data import mocap

_INPUTS = flags.DEFINE_list("inputs", None, "Joint .npz and/or .bvh files.")
_CAMERAS = flags.DEFINE_enum(
    "cameras", "h36m", ["h36m", "random"], "Real Human3.6M calibrations "
    "(with lens distortion) or random pinhole cameras around the subject.")
_H36M_CAMERAS = flags.DEFINE_string(
    "h36m_cameras", "../shared/data/cameras/h36m_cameras.json",
    "h36m_cameras.json, for --cameras=h36m.")
_NUM_RANDOM = flags.DEFINE_integer("num_random_cameras", 4,
                                   "Random cameras per sequence.")
_NOISE_PX = flags.DEFINE_float(
    "noise_px", 0.0, "Detector-like 2D jitter (px std) with rare outliers "
    "and a confidence that falls with the error; 0 = exact GT 2D.")
_FPS = flags.DEFINE_float("fps", 50.0, "Output frame rate (Human3.6M: 50); "
                          "0 keeps each source's rate.")
_VAL = flags.DEFINE_list(
    "val_subjects", list(mocap.DEFAULT_VAL),
    "Validation split: a number N = CMU subject N (names 'N_<trial>'); "
    "anything else = a prefix of '<file stem>/<sequence name>'.")
_MIN_FRAMES = flags.DEFINE_integer(
    "min_frames", 27, "Shortest in-view stretch kept as a sequence.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of cameras, heading, noise.")
_BVH_MAPPING = flags.DEFINE_string(
    "bvh_mapping", None, "JSON joint mapping for BVH files (default CMU).")
_BVH_UNIT_MM = flags.DEFINE_float(
    "bvh_unit_mm", mocap.CMU_UNIT_MM, "Millimetres per BVH unit (CMU: "
    "25.4 / 0.45 = 56.444).")
_SOURCE_FPS = flags.DEFINE_float(
    "source_fps", None, "Frame rate of npz inputs whose __meta__ lacks it "
    "(overrides it).")
_UP_AXIS = flags.DEFINE_enum(
    "up_axis", None, ["y", "z"], "Up axis of npz inputs (overrides "
    "__meta__); BVH files are y-up.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None,
                                  "Where train.npz and test.npz go.")
flags.mark_flags_as_required(["inputs", "output_dir"])


def main(argv):
  del argv
  mapping = None
  if _BVH_MAPPING.value:
    with open(_BVH_MAPPING.value) as f:
      mapping = json.load(f)
  convert_util.run_cli(lambda: mocap.convert(
      _INPUTS.value, _OUTPUT_DIR.value, cameras=_CAMERAS.value,
      cameras_json=_H36M_CAMERAS.value if _CAMERAS.value == "h36m" else None,
      fps=_FPS.value or None, noise_px=_NOISE_PX.value,
      val_subjects=_VAL.value, seed=_SEED.value,
      num_random_cameras=_NUM_RANDOM.value, min_frames=_MIN_FRAMES.value,
      bvh_mapping=mapping, bvh_unit_mm=_BVH_UNIT_MM.value,
      source_fps=_SOURCE_FPS.value, up_axis=_UP_AXIS.value, progress=True))


if __name__ == "__main__":
  app.run(main)
