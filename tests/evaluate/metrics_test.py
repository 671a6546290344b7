"""Tests for opformer_jax.metrics against hand-computed numbers."""

import numpy as np
import pytest

from opformer_jax.data import dataset
from opformer_jax.evaluate import metrics
from opformer_jax.evaluate import protocols
from opformer_jax import skeleton


def _rotation(rng):
  q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
  if np.linalg.det(q) < 0:
    q[:, 0] *= -1
  return q


def _umeyama_aligned(pred, gt):
  """Umeyama (1991) similarity fit of pred onto gt, column-vector form.

  Independent of the code under test: covariance (not normalised) matrices,
  the sign fix from det(U) det(V), scale from the prediction's variance.
  """
  mu_x, mu_y = gt.mean(0), pred.mean(0)
  xc, yc = gt - mu_x, pred - mu_y
  n = len(gt)
  sigma = xc.T @ yc / n
  u, d, vt = np.linalg.svd(sigma)
  s = np.eye(3)
  if np.linalg.det(u) * np.linalg.det(vt) < 0:
    s[2, 2] = -1
  r = u @ s @ vt
  c = np.trace(np.diag(d) @ s) / ((yc**2).sum() / n)
  t = mu_x - c * r @ mu_y
  return (c * (r @ pred.T)).T + t


class TestPoseErrors:

  def test_mpjpe_hand_computed(self):
    gt = np.zeros((2, 3))
    pred = np.array([[0.0, 0, 0], [3, 4, 0]])
    np.testing.assert_allclose(metrics.mpjpe(pred, gt), 2.5)
    np.testing.assert_allclose(metrics.per_joint_error(pred, gt), [0, 5])

  def test_similarity_transform_is_aligned_away(self):
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(6, 17, 3)) * 200
    pred = 1.7 * gt @ _rotation(rng) + np.array([40.0, -90.0, 300.0])
    assert (metrics.mpjpe(pred, gt) > 100).all()
    np.testing.assert_allclose(metrics.p_mpjpe(pred, gt), 0, atol=1e-4)

  def test_reflection_is_not_aligned_away(self):
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(4, 17, 3)) * 200
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    assert (metrics.p_mpjpe(mirrored, gt) > 10).all()

  def test_p_mpjpe_matches_umeyama(self):
    rng = np.random.default_rng(2)
    gt = rng.normal(size=(8, 17, 3)) * 200
    pred = 0.8 * gt @ _rotation(rng) + rng.normal(size=gt.shape) * 30
    # Half the frames mirrored: the best orthogonal fit is then a
    # reflection, which both methods must reject.
    pred[::2] *= np.array([1.0, -1.0, 1.0])
    want = np.array([metrics.mpjpe(_umeyama_aligned(p, g), g)
                     for p, g in zip(pred, gt)])
    np.testing.assert_allclose(metrics.p_mpjpe(pred, gt), want, rtol=1e-9)
    assert want.min() > 1

  def test_p_mpjpe_collapsed_prediction_lands_on_centroid(self):
    gt = np.array([[0.0, 0, 0], [4, 0, 0], [0, 3, 0], [0, 0, 0]])
    pred = np.ones((4, 3)) * 7
    dist = np.linalg.norm(gt - gt.mean(0), axis=-1).mean()
    np.testing.assert_allclose(metrics.p_mpjpe(pred, gt), dist)

  def test_n_mpjpe(self):
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(3, 17, 3)) * 200
    np.testing.assert_allclose(metrics.n_mpjpe(0.6 * gt, gt), 0, atol=1e-9)
    # s = (gt . pred) / (pred . pred) = 0: the prediction shrinks to 0.
    gt = np.array([[0.0, 0, 0], [1, 0, 0]])
    pred = np.array([[0.0, 0, 0], [0, 1, 0]])
    np.testing.assert_allclose(metrics.n_mpjpe(pred, gt), 0.5)

  def test_n_mpjpe_scale_minimises_squared_error(self):
    rng = np.random.default_rng(11)
    gt = rng.normal(size=(17, 3)) * 200
    pred = 1.3 * gt + rng.normal(size=gt.shape) * 40
    scales = np.linspace(0.5, 1.2, 70001)
    sq = ((scales[:, None, None] * pred - gt)**2).sum(axis=(1, 2))
    best = scales[np.argmin(sq)]
    np.testing.assert_allclose(metrics.n_mpjpe(pred, gt),
                               metrics.mpjpe(best * pred, gt), rtol=1e-6)

  def test_velocity_and_acceleration(self):
    gt = np.zeros((4, 2, 3))
    pred = np.zeros((4, 2, 3))
    pred[:, 1, 0] = [0, 1, 3, 6]
    np.testing.assert_allclose(metrics.mpjve(pred, gt), [0.5, 1.0, 1.5])
    # (0 - 2 + 3) / 2 and (1 - 6 + 6) / 2.
    np.testing.assert_allclose(metrics.accel_error(pred, gt), [0.5, 0.5])

  def test_shape_mismatch_is_an_error(self):
    with pytest.raises(ValueError, match=r"\(\.\.\., J, 3\)"):
      metrics.mpjpe(np.zeros((2, 17, 3)), np.zeros((2, 16, 3)))


class TestPck:

  def test_against_brute_force(self):
    rng = np.random.default_rng(4)
    err = rng.uniform(0, 220, size=(50, 17))
    err[0, :5] = [0.0, 5.0, 150.0, 149.999, 150.001]
    joints = skeleton.MPI_PCK_JOINTS
    count = sum(err[i, j] < 150 for i in range(50) for j in joints)
    np.testing.assert_allclose(metrics.pck(err, joints=joints),
                               100 * count / (50 * len(joints)))
    curve = [sum(err[i, j] < t for i in range(50) for j in joints)
             / (50 * len(joints)) for t in range(0, 151, 5)]
    assert len(curve) == 31
    np.testing.assert_allclose(metrics.auc(err, joints=joints),
                               100 * np.mean(curve))

  def test_strict_threshold(self):
    err = np.array([[150.0, 149.0], [0.0, 151.0]])
    assert metrics.pck(err) == 50.0
    # At t = 0 nothing counts (err < 0 never); 0 counts from t = 5 on.
    curve = metrics.pck_curve(err, metrics.AUC_THRESHOLDS)
    assert curve[0] == 0 and curve[1] == 0.25
    assert curve[-1] == 0.5  # 149 counts at 150, the 150 itself does not.


def _h36m_fixture():
  """12 frames, 3 joints: 2 scored sequences and one on the S9 skip list."""
  names = (["s_11_act_02_subact_01_ca_01"] * 6
           + ["s_11_act_03_subact_01_ca_02"] * 2
           + ["s_09_act_05_subact_02_ca_03"] * 4)
  actions = ["Directions"] * 6 + ["Discussion"] * 2 + ["Greeting"] * 4
  rng = np.random.default_rng(5)
  gt = rng.normal(size=(12, 3, 3)) * 100
  gt -= gt[:, :1]
  return np.array(actions), np.array(names), gt


def _clip(gt, frames, disp):
  """(pred, gt, frame_idx) of one clip: joint 1 displaced along x by disp."""
  g = gt[frames]
  p = g.copy()
  p[:, 1, 0] += disp
  return p, g, np.array(frames)


def _batch(*clips):
  return tuple(np.stack(x) for x in zip(*clips))


class TestH36MEvaluator:

  def test_occurrence_averaging_and_skip_list(self):
    actions, names, gt = _h36m_fixture()
    ev = metrics.H36MEvaluator(actions, names, skip_fn=protocols.is_skipped)
    pred, g, idx = _batch(
        _clip(gt, [0, 1, 2, 3], 3.0),
        _clip(gt, [2, 3, 4, 5], 6.0),
        _clip(gt, [8, 9, 10, 11], 30.0))   # skipped sequence
    pad = np.full((1, 4, 3, 3), np.nan)    # padding clip, masked out
    ev.add(np.concatenate([pred, pad]), np.concatenate([g, pad]),
           np.concatenate([idx, np.zeros((1, 4), int)]),
           mask=np.array([True, True, True, False]))
    res = ev.result()
    np.testing.assert_array_equal(res["per_frame"]["frame_idx"], range(6))
    # MPJPE = disp / 3 joints; frames 2, 3 average clips A and B.
    np.testing.assert_allclose(res["per_frame"]["mpjpe"],
                               [1, 1, 1.5, 1.5, 2, 2])
    assert res["num_frames"] == 6
    assert res["num_skipped_frames"] == 4
    assert res["num_uncovered_frames"] == 2
    assert res["actions"] == ["Directions"]
    assert res["skipped_sequences"] == ["s_09_act_05_subact_02_ca_03"]
    np.testing.assert_allclose(res["frame_avg"]["mpjpe"], 9 / 6)
    np.testing.assert_allclose(res["frame_avg"]["p_mpjpe"],
                               np.mean(_expected_pmpjpe(gt)), rtol=1e-9)

  def test_action_average_differs_from_frame_average(self):
    actions, names, gt = _h36m_fixture()
    ev = metrics.H36MEvaluator(actions, names, skip_fn=None)
    ev.add(*_batch(_clip(gt, [0, 1, 2], 3.0), _clip(gt, [3, 4, 5], 3.0)))
    ev.add(*_batch(_clip(gt, [6, 7], 12.0)))
    res = ev.result()
    assert res["actions"] == ["Directions", "Discussion"]
    assert res["per_action"]["Directions"]["num_frames"] == 6
    np.testing.assert_allclose(res["per_action"]["Discussion"]["mpjpe"], 4)
    np.testing.assert_allclose(res["action_avg"]["mpjpe"], (1 + 4) / 2)
    np.testing.assert_allclose(res["frame_avg"]["mpjpe"], (6 + 2 * 4) / 8)
    np.testing.assert_allclose(np.mean(res["per_joint_mpjpe"]), 2.5)
    np.testing.assert_allclose(res["per_joint_mpjpe"], [0, 7.5, 0])
    np.testing.assert_allclose(res["per_joint_mpjpe_frame_avg"],
                               [0, 21 / 4, 0])
    want = [np.mean([metrics.n_mpjpe(*_clip(gt, [f], d)[:2])
                     for f in frames])
            for frames, d in [(range(6), 3.0), ([6, 7], 12.0)]]
    np.testing.assert_allclose(res["action_avg"]["n_mpjpe"], np.mean(want))

  def test_velocity_and_acceleration_inside_clips(self):
    actions, names, gt = _h36m_fixture()
    ev = metrics.H36MEvaluator(actions, names)
    a = _clip(gt, [0, 1, 2, 3], np.array([0.0, 1, 3, 6]))
    b = _clip(gt, [2, 3, 4, 5], 0.0)
    ev.add(*_batch(a, b))
    res = ev.result()
    # Velocity of frame t = P[t] - P[t-1] in each clip, / 3 joints:
    # f1 1/3, f2 2/3, f3 (1 + 0) / 2, f4 0, f5 0; frame 0 has none.
    np.testing.assert_allclose(res["frame_avg"]["mpjve"],
                               (1 / 3 + 2 / 3 + 0.5) / 5)
    # Central second difference: f1 1/3, f2 1/3 (clip A), f3 f4 0 (clip B).
    np.testing.assert_allclose(res["frame_avg"]["accel_error"], (2 / 3) / 4)

  def test_repeated_frames_in_a_clip_all_count(self):
    actions, names, gt = _h36m_fixture()
    ev = metrics.H36MEvaluator(actions, names)
    pred, g, idx = _clip(gt, [6, 6, 7, 7], 0.0)
    pred[1, 1, 0] += 6.0   # second copy of frame 6 is off by 2 mm MPJPE
    ev.add(pred[None], g[None], idx[None])
    res = ev.result()
    np.testing.assert_allclose(res["per_frame"]["mpjpe"], [1, 0])

  def test_from_data(self, tmp_path):
    n, j = 5, 17
    path = str(tmp_path / "test.npz")
    rng = np.random.default_rng(6)
    dataset.save(path, {
        "kp2d": rng.uniform(0, 900, (n, j, 2)), "conf": np.ones((n, j)),
        "kp3d": rng.normal(size=(n, j, 3)) * 100 + [0, 0, 5000],
        "seq_name": ["s_09_act_13_subact_01_ca_02", "s_09_act_02_subact_01"],
        "seq_offsets": [0, 2, 5], "seq_subject": ["S9", "S9"],
        "seq_action": ["Waiting", "Directions"], "seq_camera": ["a", "b"],
        "seq_image_size": [[1000, 1000]] * 2, "seq_fps": [50, 50],
        "layout": "h36m17", "input_2d": "gt", "source": "test"})
    data = dataset.load(path)
    ev = metrics.H36MEvaluator.from_data(data, skip_fn=protocols.is_skipped)
    kp3d = np.asarray(data.kp3d)
    ev.add(kp3d[None, 2:5] + 1.0, kp3d[None, 2:5], np.array([[2, 3, 4]]))
    ev.add(kp3d[None, 0:2], kp3d[None, 0:2], np.array([[0, 1]]))
    res = ev.result()
    assert res["actions"] == ["Directions"]
    assert res["num_skipped_frames"] == 2
    # A constant offset vanishes when both sides are made root-relative.
    np.testing.assert_allclose(res["action_avg"]["mpjpe"], 0, atol=1e-6)

  def test_bad_input(self):
    actions, names, gt = _h36m_fixture()
    ev = metrics.H36MEvaluator(actions, names)
    pred, g, idx = _batch(_clip(gt, [0, 1], 0.0))
    with pytest.raises(ValueError, match=r"frame_idx must be \(1, 2\) int"):
      ev.add(pred, g, idx.astype(float))
    with pytest.raises(ValueError, match="spans two sequences"):
      ev.add(pred, g, np.array([[5, 6]]))
    with pytest.raises(ValueError, match="NaN"):
      ev.add(pred * np.nan, g, idx)
    with pytest.raises(ValueError, match="no frame was scored"):
      ev.result()


def _expected_pmpjpe(gt):
  """Frames 0-5 of the occurrence test, P-MPJPE averaged per frame."""
  out = []
  for f, disps in enumerate([[3], [3], [3, 6], [3, 6], [6], [6]]):
    errs = []
    for d in disps:
      p = gt[f].copy()
      p[1, 0] += d
      errs.append(metrics.mpjpe(_umeyama_aligned(p, gt[f]), gt[f]))
    out.append(np.mean(errs))
  return out


class TestMPI3DHPEvaluator:

  def _errors(self, seed, n):
    """Poses whose joint j is off by err[:, j] mm along z."""
    rng = np.random.default_rng(seed)
    gt = rng.normal(size=(n, 17, 3)) * 200
    err = rng.uniform(0, 200, size=(n, 17))
    err[:, 14] = 0                       # the root is 0 after alignment
    pred = gt.copy()
    pred[..., 2] += err
    return pred, gt, err

  def test_per_sequence_pooled_and_groups(self):
    p1, g1, e1 = self._errors(7, 6)
    p2, g2, e2 = self._errors(8, 2)
    ev = metrics.MPI3DHPEvaluator()
    ev.add(np.concatenate([p2, p1[:3]]), np.concatenate([g2, g1[:3]]),
           ["TS10"] * 2 + ["TS2"] * 3)
    ev.add(p1[3:], g1[3:], ["TS2"] * 3)
    res = ev.result()
    assert res["sequences"] == ["TS2", "TS10"]
    scored = list(range(14))
    all_err = np.concatenate([e2, e1])
    for name, e in [("TS2", e1), ("TS10", e2)]:
      seq = res["per_sequence"][name]
      assert seq["num_frames"] == len(e)
      np.testing.assert_allclose(seq["pck"],
                                 100 * (e[:, scored] < 150).mean())
      np.testing.assert_allclose(seq["mpjpe"], e.mean())
    pooled = res["pooled"]
    # Pooled ("All") is over frames, not the mean of the sequence scores.
    np.testing.assert_allclose(pooled["pck"],
                               100 * (all_err[:, scored] < 150).mean())
    np.testing.assert_allclose(pooled["mpjpe"], all_err.mean())
    np.testing.assert_allclose(
        pooled["auc"], 100 * np.mean([(all_err[:, scored] < t).mean()
                                      for t in range(0, 151, 5)]))
    np.testing.assert_allclose(pooled["groups"]["Wrist"]["pck"],
                               100 * (all_err[:, [4, 7]] < 150).mean())
    # MATLAB "Total" = joint-count weighted group mean = pooled PCK.
    groups = dict(metrics.MPI_JOINT_GROUPS)
    total = sum(pooled["groups"][g]["pck"] * len(js)
                for g, js in groups.items()) / 14
    np.testing.assert_allclose(total, pooled["pck"])
    assert pooled["pck_curve"]["pck"][0] == 0.0
    np.testing.assert_allclose(np.mean(pooled["pck_curve"]["pck"]),
                               pooled["auc"])

  def test_pelvis_spine_head_not_in_pck(self):
    p, g, _ = self._errors(9, 4)
    pred = g.copy()
    pred[:, 15] += 500.0    # spine
    pred[:, 16] += 500.0    # head
    ev = metrics.MPI3DHPEvaluator()
    ev.add(pred, g, ["TS1"] * 4)
    res = ev.result()["pooled"]
    assert res["pck"] == 100.0
    np.testing.assert_allclose(res["mpjpe"], 2 * 500 * np.sqrt(3) / 17)

  def test_mask_and_joint_count(self):
    p, g, e = self._errors(10, 3)
    ev = metrics.MPI3DHPEvaluator()
    bad = p.copy()
    bad[2] = np.nan
    ev.add(bad, g, ["TS1"] * 3, mask=[True, True, False])
    assert ev.result()["pooled"]["num_frames"] == 2
    with pytest.raises(ValueError, match="needs 17"):
      ev.add(p[:, :15], g[:, :15], ["TS1"] * 3)
