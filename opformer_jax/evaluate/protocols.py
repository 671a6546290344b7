"""Evaluation protocols as objects: how a test split is cut, scored, reported.

A protocol is chosen once per evaluation from the config and the loaded test
split, `for_config(config, data)`, and answers everything that differs
between benchmarks, so no other code asks which dataset it is scoring:

* `eval_mode`: how the input pipeline cuts the split ('clips': ordered
  clips of stride `data.test_stride`; 'centered': a window centred on every
  valid frame).
* `accumulator()`: fresh accumulators; `add(batch, pred)` per batch of the
  pipeline, `result()` -> {convention: metrics result dict}.
* `headline(results)`: the number (mm) the best checkpoint is chosen by.
* `markdown(results, name, meta)`: results.md, one table per convention.
* `per_joint_mpjpe(results)`, `per_part_mpjpe(results)`: errors of the
  configured convention, per joint and per OPFormer part.
* `write_figures(results, out_dir)`: Fig. 4 (per-frame MPJPE histogram) and
  Fig. 5 (error per joint by part).
* `summary(results)`: the console lines.

The protocols (PROTOCOL.md §3-4):

* `Plain`, for motion capture, synthetic and any clip dataset: Human3.6M
  scoring (occurrence-averaged per-frame errors, action- and frame-averaged)
  over the data's own actions, nothing skipped. GT-2D inputs with
  image-space labels are scored under both conventions: 'motionagformer'
  keeps the predicted xy, 'motionbert' overwrites it with the input xy.
* `Human36M`: `Plain` plus the S9 skip list (`is_skipped`).
* `MPI3DHP`: the centre frame of every valid frame's window; PCK@150 / AUC
  over 14 joints, MPJPE over 17, per sequence and pooled.
"""

from __future__ import annotations

import os

import ml_collections
import numpy as np

from opformer_jax import errors
from opformer_jax import skeleton
from opformer_jax.data import dataset
from opformer_jax.evaluate import metrics
from opformer_jax.evaluate import plots
from opformer_jax.evaluate import report

GT2D_CONVENTIONS = ("motionagformer", "motionbert")

# S9 videos with known bad ground truth, all cameras (PROTOCOL.md §3.4),
# in MotionBERT's source-id naming: Greeting 2 (or "Greeting"), SittingDown
# 2 (or "SittingDown"), Waiting 1. The Human3.6M converters name sequences
# `s_09_act_05_subact_02_ca_01` so that this list applies to every layout.
SKIP_SOURCES = ("s_09_act_05_subact_02", "s_09_act_10_subact_02",
                "s_09_act_13_subact_01")


def is_skipped(seq_name: str) -> bool:
  """True for the S9 videos that the Human3.6M protocol does not score."""
  return any(str(seq_name) == s or str(seq_name).startswith(s + "_ca_")
             for s in SKIP_SOURCES)


def _to_mm(pose_n, scale_mm) -> np.ndarray:
  """(B, T, J, 3) normalised root-relative -> mm with (B, T) scales."""
  return np.asarray(pose_n, np.float64) * np.asarray(
      scale_mm, np.float64)[..., None, None]


def _scale_mm(batch, data) -> np.ndarray:
  """The batch's (B, T) mm scales; a split without them cannot be scored."""
  scale = batch["scale_mm"]
  if not np.isfinite(scale).all():
    raise errors.DataError(errors.bad_input(
        data.path, "no mm scale for some frames (field 'factor' missing for "
        "image-space labels); this split cannot be scored in mm",
        "a 'factor' field, or data.label_space='camera'"))
  return scale


class Protocol:
  """What every protocol answers; see the module docstring.

  Attributes:
    config: the experiment config.
    data: the loaded test split (`dataset.PoseData`); only `accumulator`
      needs it, so a protocol without data still reads results.
    eval_mode: 'clips' or 'centered', for `input_pipeline.eval_batches`.
  """

  eval_mode = "clips"

  def __init__(self, config: ml_collections.ConfigDict,
               data: dataset.PoseData | None = None):
    self.config = config
    self.data = data
    self.layout = config.model.layout
    self.root = skeleton.get_layout(self.layout).root

  def _need_data(self) -> dataset.PoseData:
    if self.data is None:
      raise ValueError(f"{type(self).__name__} was built without the test "
                       "split; pass for_config(config, data) to score")
    return self.data

  def accumulator(self):
    """Fresh accumulators with `add(batch, pred)` and `result()`."""
    raise NotImplementedError

  def main_result(self, results: dict) -> dict:
    """The result of the configured GT-2D convention (else 'default')."""
    res = results.get(self.config.eval.gt2d_convention,
                      results.get("default"))
    return res if res is not None else next(iter(results.values()))

  def headline(self, results: dict) -> float:
    """The single number (mm) a run is selected by."""
    raise NotImplementedError

  def per_joint_mpjpe(self, results: dict) -> np.ndarray:
    """(J,) MPJPE per joint of `main_result`, mm."""
    raise NotImplementedError

  def per_part_mpjpe(self, results: dict) -> dict[str, float]:
    """{'origin', then skeleton.PART_NAMES: mean of its joints' MPJPE} (mm),
    the groups of Fig. 5 (hip-origin part table)."""
    per_joint = self.per_joint_mpjpe(results)
    return {group: float(per_joint[list(joints)].mean())
            for group, joints in plots.part_groups(self.layout)}

  def table_markdown(self, result: dict, title: str, meta: dict) -> str:
    """The paper-layout table of one convention's result."""
    raise NotImplementedError

  def markdown(self, results: dict, name: str, meta: dict) -> str:
    """results.md: one table per convention, each titled with it."""
    tables = []
    for conv, res in results.items():
      title = (name if conv == "default"
               else f"{name}, GT 2D, {conv} convention")
      table_meta = dict(meta, gt2d_convention=(
          conv if conv in GT2D_CONVENTIONS else meta["gt2d_convention"]))
      tables.append(self.table_markdown(res, title, table_meta))
    return "\n\n".join(tables) + "\n"

  def write_figures(self, results: dict, out_dir: str) -> list[str]:
    """Fig. 4 and Fig. 5 of `main_result` into `out_dir`; their paths."""
    paths = [os.path.join(out_dir, "fig4_mpjpe_histogram.png"),
             os.path.join(out_dir, "fig5_part_error.png")]
    plots.mpjpe_histogram(self.main_result(results)["per_frame"]["mpjpe"],
                          paths[0])
    plots.part_error_bars(self.per_joint_mpjpe(results), self.layout,
                          paths[1])
    return paths

  def summary(self, results: dict) -> list[str]:
    """One console line per convention."""
    return [self.summary_line(res, "" if conv == "default" else
                              f" [GT 2D, {conv} convention]")
            for conv, res in results.items()]

  def summary_line(self, result: dict, tag: str) -> str:
    raise NotImplementedError


class _ClipScoring:
  """Accumulates pipeline batches into one H36MEvaluator per convention."""

  def __init__(self, protocol: "Plain"):
    data = protocol._need_data()  # pylint: disable=protected-access
    self.data = data
    self.evaluators = {
        conv: metrics.H36MEvaluator.from_data(
            data, root=protocol.root, skip_fn=protocol.skip_fn)
        for conv in protocol.conventions()}

  def add(self, batch: dict, pred) -> None:
    """Scores one batch of clips.

    Args:
      batch: an `input_pipeline.eval_batches` batch ('clips' mode): kp2d,
        kp3d, scale_mm, frame_idx, mask.
      pred: (B, T, J, 3) normalised root-relative predictions.
    """
    pred = np.asarray(pred)
    scale = _scale_mm(batch, self.data)
    gt_mm = _to_mm(batch["kp3d"], scale)
    for conv, ev in self.evaluators.items():
      p = pred
      if conv == "motionbert":
        p = pred.copy()
        p[..., :2] = batch["kp2d"][..., :2]  # only depth is predicted
      ev.add(_to_mm(p, scale), gt_mm, batch["frame_idx"], batch["mask"])

  def result(self) -> dict:
    return {conv: ev.result() for conv, ev in self.evaluators.items()}


class Plain(Protocol):
  """Human3.6M-style scoring of any clip dataset, nothing skipped.

  Ordered clips of stride `data.test_stride` (tail `data.test_tail`), each
  frame's errors averaged over the clips covering it, MPJPE / P-MPJPE /
  N-MPJPE / MPJVE / acceleration error per action (the split's own action
  labels), action-averaged (the headline) and frame-averaged.
  """

  skip_fn = None   # sequence name -> True when not scored

  def conventions(self) -> tuple[str, ...]:
    """('motionagformer', 'motionbert') for GT-2D input with image-space
    labels, else ('default',).

    MotionBERT's overwrite puts the input xy (screen-normalised) in place of
    the predicted xy: meaningful only for image-space labels.
    """
    data = self._need_data()
    gt2d = self.config.data.input_2d == "gt" or data.input_2d == "gt"
    if gt2d and self.config.data.label_space == "image":
      return GT2D_CONVENTIONS
    return ("default",)

  def accumulator(self) -> _ClipScoring:
    return _ClipScoring(self)

  def headline(self, results: dict) -> float:
    """Action-averaged MPJPE of the configured convention (mm)."""
    return float(self.main_result(results)["action_avg"]["mpjpe"])

  def per_joint_mpjpe(self, results: dict) -> np.ndarray:
    return np.asarray(self.main_result(results)["per_joint_mpjpe"])

  def table_markdown(self, result: dict, title: str, meta: dict) -> str:
    return report.h36m_table_markdown(result, name=title, meta=meta)

  def summary_line(self, result: dict, tag: str) -> str:
    a, f = result["action_avg"], result["frame_avg"]
    return (f"MPJPE{tag}: {a['mpjpe']:.1f} mm (action-avg), "
            f"{f['mpjpe']:.1f} mm (frame-avg); P-MPJPE {a['p_mpjpe']:.1f} mm;"
            f" MPJVE {a['mpjve']:.2f} mm/frame over {result['num_frames']} "
            "frames")


class Human36M(Plain):
  """The Human3.6M protocol of MotionBERT / MotionAGFormer: `Plain` with the
  S9 skip list (`SKIP_SOURCES`)."""

  skip_fn = staticmethod(is_skipped)


class _CentreScoring:
  """Accumulates the centre frames of 'centered' batches (MPI-INF-3DHP)."""

  def __init__(self, protocol: "MPI3DHP"):
    self.data = protocol._need_data()  # pylint: disable=protected-access
    self.seq_names = np.asarray(self.data.seq_name)
    self.evaluator = metrics.MPI3DHPEvaluator(root=protocol.root)

  def add(self, batch: dict, pred) -> None:
    """Scores the centre frame of every window.

    Args:
      batch: an `input_pipeline.eval_batches` batch ('centered' mode):
        kp3d, scale_mm, center, seq, mask.
      pred: (B, T, J, 3) normalised root-relative predictions.
    """
    scale = _scale_mm(batch, self.data)
    rows = np.arange(np.shape(pred)[0])
    c = batch["center"]
    self.evaluator.add(_to_mm(pred, scale)[rows, c],
                       _to_mm(batch["kp3d"], scale)[rows, c],
                       self.seq_names[batch["seq"]], batch["mask"])

  def result(self) -> dict:
    return {"default": self.evaluator.result()}


class MPI3DHP(Protocol):
  """The MPI-INF-3DHP test protocol (PROTOCOL.md §4): a T-window centred on
  every valid test frame, only its centre frame scored; PCK@150 and AUC over
  the 14 joints of the MATLAB script, MPJPE over 17, per sequence and
  pooled (the headline: pooled MPJPE)."""

  eval_mode = "centered"

  def accumulator(self) -> _CentreScoring:
    return _CentreScoring(self)

  def headline(self, results: dict) -> float:
    """Pooled MPJPE over all scored frames (mm)."""
    return float(self.main_result(results)["pooled"]["mpjpe"])

  def per_joint_mpjpe(self, results: dict) -> np.ndarray:
    return np.asarray(self.main_result(results)["pooled"]["per_joint_mpjpe"])

  def table_markdown(self, result: dict, title: str, meta: dict) -> str:
    return report.mpi_table_markdown(result, name=title, meta=meta)

  def summary_line(self, result: dict, tag: str) -> str:
    p = result["pooled"]
    return (f"MPI-INF-3DHP{tag}: PCK {p['pck']:.1f}  AUC {p['auc']:.1f}  "
            f"MPJPE {p['mpjpe']:.1f} mm over {p['num_frames']} frames")


def protocol_class(config: ml_collections.ConfigDict) -> type[Protocol]:
  """The protocol `config.data.name` selects: 'h36m' -> Human36M, a name
  containing '3dhp' -> MPI3DHP, anything else (mocap, synthetic) -> Plain."""
  name = str(config.data.name).lower()
  if name == "h36m":
    return Human36M
  if "3dhp" in name:
    return MPI3DHP
  return Plain


def for_config(config: ml_collections.ConfigDict,
               data: dataset.PoseData | None = None) -> Protocol:
  """The evaluation protocol of `config` over the loaded test split `data`.

  Args:
    config: the experiment config (`data.name` selects the protocol).
    data: the test split; None gives a protocol that reads results
      (headline, tables, figures) but cannot score.

  Raises:
    ConfigError: the split's joint layout does not fit the protocol.
  """
  cls = protocol_class(config)
  if data is not None and cls is MPI3DHP and data.layout != "mpi17":
    raise errors.ConfigError(errors.bad_input(
        data.path, f"layout {data.layout!r} cannot be scored by the "
        f"MPI-INF-3DHP protocol that data.name={config.data.name!r} selects",
        "layout 'mpi17', or another data.name"))
  return cls(config, data)
