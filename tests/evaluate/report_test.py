"""Tests for opformer_jax.report: results JSON and the paper-layout tables."""

import json
import os

import numpy as np
import pytest

from opformer_jax.evaluate import metrics
from opformer_jax.evaluate import report

H36M_LABELS = ("Directions", "Discussion", "Eating", "Greeting", "Phoning",
               "TakingPhoto", "Posing", "Purchases", "Sitting", "SittingDown",
               "Smoking", "Waiting", "WalkingDog", "Walking", "WalkTogether")


def _results(actions, seed=0):
  """Evaluator results with action k's frames off by 3 (k + 1) mm on one of
  3 joints, so MPJPE of action k is exactly k + 1 mm."""
  n = 2 * len(actions)
  frame_action = np.repeat(actions, 2)
  frame_seq = np.repeat([f"seq{k}" for k in range(len(actions))], 2)
  ev = metrics.H36MEvaluator(frame_action, frame_seq, skip_fn=None)
  rng = np.random.default_rng(seed)
  gt = rng.normal(size=(n, 3, 3)) * 100
  gt -= gt[:, :1]
  pred = gt.copy()
  pred[:, 1, 0] += 3.0 * (np.arange(n) // 2 + 1)
  ev.add(pred.reshape(-1, 2, 3, 3), gt.reshape(-1, 2, 3, 3),
         np.arange(n).reshape(-1, 2))
  return ev.result()


class TestH36MTable:

  def test_paper_columns_and_numbers(self):
    # Labels in a scrambled order and with the VideoPose3D spellings.
    labels = list(H36M_LABELS[::-1])
    res = _results(labels)
    md = report.h36m_table_markdown(res, "OPFormer (ours)")
    lines = md.splitlines()
    header = "| Method | Dir. | Disc. | Eat | Greet | Phone | Photo | Pose " \
             "| Purch. | Sit | SitD. | Smoke | Wait | WalkD. | Walk | " \
             "WalkT. | Avg |"
    assert lines.count(header) == 2
    p1 = lines[lines.index("**MPJPE (P1), mm** (lower is better)") + 4]
    cells = [c.strip() for c in p1.strip("|").split("|")]
    assert cells[0] == "OPFormer (ours)"
    # Action k of the reversed list has MPJPE k + 1; Avg = mean(1..15) = 8.
    want = [f"{labels.index(a) + 1:.1f}" for a in H36M_LABELS] + ["8.0"]
    assert cells[1:] == want
    assert "Frame-averaged: MPJPE 8.00 mm" in md
    assert "Only" not in md

  def test_missing_actions_and_notes(self):
    res = _results(["Walking", "Eating"])
    md = report.h36m_table_markdown(
        res, "m", meta={"input_2d": "gt", "gt2d_convention": "motionbert",
                        "synthetic": True})
    row = [l for l in md.splitlines() if l.startswith("| m |")][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "2.0" and cells[14] == "1.0"      # Eat, Walk
    assert cells.count("–") == 13
    assert "Only 2 of 15 actions present" in md
    assert "MotionBERT convention" in md
    assert "Synthetic data" in md

  def test_other_action_sets_get_their_own_columns(self):
    res = _results(["jump", "run", "walk_dog"])
    md = report.h36m_table_markdown(res, "m")
    assert "| Method | jump | run | walk_dog | Avg |" in md
    assert "| m | 1.0 | 2.0 | 3.0 | 2.0 |" in md


class TestMpiTable:

  def test_layout_and_numbers(self):
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(4, 17, 3)) * 200
    pred = gt.copy()
    pred[0, 3, 2] += 200.0    # TS1: one elbow beyond 150 mm
    ev = metrics.MPI3DHPEvaluator()
    ev.add(pred, gt, ["TS1", "TS1", "TS2", "TS2"])
    res = ev.result()
    md = report.mpi_table_markdown(res, "OPFormer (ours)",
                                   meta={"input_2d": "gt",
                                         "gt2d_convention": "motionagformer"})
    assert "| Method | PCK ↑ | AUC ↑ | MPJPE ↓ (mm) | Frames |" in md
    pck_all = 100 * (1 - 1 / 56)
    mpjpe_all = 200 / (4 * 17)
    assert (f"| **OPFormer (ours)** (all) | {pck_all:.1f} | "
            f"{res['pooled']['auc']:.1f} | {mpjpe_all:.1f} | 4 |") in md
    assert f"| TS1 | {100 * (1 - 1 / 28):.1f} |" in md
    # PCK at threshold 0 is 0 even for perfect poses: AUC = 30 / 31.
    assert f"| TS2 | 100.0 | {100 * 30 / 31:.1f} | 0.0 | 2 |" in md
    assert ("| Score | Head | Neck | Shoulder | Elbow | Wrist | Hip | Knee | "
            "Ankle | Total |") in md
    assert f"| PCK | 100.0 | 100.0 | 100.0 | {100 * 7 / 8:.1f} |" in md
    assert "MotionAGFormer convention" in md


class TestResultsJson:

  def test_round_trip(self, tmp_path):
    res = _results(["Walking", "Eating"])
    res["action_avg"]["accel_error"] = float("nan")
    path = str(tmp_path / "out" / "results.json")
    report.write_results_json(path, res, {"step": np.int64(7)})
    doc = json.load(open(path))
    assert doc["meta"] == {"step": 7}
    assert "per_frame" not in doc["results"]
    assert doc["results"]["action_avg"]["accel_error"] is None
    np.testing.assert_allclose(doc["results"]["action_avg"]["mpjpe"],
                               res["action_avg"]["mpjpe"])
    assert doc["results"]["actions"] == ["Eating", "Walking"]

  def test_failed_write_keeps_old_file(self, tmp_path):
    path = str(tmp_path / "results.json")
    report.write_results_json(path, {"a": 1}, {})
    before = open(path).read()
    with pytest.raises(TypeError, match="cannot write object"):
      report.write_results_json(path, {"a": object()}, {})
    assert open(path).read() == before
    assert os.listdir(tmp_path) == ["results.json"]
