"""Evaluation exactly as the papers score (PROTOCOL.md §3-4).

`evaluate(config, workdir, step)` restores a checkpoint on whatever devices
exist and runs the protocol of `config.data.name`:

* Human3.6M (and any dataset scored like it): ordered test clips of stride
  T, flip test-time augmentation, predicted root set to 0, denormalisation
  to mm with the per-frame 2.5D factor, the S9 skip list, per-frame
  occurrence averaging, MPJPE / P-MPJPE / N-MPJPE / MPJVE / acceleration
  error, action-averaged (the paper's number) and frame-averaged. GT-2D
  inputs are scored under both conventions: 'motionagformer' keeps the
  predicted xy, 'motionbert' overwrites it with the input xy.
* MPI-INF-3DHP: a T-window centred on every valid frame (edge padding),
  only the centre frame scored, PCK@150 / AUC over 14 joints, MPJPE over 17,
  per sequence and pooled.

It writes `results.json`, `results.md` (paper table layout) and the
figures (MPJPE histogram, per-part error, attention maps) into
`workdir/eval/step_<N>/`.
"""

import logging
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from tqdm import tqdm

from opformer_jax import checkpointing
from opformer_jax.data import dataset
from opformer_jax import fileio
from opformer_jax.data import h36m
from opformer_jax.data import input_pipeline
from opformer_jax.evaluate import metrics
from opformer_jax import model as model_lib
from opformer_jax import parallel
from opformer_jax.evaluate import plots
from opformer_jax.evaluate import report
from opformer_jax import skeleton

GT2D_CONVENTIONS = ("motionagformer", "motionbert")


def make_predict(graphdef, config: ml_collections.ConfigDict):
  """The jitted evaluation forward `(model state, kp2d) -> pred`.

  Applies flip TTA when `config.eval.flip_tta` and sets the predicted root
  to 0 (MotionBERT `rootrel`). Build it once and reuse it (validation
  during training does), so it is traced once.
  """
  layout = config.model.layout
  root = skeleton.get_layout(layout).root

  @jax.jit
  def predict(state, kp2d):
    apply = nnx.merge(graphdef, state)
    pred = (model_lib.flip_tta(apply, kp2d, layout) if config.eval.flip_tta
            else apply(kp2d))
    return pred.at[:, :, root].set(0.0)
  return predict


def make_predict_fn(model, config: ml_collections.ConfigDict, predict=None):
  """A `kp2d (B, T, J, 3) numpy -> pred (B, T, J, 3)` for evaluation.

  Batches are split over this process's devices when the batch size
  allows; every process evaluates on its own devices, without collectives
  (a model sharded over several processes is first reduced to this
  process's replica). `predict` is a `make_predict` result to reuse.
  """
  graphdef, state = nnx.split(model)
  predict = predict or make_predict(graphdef, config)
  state = jax.tree.map(
      lambda x: x if x.is_fully_addressable else x.addressable_data(0), state)
  devices = jax.local_devices()
  if config.eval.batch_size % len(devices):
    devices = devices[:1]
  mesh = parallel.make_mesh(devices)
  state = jax.device_put(state, parallel.replicated(mesh))
  batch_sharding = parallel.batch_sharding(mesh)

  def predict_fn(kp2d):
    return predict(state, jax.device_put(np.asarray(kp2d, np.float32),
                                         batch_sharding))
  return predict_fn


def _to_mm(pose_n, scale_mm):
  """(B, T, J, 3) normalised root-relative -> mm with (B, T) scales."""
  return np.asarray(pose_n, np.float64) * np.asarray(
      scale_mm, np.float64)[..., None, None]


def _gt2d(config, data: dataset.PoseData) -> bool:
  return config.data.input_2d == "gt" or data.input_2d == "gt"


def run_protocol(predict_fn, config, path=None, *, max_clips=-1,
                 progress=True):
  """Predicts every evaluation clip of `path` and scores it.

  Args:
    predict_fn: kp2d (B, T, J, 3) -> pred (B, T, J, 3) normalised, e.g.
      `make_predict_fn(model, config)`.
    config: the experiment config.
    path: split file (default `config.data.test_path`).
    max_clips: > 0 scores only the first clips (quick validation).
    progress: show a progress bar.

  Returns:
    {convention: result dict of metrics.H36MEvaluator /
    MPI3DHPEvaluator}; conventions are 'default', plus both GT-2D
    conventions where the input is GT 2D.
  """
  path = path or config.data.test_path
  data = dataset.load(path)
  mode = input_pipeline.default_eval_mode(config.data.name)
  # Every process scores all clips on its own devices: evaluation is cheap
  # next to training, and this needs no cross-process gathering.
  ds, num_batches = input_pipeline.eval_batches(
      config, path, mode=mode, max_clips=max_clips, process_index=0,
      process_count=1)
  root = skeleton.get_layout(config.model.layout).root
  if mode == "centered":
    evaluators = {"default": metrics.MPI3DHPEvaluator(root=root)}
  else:
    # MotionBERT's overwrite puts input xy (screen-normalised) in place of
    # predicted xy: meaningful only for image-space labels.
    conventions = (GT2D_CONVENTIONS if _gt2d(config, data) and
                   config.data.label_space == "image" else ("default",))
    evaluators = {c: metrics.H36MEvaluator.from_data(
        data, root=root,
        skip_fn=h36m.is_skipped if config.data.name == "h36m"
        else None) for c in conventions}
  seq_names = np.asarray(data.seq_name)
  for batch in tqdm(ds, total=num_batches, desc="evaluate", leave=False,
                    disable=not progress or jax.process_index() != 0):
    kp2d = batch["kp2d"]
    pred = np.asarray(predict_fn(kp2d))
    if not np.isfinite(batch["scale_mm"]).all():
      raise ValueError(
          f"{path}: no mm scale for some frames (field 'factor' missing "
          "for image-space labels); this split cannot be scored in mm")
    gt_mm = _to_mm(batch["kp3d"], batch["scale_mm"])
    if mode == "centered":
      rows = np.arange(pred.shape[0])
      c = batch["center"]
      evaluators["default"].add(
          _to_mm(pred, batch["scale_mm"])[rows, c], gt_mm[rows, c],
          seq_names[batch["seq"]], batch["mask"])
      continue
    for conv, ev in evaluators.items():
      p = pred
      if conv == "motionbert":
        p = pred.copy()
        p[..., :2] = kp2d[..., :2]  # only depth is predicted
      ev.add(_to_mm(p, batch["scale_mm"]), gt_mm, batch["frame_idx"],
             batch["mask"])
  return {conv: ev.result() for conv, ev in evaluators.items()}


def headline(results: dict, config) -> float:
  """The single number a run is selected by (mm): action-averaged MPJPE
  (H36M protocol, the configured GT-2D convention) or pooled 3DHP MPJPE."""
  res = results.get(config.eval.gt2d_convention, results.get("default"))
  if res is None:
    res = next(iter(results.values()))
  if res["protocol"] == "mpi3dhp":
    return float(res["pooled"]["mpjpe"])
  return float(res["action_avg"]["mpjpe"])


def attention_maps(model, config, path=None, num_clips=4):
  """Per-loop attention maps averaged over clips, frames and heads.

  Returns:
    dict with 'part' (L, P, Lp, Lp) and/or 'spatial' (L, J, J) numpy.
  """
  ds, _ = input_pipeline.eval_batches(
      config, path or config.data.test_path,
      mode=input_pipeline.default_eval_mode(config.data.name),
      max_clips=num_clips, process_index=0, process_count=1)
  batch = next(iter(ds))
  graphdef, state = nnx.split(model)

  @jax.jit
  def run(state, kp2d):
    return nnx.merge(graphdef, state)(kp2d, return_attention=True)[1]
  maps = run(state, jnp.asarray(batch["kp2d"]))
  out = {}
  if "part" in maps:
    out["part"] = np.asarray(maps["part"]).mean(axis=2)      # over heads
  if "spatial" in maps:
    out["spatial"] = np.asarray(maps["spatial"]).mean(axis=1)
  return out


def _jsonable(results):
  """Drops the numpy per-frame arrays (kept for figures only)."""
  return {conv: {k: v for k, v in res.items() if k != "per_frame"}
          for conv, res in results.items()}


def write_outputs(results, config, out_dir, *, model=None, meta=None):
  """results.json, results.md and figures into `out_dir`."""
  os.makedirs(out_dir, exist_ok=True)
  meta = dict(meta or {})
  data = dataset.load(config.data.test_path)
  meta.update(dataset=config.data.name, test_path=config.data.test_path,
              num_frames=config.data.num_frames,
              flip_tta=bool(config.eval.flip_tta),
              input_2d="gt" if _gt2d(config, data) else data.input_2d,
              synthetic=data.synthetic, data_source=str(data.source),
              gt2d_convention=config.eval.gt2d_convention)
  report.write_results_json(os.path.join(out_dir, "results.json"),
                            _jsonable(results), meta)
  name = meta.get("name", "OPFormer (ours)")
  lines = []
  for conv, res in results.items():
    title = name if conv == "default" else f"{name}, GT 2D, {conv} convention"
    table_meta = dict(meta, gt2d_convention=(
        conv if conv in GT2D_CONVENTIONS else meta["gt2d_convention"]))
    if res["protocol"] == "mpi3dhp":
      lines.append(report.mpi_table_markdown(res, name=title,
                                             meta=table_meta))
    else:
      lines.append(report.h36m_table_markdown(res, name=title,
                                              meta=table_meta))
  fileio.write_text(os.path.join(out_dir, "results.md"),
                    "\n\n".join(lines) + "\n")
  if not config.eval.figures:
    return
  res = results.get(config.eval.gt2d_convention, results.get("default"))
  res = res or next(iter(results.values()))
  plots.mpjpe_histogram(res["per_frame"]["mpjpe"],
                        os.path.join(out_dir, "fig4_mpjpe_histogram.png"))
  per_joint = (res["pooled"]["per_joint_mpjpe"] if res["protocol"] ==
               "mpi3dhp" else res["per_joint_mpjpe"])
  plots.part_error_bars(np.asarray(per_joint), config.model.layout,
                        os.path.join(out_dir, "fig5_part_error.png"))
  if model is not None and config.eval.attention_clips > 0:
    maps = attention_maps(model, config, num_clips=config.eval.attention_clips)
    plots.attention_maps(
        maps.get("part"), maps.get("spatial"), config.model.layout,
        os.path.join(out_dir, "fig6_attention.png"),
        origin=config.model.origin,
        with_origin=config.model.variant != "independent_parts")


def evaluate(config: ml_collections.ConfigDict, workdir: str,
             step="best") -> dict:
  """Restores `workdir`'s checkpoint and runs the full protocol.

  Args:
    config: the experiment config (model must match the checkpoint's).
    workdir: the training workdir.
    step: 'best' (lowest validation MPJPE), 'latest' or a step number.

  Returns:
    The results dict (also written to workdir/eval/step_<N>/).
  """
  model, step, meta = checkpointing.restore_model(config, workdir, step)
  logging.info("Evaluating %s step %d", workdir, step)
  results = run_protocol(make_predict_fn(model, config), config)
  out_dir = os.path.join(workdir, "eval", f"step_{step}")
  if jax.process_index() == 0:
    write_outputs(results, config, out_dir, model=model,
                  meta={"step": step, "workdir": os.path.abspath(workdir),
                        **{k: v for k, v in meta.items() if k != "step"}})
    _print_summary(results, out_dir)
  return results


def _print_summary(results, out_dir):
  for conv, res in results.items():
    tag = "" if conv == "default" else f" [GT 2D, {conv} convention]"
    if res["protocol"] == "mpi3dhp":
      p = res["pooled"]
      print(f"MPI-INF-3DHP{tag}: PCK {p['pck']:.1f}  AUC {p['auc']:.1f}  "
            f"MPJPE {p['mpjpe']:.1f} mm over {p['num_frames']} frames")
    else:
      a, f = res["action_avg"], res["frame_avg"]
      print(f"MPJPE{tag}: {a['mpjpe']:.1f} mm (action-avg), "
            f"{f['mpjpe']:.1f} mm (frame-avg); P-MPJPE {a['p_mpjpe']:.1f} mm;"
            f" MPJVE {a['mpjve']:.2f} mm/frame over {res['num_frames']} "
            "frames")
  print(f"Results, table and figures in {out_dir}")
