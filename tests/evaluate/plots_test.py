"""Tests for opformer_jax.plots: valid PNGs with the expected content."""

import os

from matplotlib import image as mpimg
import numpy as np
import pytest

from opformer_jax.evaluate import plots
from opformer_jax import skeleton

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_png(path, fig):
  with open(path, "rb") as f:
    assert f.read(8) == PNG_MAGIC
  assert os.path.getsize(path) > 10_000
  w, h = fig.get_size_inches() * plots.DPI
  rows, cols, channels = mpimg.imread(path).shape
  assert abs(rows - h) < 1 and abs(cols - w) < 1 and channels == 4
  assert not [p for p in os.listdir(os.path.dirname(path))
              if p.startswith(".tmp-")]


def test_histogram(tmp_path):
  err = np.concatenate([np.full(30, 20.0), np.full(10, 60.0), [500.0]])
  path = str(tmp_path / "fig4.png")
  fig = plots.mpjpe_histogram(err, path, figsize=(6.0, 4.0))
  _check_png(path, fig)
  assert mpimg.imread(path).shape[:2] == (400, 600)
  ax = fig.axes[0]
  assert ax.get_xlabel() == "MPJPE (mm)" and ax.get_ylabel() == "frames"
  assert "41 frames" in ax.get_title()
  lines = {l.get_label(): l.get_xdata()[0] for l in ax.get_lines()}
  mean = err.mean()
  assert lines == {f"mean {mean:.1f} mm": mean, "median 20.0 mm": 20.0}
  with pytest.raises(ValueError, match=r"\(F,\)"):
    plots.mpjpe_histogram([np.nan], path)


def test_part_error_bars(tmp_path):
  per_joint = np.arange(17, dtype=float) + 1
  path = str(tmp_path / "fig5.png")
  fig = plots.part_error_bars(per_joint, "h36m17", path)
  _check_png(path, fig)
  ax = fig.axes[0]
  labels = [t.get_text() for t in ax.get_xticklabels()]
  assert labels[:4] == ["hip", "r hip", "r knee", "r ankle"]
  assert len(labels) == 17
  heights = [p.get_height() for p in ax.patches]
  # Bars in part order (origin, right leg, left leg, trunk, left arm, right
  # arm), which for H36M-17 is the joint order itself.
  np.testing.assert_allclose(heights, per_joint)
  means = sorted(float(t.get_text()) for t in ax.texts)
  assert means == sorted([1.0, 3.0, 6.0, 9.5, 13.0, 16.0])
  assert [t.get_text() for t in ax.get_legend().get_texts()] == [
      "origin", "right leg", "left leg", "trunk", "left arm", "right arm"]
  with pytest.raises(ValueError, match=r"\(17,\)"):
    plots.part_error_bars(per_joint[:14], "mpi17", path)


def test_part_error_bars_mpi_order(tmp_path):
  fig = plots.part_error_bars(np.arange(17.0), "mpi17",
                              str(tmp_path / "fig5.png"))
  labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
  assert labels[0] == "pelvis"
  assert labels[7:11] == ["spine", "neck", "head", "head top"]
  assert sorted(labels) == sorted(n.replace("_", " ")
                                  for n in skeleton.MPI.joints)


def test_part_token_labels():
  labels = plots.part_token_labels("h36m17", "hip")
  assert labels[0] == ["hip", "r_hip", "r_knee", "r_ankle"]
  assert labels[2] == ["hip", "spine", "thorax", "nose", "head"]
  independent = plots.part_token_labels("h36m17", "hip", with_origin=False)
  assert len(independent) == 6 and independent[-1] == ["hip"]


def test_attention_maps(tmp_path):
  rng = np.random.default_rng(0)
  depth, heads = 2, 3
  part = rng.uniform(size=(depth, 5, heads, 5, 5))
  part[:, :, :, 4, :] = 99.0    # padding rows/cols of 4-token parts
  part[:, :, :, :, 4] = 99.0
  spatial = rng.uniform(size=(depth, 17, 17))
  path = str(tmp_path / "fig6.png")
  fig = plots.attention_maps(part, spatial, "h36m17", path)
  _check_png(path, fig)
  panels = [ax for ax in fig.axes if ax.images]
  assert len(panels) == depth * 6
  shapes = [ax.images[0].get_array().shape for ax in panels[:6]]
  assert shapes == [(4, 4), (4, 4), (5, 5), (4, 4), (4, 4), (17, 17)]
  # Heads averaged; the padding (99) is cropped from the 4-token parts.
  np.testing.assert_allclose(panels[6].images[0].get_array(),
                             part[1, 0].mean(0)[:4, :4])
  assert max(ax.images[0].get_array().max() for ax in panels[:2]) < 1
  assert [t.get_text() for t in panels[3].get_yticklabels()] == [
      "hip", "l shoulder", "l elbow", "l wrist"]
  assert panels[5].get_title() == "layer 1: spatial"
  assert panels[5].get_xlabel() == "key"
  taller = plots.attention_maps(part[:1].repeat(3, 0), spatial[:1].repeat(
      3, 0), "h36m17", str(tmp_path / "fig6b.png"))
  assert taller.get_size_inches()[1] > fig.get_size_inches()[1]


def test_attention_maps_one_block_and_bad_shapes(tmp_path):
  rng = np.random.default_rng(1)
  path = str(tmp_path / "spatial_only.png")
  fig = plots.attention_maps(None, rng.uniform(size=(1, 2, 17, 17)),
                             "mpi17", path)
  _check_png(path, fig)
  with pytest.raises(ValueError, match=r"\(L, 5, 5, 5\)"):
    plots.attention_maps(np.zeros((1, 5, 4, 4)), None, "h36m17", path)
  with pytest.raises(ValueError, match="disagree on L"):
    plots.attention_maps(np.zeros((2, 5, 5, 5)), np.zeros((1, 17, 17)),
                         "h36m17", path)
