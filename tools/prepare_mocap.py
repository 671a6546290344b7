r"""Converts motion capture (joint npz, BVH) to the project NPZ schema by
projecting it through cameras: <output_dir>/train.npz and test.npz
(validation).

  # CMU mocap of ../shared/data through the Human3.6M calibrations (the 44
  # of them ship with the package; --h36m_cameras overrides them):
  python tools/prepare_mocap.py \
      --inputs=../shared/data/mocap/cmu_gait.npz,\
../shared/data/mocap/cmu_actions.npz \
      --cameras=h36m --noise_px=2 --output_dir=data/mocap

  # Actions from the sequence names (group 'action' of a regular expression
  # searched in '<file stem>/<sequence name>'), e.g. 'walk_01' -> 'walk':
  python tools/prepare_mocap.py --inputs=mine.npz --val_subjects=mine/walk_02 \
      --action_regex='/(?P<action>[a-z]+)_\d+$' --output_dir=data/mine

  # Your BVH files (CMU joint names) through random cameras:
  python tools/prepare_mocap.py --inputs=a.bvh,b.bvh --cameras=random \
      --val_subjects=b --output_dir=data/my_mocap

Joint npz: name -> (F, 17, 3) mm in H36M-17 order plus a `__meta__` JSON
(fps, up_axis). BVH: joints mapped to H36M-17 by name (--bvh_mapping, a JSON
file {h36m_joint: source_joint or [joints to average]}; default: the CMU
skeleton), scaled by --bvh_unit_mm. Both splits must come out non-empty
(--val_subjects= asks for no validation split); a sequence shorter than
--min_frames, or a camera view never in view that long, is left out with a
warning and counted in the summary (--strict: an error).
"""

import json

from absl import flags

from opformer_jax import cli
from opformer_jax import errors
from opformer_jax import fileio
from opformer_jax.data import convert_util
from opformer_jax.data import mocap

_INPUTS = flags.DEFINE_list("inputs", None, "Joint .npz and/or .bvh files.")
_CAMERAS = flags.DEFINE_enum(
    "cameras", "h36m", ["h36m", "random"], "Real Human3.6M calibrations "
    "(with lens distortion) or random pinhole cameras around the subject.")
_H36M_CAMERAS = flags.DEFINE_string(
    "h36m_cameras", None, "An h36m_cameras.json for --cameras=h36m (default: "
    "the 44 Human3.6M calibrations shipped with the package).")
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
_ACTION_REGEX = flags.DEFINE_string(
    "action_regex", None, "Regular expression with a group 'action', "
    "searched in '<file stem>/<sequence name>', that names each sequence's "
    "action (default: the name's parent folder, else the file stem).")
_STRICT = flags.DEFINE_bool(
    "strict", False, "Stop at the first sequence or camera view that would "
    "be left out.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None,
                                  "Where train.npz and test.npz go.")
flags.mark_flags_as_required(["inputs", "output_dir"])


def _read_mapping(path):
  with open(path, "rb") as f:
    try:
      return json.loads(f.read())
    except ValueError as e:
      raise errors.UserError(errors.bad_input(
          path, f"not JSON ({e})", "{h36m_joint: source joint or [joints "
          "to average]}")) from None


def _check_flags():
  """Numbers that cannot work and an output folder that is a file, refused
  in one line before any input is read."""
  fileio.check_output_dir(_OUTPUT_DIR.value)
  errors.check_number("--fps", _FPS.value, minimum=0,
                      expected="frames per second > 0, or 0 for each "
                      "source's rate")
  errors.check_number("--noise_px", _NOISE_PX.value, minimum=0,
                      expected="a 2D noise std in px >= 0")
  errors.check_number("--num_random_cameras", _NUM_RANDOM.value, minimum=1)
  errors.check_number("--min_frames", _MIN_FRAMES.value, minimum=1)
  errors.check_number("--bvh_unit_mm", _BVH_UNIT_MM.value, above=0,
                      expected="millimetres per BVH unit > 0")
  errors.check_number("--source_fps", _SOURCE_FPS.value, above=0,
                      expected="frames per second > 0")


def main(argv):
  del argv
  _check_flags()
  mapping = _read_mapping(_BVH_MAPPING.value) if _BVH_MAPPING.value else None
  convert_util.run_cli(lambda gaps: mocap.convert(
      _INPUTS.value, _OUTPUT_DIR.value, cameras=_CAMERAS.value,
      cameras_json=_H36M_CAMERAS.value if _CAMERAS.value == "h36m" else None,
      fps=_FPS.value or None, noise_px=_NOISE_PX.value,
      val_subjects=_VAL.value, seed=_SEED.value,
      num_random_cameras=_NUM_RANDOM.value, min_frames=_MIN_FRAMES.value,
      bvh_mapping=mapping, bvh_unit_mm=_BVH_UNIT_MM.value,
      source_fps=_SOURCE_FPS.value, up_axis=_UP_AXIS.value, progress=True,
      action_regex=_ACTION_REGEX.value, gaps=gaps), _STRICT.value)


if __name__ == "__main__":
  cli.run(main)
