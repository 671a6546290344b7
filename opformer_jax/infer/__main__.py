"""`python -m opformer_jax.infer`: lift a keypoint file to 3D.

  python -m opformer_jax.infer --input=predictions.json --output=out/
  python -m opformer_jax.infer --input=clip.mp4 --output=out/ \
      [--start=S] [--end=S] [--render=mp4] [--render_fps=15]
  python -m opformer_jax.infer --workdir=runs/h36m [--config=configs/h36m.py] \
      --input=predictions.json --output=out/ [--bvh] [--focal_px=1400]

Without --workdir the default model bundled with the package lifts the
keypoints (--model: a folder saved by `opformer_jax.pretrained.save`).
"""

from absl import flags

from opformer_jax import cli


def _define_flags():
  """This entry point's flags; returns them by name."""
  f = {}
  f["step"] = flags.DEFINE_string("step", "best", "'best', 'latest' or a step.")
  f["input"] = flags.DEFINE_string(
      "input", None, "Keypoint file (see --format), or a video / image "
      "folder: BlazePose detects the 2D first (docs/video.md).")
  f["output"] = flags.DEFINE_string("output", None, "Output directory.")
  f["format"] = flags.DEFINE_enum(
      "format", "auto", ["auto", "videopose3d", "mmpose", "alphapose",
                         "openpose", "demo_npz", "array"],
      "Input format: VideoPose3D custom npz, MMPose prediction JSON, "
      "AlphaPose JSON (COCO-17 / Halpe-26), an OpenPose --write_json folder "
      "(BODY_25 / COCO-18), the keypoints.npz of the MHFormer / PoseFormerV2 "
      "/ P-STMO / MotionAGFormer demos, or H36M-17 .npy/.npz arrays.")
  f["persons"] = flags.DEFINE_enum(
      "persons", "main", ["main", "all"],
      "'main': the person seen longest and most clearly; 'all': every "
      "person, each lifted and written as <video>_person<id>.")
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
  f.update(_video_flags())
  f.update(_camera_flags())
  flags.mark_flags_as_required(["input", "output"])
  return f


def _video_flags():
  """Flags of video input (docs/video.md)."""
  f = {}
  f["start"] = flags.DEFINE_float(
      "start", 0.0, "Video input: first second to detect and lift (time "
      "from the first frame, so variable-rate files cut where players do).")
  f["end"] = flags.DEFINE_float("end", None, "Video input: stop before this "
                                "second; default the end of the video.")
  f["render_fps"] = flags.DEFINE_float(
      "render_fps", None, "Frame rate of the animation (every n-th frame "
      "drawn); default the video's rate.")
  return f


def _camera_flags():
  """Flags of the metric outputs: scale, focal length, BVH, model."""
  from opformer_jax.infer import trajectory  # pylint: disable=g-import-not-at-top
  f = {}
  f["model"] = flags.DEFINE_string(
      "model", None, "A model folder written by opformer_jax.pretrained.save "
      "(instead of --workdir); default: the bundled model.")
  f["mm_per_px"] = flags.DEFINE_float(
      "mm_per_px", None, "2.5D factor (mm per px at the subject's depth, "
      "= depth / focal length): sets the mm scale instead of the stature.")
  f["subject_height_mm"] = flags.DEFINE_float(
      "subject_height_mm", None, "The subject's standing height (stature); "
      f"default {trajectory.DEFAULT_STATURE_MM:g} mm, an adult's. Sets the "
      "mm scale and, with the focal length, the distance to the camera.")
  f["focal_px"] = flags.DEFINE_float(
      "focal_px", None, "Focal length of the video in px; default: a "
      f"{trajectory.DEFAULT_HFOV_DEG:g} degree field of view across the "
      "image's longer side (typical phone or webcam).")
  f["bvh"] = flags.DEFINE_bool("bvh", False, "Also write <track>.bvh, the "
                               "motion as a BVH animation (cm, y up).")
  return f


def main():
  cli.reexec_with_allocator()
  config, workdir = cli.define_config_and_workdir(
      "A training workdir whose checkpoint lifts the keypoints (--config "
      "optional: the checkpoint stores it); default: the bundled model.",
      required=False)
  f = _define_flags()

  def run(argv):
    del argv
    from opformer_jax.infer import lift  # pylint: disable=g-import-not-at-top
    opts = lift.Options(
        fmt=f["format"].value, persons=f["persons"].value,
        overlap=f["overlap"].value,
        flip_tta=f["flip_tta"].value,
        image_size=lift.parse_image_size(f["image_size"].value),
        render=f["render"].value,
        render_max_frames=f["render_max_frames"].value, fps=f["fps"].value,
        mm_per_px=f["mm_per_px"].value,
        subject_height_mm=f["subject_height_mm"].value,
        focal_px=f["focal_px"].value, bvh=f["bvh"].value,
        start_s=f["start"].value, end_s=f["end"].value,
        render_fps=f["render_fps"].value, progress=True)
    tracks = {}

    def check():   # before the output folder and its log.txt exist
      lift.check_options(opts)
      lift.check_output(f["output"].value)
      tracks["read"] = lift.check_input(f["input"].value, opts)
      lift.check_model_paths(workdir.value, f["model"].value, config.value)
    cli.start_jax(f["output"].value, check)
    lift.infer(f["input"].value, f["output"].value, opts,
               config=config.value, workdir=workdir.value,
               model_dir=f["model"].value, step=f["step"].value,
               tracks=tracks["read"])
  cli.run(run)


if __name__ == "__main__":
  main()
