r"""A still of a lifted clip: a few frames' 2D input above their 3D pose.

Reads one `<track>.npz` written by `python -m opformer_jax.infer` and draws
`--frames` evenly spaced frames side by side (2D keypoints on top, the
root-relative 3D pose in mm below, seen obliquely), as one PNG.
The picture in the README was made with:

  python -m opformer_jax.infer \
      --input=../shared/data/wild2d/exercises_detectron2_coco17.npz \
      --output=out/exercises --render=none
  python tools/render_frames.py --input=out/exercises/jumping_jacks_front.npz \
      --output=docs/images/lifted_clip.png --frames=4
"""

import json
import zipfile

from absl import flags
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from opformer_jax import cli
from opformer_jax import errors
from opformer_jax import fileio
from opformer_jax.data import dataset
from opformer_jax.infer import render
from opformer_jax import skeleton

_INPUT = flags.DEFINE_string("input", None, "A <track>.npz written by infer.")
_OUTPUT = flags.DEFINE_string("output", None, "The PNG to write.")
_FRAMES = flags.DEFINE_integer("frames", 4, "Frames drawn, evenly spaced.")
_DPI = flags.DEFINE_integer("dpi", 60, "Resolution of the PNG.")
_AZIM = flags.DEFINE_float("azim", -60.0, "Azimuth of the 3D view, degrees.")
flags.mark_flags_as_required(["input", "output"])


def draw(kp2d, pose3d_mm, image_size, layout, frames, path, dpi=60,
         azim=-60.0):
  """Writes a PNG of `frames`: 2D input (top row) over 3D pose (bottom).

  Args:
    kp2d: (F, J, 2) 2D keypoints, px.
    pose3d_mm: (F, J, 3) root-relative 3D joints, camera axes (x right,
      y down, z away), mm.
    image_size: (width, height) of the video, px.
    layout: the joint layout's name (`h36m17`).
    frames: indices of the frames to draw.
    path: the PNG's path.
    dpi: its resolution.
    azim: azimuth of the 3D views, degrees.
  """
  lay = skeleton.get_layout(layout)
  colours = render._bone_colours(layout)  # pylint: disable=protected-access
  n = len(frames)
  fig = plt.figure(figsize=(2.6 * n, 5.2), dpi=dpi)
  radius = 0.42 * np.max(np.ptp(pose3d_mm[frames], axis=1))
  for i, f in enumerate(frames):
    ax = fig.add_subplot(2, n, i + 1)
    for (a, b), c in zip(lay.bones, colours):
      ax.plot(kp2d[f, [a, b], 0], kp2d[f, [a, b], 1], color=c, lw=2)
    centre = (kp2d[f].min(axis=0) + kp2d[f].max(axis=0)) / 2
    half = 0.6 * np.max(np.ptp(kp2d[f], axis=0))
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] + half, centre[1] - half)  # image y points down
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"frame {f}", fontsize=10)
    ax3 = fig.add_subplot(2, n, n + i + 1, projection="3d")
    # Camera (x, y down, z away) drawn with z up: plot (x, z, -y).
    p = pose3d_mm[f]
    for (a, b), c in zip(lay.bones, colours):
      ax3.plot(p[[a, b], 0], p[[a, b], 2], -p[[a, b], 1], color=c, lw=2)
    for set_lim in (ax3.set_xlim, ax3.set_ylim, ax3.set_zlim):
      set_lim(-radius, radius)
    ax3.set_box_aspect((1, 1, 1))
    ax3.view_init(elev=10, azim=azim)
    ax3.set_axis_off()
  fig.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.01,
                      wspace=0.02, hspace=0.05)
  fig.savefig(path, dpi=dpi)
  plt.close(fig)


def load_track(path: str) -> dict:
  """kp2d (F, J, 2), pose3d_mm (F, J, 3) and meta of an infer output.

  Raises:
    errors.DataError: not such a file, in one line naming it.
  """
  expected = "a <track>.npz written by python -m opformer_jax.infer"
  why = dataset.not_numpy(path)
  if why:
    raise errors.DataError(errors.bad_input(path, why, expected))
  try:
    with np.load(path, allow_pickle=False) as d:
      track = {k: d[k] for k in ("kp2d", "pose3d_mm", "meta")}
    track["meta"] = json.loads(str(track["meta"]))
    image_size, layout = track["meta"]["image_size"], track["meta"]["layout"]
  except (KeyError, ValueError, zipfile.BadZipFile) as e:
    raise errors.DataError(errors.bad_input(
        path, f"lacks or garbles {e}", expected)) from None
  if track["kp2d"].shape[0] < 1 or image_size is None or not layout:
    raise errors.DataError(errors.bad_input(path, "holds no frames",
                                            expected))
  return track


def main(argv):
  del argv
  errors.check_number("--frames", _FRAMES.value, minimum=1)
  errors.check_number("--dpi", _DPI.value, minimum=10)
  fileio.check_output_file(_OUTPUT.value, "--output")
  d = load_track(_INPUT.value)
  num = d["kp2d"].shape[0]
  frames = np.linspace(0, num - 1, _FRAMES.value + 2)[1:-1].round()
  with fileio.atomic_path(_OUTPUT.value) as tmp:
    draw(d["kp2d"], d["pose3d_mm"], d["meta"]["image_size"],
         d["meta"]["layout"], frames.astype(int), tmp, dpi=_DPI.value,
         azim=_AZIM.value)
  print(f"wrote {_OUTPUT.value}")


if __name__ == "__main__":
  cli.run(main)
