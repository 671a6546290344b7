r"""Measures the camera-frame root trajectory of `opformer_jax.infer` on the
CMU validation motion seen by known cameras.

  python tools/measure_trajectory.py                       # GT poses only
  python tools/measure_trajectory.py --model=DIR            # + a saved model
  python tools/measure_trajectory.py --default_model        # + the bundled one
  python tools/measure_trajectory.py --workdir=runs/mocap   # + a checkpoint

The validation sequences of ../shared/data/mocap (CMU subjects 16 and 35 and
the test/ sequences of cmu_actions) are projected as `tools/prepare_mocap.py`
does (50 fps), through the Human3.6M calibrations (real lenses, with
distortion) and through random pinhole cameras, with exact and with noisy
(`--noise_px`, detector-like) 2D. Each camera is known: the Human3.6M
calibration's focal length and principal point (its distortion is ignored,
as `infer` must), or for random cameras the pinhole fitted to the 3D/2D
pairs (exact). The root-relative pose comes from

  gt, true size     the GT pose: isolates the trajectory method;
  gt, default size  the GT pose rescaled to the default stature, what a
                    user gets without --subject_height_mm;
  lifted, true size / default size   the model's pose (with a model).

Printed per row: mean and median root position error (mm), the mean error
as a percentage of the camera distance (|root|), and the depth error alone.
"""

import time

from absl import flags
import numpy as np

from opformer_jax import cli
from opformer_jax.data import camera as camera_lib
from opformer_jax.data import mocap
from opformer_jax.infer import trajectory

_MOCAP = flags.DEFINE_list(
    "inputs", ["../shared/data/mocap/cmu_gait.npz",
               "../shared/data/mocap/cmu_actions.npz"], "Mocap joint npz files.")
_CAMERAS = flags.DEFINE_list("cameras", ["h36m", "random"],
                             "Camera sets: h36m and/or random.")
_NOISE = flags.DEFINE_list("noise_px", ["0", "2"], "2D noise levels (px).")
_MODEL = flags.DEFINE_string("model", None, "A pretrained.save folder.")
_DEFAULT = flags.DEFINE_bool("default_model", False,
                             "Also measure with the bundled default model.")
_WORKDIR = flags.DEFINE_string("workdir", None, "A training run to lift with "
                               "(its checkpoint's config).")
_FPS = flags.DEFINE_float("fps", 50.0, "Frame rate of the projected views.")


def _intrinsics(name, kp3d, kp2d, cams):
  """(focal px, principal point) of the view's camera."""
  if "/random/" not in name:
    subject, cam_id = name.split("#")[0].split("/")[-2:]
    cam = cams[(subject, cam_id)]
    return float(cam.f.mean()), np.asarray(cam.c, np.float64)
  q = kp3d[..., :2] / kp3d[..., 2:]
  f, c = [], []
  for ax in range(2):
    a = np.stack([q[..., ax].ravel(), np.ones(q[..., ax].size)], 1)
    sol = np.linalg.lstsq(a, kp2d[..., ax].ravel(), rcond=None)[0]
    f.append(sol[0])
    c.append(sol[1])
  return float(np.mean(f)), np.array(c)


def _views(items, cams, camera_set, noise_px):
  """[(name, kp2d, conf, kp3d camera mm, image size, focal, centre)]."""
  split = mocap.convert_sequences(
      items, camera_set, cams if camera_set == "h36m" else None,
      fps=_FPS.value, noise_px=noise_px, val_subjects=mocap.DEFAULT_VAL)
  split = split["test"]
  off = split["seq_offsets"]
  out = []
  for s, name in enumerate(split["seq_name"]):
    sl = slice(off[s], off[s + 1])
    kp3d = split["kp3d"][sl].astype(np.float64)
    kp2d = split["kp2d"][sl].astype(np.float64)
    focal, centre = _intrinsics(str(name), kp3d, kp2d, cams)
    out.append((str(name), kp2d, split["conf"][sl], kp3d,
                tuple(split["seq_image_size"][s]), focal, centre))
  return out


def _models():
  """[(label, (model, config))] of the models asked for."""
  from opformer_jax.infer import lift  # pylint: disable=g-import-not-at-top
  out = []
  if _MODEL.value:
    out.append((f"lifted ({_MODEL.value})",
                lift.load_model(model_dir=_MODEL.value)[:2]))
  if _DEFAULT.value:
    out.append(("lifted (default model)", lift.load_model()[:2]))
  if _WORKDIR.value:
    out.append((f"lifted ({_WORKDIR.value})",
                lift.load_model(workdir=_WORKDIR.value)[:2]))
  return out


def _lift(model_config, apply_fn, view):
  """The model's root-relative pose (mm, true size) of one view."""
  from opformer_jax.formats import keypoint_formats  # pylint: disable=g-import-not-at-top
  from opformer_jax.infer import lift  # pylint: disable=g-import-not-at-top
  name, kp2d, conf, kp3d, size, focal, _ = view
  track = keypoint_formats.make_track(name, kp2d, conf, "h36m17", size,
                                      _FPS.value)
  stature = trajectory.body_height(kp3d) / trajectory.HEAD_ANKLE_PER_STATURE
  opts = lift.Options(render="none", focal_px=focal,
                      subject_height_mm=stature)
  result, _ = lift.lift_track(apply_fn, track, model_config[1], opts)
  return result["pose3d_mm"].astype(np.float64)


def _errors(pose, view, default_size):
  name, kp2d, conf, kp3d, _, focal, centre = view
  window = max(1, round(_FPS.value * trajectory.SMOOTH_S)) | 1
  if default_size:
    pose = pose * trajectory.metric_scale(pose, "h36m17",
                                          window=window)[:, None, None]
  got = trajectory.root_trajectory(pose, kp2d, conf, focal_px=focal,
                                   principal_px=centre, window=window)
  root = kp3d[:, 0]
  err = np.linalg.norm(got - root, axis=-1)
  dist = np.linalg.norm(root, axis=-1)
  return err, err / dist, np.abs(got[:, 2] - root[:, 2]) / root[:, 2]


def _row(label, errs):
  err, rel, depth = (np.concatenate(e) for e in zip(*errs))
  print(f"  {label:34s} {err.mean():7.0f} {np.median(err):7.0f} "
        f"{100 * rel.mean():7.2f} % {100 * depth.mean():7.2f} %")


def _check_flags() -> list[float]:
  """The --noise_px levels; bad flags refused in one line before any work."""
  from opformer_jax import errors  # pylint: disable=g-import-not-at-top
  errors.check_number("--fps", _FPS.value, above=0,
                      expected="frames per second > 0")
  for name in _CAMERAS.value:
    if name not in ("h36m", "random"):
      raise errors.UserError(f"--cameras={','.join(_CAMERAS.value)}: "
                             f"{name!r}; expected h36m and/or random")
  try:
    noise = [float(n) for n in _NOISE.value]
  except ValueError:
    noise = [float("nan")]
  if not all(n >= 0 for n in noise):    # NaN fails too
    raise errors.UserError(f"--noise_px={','.join(_NOISE.value)}; expected "
                           "2D noise levels in px >= 0, e.g. 0,2")
  return noise


def main(argv):
  del argv
  noise_levels = _check_flags()
  from opformer_jax.infer import lift  # pylint: disable=g-import-not-at-top
  items = [it for it in mocap.read_inputs(_MOCAP.value)
           if mocap.is_validation(it[0], it[1], mocap.DEFAULT_VAL)]
  cams = camera_lib.load_h36m_cameras()
  models = [(label, mc, lift.make_apply_fn(mc[0])) for label, mc in _models()]
  for camera_set in _CAMERAS.value:
    for noise in noise_levels:
      t0 = time.perf_counter()
      views = _views(items, cams, camera_set, noise)
      dist = np.concatenate([np.linalg.norm(v[3][:, 0], axis=-1)
                             for v in views])
      print(f"{camera_set} cameras, 2D noise {noise:g} px: {len(views)} "
            f"views, {len(dist)} frames, camera distance "
            f"{dist.mean() / 1000:.1f} m (mean)")
      print(f"  {'pose':34s} {'mean mm':>7s} {'median':>7s} "
            f"{'% dist':>9s} {'depth %':>9s}")
      gt = [v[3] - v[3][:, :1] for v in views]
      _row("gt, true size", [_errors(p, v, False) for p, v in zip(gt, views)])
      _row("gt, default size", [_errors(p, v, True)
                                for p, v in zip(gt, views)])
      for label, mc, apply_fn in models:
        lifted = [_lift(mc, apply_fn, v) for v in views]
        _row(f"{label}, true size",
             [_errors(p, v, False) for p, v in zip(lifted, views)])
        _row(f"{label}, default size",
             [_errors(p, v, True) for p, v in zip(lifted, views)])
      print(f"  ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
  cli.run(main)
