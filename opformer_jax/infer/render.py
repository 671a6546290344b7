"""Animation of the 2D input beside the lifted 3D skeleton (SPEC.md §5).

Left: the 2D keypoints in image coordinates (pixels, y down, the image frame
as the axes). Right: the 3D prediction, drawn with the camera's y-down axis
pointing down and depth going into the screen at the start, then slowly
orbiting about the vertical axis. Without a trajectory the skeleton stands
with its root at the origin; with one (the root's camera-frame path,
`infer.trajectory`) it moves through space and the path is drawn beneath
it. Left-side bones are blue, right-side red, the trunk grey.

Drawing uses matplotlib's Agg canvas directly (no pyplot, no display) and a
matplotlib movie writer: Pillow for .gif, ffmpeg from `imageio_ffmpeg` for
.mp4. The file is written to a temporary name beside `path` and renamed when
complete, so an existing file is never half-overwritten.
"""

import contextlib
import os

import matplotlib
from matplotlib import animation
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np

from opformer_jax import fileio
from opformer_jax import skeleton

_LEFT, _RIGHT, _CENTRE = "#1f77b4", "#d62728", "#555555"
_PATH = "#2ca02c"
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


def _ffmpeg_rc(ext) -> dict:
  """matplotlib rc settings pointing the MP4 writer at imageio's ffmpeg."""
  if ext != ".mp4":
    return {}
  try:
    import imageio_ffmpeg  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("MP4 output needs imageio-ffmpeg: pip install "
                      "'opformer-jax[video]' (or write a .gif).") from e
  return {"animation.ffmpeg_path": imageio_ffmpeg.get_ffmpeg_exe()}


def _check_args(kp2d_px, pose3d, trajectory, layout, path, fps, frame_step):
  """Raises ValueError on inconsistent shapes or settings; returns ext."""
  num_joints = skeleton.get_layout(layout).num_joints
  if kp2d_px.ndim != 3 or kp2d_px.shape[1:] != (num_joints, 2):
    raise ValueError(f"kp2d_px has shape {kp2d_px.shape}; expected (F, "
                     f"{num_joints}, 2) for {layout}.")
  if pose3d.shape != kp2d_px.shape[:2] + (3,):
    raise ValueError(f"pose3d has shape {pose3d.shape}; expected "
                     f"{kp2d_px.shape[:2] + (3,)} to match kp2d_px.")
  if trajectory is not None and trajectory.shape != (len(pose3d), 3):
    raise ValueError(f"trajectory has shape {trajectory.shape}; expected "
                     f"({len(pose3d)}, 3), the root per frame.")
  ext = os.path.splitext(path)[1].lower()
  if ext not in _EXTENSIONS:
    raise ValueError(f"{path}: animation must end in one of {_EXTENSIONS}.")
  if frame_step < 1 or fps <= 0:
    raise ValueError(f"frame_step ({frame_step}) and fps ({fps}) must be "
                     "positive.")
  return ext


def _plot_coords(pose3d, trajectory, root, frames):
  """Camera-frame poses -> plot axes (x, depth, up) = camera (x, z, -y).

  Returns:
    (xyz (F, J, 3), root path on the ground (F, 3) or None, centre (3,),
    radius): the cube centre +- radius holds every drawn frame.
  """
  rel = pose3d - pose3d[:, root:root + 1]
  if trajectory is not None:
    rel = rel + trajectory[:, None]
  xyz = np.stack([rel[..., 0], rel[..., 2], -rel[..., 1]], -1)
  if trajectory is None:
    return xyz, None, np.zeros(3), float(np.abs(xyz[frames]).max()) * 1.1
  drawn = xyz[frames].reshape(-1, 3)
  lo, hi = drawn.min(0), drawn.max(0)
  # The root's path on the ground: at the lowest drawn joint's height.
  path = xyz[:, root] * [1, 1, 0] + [0, 0, lo[2]]
  return xyz, path, (lo + hi) / 2, float((hi - lo).max()) / 2 * 1.1


def _figure(figsize, dpi, title):
  fig = Figure(figsize=figsize, dpi=dpi, layout="none")
  FigureCanvasAgg(fig)
  ax2d = fig.add_subplot(1, 2, 1)
  ax3d = fig.add_subplot(1, 2, 2, projection="3d")
  if title:
    fig.suptitle(title, fontsize=9)
  # Fixed margins, not tight_layout: any layout engine on the figure makes
  # savefig lay out (draw) every frame twice.
  fig.subplots_adjust(left=0.07, right=0.98, bottom=0.08, top=0.9,
                      wspace=0.1)
  return fig, ax2d, ax3d


def _frame_2d(ax2d, kp2d_px, frames, image_size):
  """The 2D panel shows the image (or the keypoints' box), y down."""
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


def _frame_3d(ax3d, centre, radius, moving):
  radius = radius or 1.0
  for set_lim, c in zip((ax3d.set_xlim, ax3d.set_ylim, ax3d.set_zlim),
                        centre):
    set_lim(c - radius, c + radius)
  ax3d.set_box_aspect((1, 1, 1))
  ax3d.set_title("3D output, camera frame" if moving else "3D output",
                 fontsize=9)
  ax3d.set_xticklabels([])
  ax3d.set_yticklabels([])
  ax3d.set_zticklabels([])


def _artists(ax2d, ax3d, layout, path_xyz):
  """Line objects updated per frame: 2D bones, 3D bones, path, label."""
  colours = _bone_colours(layout)
  lines2d = [ax2d.plot([], [], "-o", c=c, lw=2, ms=2)[0] for c in colours]
  lines3d = [ax3d.plot([], [], [], "-o", c=c, lw=2, ms=2)[0]
             for c in colours]
  trail = None
  if path_xyz is not None:
    # The whole path faintly, the part walked so far solid.
    ax3d.plot(*path_xyz.T, "-", c=_PATH, lw=1, alpha=0.3)
    trail = ax3d.plot([], [], [], "-", c=_PATH, lw=1.5)[0]
  label = ax2d.text(0.02, 0.02, "", transform=ax2d.transAxes, fontsize=7)
  return lines2d, lines3d, trail, label


def _video_panel(ax2d, background, frames, image_size):
  """The video frames under the 2D skeleton: (image artist, frame iterator).

  `background(frames)` yields the upright RGB frame of each drawn row;
  frames wider than the panel needs are subsampled before drawing.
  """
  if background is None:
    return None, None
  if image_size is None:
    raise ValueError("A video background needs the image_size.")
  w, h = image_size
  step = max(1, w // 640)
  art = ax2d.imshow(np.zeros((max(1, h // step), max(1, w // step), 3),
                             np.uint8), extent=(0, w, h, 0), zorder=0,
                    interpolation="bilinear")
  ax2d.set_xlim(0, w)
  ax2d.set_ylim(h, 0)
  ax2d.set_title("video + 2D", fontsize=9)
  return art, (rgb[::step, ::step] for rgb in background(frames))


def _draw_frame(f, bones, kp2d_px, xyz, path_xyz, artists):
  lines2d, lines3d, trail, label = artists
  for (p, j), l2, l3 in zip(bones, lines2d, lines3d):
    l2.set_data(kp2d_px[f, [p, j], 0], kp2d_px[f, [p, j], 1])
    l3.set_data_3d(xyz[f, [p, j], 0], xyz[f, [p, j], 1], xyz[f, [p, j], 2])
  if trail is not None:
    trail.set_data_3d(*path_xyz[:f + 1].T)
  label.set_text(f"frame {f}")


def render_animation(
    kp2d_px,
    pose3d,
    layout: str,
    path: str,
    fps: float,
    image_size=None,
    *,
    trajectory=None,
    frame_step: int = 1,
    max_frames: int | None = None,
    degrees_per_second: float = 20.0,
    elev: float = 15.0,
    figsize=(8.0, 4.0),
    dpi: int = 80,
    title: str | None = None,
    background=None,
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
    trajectory: optional (F, 3) camera-frame root position per frame, in
      `pose3d`'s unit: the skeleton is drawn there and its path shown.
    frame_step: draw every `frame_step`-th frame (smaller, faster files).
    max_frames: draw at most this many frames.
    degrees_per_second: orbit speed of the 3D view.
    elev: elevation of the 3D view in degrees.
    figsize: inches (width, height); width * dpi and height * dpi should be
      even for MP4 (h264 needs even sizes).
    dpi: pixels per inch.
    title: text above the figure.
    background: optional callable, drawn rows (N,) -> an iterator of N
      upright (H, W, 3) uint8 video frames to draw the 2D skeleton on
      (streamed, not held: `infer.video.frames`); needs `image_size`.

  Returns:
    The number of frames written.
  """
  kp2d_px = np.asarray(kp2d_px, np.float32)
  pose3d = np.asarray(pose3d, np.float32)
  if trajectory is not None:
    trajectory = np.asarray(trajectory, np.float32)
  ext = _check_args(kp2d_px, pose3d, trajectory, layout, path, fps,
                    frame_step)
  frames = np.arange(0, kp2d_px.shape[0], frame_step)[:max_frames]
  if frames.size == 0:
    raise ValueError("Nothing to render: no frames.")
  lay = skeleton.get_layout(layout)
  xyz, path_xyz, centre, radius = _plot_coords(pose3d, trajectory, lay.root,
                                               frames)
  fig, ax2d, ax3d = _figure(figsize, dpi, title)
  _frame_2d(ax2d, kp2d_px, frames, image_size)
  _frame_3d(ax3d, centre, radius, trajectory is not None)
  artists = _artists(ax2d, ax3d, layout, path_xyz)
  image, images = _video_panel(ax2d, background, frames, image_size)

  out_fps = fps / frame_step
  # The camera looks along +depth: azimuth -90 views from the camera side.
  azim = -90.0 + degrees_per_second * np.arange(frames.size) / out_fps
  writer = _writer(ext, out_fps)
  with contextlib.ExitStack() as stack:
    stack.enter_context(matplotlib.rc_context(_ffmpeg_rc(ext)))
    tmp = stack.enter_context(fileio.atomic_path(path))
    stack.enter_context(writer.saving(fig, tmp, dpi))
    for n, f in enumerate(frames):
      _draw_frame(f, lay.bones, kp2d_px, xyz, path_xyz, artists)
      if image is not None:
        image.set_data(next(images))
      ax3d.view_init(elev=elev, azim=azim[n])
      writer.grab_frame()
  return int(frames.size)
