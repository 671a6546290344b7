"""Evaluation reports: the results JSON and Markdown tables in the paper's
layout (Table 1: Human3.6M per action; Table 3: MPI-INF-3DHP).

The inputs are the dicts returned by `metrics.H36MEvaluator.result()` and
`metrics.MPI3DHPEvaluator.result()` (or those dicts read back from the
results JSON), plus a free-form `meta` dict describing the run, stored whole
in the JSON. Keys of `meta` the tables read (all optional): 'input_2d' ('gt'
or 'detected'), 'gt2d_convention' ('motionagformer' or 'motionbert'),
'synthetic' (bool), 'flip_tta' (bool).
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from opformer_jax import fileio

# Paper Table 1 column order: canonical action -> column header.
H36M_ACTIONS = (
    ("Directions", "Dir."), ("Discussion", "Disc."), ("Eating", "Eat"),
    ("Greeting", "Greet"), ("Phoning", "Phone"), ("Photo", "Photo"),
    ("Posing", "Pose"), ("Purchases", "Purch."), ("Sitting", "Sit"),
    ("SittingDown", "SitD."), ("Smoking", "Smoke"), ("Waiting", "Wait"),
    ("WalkDog", "WalkD."), ("Walking", "Walk"), ("WalkTogether", "WalkT."))
# Spellings used by the various H36M releases, after `_action_key`.
_ACTION_ALIASES = {"takingphoto": "photo", "walkingdog": "walkdog",
                   "walkingtogether": "walktogether"}
_GT2D_CONVENTIONS = {
    "motionagformer": "MotionAGFormer convention: predicted x, y kept",
    "motionbert": "MotionBERT convention: predicted x, y overwritten with "
                  "the input 2D, only depth predicted",
}


def _action_key(label: str) -> str:
  """'Directions 1', 'TakingPhoto', 'walk_dog' -> a canonical lower key."""
  key = re.sub(r"[^a-z]", "", str(label).lower())
  return _ACTION_ALIASES.get(key, key)


_H36M_KEYS = {_action_key(a): i for i, (a, _) in enumerate(H36M_ACTIONS)}


def _jsonable(x):
  """numpy -> Python; non-finite floats -> None (JSON has no NaN)."""
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, np.ndarray):
    return _jsonable(x.tolist())
  if isinstance(x, np.generic):
    return _jsonable(x.item())
  if isinstance(x, float) and not math.isfinite(x):
    return None
  if x is None or isinstance(x, (str, int, float, bool)):
    return x
  raise TypeError(f"cannot write {type(x).__name__} to the results JSON")


def write_results_json(path: str, results: dict, meta: dict, *,
                       exclude=("per_frame",)) -> None:
  """Writes {'meta': meta, 'results': results} as JSON, atomically.

  The file is written beside `path` and renamed into place, so an existing
  file survives any error (an unserialisable value included).

  Args:
    path: destination .json.
    results: an evaluator's `result()` dict; numpy values become lists and
      NaN/inf become null.
    meta: run description (config name, checkpoint step, data file, ...).
    exclude: top-level result keys left out (by default the per-frame
      arrays, ~0.5 M values on Human3.6M).
  """
  doc = {"meta": _jsonable(meta),
         "results": _jsonable({k: v for k, v in results.items()
                               if k not in exclude})}
  text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
  fileio.write_text(path, text)


def _fmt(x, digits=1) -> str:
  if x is None or not math.isfinite(x):
    return "–"
  return f"{x:.{digits}f}"


def _row(cells) -> str:
  return "| " + " | ".join(cells) + " |"


def _table(header, rows) -> list[str]:
  return [_row(header), _row(["---"] + ["---:"] * (len(header) - 1)),
          *(_row(r) for r in rows)]


def _h36m_columns(actions):
  """(header, action label or None per column, is_h36m): Table 1's 15
  columns, or the labels as given when they are not distinct Human3.6M
  actions."""
  keys = [_action_key(a) for a in actions]
  if keys and all(k in _H36M_KEYS for k in keys) and len(set(keys)) == len(
      keys):
    label = dict(zip(keys, actions))
    return ([abbr for _, abbr in H36M_ACTIONS],
            [label.get(_action_key(a)) for a, _ in H36M_ACTIONS], True)
  return list(actions), list(actions), False


def _notes(meta: dict) -> list[str]:
  notes = []
  if meta.get("synthetic"):
    notes.append("**Synthetic data**: not a benchmark result.")
  if meta.get("input_2d") == "gt":
    conv = str(meta.get("gt2d_convention", "")).lower()
    notes.append("2D input: ground truth (projection, confidence 1); "
                 + _GT2D_CONVENTIONS.get(conv, f"convention {conv!r}") + ".")
  elif meta.get("input_2d"):
    notes.append(f"2D input: {meta['input_2d']}.")
  if "flip_tta" in meta:
    notes.append(f"Flip test-time augmentation: "
                 f"{'on' if meta['flip_tta'] else 'off'}.")
  return notes


def h36m_table_markdown(results: dict, name: str = "OPFormer (ours)",
                        meta: dict | None = None) -> str:
  """Markdown in the layout of the paper's Table 1.

  Two tables, MPJPE (P1) and P-MPJPE (P2), one row for `name`, columns the
  15 Human3.6M actions in the paper's order plus Avg (the unweighted mean
  over actions). A dataset whose actions are not Human3.6M's gets one
  column per action present. Below: the frame-averaged numbers, N-MPJPE,
  MPJVE, acceleration error, frame counts and the 2D-input convention.

  Args:
    results: `metrics.H36MEvaluator.result()`.
    name: the method's row label.
    meta: run description (see the module docstring).
  """
  meta = meta or {}
  header, labels, is_h36m = _h36m_columns(results["actions"])
  per_action = results["per_action"]
  lines = []
  for metric, title in (("mpjpe", "MPJPE (P1)"), ("p_mpjpe", "P-MPJPE (P2)")):
    cells = [_fmt(per_action[a][metric]) if a is not None else "–"
             for a in labels]
    lines += [f"**{title}, mm** (lower is better)", "",
              *_table(["Method", *header, "Avg"],
                      [[name, *cells, _fmt(results["action_avg"][metric])]]),
              ""]
  if is_h36m and len(results["actions"]) < len(H36M_ACTIONS):
    lines += [f"Only {len(results['actions'])} of {len(H36M_ACTIONS)} "
              "actions present; Avg is over those.", ""]
  fa, aa = results["frame_avg"], results["action_avg"]
  notes = [
      f"Frame-averaged: MPJPE {_fmt(fa['mpjpe'], 2)} mm, P-MPJPE "
      f"{_fmt(fa['p_mpjpe'], 2)} mm (action-averaged: "
      f"{_fmt(aa['mpjpe'], 2)} / {_fmt(aa['p_mpjpe'], 2)} mm).",
      f"N-MPJPE {_fmt(aa['n_mpjpe'], 2)} mm, MPJVE {_fmt(aa['mpjve'], 2)} "
      f"mm/frame, acceleration error {_fmt(aa['accel_error'], 2)} "
      "mm/frame² (action-averaged).",
      f"{results['num_frames']} frames scored, "
      f"{results['num_skipped_frames']} skipped (skip list), "
      f"{results['num_uncovered_frames']} not covered by a test clip.",
      *_notes(meta)]
  lines += [f"- {n}" for n in notes]
  return "\n".join(lines) + "\n"


def mpi_table_markdown(results: dict, name: str = "OPFormer (ours)",
                       meta: dict | None = None) -> str:
  """Markdown in the layout of the paper's Table 3 (MPI-INF-3DHP).

  The method row (pooled over all test frames, as MATLAB's "All"), then one
  row per test sequence, then PCK and AUC per joint group.

  Args:
    results: `metrics.MPI3DHPEvaluator.result()`.
    name: the method's row label.
    meta: run description (see the module docstring).
  """
  meta = meta or {}
  pooled = results["pooled"]

  def cells(r):
    return [_fmt(r["pck"]), _fmt(r["auc"]), _fmt(r["mpjpe"]),
            str(r["num_frames"])]

  rows = [[f"**{name}** (all)", *cells(pooled)]]
  rows += [[s, *cells(results["per_sequence"][s])]
           for s in results["sequences"]]
  groups = list(pooled["groups"])
  lines = ["**MPI-INF-3DHP** (PCK@150 mm and AUC over 14 joints, MPJPE over "
           "17)", "",
           *_table(["Method", "PCK ↑", "AUC ↑", "MPJPE ↓ (mm)", "Frames"],
                   rows), "",
           "**Per joint group** (pooled)", "",
           *_table(["Score", *groups, "Total"],
                   [["PCK", *(_fmt(pooled["groups"][g]["pck"])
                              for g in groups), _fmt(pooled["pck"])],
                    ["AUC", *(_fmt(pooled["groups"][g]["auc"])
                              for g in groups), _fmt(pooled["auc"])]]),
           "", *(f"- {n}" for n in _notes(meta))]
  return "\n".join(lines).rstrip("\n") + "\n"
