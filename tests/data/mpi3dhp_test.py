"""Tests of the MPI-INF-3DHP reader on tiny MotionAGFormer-format files."""

import os
import subprocess
import sys

import numpy as np
import pytest

from opformer_jax.data import convert_util
from opformer_jax.data import dataset
from opformer_jax.data import mpi3dhp

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


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


def _arrays_by_name(arrays):
  off = arrays["seq_offsets"]
  return {str(n): {k: arrays[k][off[s]:off[s + 1]].tobytes()
                   for k in ("kp2d", "conf", "kp3d", "valid") if k in arrays}
          for s, n in enumerate(arrays["seq_name"])}


def test_sequences_without_2d_or_3d_are_left_out(tmp_path):
  rng = np.random.default_rng(4)
  train = _write_train(tmp_path / "train.npz", rng)
  test = _write_test(tmp_path / "test.npz", rng)
  full_train = _arrays_by_name(mpi3dhp.read_train(str(tmp_path /
                                                      "train.npz")))
  full_test = _arrays_by_name(mpi3dhp.read_test(str(tmp_path / "test.npz")))
  del train["S3 Seq2"][0]["8"]["data_3d"]
  test["TS5"]["data_2d"] = np.zeros((0, 17, 2), np.float32)
  np.savez_compressed(tmp_path / "train.npz", data=train)
  np.savez_compressed(tmp_path / "test.npz", data=test)
  gaps = convert_util.Gaps()
  paths = mpi3dhp.convert(str(tmp_path / "out"), str(tmp_path / "train.npz"),
                          str(tmp_path / "test.npz"), gaps=gaps)
  got_train = _arrays_by_name(dataset.load(paths["train"]).arrays)
  got_test = _arrays_by_name(dataset.load(paths["test"]).arrays)
  assert set(full_train) - set(got_train) == {"S3 Seq2 cam8"}
  assert set(got_test) == {"TS1"}
  for got, full in ((got_train, full_train), (got_test, full_test)):
    for name, fields in got.items():
      assert fields == full[name], name
  assert gaps.counts == {mpi3dhp.NO_POSES: 2}
  assert gaps.warnings[0] == (f"{tmp_path / 'train.npz'}: key ['data']"
                              "['S3 Seq2'][0]['8']['data_3d'] is missing or "
                              "empty; left out")
  with pytest.raises(dataset.DataError, match=r"\['data'\]\['TS5'\]"
                     r"\['data_2d'\] is missing or empty; expected 'data_2d' "
                     r"and 'data_3d' for every sequence \(--strict"):
    mpi3dhp.read_test(str(tmp_path / "test.npz"),
                      gaps=convert_util.Gaps(strict=True))
  # Every sequence left out: the split came out empty, an error.
  test.pop("TS1")
  np.savez_compressed(tmp_path / "test.npz", data=test)
  with pytest.raises(dataset.DataError, match=r"test\.npz: split 'test' came "
                     r"out empty \(no sequence with 2D and 3D\)"):
    mpi3dhp.read_test(str(tmp_path / "test.npz"))


def test_prepare_3dhp_tool_errors_are_one_line(tmp_path):
  _write_train(tmp_path / "t.npz", np.random.default_rng(5))
  data = (tmp_path / "t.npz").read_bytes()
  (tmp_path / "t.npz").write_bytes(data[:len(data) // 2])
  out = tmp_path / "out"
  for args, line in (
      ([f"--train={tmp_path / 't.npz'}"],
       f"error: {tmp_path / 't.npz'}: not a readable .npz file ("),
      ([], "error: --train, --test: neither given; expected "
       "data_train_3dhp.npz and/or data_test_3dhp.npz")):
    run = subprocess.run([sys.executable, os.path.join(REPO, "tools",
                                                       "prepare_3dhp.py"),
                          *args, f"--output_dir={out}"], cwd=REPO,
                         capture_output=True, text=True, check=False)
    assert run.returncode == 2, run.stderr
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert run.stderr.startswith(line) and "Traceback" not in run.stderr
  assert not out.exists()
