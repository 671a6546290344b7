r"""Converts Human3.6M to the project NPZ schema: <output_dir>/{train,test}.npz.

Three source layouts (see docs/data.md):

  # (a) MotionBERT / MotionAGFormer pickle (SH detections + confidence):
  python tools/prepare_h36m.py --layout=motionbert_pkl \
      --input=h36m_sh_conf_cam_source_final.pkl --output_dir=data/h36m_sh

  # (b) VideoPose3D npz pair (no --input_2d: GT projection); the 44 Human3.6M
  # calibrations ship with the package (--cameras overrides them):
  python tools/prepare_h36m.py --layout=videopose3d \
      --input=data_3d_h36m.npz --input_2d=data_2d_h36m_cpn_ft_h36m_dbb.npz \
      --output_dir=data/h36m_cpn

  # (c) 3d-pose-baseline h36m/ folder with Stacked Hourglass detections:
  python tools/prepare_h36m.py --layout=martinez --input=h36m/ \
      --output_dir=data/h36m_sh_martinez

Train = S1, S5, S6, S7, S8; test = S9, S11. What the source lacks (the
public 3d-pose-baseline release has no detections of S11 "Directions" camera
54138969) is left out with a warning naming it and counted in the summary;
--strict makes any such gap an error. Nothing is written unless the whole
conversion succeeds.
"""

from absl import flags

from opformer_jax import cli
from opformer_jax import fileio
from opformer_jax.data import convert_util
from opformer_jax.data import h36m

_LAYOUT = flags.DEFINE_enum(
    "layout", None, ["motionbert_pkl", "videopose3d", "martinez"],
    "Source layout: MotionBERT pickle, VideoPose3D npz pair, or "
    "3d-pose-baseline h36m/ folder.")
_INPUT = flags.DEFINE_string(
    "input", None, "The pickle, data_3d_h36m.npz, or the h36m/ folder.")
_INPUT_2D = flags.DEFINE_string(
    "input_2d", None, "videopose3d: data_2d_h36m_<det>.npz (omit for the GT "
    "projection).")
_CAMERAS = flags.DEFINE_string(
    "cameras", None, "Calibrations: an h36m_cameras.json, or cameras.h5 for "
    "martinez. Default: martinez <input>/cameras.h5, otherwise the 44 "
    "Human3.6M calibrations shipped with the package.")
_MODE_2D = flags.DEFINE_enum(
    "mode_2d", None, ["detected", "gt"], "Override what kp2d holds: "
    "martinez 'gt' projects the 3D instead of reading Stacked Hourglass; "
    "videopose3d defaults to 'gt' for *_gt.npz or no 2D file.")
_STRICT = flags.DEFINE_bool(
    "strict", False, "Stop at the first gap (a camera view or take without "
    "2D, a take without 3D) instead of leaving it out.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None,
                                  "Where train.npz and test.npz go.")
flags.mark_flags_as_required(["layout", "input", "output_dir"])


def main(argv):
  del argv
  fileio.check_output_dir(_OUTPUT_DIR.value)
  convert_util.run_cli(lambda gaps: h36m.convert(
      _LAYOUT.value, _INPUT.value, _OUTPUT_DIR.value,
      input_2d_path=_INPUT_2D.value, cameras=_CAMERAS.value,
      input_2d=_MODE_2D.value, progress=True, gaps=gaps), _STRICT.value)


if __name__ == "__main__":
  cli.run(main)
