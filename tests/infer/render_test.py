"""Tests for render.render_animation: GIF/MP4 validity, frames, atomicity."""

import numpy as np
from matplotlib import animation
from PIL import Image
import pytest

from opformer_jax.infer import render

_SMALL = {"figsize": (4.0, 2.0), "dpi": 40}


def _walk(num_frames):
  """A skeleton swinging its limbs: (F, 17, 2) px and (F, 17, 3)."""
  rng = np.random.default_rng(0)
  base = rng.normal(size=(17, 3)).astype(np.float32) * 0.3
  t = np.arange(num_frames, dtype=np.float32)[:, None, None]
  pose3d = base + 0.2 * np.sin(t / 3 + np.arange(17)[None, :, None])
  kp2d = 300 + 200 * pose3d[..., :2]
  return kp2d, pose3d


def test_gif_frame_count(tmp_path):
  kp2d, pose3d = _walk(7)
  path = tmp_path / "out.gif"
  n = render.render_animation(kp2d, pose3d, "h36m17", str(path), fps=10,
                              image_size=(640, 480), **_SMALL)
  assert n == 7
  with Image.open(path) as im:
    assert im.format == "GIF" and im.n_frames == 7
    assert im.size == (160, 80)
  n = render.render_animation(kp2d, pose3d, "h36m17", str(path), fps=10,
                              frame_step=2, max_frames=3, **_SMALL)
  assert n == 3
  with Image.open(path) as im:
    assert im.n_frames == 3
  assert [p.name for p in tmp_path.iterdir()] == ["out.gif"]


def test_mp4_has_ftyp_box(tmp_path):
  kp2d, pose3d = _walk(4)
  path = tmp_path / "out.mp4"
  n = render.render_animation(kp2d, pose3d, "h36m17", str(path), fps=25,
                              image_size=(640, 480), **_SMALL)
  assert n == 4
  head = path.read_bytes()[:12]
  assert head[4:8] == b"ftyp", head


def test_failed_render_keeps_existing_file(tmp_path, monkeypatch):
  path = tmp_path / "out.gif"
  path.write_bytes(b"previous")

  grab = animation.PillowWriter.grab_frame
  calls = []

  def fail_on_second_frame(self, **kwargs):
    calls.append(1)
    if len(calls) == 2:
      raise RuntimeError("disk full")
    grab(self, **kwargs)

  monkeypatch.setattr(animation.PillowWriter, "grab_frame",
                      fail_on_second_frame)
  kp2d, pose3d = _walk(3)
  with pytest.raises(RuntimeError, match="disk full"):
    render.render_animation(kp2d, pose3d, "h36m17", str(path), fps=10,
                            **_SMALL)
  assert path.read_bytes() == b"previous"
  assert [p.name for p in tmp_path.iterdir()] == ["out.gif"]


def test_bad_arguments(tmp_path):
  kp2d, pose3d = _walk(3)
  with pytest.raises(ValueError, match="must end in one of"):
    render.render_animation(kp2d, pose3d, "h36m17", str(tmp_path / "a.avi"),
                            fps=10)
  with pytest.raises(ValueError, match=r"pose3d has shape \(2, 17, 3\)"):
    render.render_animation(kp2d, pose3d[:2], "h36m17",
                            str(tmp_path / "a.gif"), fps=10)
  with pytest.raises(ValueError, match=r"kp2d_px has shape"):
    render.render_animation(kp2d[:, :16], pose3d[:, :16], "h36m17",
                            str(tmp_path / "a.gif"), fps=10)


def test_trajectory_moves_the_skeleton_and_draws_its_path(tmp_path):
  kp2d, pose3d = _walk(5)
  root = np.stack([np.linspace(-1, 1, 5), np.zeros(5), 4 + np.arange(5.0)],
                  -1).astype(np.float32)
  n = render.render_animation(kp2d, pose3d, "h36m17",
                              str(tmp_path / "t.gif"), fps=10,
                              trajectory=root, **_SMALL)
  assert n == 5
  frames = np.arange(5)
  xyz, path, centre, radius = render._plot_coords(pose3d, root, 0, frames)
  # Plot axes (x, depth, up) = camera (x, z, -y); each frame's root sits
  # on the trajectory, and the path runs on the ground below the skeleton.
  rel = pose3d - pose3d[:, :1] + root[:, None]
  np.testing.assert_allclose(xyz, np.stack(
      [rel[..., 0], rel[..., 2], -rel[..., 1]], -1), rtol=1e-6)
  np.testing.assert_allclose(path[:, :2], root[:, [0, 2]])
  np.testing.assert_allclose(path[:, 2], xyz[..., 2].min())
  assert (np.abs(xyz - centre) <= radius).all()
  with pytest.raises(ValueError, match=r"trajectory has shape \(4, 3\)"):
    render.render_animation(kp2d, pose3d, "h36m17", str(tmp_path / "u.gif"),
                            fps=10, trajectory=root[:4])
