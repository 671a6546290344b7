r"""Converts Human3.6M to the project NPZ schema: <output_dir>/{train,test}.npz.

Three source layouts (see README "Data"):

  # (a) MotionBERT / MotionAGFormer pickle (SH detections + confidence):
  python tools/prepare_h36m.py --layout=motionbert_pkl \
      --input=h36m_sh_conf_cam_source_final.pkl --output_dir=data/h36m_sh

  # (b) VideoPose3D npz pair + calibrations (no --input_2d: GT projection):
  python tools/prepare_h36m.py --layout=videopose3d \
      --input=data_3d_h36m.npz --input_2d=data_2d_h36m_cpn_ft_h36m_dbb.npz \
      --cameras=../shared/data/cameras/h36m_cameras.json \
      --output_dir=data/h36m_cpn

  # (c) 3d-pose-baseline h36m/ folder with Stacked Hourglass detections:
  python tools/prepare_h36m.py --layout=martinez --input=h36m/ \
      --output_dir=data/h36m_sh_martinez

Train = S1, S5, S6, S7, S8; test = S9, S11. Nothing is written unless the
whole conversion succeeds.
"""


from absl import app
from absl import flags

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
    "cameras", None, "Calibrations: h36m_cameras.json (videopose3d, "
    "required), or cameras.h5 / .json for martinez (default "
    "<input>/cameras.h5).")
_MODE_2D = flags.DEFINE_enum(
    "mode_2d", None, ["detected", "gt"], "Override what kp2d holds: "
    "martinez 'gt' projects the 3D instead of reading Stacked Hourglass; "
    "videopose3d defaults to 'gt' for *_gt.npz or no 2D file.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None,
                                  "Where train.npz and test.npz go.")
flags.mark_flags_as_required(["layout", "input", "output_dir"])


def main(argv):
  del argv
  if _LAYOUT.value == "videopose3d" and not _CAMERAS.value:
    raise app.UsageError("--layout=videopose3d needs --cameras="
                         "h36m_cameras.json")
  convert_util.run_cli(lambda: h36m.convert(
      _LAYOUT.value, _INPUT.value, _OUTPUT_DIR.value,
      input_2d_path=_INPUT_2D.value, cameras=_CAMERAS.value,
      input_2d=_MODE_2D.value, progress=True))


if __name__ == "__main__":
  app.run(main)
