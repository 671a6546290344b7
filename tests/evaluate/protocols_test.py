"""Tests of the protocol objects against numbers worked out by hand.

The fixtures are split files in the project schema whose poses put every
joint on the root except one, at a chosen distance: predicting zeros then
has a known per-frame MPJPE (distance / 17), so every average can be
written down without the code under test.
"""

import numpy as np
import pytest

from opformer_jax import config_lib
from opformer_jax import errors
from opformer_jax import model as model_lib
from opformer_jax.data import dataset
from opformer_jax.evaluate import protocols
from opformer_jax.evaluate import run

# (name, action, frames, per-frame MPJPE in mm of a zero prediction).
H36M_SEQS = (
    ("s_09_act_13_subact_01_ca_01", "Waiting", 9, 5.0),   # S9 skip list
    ("s_09_act_13_subact_02_ca_01", "Waiting", 18, 1.0),
    ("s_11_act_02_subact_01_ca_01", "Directions", 9, 4.0),
)
ERR_JOINT = 3          # r_ankle, in the right-leg part


def write_h36m_split(path, seqs=H36M_SEQS):
  """Image-space labels, factor 1: joint 3 is off the root by (3k, 0, 4k)
  px = mm with 5k = 17 * MPJPE, every other joint on the root."""
  rows = []
  for _, _, frames, err in seqs:
    k = 17 * err / 5
    pose = np.tile([500.0, 400.0, 0.0], (frames, 17, 1))
    pose[:, ERR_JOINT] += [3 * k, 0.0, 4 * k]
    rows.append(pose)
  image = np.concatenate(rows)
  n = len(image)
  lengths = [s[2] for s in seqs]
  dataset.save(str(path), dict(
      kp2d=image[..., :2], conf=np.ones((n, 17)), kp3d_image=image,
      factor=np.ones(n), seq_name=[s[0] for s in seqs],
      seq_offsets=np.concatenate([[0], np.cumsum(lengths)]),
      seq_subject=[s[0][:4] for s in seqs], seq_action=[s[1] for s in seqs],
      seq_camera=["54138969"] * len(seqs),
      seq_image_size=[[1000, 1000]] * len(seqs), seq_fps=[50] * len(seqs),
      layout="h36m17", input_2d="detected",
      source="tests: hand-made errors"))
  return str(path)


def config_for(path, name, frames=9, input_2d="file"):
  c = config_lib.base_config()
  c.data.name = name
  c.data.test_path = str(path)
  c.data.input_2d = input_2d
  config_lib.set_frames(c, frames)
  c.eval.batch_size = 4
  m = c.model
  m.depth, m.dim, m.num_heads, m.mlp_ratio = 1, 16, 2, 2.0
  return c


def zeros(kp2d):
  return np.zeros_like(np.asarray(kp2d))


def score(config):
  data = dataset.load(config.data.test_path)
  protocol = protocols.for_config(config, data)
  return protocol, run.run_protocol(zeros, config, data=data,
                                    protocol=protocol, progress=False)


def test_for_config_chooses_by_data_name(tmp_path):
  path = write_h36m_split(tmp_path / "test.npz")
  data = dataset.load(path)
  for name, cls in [("h36m", protocols.Human36M), ("mocap", protocols.Plain),
                    ("synthetic", protocols.Plain), ("3dhp", protocols.MPI3DHP),
                    ("mpi_inf_3dhp", protocols.MPI3DHP)]:
    config = config_for(path, name)
    assert type(protocols.for_config(config)) is cls
    if cls is not protocols.MPI3DHP:
      protocol = protocols.for_config(config, data)
      assert type(protocol) is cls and protocol.eval_mode == "clips"
  with pytest.raises(errors.ConfigError, match="layout 'h36m17'.*'mpi17'"):
    protocols.for_config(config_for(path, "3dhp"), data)
  with pytest.raises(ValueError, match="without the test split"):
    protocols.for_config(config_for(path, "h36m")).accumulator()


def test_skip_list_drops_exactly_the_three_s9_takes():
  names = [f"s_{s:02d}_act_{a:02d}_subact_{u:02d}_ca_{c:02d}"
           for s in (9, 11) for a in range(2, 17) for u in (1, 2)
           for c in range(1, 5)]
  skipped = {n for n in names if protocols.is_skipped(n)}
  # Greeting (act 05) 2, SittingDown (act 10) 2, Waiting (act 13) 1.
  assert skipped == {f"s_09_act_{a}_subact_{u}_ca_0{c}"
                     for a, u in [("05", "02"), ("10", "02"), ("13", "01")]
                     for c in range(1, 5)}
  assert protocols.is_skipped("s_09_act_13_subact_01")   # camera-less id
  assert not protocols.is_skipped("s_09_act_13_subact_011_ca_01")


def test_plain_protocol_action_and_frame_averages(tmp_path):
  path = write_h36m_split(tmp_path / "test.npz")
  protocol, results = score(config_for(path, "mocap"))
  assert type(protocol) is protocols.Plain and list(results) == ["default"]
  r = results["default"]
  waiting = (9 * 5.0 + 18 * 1.0) / 27
  assert r["per_action"]["Waiting"]["mpjpe"] == pytest.approx(waiting)
  assert r["action_avg"]["mpjpe"] == pytest.approx((waiting + 4.0) / 2)
  assert r["frame_avg"]["mpjpe"] == pytest.approx((45 + 18 + 36) / 36)
  assert r["num_frames"] == 36 and r["num_skipped_frames"] == 0
  assert protocol.headline(results) == pytest.approx((waiting + 4.0) / 2)
  # Only joint 3 errs: 17 x the action-averaged MPJPE, a third of its part.
  want_joint = np.zeros(17)
  want_joint[ERR_JOINT] = 17 * (waiting + 4.0) / 2
  np.testing.assert_allclose(protocol.per_joint_mpjpe(results), want_joint,
                             atol=1e-4)
  parts = protocol.per_part_mpjpe(results)
  assert list(parts) == ["origin", "right_leg", "left_leg", "trunk",
                         "left_arm", "right_arm"]
  assert parts["right_leg"] == pytest.approx(want_joint[ERR_JOINT] / 3)
  assert parts["origin"] == 0 and parts["trunk"] == 0


def test_human36m_protocol_skips_s9_and_averages(tmp_path):
  path = write_h36m_split(tmp_path / "test.npz")
  protocol, results = score(config_for(path, "h36m"))
  assert type(protocol) is protocols.Human36M
  r = results["default"]
  assert r["skipped_sequences"] == ["s_09_act_13_subact_01_ca_01"]
  assert r["num_skipped_frames"] == 9 and r["num_frames"] == 27
  assert r["per_action"]["Waiting"]["mpjpe"] == pytest.approx(1.0)
  assert r["action_avg"]["mpjpe"] == pytest.approx(2.5)
  assert r["frame_avg"]["mpjpe"] == pytest.approx((18 + 36) / 27)
  assert run.headline(results, config_for(path, "h36m")) == pytest.approx(2.5)
  summary = protocol.summary(results)
  assert summary == ["MPJPE: 2.5 mm (action-avg), 2.0 mm (frame-avg); "
                     "P-MPJPE " + f"{r['action_avg']['p_mpjpe']:.1f} mm; "
                     "MPJVE 0.00 mm/frame over 27 frames"]


def test_gt2d_conventions_and_the_configured_headline(tmp_path):
  path = write_h36m_split(tmp_path / "test.npz")
  config = config_for(path, "h36m", input_2d="gt")
  protocol, results = score(config)
  assert list(results) == ["motionagformer", "motionbert"]
  # MotionBERT keeps the input xy: only the 4k depth offset is an error.
  for conv, scale in [("motionagformer", 1.0), ("motionbert", 0.8)]:
    assert results[conv]["action_avg"]["mpjpe"] == pytest.approx(2.5 * scale)
  assert protocol.headline(results) == pytest.approx(2.5)
  config.eval.gt2d_convention = "motionbert"
  assert protocols.for_config(config).headline(results) == pytest.approx(2.0)
  md = protocol.markdown(results, "M", {"gt2d_convention": "motionbert"})
  assert "| M, GT 2D, motionagformer convention |" in md
  assert "| M, GT 2D, motionbert convention |" in md
  assert len(protocol.summary(results)) == 2


def write_3dhp_split(path):
  """Camera-space mm: joint 0 (head top, PCK-scored) at `dist` from the
  pelvis (14), every other joint on it; TS1 frames 0-11, TS5 frames 12-17.
  TS1's 150 mm is exact in float32 (w = 2048); TS5's distance is no
  multiple of 5, so no AUC threshold hangs on a rounding."""
  dist = np.full(18, 1000.0)              # frames never scored
  valid = np.zeros(18, bool)
  for f, d in [(0, 30.0), (5, 160.0), (11, 150.0), (14, 102.0)]:
    dist[f], valid[f] = d, True
  kp3d = np.tile([0.0, 0.0, 4000.0], (18, 17, 1))
  kp3d[:, 0, 1] -= dist
  dataset.save(str(path), dict(
      kp2d=np.full((18, 17, 2), 500.0), conf=np.ones((18, 17)), kp3d=kp3d,
      valid=valid, seq_name=["TS1", "TS5"], seq_offsets=[0, 12, 18],
      seq_subject=["TS1", "TS5"], seq_action=["TS1", "TS5"],
      seq_camera=["cam", "cam"], seq_image_size=[[2048, 2048], [1920, 1080]],
      seq_fps=[50, 25], layout="mpi17", input_2d="gt", source="tests"))
  return str(path)


def test_3dhp_scores_the_centre_frame_of_each_valid_window(tmp_path):
  config = config_for(write_3dhp_split(tmp_path / "test.npz"), "3dhp",
                      frames=5)
  config.data.label_space = "camera"
  config.model.layout = "mpi17"
  protocol, results = score(config)
  assert type(protocol) is protocols.MPI3DHP
  assert protocol.eval_mode == "centered" and list(results) == ["default"]
  r = results["default"]
  pooled, ts1, ts5 = r["pooled"], r["per_sequence"]["TS1"], r[
      "per_sequence"]["TS5"]
  assert r["sequences"] == ["TS1", "TS5"]
  assert pooled["mpjpe"] == pytest.approx((30 + 160 + 150 + 102) / 4 / 17)
  assert ts1["mpjpe"] == pytest.approx((30 + 160 + 150) / 3 / 17)
  assert ts5["mpjpe"] == pytest.approx(102 / 17)
  # 14 PCK joints per frame; 160 and 150 (strict <) miss.
  assert pooled["pck"] == pytest.approx(100 * (4 * 14 - 2) / (4 * 14))
  assert ts1["pck"] == pytest.approx(100 * (3 * 14 - 2) / (3 * 14))
  assert ts5["pck"] == 100.0
  head = np.array([30.0, 160.0, 150.0, 102.0])
  auc = np.mean([(np.sum(head < t) + (t > 0) * 4 * 13) / 56
                 for t in range(0, 151, 5)])
  assert pooled["auc"] == pytest.approx(100 * auc)
  assert protocol.headline(results) == pytest.approx(pooled["mpjpe"])
  want_joint = np.zeros(17)
  want_joint[0] = head.mean()
  np.testing.assert_allclose(protocol.per_joint_mpjpe(results), want_joint,
                             atol=1e-3)
  assert protocol.per_part_mpjpe(results)["trunk"] == pytest.approx(
      head.mean() / 4, rel=1e-5)
  assert protocol.summary(results) == [
      f"MPI-INF-3DHP: PCK {pooled['pck']:.1f}  AUC {pooled['auc']:.1f}  "
      f"MPJPE {pooled['mpjpe']:.1f} mm over 4 frames"]
  md = protocol.markdown(results, "M", {"gt2d_convention": "motionagformer"})
  assert "| **M** (all) | 96.4 |" in md and "| TS5 | 100.0 |" in md


def test_attention_clips_match_a_stream_cut_at_that_many_clips(tmp_path):
  from opformer_jax.data import input_pipeline
  path = write_h36m_split(tmp_path / "test.npz")   # 4 clips of T = 9
  config = config_for(path, "mocap")
  config.eval.batch_size = 3
  first = next(iter(input_pipeline.eval_batches(config)[0]))
  for k in (1, 2, 3, 6):
    cut = next(iter(input_pipeline.eval_batches(config, max_clips=k)[0]))
    np.testing.assert_array_equal(run.attention_clips(first, k), cut["kp2d"])
  config.eval.batch_size = 8      # more rows than clips
  first = next(iter(input_pipeline.eval_batches(config)[0]))
  cut = next(iter(input_pipeline.eval_batches(config, max_clips=6)[0]))
  np.testing.assert_array_equal(run.attention_clips(first, 6), cut["kp2d"])


def test_evaluate_reads_the_test_split_once(tmp_path, monkeypatch):
  path = write_h36m_split(tmp_path / "test.npz")
  config = config_for(path, "h36m")
  model = model_lib.build_model(config.model, 0)
  monkeypatch.setattr(run.checkpointing, "restore_model",
                      lambda c, w, s: (model, 7, {"val_mpjpe": 1.0}))
  loads = []
  real_load = dataset.load
  monkeypatch.setattr(dataset, "load",
                      lambda p, **kw: loads.append(p) or real_load(p, **kw))
  results = run.evaluate(config, str(tmp_path / "work"))
  # Ours, then the input pipeline's own (memory-mapped) handle.
  assert loads == [path, path]
  out = tmp_path / "work" / "eval" / "step_7"
  for name in ("results.json", "results.md", "fig4_mpjpe_histogram.png",
               "fig5_part_error.png", "fig6_attention.png"):
    assert (out / name).exists()
  assert results["default"]["num_skipped_frames"] == 9
