"""Tests for opformer_jax.input_pipeline on tiny split files written here."""

import pickle

import grain
import numpy as np
import pytest
from etils import epath

from opformer_jax import config_lib
from opformer_jax.data import dataset
from opformer_jax.data import input_pipeline as ip
from opformer_jax import skeleton

# Camera name -> (w, h), PROTOCOL.md §2.4, plus a 3DHP TS5 size.
SIZES = {"54138969": (1000, 1002), "55011271": (1000, 1000),
         "TS5": (1920, 1080)}
LENGTHS = (30, 5, 50, 9, 10)   # T = 9: long, short, long, = T, T + 1.


def _write(path, lengths, *, layout="h36m17", cameras=None, drop=(),
           valid=None, seed=0):
  """A random but valid split file; returns the arrays written."""
  n, s = sum(lengths), len(lengths)
  j = skeleton.get_layout(layout).num_joints
  rng = np.random.default_rng(seed)
  cameras = cameras or ["54138969"] * s
  arrays = {
      "kp2d": rng.uniform(0, 1000, (n, j, 2)),
      "conf": rng.uniform(0, 1, (n, j)),
      "kp3d": rng.normal(0, 400, (n, j, 3)) + [0, 0, 4500],
      "kp3d_image": rng.uniform(0, 1000, (n, j, 3)),
      "factor": rng.uniform(3, 6, (n,)),
      "valid": valid,
      "seq_name": [f"seq{i}" for i in range(s)],
      "seq_offsets": np.concatenate([[0], np.cumsum(lengths)]),
      "seq_subject": ["S9"] * s,
      "seq_action": ["Walking"] * s,
      "seq_camera": cameras,
      "seq_image_size": [SIZES[c] for c in cameras],
      "seq_fps": [50.0] * s,
      "layout": layout,
      "input_2d": "detected",
      "source": "input_pipeline_test",
  }
  for field in drop:
    arrays.pop(field)
  dataset.save(str(path), arrays)
  return {k: v for k, v in arrays.items() if v is not None}


def _config(path, *, t=9, stride=3, batch=4, **data):
  c = config_lib.base_config()
  c.data.train_path = c.data.test_path = str(path)
  c.data.num_frames = t
  c.data.train_stride = stride
  c.data.test_stride = t
  c.train.batch_size = batch
  c.eval.batch_size = batch
  c.data.update(data)
  return c


def _take(it, k):
  return [next(it) for _ in range(k)]


def _assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def _rows(batches):
  """Tuples of frame indices of every row of every batch, in order."""
  return [tuple(r) for b in batches for r in b["frame_idx"]]


# --- clip windows ------------------------------------------------------------

@pytest.mark.parametrize("stride,tail,counts", [
    # L = 30, 5, 50, 9, 10 with T = 9.
    (3, "drop", [8, 1, 14, 1, 1]),    # starts 0..21, -, 0..39, 0, 0
    (3, "last", [8, 1, 15, 1, 2]),    # + 41 (50 - 9), + 1 (10 - 9)
    (9, "drop", [3, 1, 5, 1, 1]),     # test stride T, MotionBERT
    (9, "last", [4, 1, 6, 1, 2]),     # + 21, + 41, + 1, VideoPose3D
])
def test_clip_counts_follow_the_stride_rule(tmp_path, stride, tail, counts):
  clips = ip.clip_frames(LENGTHS, 9, stride, tail)
  assert clips.shape == (sum(counts), 9) and clips.dtype == np.int64
  offsets = np.concatenate([[0], np.cumsum(LENGTHS)])
  seq = np.searchsorted(offsets, clips[:, 0], side="right") - 1
  np.testing.assert_array_equal(np.bincount(seq), counts)
  # Windows never cross a sequence.
  np.testing.assert_array_equal(
      np.searchsorted(offsets, clips[:, -1], side="right") - 1, seq)
  # The same count reaches the pipeline's epoch size.
  if tail == "drop" and stride == 3:
    _write(tmp_path / "a.npz", LENGTHS)
    _, n_clips = ip.train_dataset(_config(tmp_path / "a.npz"), 0, 1)
    assert n_clips == sum(counts)
    assert ip.steps_per_epoch(n_clips, 4) == 6


def test_clip_frames_exact_indices():
  clips = ip.clip_frames([12, 5], 9, 3, "last")
  np.testing.assert_array_equal(clips[0], np.arange(9))
  np.testing.assert_array_equal(clips[1], np.arange(3, 12))  # last frame 11
  # Short sequence: floor(linspace(0, 5, 9, endpoint=False)), offset 12.
  np.testing.assert_array_equal(clips[2], 12 + np.array(
      [0, 0, 1, 1, 2, 2, 3, 3, 4]))
  np.testing.assert_array_equal(
      clips[2] - 12, np.floor(np.linspace(0, 5, 9, endpoint=False)))
  assert len(clips) == 3


def test_centered_windows_edge_padding(tmp_path):
  valid = np.array([1, 0, 1, 1, 1, 1, 0, 0, 1, 1], bool)
  want = [[0, 0, 0, 1, 2], [0, 1, 2, 3, 3], [1, 2, 3, 3, 3],
          [4, 4, 4, 5, 6], [4, 4, 5, 6, 7], [6, 7, 8, 9, 9],
          [7, 8, 9, 9, 9]]
  np.testing.assert_array_equal(ip.centered_frames([4, 6], 5, valid), want)
  arrays = _write(tmp_path / "h.npz", [4, 6], valid=valid)
  c = _config(tmp_path / "h.npz", t=5, batch=4, name="mpi_inf_3dhp")
  ds, num_batches = ip.eval_batches(c, mode="centered", process_index=0,
                                    process_count=1)
  batches = list(ds)
  assert num_batches == len(batches) == 2
  mask = np.concatenate([b["mask"] for b in batches])
  np.testing.assert_array_equal(mask, [True] * 7 + [False])
  np.testing.assert_array_equal(_rows(batches)[:7], want)
  for b in batches:
    np.testing.assert_array_equal(b["center"], 2)
    np.testing.assert_array_equal(b["valid"][:, 2], True)  # scored frames
  # Edge-padded inputs repeat the first frame's keypoints.
  first = batches[0]["kp2d"][0]
  w, h = SIZES["54138969"]
  np.testing.assert_allclose(first[0, :, 0],
                             arrays["kp2d"][0, :, 0] / w * 2 - 1, atol=1e-6)
  np.testing.assert_array_equal(first[0], first[2])
  np.testing.assert_array_equal(batches[0]["valid"][0], [1, 1, 1, 0, 1])


# --- normalisation and labels ------------------------------------------------

def _hand_file(path):
  """Three 9-frame sequences (1000x1002, 1000x1000, 1920x1080) with known
  keypoints at frame 0 of each: joint 3 at (250, 750) px, conf 0.25."""
  arrays = _write(path, [9, 9, 9], cameras=list(SIZES))
  for f in (0, 9, 18):
    arrays["kp2d"][f, 3] = (250, 750)
    arrays["conf"][f, 3] = 0.25
    arrays["kp3d_image"][f, 0] = (500, 400, 0)    # root
    arrays["kp3d_image"][f, 3] = (600, 300, 50)
    arrays["factor"][f] = 4.0
    arrays["kp3d"][f, 0] = (10, 20, 4000)         # root, mm
    arrays["kp3d"][f, 3] = (110, -80, 4200)
  dataset.save(str(path), arrays)
  return arrays


def test_normalisation_hand_computed(tmp_path):
  _hand_file(tmp_path / "n.npz")
  src = ip.ClipSource(tmp_path / "n.npz", 9, 9)
  e1000x1002, e1000x1000, e1920x1080 = src[0], src[1], src[2]
  # x = 250 / 1000 * 2 - 1; y = 750 / 1000 * 2 - h / w.
  np.testing.assert_allclose(e1000x1002["kp2d"][0, 3], [-0.5, 0.498, 0.25],
                             atol=1e-6)
  np.testing.assert_allclose(e1000x1000["kp2d"][0, 3], [-0.5, 0.5, 0.25],
                             atol=1e-6)
  np.testing.assert_allclose(e1920x1080["kp2d"][0, 3],
                             [250 / 960 - 1, 750 / 960 - 0.5625, 0.25],
                             atol=1e-6)
  # Image-space label: (100, -100, 50) px root-relative / (w / 2).
  np.testing.assert_allclose(e1000x1000["kp3d"][0, 3], [0.2, -0.2, 0.1],
                             atol=1e-6)
  np.testing.assert_allclose(e1920x1080["kp3d"][0, 3],
                             [100 / 960, -100 / 960, 50 / 960], atol=1e-6)
  assert e1000x1000["scale_mm"][0] == pytest.approx(4.0 * 500)
  np.testing.assert_allclose(e1000x1000["kp3d"][0, 3]
                             * e1000x1000["scale_mm"][0], [400, -400, 200],
                             atol=1e-3)
  # Camera-space label: (100, -100, 200) mm root-relative / (w / 2).
  cam = ip.ClipSource(tmp_path / "n.npz", 9, 9, label_space="camera")
  np.testing.assert_allclose(cam[1]["kp3d"][0, 3], [0.2, -0.2, 0.4],
                             atol=1e-6)
  np.testing.assert_allclose(cam[2]["kp3d"][0, 3],
                             [100 / 960, -100 / 960, 200 / 960], atol=1e-6)
  np.testing.assert_allclose(cam[2]["scale_mm"], 960.0)


@pytest.mark.parametrize("layout", ["h36m17", "mpi17"])
@pytest.mark.parametrize("label_space", ["image", "camera"])
def test_label_root_relative_and_scale_gives_mm(tmp_path, layout,
                                                label_space):
  arrays = _write(tmp_path / "l.npz", [12, 5],
                  cameras=["55011271", "54138969"], layout=layout)
  root = skeleton.get_layout(layout).root
  src = ip.ClipSource(tmp_path / "l.npz", 9, 3, label_space=label_space)
  for i in range(len(src)):
    e = src[i]
    idx = e["frame_idx"]
    np.testing.assert_array_equal(e["kp3d"][:, root], 0)
    if label_space == "image":
      mm = arrays["kp3d_image"][idx] * arrays["factor"][idx, None, None]
    else:
      mm = arrays["kp3d"][idx]
    mm = mm - mm[:, root:root + 1]
    np.testing.assert_allclose(e["kp3d"] * e["scale_mm"][:, None, None], mm,
                               rtol=1e-4, atol=1e-2)
    # The input stays absolute and carries the file's confidence.
    w, h = SIZES[["55011271", "54138969"][int(e["seq"])]]
    np.testing.assert_allclose(e["kp2d"][..., 1],
                               arrays["kp2d"][idx, :, 1] / w * 2 - h / w,
                               atol=1e-5)
    np.testing.assert_allclose(e["kp2d"][..., 2], arrays["conf"][idx],
                               atol=1e-7)


def test_image_label_without_factor_has_nan_scale(tmp_path):
  _write(tmp_path / "f.npz", [9], drop=("factor",))
  e = ip.ClipSource(tmp_path / "f.npz", 9, 9)[0]
  assert np.isnan(e["scale_mm"]).all() and np.isfinite(e["kp3d"]).all()


def test_gt_2d_input_is_normalised_label_xy_with_conf_1(tmp_path):
  arrays = _write(tmp_path / "g.npz", [9], cameras=["54138969"])
  for label_space in ("image", "camera"):
    e = ip.ClipSource(tmp_path / "g.npz", 9, 9, input_2d="gt",
                      label_space=label_space)[0]
    xy = arrays["kp3d_image"][:9, :, :2]
    np.testing.assert_allclose(e["kp2d"][..., 0], xy[..., 0] / 500 - 1,
                               atol=1e-6)
    np.testing.assert_allclose(e["kp2d"][..., 1], xy[..., 1] / 500 - 1.002,
                               atol=1e-6)
    np.testing.assert_array_equal(e["kp2d"][..., 2], 1.0)


# --- flip --------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["h36m17", "mpi17"])
def test_flip_swaps_joints_with_confidence_and_twice_is_identity(
    tmp_path, layout):
  _write(tmp_path / "x.npz", [9], layout=layout)
  e = ip.ClipSource(tmp_path / "x.npz", 9, 9)[0]
  flip = ip.RandomFlip(layout, 1.0)
  f = flip(e, np.random.default_rng(0))
  lay = skeleton.get_layout(layout)
  for l, r in zip(lay.left, lay.right):
    for a, b in ((l, r), (r, l)):
      np.testing.assert_array_equal(f["kp2d"][:, a, 0], -e["kp2d"][:, b, 0])
      np.testing.assert_array_equal(f["kp2d"][:, a, 1:], e["kp2d"][:, b, 1:])
      np.testing.assert_array_equal(f["kp3d"][:, a, 1:], e["kp3d"][:, b, 1:])
  np.testing.assert_array_equal(f["kp3d"][:, lay.root], 0)
  np.testing.assert_array_equal(f["frame_idx"], e["frame_idx"])
  _assert_batches_equal([flip(f, np.random.default_rng(1))], [e])
  assert ip.RandomFlip(layout, 0.0)(e, np.random.default_rng(0)) is e


@pytest.mark.parametrize("prob", [0.0, 0.5])
def test_flipped_fraction_matches_flip_prob(tmp_path, prob):
  _write(tmp_path / "p.npz", [150, 150])
  src = ip.ClipSource(tmp_path / "p.npz", 9, 3)
  by_start = {int(src.clips[i, 0]): src[i]["kp3d"] for i in range(len(src))}
  c = _config(tmp_path / "p.npz", batch=8, flip_prob=prob)
  ds, _ = ip.train_dataset(c, 0, 1)
  flipped = total = 0
  for b in _take(iter(ds), 50):
    for kp3d, idx in zip(b["kp3d"], b["frame_idx"]):
      plain = by_start[int(idx[0])]
      is_flipped = not np.array_equal(kp3d, plain)
      if is_flipped:
        np.testing.assert_array_equal(kp3d, skeleton.flip_pose(plain))
      flipped += is_flipped
      total += 1
  # 400 Bernoulli(0.5) draws: sd 0.025, 4 sd tolerance.
  assert abs(flipped / total - prob) <= 0.1


# --- training stream ---------------------------------------------------------

def test_same_seed_same_batches_and_epochs_are_permutations(tmp_path):
  _write(tmp_path / "s.npz", [30, 5, 50, 9])   # 24 clips
  c = _config(tmp_path / "s.npz")
  ds, n = ip.train_dataset(c, 0, 1)
  a = _take(iter(ds), 12)
  _assert_batches_equal(a, _take(iter(ip.train_dataset(c, 0, 1)[0]), 12))
  c.seed = 1
  other = _take(iter(ip.train_dataset(c, 0, 1)[0]), 12)
  assert _rows(other) != _rows(a)
  all_clips = sorted(tuple(r) for r in ip.clip_frames([30, 5, 50, 9], 9, 3))
  epoch1, epoch2 = _rows(a[:6]), _rows(a[6:])
  assert n == 24 and sorted(epoch1) == sorted(epoch2) == all_clips
  assert epoch1 != epoch2   # reshuffled each epoch


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_from_iterator_state(tmp_path, workers):
  _write(tmp_path / "r.npz", [30, 5, 50, 9])
  c = _config(tmp_path / "r.npz", num_workers=workers)
  ds, _ = ip.train_dataset(c, 0, 1)
  it = iter(ds)
  head = _take(it, 5)
  state = it.get_state()
  want = _take(it, 4)
  ckpt = epath.Path(tmp_path / "ckpt")
  ckpt.mkdir()
  grain.checkpoint.CheckpointHandler().save(ckpt, item=it)  # JSON state
  resumed = iter(ip.train_dataset(c, 0, 1)[0])
  resumed.set_state(state)
  _assert_batches_equal(_take(resumed, 4), want)
  if workers:
    it.close()
    resumed.close()
    # Worker processes change nothing in the stream.
    c.data.num_workers = 0
    _assert_batches_equal(_take(iter(ip.train_dataset(c, 0, 1)[0]), 9),
                          head + want)
  else:
    restored = grain.checkpoint.CheckpointHandler().restore(
        ckpt, item=iter(ip.train_dataset(c, 0, 1)[0]))
    _assert_batches_equal(_take(restored, 2), _take(it, 2))


def test_process_shards_are_disjoint_and_cover_the_epoch(tmp_path):
  _write(tmp_path / "d.npz", [30, 5, 50, 9])   # 24 clips = 4 x 6
  c = _config(tmp_path / "d.npz", batch=6)
  single = _take(iter(ip.train_dataset(c, 0, 1)[0]), 8)
  shards = [_take(iter(ip.train_dataset(c, pi, 3)[0]), 8) for pi in range(3)]
  for step in range(8):
    local = [_rows([s[step]]) for s in shards]
    assert all(len(rows) == 2 for rows in local)
    merged = sum(local, [])
    # The processes' local batches form the single-process global batch.
    assert sorted(merged) == sorted(_rows([single[step]]))
  first_epoch = sum((_rows(s[:4]) for s in shards), [])
  assert len(set(first_epoch)) == 24
  assert sorted(first_epoch) == sorted(
      tuple(r) for r in ip.clip_frames([30, 5, 50, 9], 9, 3))


# --- evaluation stream -------------------------------------------------------

@pytest.mark.parametrize("tail,n_clips", [("drop", 11), ("last", 14)])
def test_eval_stream_ordered_padded_every_clip_once(tmp_path, tail, n_clips):
  _write(tmp_path / "e.npz", LENGTHS)
  c = _config(tmp_path / "e.npz", test_tail=tail)
  ds, num_batches = ip.eval_batches(c, process_index=0, process_count=1)
  batches = list(ds)
  assert num_batches == len(batches) == -(-n_clips // 4)
  for b in batches:
    assert b["kp2d"].shape == (4, 9, 17, 3) and b["mask"].shape == (4,)
  mask = np.concatenate([b["mask"] for b in batches])
  rows = _rows(batches)
  want = [tuple(r) for r in ip.clip_frames(LENGTHS, 9, 9, tail)]
  assert [r for r, m in zip(rows, mask) if m] == want   # in order, once
  assert mask.sum() == n_clips and not mask[n_clips:].any()
  assert all(r == want[-1] for r in rows[n_clips:])    # padding copies
  # Two processes: strided rows, same batch count, together every clip once.
  parts = [list(ip.eval_batches(c, process_index=pi, process_count=2)[0])
           for pi in range(2)]
  assert len(parts[0]) == len(parts[1]) == num_batches
  for k in range(num_batches):
    local = [[r for r, m in zip(_rows([p[k]]), p[k]["mask"]) if m]
             for p in parts]
    assert sorted(local[0] + local[1]) == sorted(want[4 * k:4 * k + 4])
  # max_clips evaluates a prefix.
  ds, num_batches = ip.eval_batches(c, process_index=0, process_count=1,
                                    max_clips=5)
  prefix = list(ds)
  assert num_batches == 2 and sum(b["mask"].sum() for b in prefix) == 5


# --- errors, pickling, helpers -----------------------------------------------

def test_missing_fields_raise_clear_errors(tmp_path):
  _write(tmp_path / "cam.npz", [9], drop=("kp3d_image", "factor"))
  _write(tmp_path / "img.npz", [9], drop=("kp3d",))
  with pytest.raises(dataset.DataError, match=r"cam\.npz.*'kp3d_image'.*"
                     r"label_space='image'"):
    ip.train_dataset(_config(tmp_path / "cam.npz", batch=1), 0, 1)
  with pytest.raises(dataset.DataError, match=r"img\.npz.*'kp3d'.*camera"):
    len(ip.ClipSource(tmp_path / "img.npz", 9, label_space="camera"))
  with pytest.raises(dataset.DataError, match=r"'kp3d_image'.*input_2d='gt'"):
    len(ip.ClipSource(tmp_path / "cam.npz", 9, input_2d="gt",
                      label_space="camera"))
  with pytest.raises(FileNotFoundError, match="nope.npz"):
    len(ip.ClipSource(tmp_path / "nope.npz", 9))
  with pytest.raises(ValueError, match="tail"):
    ip.clip_frames([10], 9, 3, "pad")
  with pytest.raises(ValueError, match="multiple of the process count"):
    ip.train_dataset(_config(tmp_path / "img.npz", batch=3), 0, 2)
  with pytest.raises(ValueError, match="fewer than one batch"):
    ip.train_dataset(_config(tmp_path / "img.npz", batch=4), 0, 1)
  valid = np.zeros(9, bool)
  _write(tmp_path / "v.npz", [9], valid=valid)
  with pytest.raises(dataset.DataError, match="no valid frames"):
    ip.eval_batches(_config(tmp_path / "v.npz"), mode="centered",
                    process_index=0, process_count=1)


def test_source_pickles_without_arrays(tmp_path):
  _write(tmp_path / "k.npz", [300])
  src = ip.ClipSource(tmp_path / "k.npz", 9, 3)
  e = src[5]
  blob = pickle.dumps(src)
  assert len(blob) < 1000   # the file holds ~100 KB
  copy = pickle.loads(blob)
  assert copy._data is None and repr(copy) == repr(src)
  assert "k.npz" in repr(src) and "num_frames=9" in repr(src)
  _assert_batches_equal([copy[5]], [e])


def test_measure_throughput_is_positive(tmp_path):
  _write(tmp_path / "t.npz", [60])
  assert ip.measure_throughput(_config(tmp_path / "t.npz"), 3) > 0
