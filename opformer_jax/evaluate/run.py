"""Evaluation exactly as the papers score (PROTOCOL.md §3-4).

`evaluate(config, workdir, step)` restores a checkpoint on whatever devices
exist, loads the test split once and scores it with the protocol that
`protocols.for_config(config, data)` selects (Human3.6M, MPI-INF-3DHP, or
the plain Human3.6M-style one for mocap and synthetic data): flip
test-time augmentation, predicted root set to 0, denormalisation to mm,
then the protocol's metrics. It writes `results.json`, `results.md` (paper
table layout) and the figures (MPJPE histogram, per-part error, attention
maps) into `workdir/eval/step_<N>/`.

`run_protocol` scores a `predict_fn` (validation during training uses it
with `max_clips`), `headline` gives the number a run is selected by.
"""

from absl import logging
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from tqdm import tqdm

from opformer_jax import checkpointing
from opformer_jax import errors
from opformer_jax import fileio
from opformer_jax import model as model_lib
from opformer_jax import parallel
from opformer_jax import skeleton
from opformer_jax.data import dataset
from opformer_jax.data import input_pipeline
from opformer_jax.data import sources
from opformer_jax.evaluate import plots
from opformer_jax.evaluate import protocols
from opformer_jax.evaluate import report

GT2D_CONVENTIONS = protocols.GT2D_CONVENTIONS


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


def load_test_data(config, path: str | None = None) -> dataset.PoseData:
  """The test split (`path`, default `config.data.test_path`), loaded once
  per evaluation and passed along."""
  path = path or config.data.test_path
  if not path:
    raise errors.ConfigError(
        "config.data.test_path is not set; expected the test split file")
  return dataset.load(path)


def _score(predict_fn, config, data: dataset.PoseData,
           protocol: protocols.Protocol, *, max_clips=-1, progress=True):
  """Predicts every evaluation clip of `data` and scores it.

  Returns:
    (results, first_batch): the protocol's results and the first batch of
    the stream (its clips feed the attention figure).
  """
  # Every process scores all clips on its own devices: evaluation is cheap
  # next to training, and this needs no cross-process gathering.
  ds, num_batches = input_pipeline.eval_batches(
      config, data.path, mode=protocol.eval_mode, max_clips=max_clips,
      process_index=0, process_count=1)
  scoring = protocol.accumulator()
  first = None
  for batch in tqdm(ds, total=num_batches, desc="evaluate", leave=False,
                    disable=not progress or jax.process_index() != 0):
    scoring.add(batch, np.asarray(predict_fn(batch["kp2d"])))
    first = batch if first is None else first
  return scoring.result(), first


def run_protocol(predict_fn, config, path=None, *, max_clips=-1,
                 progress=True, data: dataset.PoseData | None = None,
                 protocol: protocols.Protocol | None = None):
  """Predicts every evaluation clip of the test split and scores it.

  Args:
    predict_fn: kp2d (B, T, J, 3) -> pred (B, T, J, 3) normalised, e.g.
      `make_predict_fn(model, config)`.
    config: the experiment config.
    path: split file (default `config.data.test_path`); ignored when
      `data` is given.
    max_clips: > 0 scores only the first clips (quick validation).
    progress: show a progress bar.
    data: the loaded split (`load_test_data`), to avoid reading it again.
    protocol: `protocols.for_config(config, data)`, to reuse.

  Returns:
    {convention: result dict of metrics.H36MEvaluator /
    MPI3DHPEvaluator}; conventions are 'default', or both GT-2D
    conventions where the input is GT 2D.
  """
  if data is None:
    data = (protocol.data if protocol is not None and
            protocol.data is not None else load_test_data(config, path))
  protocol = protocol or protocols.for_config(config, data)
  results, _ = _score(predict_fn, config, data, protocol,
                      max_clips=max_clips, progress=progress)
  return results


def score_files(model, config, paths: dict, *, echo=print) -> dict:
  """Scores `model` on several test files (flip TTA where the config asks).

  Args:
    model: an OPFormer; config: its config.
    paths: {name: split file}.
    echo: prints one summary line per file (None: silent).

  Returns:
    {name: {'mpjpe_action_avg', 'mpjpe_frame_avg', 'p_mpjpe_action_avg',
    'p_mpjpe_frame_avg', 'accel_error_action_avg', 'num_frames'}} (mm,
    mm/frame^2).
  """
  predict_fn = make_predict_fn(model, config)
  out = {}
  for name, path in paths.items():
    data = load_test_data(config, path)
    proto = protocols.for_config(config, data)
    res = run_protocol(predict_fn, config, data=data, protocol=proto)
    if echo:
      echo(f"{name}: " + " ".join(proto.summary(res)))
    r = res["default"]
    out[name] = {
        "mpjpe_action_avg": r["action_avg"]["mpjpe"],
        "mpjpe_frame_avg": r["frame_avg"]["mpjpe"],
        "p_mpjpe_action_avg": r["action_avg"]["p_mpjpe"],
        "p_mpjpe_frame_avg": r["frame_avg"]["p_mpjpe"],
        "accel_error_action_avg": r["action_avg"]["accel_error"],
        "num_frames": r["num_frames"]}
  return out


def headline(results: dict, config,
             protocol: protocols.Protocol | None = None) -> float:
  """The single number a run is selected by (mm): action-averaged MPJPE
  (H36M-style protocols, the configured GT-2D convention) or pooled 3DHP
  MPJPE."""
  return (protocol or protocols.for_config(config)).headline(results)


def attention_clips(first_batch: dict, num_clips: int) -> np.ndarray:
  """The attention figure's input: the first `num_clips` clips of the
  evaluation stream, the last one repeated to fill the batch (what an eval
  stream cut at `num_clips` clips gives).

  Args:
    first_batch: the first batch of the stream (kp2d (B, T, J, 3), mask).
    num_clips: clips to average over (>= 1).

  Returns:
    (B, T, J, 3) kp2d.
  """
  kp2d = np.asarray(first_batch["kp2d"])
  k = max(1, min(num_clips, int(np.asarray(first_batch["mask"]).sum())))
  return kp2d[np.minimum(np.arange(kp2d.shape[0]), k - 1)]


def attention_maps(model, kp2d) -> dict:
  """Per-loop attention maps averaged over clips, frames and heads.

  Args:
    model: the OPFormer.
    kp2d: (B, T, J, 3) input clips, e.g. `attention_clips(...)`.

  Returns:
    dict with 'part' (L, P, Lp, Lp) and/or 'spatial' (L, J, J) numpy.
  """
  graphdef, state = nnx.split(model)

  @jax.jit
  def run(state, kp2d):
    return nnx.merge(graphdef, state)(kp2d, return_attention=True)[1]
  maps = run(state, jnp.asarray(kp2d))
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


def _run_meta(config, data: dataset.PoseData, meta) -> dict:
  """The run description stored in results.json and read by the tables."""
  meta = dict(meta or {})
  gt2d = config.data.input_2d == "gt" or data.input_2d == "gt"
  meta.update(dataset=config.data.name, test_path=config.data.test_path,
              num_frames=config.data.num_frames,
              flip_tta=bool(config.eval.flip_tta),
              input_2d="gt" if gt2d else data.input_2d,
              synthetic=data.synthetic, data_source=str(data.source),
              gt2d_convention=config.eval.gt2d_convention)
  return meta


def write_outputs(results, config, out_dir, *, model=None, meta=None,
                  protocol: protocols.Protocol | None = None,
                  attention_kp2d=None):
  """results.json, results.md and figures into `out_dir`.

  Args:
    results: `run_protocol`'s results.
    config: the experiment config.
    out_dir: created if missing.
    model: draws the attention figure when given (and
      `eval.attention_clips` > 0).
    meta: run description added to results.json (step, workdir, ...).
    protocol: the protocol that scored `results` (with its data); default
      one built from `config` over the test split.
    attention_kp2d: the attention figure's clips (`attention_clips`);
      default the first clips of a new evaluation stream.
  """
  os.makedirs(out_dir, exist_ok=True)
  if protocol is None or protocol.data is None:
    protocol = protocols.for_config(config, load_test_data(config))
  meta = _run_meta(config, protocol.data, meta)
  report.write_results_json(os.path.join(out_dir, "results.json"),
                            _jsonable(results), meta)
  fileio.write_text(os.path.join(out_dir, "results.md"), protocol.markdown(
      results, meta.get("name", "OPFormer (ours)"), meta))
  if not config.eval.figures:
    return
  protocol.write_figures(results, out_dir)
  if model is not None and config.eval.attention_clips > 0:
    if attention_kp2d is None:
      ds, _ = input_pipeline.eval_batches(
          config, protocol.data.path, mode=protocol.eval_mode,
          max_clips=config.eval.attention_clips, process_index=0,
          process_count=1)
      attention_kp2d = next(iter(ds))["kp2d"]
    maps = attention_maps(model, attention_kp2d)
    plots.attention_maps(
        maps.get("part"), maps.get("spatial"), config.model.layout,
        os.path.join(out_dir, "fig6_attention.png"),
        origin=config.model.origin,
        with_origin=config.model.variant != "independent_parts")


def check_inputs(config: ml_collections.ConfigDict, workdir: str,
                 step="best") -> None:
  """The checks `evaluate` passes before it writes anything: a test split
  that exists, a workdir with checkpoints/ and a --step of the right form.

  Raises:
    errors.UserError (one line) otherwise.
  """
  sources.resolve(config, splits=("test",))
  if not os.path.isdir(os.path.join(workdir, "checkpoints")):
    raise errors.UserError(errors.bad_input(
        workdir, "holds no checkpoints/", "the --workdir of a training run "
        "(python -m opformer_jax.train)"))
  if str(step) not in ("best", "latest") and not str(step).isdigit():
    raise errors.UserError(f"--step={step}: expected 'best', 'latest' or a "
                           "step number")


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
  config = sources.resolve(config, splits=("test",))
  model, step, meta = checkpointing.restore_model(config, workdir, step)
  logging.info("Evaluating %s step %d", workdir, step)
  data = load_test_data(config)
  protocol = protocols.for_config(config, data)
  results, first = _score(make_predict_fn(model, config), config, data,
                          protocol)
  out_dir = checkpointing.eval_dir(workdir, step)
  if jax.process_index() == 0:
    write_outputs(results, config, out_dir, model=model, protocol=protocol,
                  attention_kp2d=attention_clips(
                      first, config.eval.attention_clips),
                  meta={"step": step, "workdir": os.path.abspath(workdir),
                        **{k: v for k, v in meta.items() if k != "step"}})
    print("\n".join(protocol.summary(results)))
    print(f"Results, table and figures in {out_dir}")
  return results
