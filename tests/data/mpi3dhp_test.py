"""Tests of the MPI-INF-3DHP reader on tiny MotionAGFormer-format files."""

import numpy as np
import pytest

from opformer_jax.data import dataset
from opformer_jax.data import mpi3dhp


def _poses(rng, frames):
  return (rng.uniform(0, 2048, (frames, 17, 2)).astype(np.float32),
          rng.uniform(-900, 4000, (frames, 17, 3)).astype(np.float32))


def _write_train(path, rng):
  data = {}
  for key, fps, frames in (("S1 Seq1", 25, 9), ("S3 Seq2", 50, 6)):
    cams = {}
    for cam in ("0", "8"):
      kp2d, kp3d = _poses(rng, frames)
      cams[cam] = {"data_2d": kp2d, "data_3d": kp3d}
    data[key] = [cams, fps]
  np.savez_compressed(path, data=data)
  return data


def _write_test(path, rng, nan_frame=None, valid_nan=False):
  data = {}
  for key, frames in (("TS1", 8), ("TS5", 5)):
    kp2d, kp3d = _poses(rng, frames)
    valid = np.ones(frames)
    valid[[0, 3]] = 0
    if key == "TS1" and nan_frame is not None:
      kp3d[nan_frame] = np.nan
      valid[nan_frame] = 1.0 if valid_nan else 0.0
    data[key] = {"data_2d": kp2d, "data_3d": kp3d, "valid": valid}
  np.savez_compressed(path, data=data)
  return data


def test_train_file(tmp_path):
  src = _write_train(tmp_path / "data_train_3dhp.npz",
                     np.random.default_rng(0))
  out = mpi3dhp.read_train(str(tmp_path / "data_train_3dhp.npz"))
  assert out["seq_name"].tolist() == ["S1 Seq1 cam0", "S1 Seq1 cam8",
                                      "S3 Seq2 cam0", "S3 Seq2 cam8"]
  assert out["seq_subject"].tolist() == ["S1", "S1", "S3", "S3"]
  assert out["seq_action"].tolist() == ["Seq1", "Seq1", "Seq2", "Seq2"]
  assert out["seq_camera"].tolist() == ["0", "8", "0", "8"]
  assert out["seq_fps"].tolist() == [25, 25, 50, 50]
  assert out["seq_offsets"].tolist() == [0, 9, 18, 24, 30]
  np.testing.assert_array_equal(out["seq_image_size"], [[2048, 2048]] * 4)
  np.testing.assert_array_equal(out["kp3d"][9:18],
                                src["S1 Seq1"][0]["8"]["data_3d"])
  np.testing.assert_array_equal(out["kp2d"][18:24],
                                src["S3 Seq2"][0]["0"]["data_2d"])
  np.testing.assert_array_equal(out["conf"], 1.0)
  assert out["layout"] == "mpi17" and out["input_2d"] == "gt"
  assert "kp3d_image" not in out and "valid" not in out


def test_test_file_and_convert(tmp_path):
  rng = np.random.default_rng(1)
  src = _write_test(tmp_path / "data_test_3dhp.npz", rng)
  _write_train(tmp_path / "data_train_3dhp.npz", rng)
  paths = mpi3dhp.convert(str(tmp_path / "out"),
                          str(tmp_path / "data_train_3dhp.npz"),
                          str(tmp_path / "data_test_3dhp.npz"))
  test = dataset.load(paths["test"])
  assert test.seq_name.tolist() == ["TS1", "TS5"]
  assert test.seq_action.tolist() == ["GreenScreen", "Outdoor"]
  np.testing.assert_array_equal(test.seq_image_size, [[2048, 2048],
                                                      [1920, 1080]])
  np.testing.assert_array_equal(test.seq_fps, [25, 50])
  np.testing.assert_array_equal(test.valid, np.concatenate(
      [src["TS1"]["valid"], src["TS5"]["valid"]]).astype(bool))
  np.testing.assert_array_equal(test.kp3d[8:], src["TS5"]["data_3d"])
  assert dataset.load(paths["train"]).num_seqs == 4


def test_nan_on_invalid_frames_is_filled(tmp_path, caplog):
  src = _write_test(tmp_path / "t.npz", np.random.default_rng(2),
                    nan_frame=3)
  with caplog.at_level("WARNING"):
    out = mpi3dhp.read_test(str(tmp_path / "t.npz"))
  assert "invalid frames had NaN" in caplog.text
  # Frame 3 (invalid) takes its nearest finite neighbour, frame 2.
  np.testing.assert_array_equal(out["kp3d"][3], src["TS1"]["data_3d"][2])
  np.testing.assert_array_equal(out["kp3d"][4], src["TS1"]["data_3d"][4])
  assert np.isfinite(out["kp3d"]).all()


@pytest.mark.parametrize("kind, message", [
    ("valid_nan", r"\['data'\]\['TS1'\]: NaN/inf poses on valid frames \[5\]"),
    ("no_valid", r"\['data'\]\['TS1'\]\['valid'\] is missing"),
    ("joints", r"\['data'\]\['TS1'\]\['data_3d'\]: has shape \(8, 16, 3\), "
     r"expected \(8, 17, 3\)"),
    ("unknown", r"\['data'\]\['TS9'\]: unknown test sequence"),
])
def test_test_file_errors(tmp_path, kind, message):
  path = tmp_path / "t.npz"
  src = _write_test(path, np.random.default_rng(3), nan_frame=5,
                    valid_nan=kind == "valid_nan")
  if kind == "no_valid":
    del src["TS1"]["valid"]
  elif kind == "joints":
    src["TS1"]["data_3d"] = src["TS1"]["data_3d"][:, :16]
  elif kind == "unknown":
    src["TS9"] = src.pop("TS5")
  np.savez_compressed(path, data=src)
  with pytest.raises(dataset.DataError, match=message) as err:
    mpi3dhp.read_test(str(path))
  assert str(path) in str(err.value)


def test_train_file_errors(tmp_path):
  path = tmp_path / "t.npz"
  np.savez_compressed(path, data={"S1 Seq1": {"0": {}}})
  with pytest.raises(dataset.DataError, match=r"'S1 Seq1'\]: expected"):
    mpi3dhp.read_train(str(path))
  np.savez_compressed(path, other=np.zeros(3))
  with pytest.raises(dataset.DataError, match="key 'data' is missing"):
    mpi3dhp.read_train(str(path))
