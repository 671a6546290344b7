"""Tests of data resolution and of the validation subset."""

import os

import numpy as np
import pytest

from opformer_jax import config_lib
from opformer_jax import errors
from opformer_jax.data import dataset
from opformer_jax.data import input_pipeline
from opformer_jax.data import sources

import conftest


def test_builtin_dataset_is_generated_once_into_the_user_cache(
    tmp_path, monkeypatch):
  monkeypatch.setenv("HOME", str(tmp_path))
  c = config_lib.base_config()
  c.data.name = "synthetic"
  out = sources.resolve(c)
  cache = tmp_path / ".cache" / "opformer_jax" / "synthetic"
  assert out.data.train_path == str(cache / "train.npz")
  assert out.data.test_path == str(cache / "test.npz")
  assert dataset.load(out.data.test_path).synthetic
  assert c.data.train_path is None            # the given config is untouched
  with pytest.raises(AttributeError):         # locked like a flag's config
    out.data.new_field = 1
  mtime = os.path.getmtime(out.data.train_path)
  assert sources.resolve(c).data.train_path == out.data.train_path
  assert os.path.getmtime(out.data.train_path) == mtime   # reused


def test_set_paths_are_kept_and_only_the_needed_splits_are_resolved(
    tmp_path, monkeypatch):
  monkeypatch.setenv("HOME", str(tmp_path))
  c = config_lib.base_config()
  c.data.name = "synthetic"
  (tmp_path / "mine").mkdir()
  np.savez(tmp_path / "mine" / "test.npz", kp2d=np.zeros((1, 17, 2)))
  c.data.test_path = str(tmp_path / "mine" / "test.npz")
  assert sources.resolve(c, splits=("test",)) is c
  assert not (tmp_path / ".cache").exists()


def test_a_missing_path_of_real_data_is_a_one_line_config_error(tmp_path):
  c = config_lib.base_config()
  c.data.test_path = str(tmp_path / "test.npz")
  np.savez(c.data.test_path, kp2d=np.zeros((1, 17, 2)))
  with pytest.raises(errors.ConfigError) as e:
    sources.resolve(c)
  assert str(e.value) == (
      "config.data.train_path is not set; expected the train split of a "
      "prepared dataset (e.g. configs/h36m.py:data_dir=DIR, or "
      "--config.data.train_path=DIR/train.npz)")
  assert sources.resolve(c, splits=("test",)) is c


@pytest.fixture
def split(tmp_path):
  """4 sequences of 40 frames."""
  return conftest.write_toy_split(tmp_path / "test.npz", num_seqs=4,
                                  length=40)


@pytest.mark.parametrize("content, what", [
    (None, "no such data file"), ("dir", "is a directory"),
    (b"", "is empty (0 bytes)"),
    (b"kp2d,conf\n1,2\n", "is a text file (it starts 'kp2d,conf'), not NumPy")])
def test_a_set_path_that_is_no_split_file_is_named(tmp_path, content, what):
  path = tmp_path / "train.npz"
  if content == "dir":
    path.mkdir()
  elif content is not None:
    path.write_bytes(content)
  c = config_lib.base_config()
  c.data.train_path = str(path)
  with pytest.raises(errors.DataError) as e:
    sources.check_files(c, ("train",))
  assert str(e.value).startswith(f"config.data.train_path={path}: {what}")


def test_subset_takes_the_same_centred_stretch_of_every_sequence(
    split, tmp_path):
  path = sources.validation_subset(split, str(tmp_path / "val.npz"),
                                   max_clips=8, num_frames=9, stride=9)
  full, sub = dataset.load(split), dataset.load(path)
  # 8 clips over 4 sequences: 2 clips of 9 = 18 frames, from frame 11.
  np.testing.assert_array_equal(sub.seq_offsets, [0, 18, 36, 54, 72])
  want = np.concatenate([np.arange(11, 29) + 40 * s for s in range(4)])
  np.testing.assert_array_equal(sub.kp2d, full.kp2d[want])
  np.testing.assert_array_equal(sub.kp3d_image, full.kp3d_image[want])
  np.testing.assert_array_equal(sub.factor, full.factor[want])
  np.testing.assert_array_equal(sub.seq_name, full.seq_name)
  np.testing.assert_array_equal(sub.seq_action, full.seq_action)
  assert len(input_pipeline.clip_frames(sub.seq_lengths, 9, 9)) == 8
  assert "validation subset of 72 frames of 4 sequences" in str(
      sub.arrays["source"])


def test_subset_with_fewer_clips_than_sequences_spreads_them(split,
                                                             tmp_path):
  sub = dataset.load(sources.validation_subset(
      split, str(tmp_path / "val.npz"), max_clips=2, num_frames=9,
      stride=9))
  np.testing.assert_array_equal(sub.seq_name, ["seq0", "seq3"])
  full = dataset.load(split)
  np.testing.assert_array_equal(
      sub.kp2d, full.kp2d[np.r_[15:24, 120 + 15:120 + 24]])


def test_centered_subset_and_short_sequences(split, tmp_path):
  sub = dataset.load(sources.validation_subset(
      split, str(tmp_path / "val.npz"), max_clips=8, num_frames=9,
      stride=9, centered=True))
  np.testing.assert_array_equal(sub.seq_offsets, [0, 2, 4, 6, 8])
  np.testing.assert_array_equal(sub.kp2d[:2],
                                dataset.load(split).kp2d[19:21])
  whole = dataset.load(sources.validation_subset(
      split, str(tmp_path / "all.npz"), max_clips=40, num_frames=9,
      stride=9))
  assert whole.num_frames == 160                   # no sequence is longer
