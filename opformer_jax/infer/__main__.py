"""`python -m opformer_jax.infer`: lift a keypoint file to 3D.

  python -m opformer_jax.infer --config=configs/h36m.py --workdir=runs/h36m \
      --input=predictions.json --output=out/
"""

from absl import flags

from opformer_jax import cli


def _define_flags():
  """This entry point's flags; returns them by name."""
  f = {}
  f["step"] = flags.DEFINE_string("step", "best", "'best', 'latest' or a step.")
  f["input"] = flags.DEFINE_string("input", None, "Keypoint file (see --format).")
  f["output"] = flags.DEFINE_string("output", None, "Output directory.")
  f["format"] = flags.DEFINE_enum(
      "format", "auto", ["auto", "videopose3d", "mmpose", "alphapose",
                         "array"],
      "Input format: VideoPose3D custom npz, MMPose prediction JSON, "
      "AlphaPose JSON (COCO-17 / Halpe-26), or H36M-17 .npy/.npz arrays.")
  f["image_size"] = flags.DEFINE_list("image_size", None, "W,H of the video "
                                      "in px when the file stores none.")
  f["render"] = flags.DEFINE_enum("render", "gif", ["gif", "mp4", "none"],
                                  "Animation of 2D input beside 3D output.")
  f["render_max_frames"] = flags.DEFINE_integer(
      "render_max_frames", 300, "Frames drawn per animation.")
  f["overlap"] = flags.DEFINE_float("overlap", 0.5, "Window overlap in [0, 1).")
  f["flip_tta"] = flags.DEFINE_bool("flip_tta", True,
                                    "Flip test-time augmentation.")
  f["fps"] = flags.DEFINE_float("fps", None, "Frame rate when the file stores "
                                "none (default 30).")
  f["mm_per_px"] = flags.DEFINE_float(
      "mm_per_px", None, "2.5D factor (mm per px at the subject's depth, "
      "= depth / focal length) for outputs in mm.")
  f["subject_height_mm"] = flags.DEFINE_float(
      "subject_height_mm", None, "Subject's height (head to ankles) for "
      "outputs in mm, when --mm_per_px is unknown.")
  flags.mark_flags_as_required(["input", "output"])
  return f


def main():
  cli.reexec_with_allocator()
  config, workdir = cli.define_config_and_workdir(
      "The training workdir whose checkpoint lifts the keypoints.")
  f = _define_flags()

  def run(argv):
    del argv
    cli.start_jax()
    from opformer_jax.infer import lift  # pylint: disable=g-import-not-at-top
    size = f["image_size"].value
    opts = lift.Options(
        fmt=f["format"].value, overlap=f["overlap"].value,
        flip_tta=f["flip_tta"].value,
        image_size=tuple(int(v) for v in size) if size else None,
        render=f["render"].value,
        render_max_frames=f["render_max_frames"].value, fps=f["fps"].value,
        mm_per_px=f["mm_per_px"].value,
        subject_height_mm=f["subject_height_mm"].value)
    lift.infer(config.value, workdir.value, f["input"].value,
               f["output"].value, opts, f["step"].value)
  cli.run(run)


if __name__ == "__main__":
  main()
