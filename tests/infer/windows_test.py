"""Tests for windows.predict_sequence: coverage, blending, batching, TTA."""

import numpy as np
import pytest

from opformer_jax import skeleton
from opformer_jax.infer import windows

T = 8
J = 17
_MIX = np.random.default_rng(0).normal(size=(3, 3)).astype(np.float32)


def _per_frame(x):
  """A nonlinear function of each (frame, joint) alone."""
  return np.tanh(x @ _MIX) + 0.1 * x[..., ::-1] ** 2


def _recorder(fn, shapes):
  def apply_fn(batch):
    shapes.append(batch.shape)
    return fn(batch)
  return apply_fn


def _temporal(x):
  """Mixes frames (cumulative sum over time), so windowing is visible."""
  return np.tanh(np.cumsum(x, axis=1) @ _MIX)


def _input(length, seed=1):
  return np.random.default_rng(seed).normal(
      size=(length, J, 3)).astype(np.float32)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_length_t_equals_single_window_exactly(batch_size):
  x = _input(T)
  got = windows.predict_sequence(_temporal, x, T, batch_size=batch_size)
  batch = np.repeat(x[None], batch_size, axis=0)
  np.testing.assert_array_equal(got, _temporal(batch)[0])
  got = windows.predict_sequence(_temporal, x, T, flip_tta=True,
                                 batch_size=batch_size)
  flipped = _temporal(skeleton.flip_pose(batch, "h36m17"))[0]
  want = (_temporal(batch)[0] + skeleton.flip_pose(flipped, "h36m17")) / 2
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("length", [1, 3, T - 1, T, T + 1, 2 * T + 3, 50])
@pytest.mark.parametrize("overlap", [0.0, 0.5, 0.75])
def test_per_frame_function_is_reproduced(length, overlap):
  x = _input(length)
  shapes = []
  got = windows.predict_sequence(_recorder(_per_frame, shapes), x, T,
                                 overlap=overlap, batch_size=4)
  assert got.shape == (length, J, 3) and got.dtype == np.float32
  np.testing.assert_allclose(got, _per_frame(x), rtol=1e-5, atol=1e-6)
  assert set(shapes) == {(4, T, J, 3)}


@pytest.mark.parametrize("length", [5, 2 * T + 3])
def test_flip_tta_per_frame(length):
  x = _input(length)
  got = windows.predict_sequence(_per_frame, x, T, flip_tta=True)
  flipped = skeleton.flip_pose(_per_frame(skeleton.flip_pose(x)), "h36m17")
  np.testing.assert_allclose(got, (_per_frame(x) + flipped) / 2, rtol=1e-5,
                             atol=1e-6)


def test_blend_weights_hand_checked():
  # T = 4, F = 6, overlap 0.5 -> stride 2, windows start at 0 and 2. Each
  # window predicts its mean frame index everywhere: 1.5 and 3.5.
  x = np.zeros((6, J, 3), np.float32)
  x[..., 0] = np.arange(6)[:, None]

  def window_mean(batch):
    return np.broadcast_to(batch[..., :1].mean(axis=(1, 2, 3), keepdims=True),
                           batch.shape).copy()

  got = windows.predict_sequence(window_mean, x, 4, overlap=0.5)[:, 0, 0]
  w = np.sin(np.pi * (np.arange(4) + 0.5) / 4) ** 2
  frame2 = (w[2] * 1.5 + w[0] * 3.5) / (w[2] + w[0])
  frame3 = (w[3] * 1.5 + w[1] * 3.5) / (w[3] + w[1])
  np.testing.assert_allclose(got, [1.5, 1.5, frame2, frame3, 3.5, 3.5],
                             rtol=1e-6)
  np.testing.assert_array_equal(windows.window_starts(6, 4, 2), [0, 2])
  np.testing.assert_array_equal(windows.window_starts(7, 4, 2), [0, 2, 3])


def test_short_sequence_resampled_and_mapped_back():
  # F = 3, T = 8: idx = floor(arange(8) * 3 / 8) = [0,0,0,1,1,1,2,2].
  x = _input(3)
  idx = np.array([0, 0, 0, 1, 1, 1, 2, 2])
  pred = _temporal(x[idx][None])[0]
  want = np.stack([pred[idx == f].mean(0) for f in range(3)])
  got = windows.predict_sequence(_temporal, x, T, batch_size=1)
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_batches_padded_to_fixed_shape():
  shapes = []
  x = _input(40)
  windows.predict_sequence(_recorder(_per_frame, shapes), x, T, overlap=0.5,
                           batch_size=4, flip_tta=True)
  # Starts 0, 4, ..., 32: 9 windows -> 3 batches, twice with the flip.
  assert shapes == [(4, T, J, 3)] * 6


def test_bad_inputs():
  with pytest.raises(ValueError, match=r"expected \(F, 17, 3\)"):
    windows.predict_sequence(_per_frame, np.zeros((5, 16, 3)), T)
  with pytest.raises(ValueError, match="no frames"):
    windows.predict_sequence(_per_frame, np.zeros((0, 17, 3)), T)
  bad = _input(5)
  bad[2, 3, 0] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    windows.predict_sequence(_per_frame, bad, T)
  with pytest.raises(ValueError, match="overlap"):
    windows.predict_sequence(_per_frame, _input(5), T, overlap=1.0)
  with pytest.raises(ValueError, match=r"apply_fn returned shape"):
    windows.predict_sequence(lambda b: b[:, :1], _input(5), T)
