"""Animation of the 2D input beside the lifted 3D skeleton (SPEC.md §5).

Left: the 2D keypoints in image coordinates (pixels, y down, the image frame
as the axes). Right: the 3D prediction, root at the origin, drawn with the
camera's y-down axis pointing down and depth going into the screen at the
start, then slowly orbiting about the vertical axis. Left-side bones are
blue, right-side red, the trunk grey.

Drawing uses matplotlib's Agg canvas directly (no pyplot, no display) and a
matplotlib movie writer: Pillow for .gif, ffmpeg from `imageio_ffmpeg` for
.mp4. The file is written to a temporary name beside `path` and renamed when
complete, so an existing file is never half-overwritten.
"""

import os

import matplotlib
from matplotlib import animation
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np

from opformer_jax import fileio
from opformer_jax import skeleton

_LEFT, _RIGHT, _CENTRE = "#1f77b4", "#d62728", "#555555"
_EXTENSIONS = (".gif", ".mp4")


def _bone_colours(layout):
  lay = skeleton.get_layout(layout)
  return [(_LEFT if j in lay.left else _RIGHT if j in lay.right else _CENTRE)
          for _, j in lay.bones]


def _writer(ext, fps):
  if ext == ".gif":
    return animation.PillowWriter(fps=fps)
  return animation.FFMpegWriter(fps=fps, codec="h264",
                                extra_args=["-pix_fmt", "yuv420p"])


def render_animation(
    kp2d_px,
    pose3d,
    layout: str,
    path: str,
    fps: float,
    image_size=None,
    *,
    frame_step: int = 1,
    max_frames: int | None = None,
    degrees_per_second: float = 20.0,
    elev: float = 15.0,
    figsize=(8.0, 4.0),
    dpi: int = 80,
    title: str | None = None,
) -> int:
  """Writes a GIF or MP4 of the 2D input beside the 3D output.

  Args:
    kp2d_px: (F, J, 2) input keypoints in pixels.
    pose3d: (F, J, 3) prediction (x right, y down, z away from the camera),
      any unit; each frame is drawn relative to its root joint.
    layout: joint order of both, e.g. "h36m17".
    path: output file, ending in .gif or .mp4.
    fps: frame rate of the sequence; the animation plays in real time.
    image_size: (w, h) px of the video, framing the 2D panel; None frames
      the keypoints instead.
    frame_step: draw every `frame_step`-th frame (smaller, faster files).
    max_frames: draw at most this many frames.
    degrees_per_second: orbit speed of the 3D view.
    elev: elevation of the 3D view in degrees.
    figsize: inches (width, height); width * dpi and height * dpi should be
      even for MP4 (h264 needs even sizes).
    dpi: pixels per inch.
    title: text above the figure.

  Returns:
    The number of frames written.
  """
  kp2d_px = np.asarray(kp2d_px, np.float32)
  pose3d = np.asarray(pose3d, np.float32)
  lay = skeleton.get_layout(layout)
  num_joints = lay.num_joints
  if kp2d_px.ndim != 3 or kp2d_px.shape[1:] != (num_joints, 2):
    raise ValueError(f"kp2d_px has shape {kp2d_px.shape}; expected (F, "
                     f"{num_joints}, 2) for {layout}.")
  if pose3d.shape != kp2d_px.shape[:2] + (3,):
    raise ValueError(f"pose3d has shape {pose3d.shape}; expected "
                     f"{kp2d_px.shape[:2] + (3,)} to match kp2d_px.")
  ext = os.path.splitext(path)[1].lower()
  if ext not in _EXTENSIONS:
    raise ValueError(f"{path}: animation must end in one of {_EXTENSIONS}.")
  if frame_step < 1 or fps <= 0:
    raise ValueError(f"frame_step ({frame_step}) and fps ({fps}) must be "
                     "positive.")
  frames = np.arange(0, kp2d_px.shape[0], frame_step)[:max_frames]
  if frames.size == 0:
    raise ValueError("Nothing to render: no frames.")

  # Plot axes (x, depth, up) = camera (x, z, -y), root at the origin.
  rel = pose3d - pose3d[:, lay.root:lay.root + 1]
  xyz = np.stack([rel[..., 0], rel[..., 2], -rel[..., 1]], -1)
  radius = float(np.abs(xyz[frames]).max()) * 1.1 or 1.0

  fig = Figure(figsize=figsize, dpi=dpi, layout="none")
  FigureCanvasAgg(fig)
  ax2d = fig.add_subplot(1, 2, 1)
  ax3d = fig.add_subplot(1, 2, 2, projection="3d")
  if title:
    fig.suptitle(title, fontsize=9)
  if image_size is not None:
    w, h = image_size
    ax2d.set_xlim(0, w)
    ax2d.set_ylim(h, 0)
  else:
    lo, hi = kp2d_px[frames].min((0, 1)), kp2d_px[frames].max((0, 1))
    pad = 0.1 * float((hi - lo).max()) + 1.0
    ax2d.set_xlim(lo[0] - pad, hi[0] + pad)
    ax2d.set_ylim(hi[1] + pad, lo[1] - pad)
  ax2d.set_aspect("equal")
  ax2d.set_title("2D input", fontsize=9)
  ax2d.tick_params(labelsize=6)
  for set_lim in (ax3d.set_xlim, ax3d.set_ylim, ax3d.set_zlim):
    set_lim(-radius, radius)
  ax3d.set_box_aspect((1, 1, 1))
  ax3d.set_title("3D output", fontsize=9)
  ax3d.set_xticklabels([])
  ax3d.set_yticklabels([])
  ax3d.set_zticklabels([])
  # Fixed margins, not tight_layout: any layout engine on the figure makes
  # savefig lay out (draw) every frame twice.
  fig.subplots_adjust(left=0.07, right=0.98, bottom=0.08, top=0.9,
                      wspace=0.1)

  colours = _bone_colours(layout)
  lines2d = [ax2d.plot([], [], "-o", c=c, lw=2, ms=2)[0] for c in colours]
  lines3d = [ax3d.plot([], [], [], "-o", c=c, lw=2, ms=2)[0]
             for c in colours]
  label = ax2d.text(0.02, 0.02, "", transform=ax2d.transAxes, fontsize=7)

  out_fps = fps / frame_step
  # The camera looks along +depth: azimuth -90 views from the camera side.
  azim = -90.0 + degrees_per_second * np.arange(frames.size) / out_fps
  writer = _writer(ext, out_fps)
  ffmpeg = {}
  if ext == ".mp4":
    try:
      import imageio_ffmpeg  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError("MP4 output needs imageio-ffmpeg: pip install "
                        "'opformer-jax[video]' (or write a .gif).") from e
    ffmpeg = {"animation.ffmpeg_path": imageio_ffmpeg.get_ffmpeg_exe()}
  with fileio.atomic_path(path) as tmp, matplotlib.rc_context(ffmpeg), \
      writer.saving(fig, tmp, dpi):
    for n, f in enumerate(frames):
      for (p, j), l2, l3 in zip(lay.bones, lines2d, lines3d):
        l2.set_data(kp2d_px[f, [p, j], 0], kp2d_px[f, [p, j], 1])
        l3.set_data_3d(xyz[f, [p, j], 0], xyz[f, [p, j], 1],
                       xyz[f, [p, j], 2])
      ax3d.view_init(elev=elev, azim=azim[n])
      label.set_text(f"frame {f}")
      writer.grab_frame()
  return int(frames.size)
