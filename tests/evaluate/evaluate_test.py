"""Tests of the evaluation protocols against independently computed numbers."""

import numpy as np
import pytest

from opformer_jax import config_lib
from opformer_jax.data import dataset
from opformer_jax.evaluate import run as evaluate
from opformer_jax.data import input_pipeline
from opformer_jax import model as model_lib
from opformer_jax import skeleton

import conftest


def toy_config(path, name="toy", input_2d="file", frames=9):
  c = config_lib.base_config()
  c.data.name = name
  c.data.test_path = str(path)
  c.data.input_2d = input_2d
  config_lib.set_frames(c, frames)
  c.eval.batch_size = 4
  return c


def zeros(kp2d):
  return np.zeros_like(np.asarray(kp2d))


def test_flip_tta_of_an_equivariant_model_is_the_model():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 17, 3)).astype(np.float32)
  # A per-joint map commuting with the flip: (x, y, c) -> (2x, y + c, c^2).
  equivariant = lambda a: np.stack(
      [2 * a[..., 0], a[..., 1] + a[..., 2], a[..., 2] ** 2], -1)
  np.testing.assert_allclose(model_lib.flip_tta(equivariant, x, "h36m17"),
                             equivariant(x), atol=1e-6)
  # A map that is not equivariant gets averaged with its mirrored self.
  shifted = lambda a: a + np.array([1.0, 0, 0], np.float32)
  want = (shifted(x) + skeleton.flip_pose(
      shifted(skeleton.flip_pose(x)), "h36m17")) / 2
  np.testing.assert_allclose(model_lib.flip_tta(shifted, x, "h36m17"), want,
                             atol=1e-6)
  np.testing.assert_allclose(want, x, atol=1e-6)  # the +1 cancels exactly


def _h36m_zero_prediction_mpjpe(path, frames, z_only=False):
  """Action-averaged MPJPE of predicting all zeros, from the raw file."""
  data = dataset.load(path)
  gt = (np.asarray(data.kp3d_image, np.float64) -
        np.asarray(data.kp3d_image, np.float64)[:, :1]) * np.asarray(
            data.factor, np.float64)[:, None, None]
  if z_only:  # MotionBERT convention: predicted xy = GT xy
    gt[..., :2] = 0
  err = np.linalg.norm(gt, axis=-1).mean(-1)
  covered = np.zeros(data.num_frames, bool)
  for s in range(data.num_seqs):
    sl = data.seq_frames(s)
    n = (sl.stop - sl.start) // frames * frames   # tail dropped
    covered[sl.start:sl.start + n] = True
  actions = np.asarray(data.seq_action)[data.frame_seq()]
  means = [err[covered & (actions == a)].mean()
           for a in np.unique(actions[covered])]
  return float(np.mean(means)), float(err[covered].mean())


def test_h36m_protocol_matches_an_independent_computation(tmp_path):
  path = conftest.write_toy_split(tmp_path / "test.npz", num_seqs=5,
                                  length=23)
  config = toy_config(path)
  res = evaluate.run_protocol(zeros, config, progress=False)
  assert list(res) == ["default"]
  action_avg, frame_avg = _h36m_zero_prediction_mpjpe(path, 9)
  r = res["default"]
  assert r["action_avg"]["mpjpe"] == pytest.approx(action_avg, rel=1e-5)
  assert r["frame_avg"]["mpjpe"] == pytest.approx(frame_avg, rel=1e-5)
  assert action_avg != pytest.approx(frame_avg, rel=1e-4)
  assert r["num_frames"] == 5 * 18 and r["num_uncovered_frames"] == 5 * 5


def test_gt2d_input_is_scored_under_both_named_conventions(tmp_path):
  path = conftest.write_toy_split(tmp_path / "test.npz", num_seqs=3,
                                  length=18)
  config = toy_config(path, input_2d="gt")
  res = evaluate.run_protocol(zeros, config, progress=False)
  assert set(res) == {"motionagformer", "motionbert"}
  full, _ = _h36m_zero_prediction_mpjpe(path, 9)
  z_only, _ = _h36m_zero_prediction_mpjpe(path, 9, z_only=True)
  assert res["motionagformer"]["action_avg"]["mpjpe"] == pytest.approx(
      full, rel=1e-5)
  assert res["motionbert"]["action_avg"]["mpjpe"] == pytest.approx(
      z_only, rel=1e-5)
  config.eval.gt2d_convention = "motionbert"
  assert evaluate.headline(res, config) == pytest.approx(z_only, rel=1e-5)


def test_motionbert_overwrite_needs_image_space_labels(tmp_path):
  path = conftest.write_toy_split(tmp_path / "test.npz", num_seqs=2,
                                  length=18, input_2d="gt")
  config = toy_config(path)
  config.data.label_space = "camera"
  res = evaluate.run_protocol(zeros, config, progress=False)
  assert list(res) == ["default"]


def test_h36m_skip_list_applies_only_to_h36m(tmp_path):
  path = tmp_path / "test.npz"
  conftest.write_toy_split(path, num_seqs=2, length=18)
  arrays = dict(dataset.load(str(path)).arrays)
  arrays["seq_name"] = np.array(["s_09_act_05_subact_02_ca_01",
                                 "s_09_act_05_subact_01_ca_01"])
  dataset.save(str(path), arrays)
  h36m = evaluate.run_protocol(zeros, toy_config(path, name="h36m"),
                               progress=False)["default"]
  other = evaluate.run_protocol(zeros, toy_config(path), progress=False)[
      "default"]
  assert h36m["num_frames"] == 18 and h36m["num_skipped_frames"] == 18
  assert other["num_frames"] == 36


def test_3dhp_protocol_scores_centre_frames_of_valid_frames(tmp_path):
  rng = np.random.default_rng(0)
  n = 30
  kp3d = rng.normal(size=(n, 17, 3)).astype(np.float32) * 100
  valid = np.zeros(n, bool)
  valid[[0, 3, 7, 12, 29]] = True
  dataset.save(str(tmp_path / "test.npz"), dict(
      kp2d=rng.uniform(0, 2048, (n, 17, 2)), conf=np.ones((n, 17)),
      kp3d=kp3d, valid=valid, seq_name=["TS1", "TS5"], seq_offsets=[0, 20, n],
      seq_subject=["TS1", "TS5"], seq_action=["TS1", "TS5"],
      seq_camera=["cam", "cam"], seq_image_size=[[2048, 2048], [1920, 1080]],
      seq_fps=[50, 25], layout="mpi17", input_2d="gt", source="test"))
  config = toy_config(tmp_path / "test.npz", name="3dhp", frames=5)
  config.data.label_space = "camera"
  config.model.layout = "mpi17"
  res = evaluate.run_protocol(zeros, config, progress=False)["default"]
  gt = kp3d[valid] - kp3d[valid][:, 14:15]
  err = np.linalg.norm(gt, axis=-1)
  assert res["pooled"]["num_frames"] == 5
  assert res["pooled"]["mpjpe"] == pytest.approx(err.mean(), rel=1e-5)
  assert res["pooled"]["pck"] == pytest.approx(
      100 * (err[:, :14] < 150).mean(), rel=1e-6)
  assert res["per_sequence"]["TS5"]["num_frames"] == 1


def test_eval_stream_is_padded_and_masked_to_a_fixed_batch(tmp_path):
  path = conftest.write_toy_split(tmp_path / "test.npz", num_seqs=3,
                                  length=18)
  config = toy_config(path)
  config.eval.batch_size = 4
  ds, n = input_pipeline.eval_batches(config, str(path))
  batches = list(ds)
  assert n == len(batches) == 2
  assert [b["kp2d"].shape[0] for b in batches] == [4, 4]
  assert np.concatenate([b["mask"] for b in batches]).sum() == 6


def test_outputs_name_the_conventions_and_synthetic_data(tmp_path):
  path = tmp_path / "test.npz"
  conftest.write_toy_split(path, num_seqs=3, length=18)
  arrays = dict(dataset.load(str(path)).arrays)
  arrays["synthetic"] = True
  dataset.save(str(path), arrays)
  config = toy_config(path, input_2d="gt")
  res = evaluate.run_protocol(zeros, config, progress=False)
  evaluate.write_outputs(res, config, str(tmp_path / "out"))
  md = (tmp_path / "out" / "results.md").read_text()
  assert md.count("Synthetic data") == 2
  assert "motionbert convention" in md and "motionagformer convention" in md
  assert "overwritten" in md.lower() or "overwrite" in md.lower()
  for name in ("results.json", "fig4_mpjpe_histogram.png",
               "fig5_part_error.png"):
    assert (tmp_path / "out" / name).exists()
