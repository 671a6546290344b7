"""Atomic writes and output-path checks (opformer_jax/fileio.py)."""

import os

import pytest

from opformer_jax import errors
from opformer_jax import fileio


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
  path = tmp_path / "out" / "result.json"
  fileio.write_text(str(path), "old\n")
  with pytest.raises(RuntimeError):
    with fileio.atomic_path(str(path)) as tmp, open(tmp, "w") as f:
      f.write("half")
      raise RuntimeError("killed mid-write")
  assert path.read_text() == "old\n"
  assert os.listdir(path.parent) == ["result.json"]


def test_a_file_in_the_way_is_named_not_a_traceback(tmp_path):
  (tmp_path / "a_file").write_text("x")
  with pytest.raises(NotADirectoryError) as e:
    fileio.write_text(str(tmp_path / "a_file" / "sub" / "x.json"), "{}")
  assert e.value.filename == str(tmp_path / "a_file")
  with pytest.raises(IsADirectoryError):
    fileio.write_text(str(tmp_path), "{}")


def test_output_checks_name_the_flag(tmp_path):
  (tmp_path / "a_file").write_text("x")
  fileio.check_output_dir(str(tmp_path / "new"), "--output")
  fileio.check_output_file(str(tmp_path / "new" / "x.json"), "--json")
  assert not (tmp_path / "new").exists()   # checks create nothing
  with pytest.raises(errors.UserError, match="is an existing file"):
    fileio.check_output_dir(str(tmp_path / "a_file"), "--output")
  with pytest.raises(errors.UserError, match="lies under the file"):
    fileio.check_output_dir(str(tmp_path / "a_file" / "o"), "--output")
  with pytest.raises(errors.UserError, match=r"^--json=.*: is a folder"):
    fileio.check_output_file(str(tmp_path), "--json")
  with pytest.raises(errors.UserError, match="a_file is a file"):
    fileio.check_output_file(str(tmp_path / "a_file" / "x.json"), "--json")
  with pytest.raises(errors.UserError, match="--output is empty"):
    fileio.check_output_dir("", "--output")
