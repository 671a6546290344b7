"""Orbax checkpoints: what a step holds, which steps are kept, restores.

A step directory `workdir/checkpoints/<step>/` holds the items
  model      nnx.State of the model parameters
  optimizer  nnx.State of the optimizer (Adam moments, MultiSteps buffers)
  data_iter  the grain iterator state (one JSON file per process)
  config     the experiment config (JSON)
  meta       {'step', 'epoch', 'val_mpjpe'} (JSON)
and the validation MPJPE as the step's metric. The latest step and the step
with the best (lowest) validation MPJPE are kept; steps saved between
validations carry an infinite metric, so they never count as best. Orbax
writes each step into a temporary directory and renames it when complete, so
a run killed during a save resumes from the previous complete step.
"""

import math
import os

import jax
import ml_collections
import orbax.checkpoint as ocp
from flax import nnx
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

import grain


def _best_fn(metrics):
  return metrics.get("mpjpe", math.inf)


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), "checkpoints")


def manager(workdir: str, read_only: bool = False) -> ocp.CheckpointManager:
  """The manager of `workdir/checkpoints` (latest + best kept)."""
  options = ocp.CheckpointManagerOptions(
      preservation_policy=pp.AnyPreservationPolicy([
          pp.LatestN(1),
          pp.BestN(get_metric_fn=_best_fn, reverse=True, n=1)]),
      best_fn=_best_fn, best_mode="min", read_only=read_only,
      create=not read_only)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def save(mngr: ocp.CheckpointManager, step: int, *, model, optimizer,
         data_iter, config: ml_collections.ConfigDict, meta: dict,
         val_mpjpe: float | None = None) -> None:
  """Starts an asynchronous save of everything needed to resume."""
  args = dict(
      model=ocp.args.StandardSave(nnx.state(model)),
      optimizer=ocp.args.StandardSave(nnx.state(optimizer)),
      config=ocp.args.JsonSave(config.to_dict()),
      meta=ocp.args.JsonSave(meta))
  if data_iter is not None:
    args["data_iter"] = grain.checkpoint.CheckpointSave(data_iter)
  mngr.save(step, args=ocp.args.Composite(**args), metrics={
      "mpjpe": math.inf if val_mpjpe is None else float(val_mpjpe)})


def _abstract(tree, sharding):
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
      tree)


def restore_train_state(mngr: ocp.CheckpointManager, step: int, *, model,
                        optimizer, data_iter, sharding) -> dict:
  """Restores model, optimizer and iterator in place; returns `meta`."""
  args = dict(
      model=ocp.args.StandardRestore(_abstract(nnx.state(model), sharding)),
      optimizer=ocp.args.StandardRestore(
          _abstract(nnx.state(optimizer), sharding)),
      meta=ocp.args.JsonRestore())
  if data_iter is not None:
    args["data_iter"] = grain.checkpoint.CheckpointRestore(data_iter)
  try:
    out = mngr.restore(step, args=ocp.args.Composite(**args))
  except Exception as e:  # orbax raises many types for damaged files
    raise RuntimeError(
        f"could not restore checkpoint step {step} from {mngr.directory}: "
        f"{type(e).__name__}: {e}. Delete that step directory to resume "
        "from an earlier one.") from e
  nnx.update(model, out["model"])
  nnx.update(optimizer, out["optimizer"])
  return dict(out["meta"])


def resolve_step(mngr: ocp.CheckpointManager, step="best") -> int:
  """'best', 'latest' or an int -> an existing step number."""
  steps = mngr.all_steps()
  if not steps:
    raise FileNotFoundError(
        f"no checkpoint in {mngr.directory}: train first with "
        "`python -m opformer_jax.train --config=... --workdir=...`")
  if step == "latest":
    return mngr.latest_step()
  if step == "best":
    best = mngr.best_step()
    metrics = mngr.metrics(best) if best is not None else None
    if best is None or not metrics or math.isinf(_best_fn(metrics)):
      return mngr.latest_step()  # no validation ran: latest is all we have
    return best
  step = int(step)
  if step not in steps:
    raise FileNotFoundError(f"no checkpoint step {step} in {mngr.directory};"
                            f" available: {sorted(steps)}")
  return step


def saved_config(workdir: str, step="best") -> dict:
  """The config dict a checkpoint step was saved with (infer without
  --config)."""
  mngr = manager(workdir, read_only=True)
  step = resolve_step(mngr, step)
  return dict(mngr.restore(step, args=ocp.args.Composite(
      config=ocp.args.JsonRestore()))["config"])


def restore_model(config: ml_collections.ConfigDict, workdir: str,
                  step="best", sharding=None):
  """Builds the model of `config.model` and loads a checkpoint's weights.

  Works on whatever devices exist, whatever layout the checkpoint was
  saved from (the arrays are re-sharded to `sharding`, default: this
  process's first device).

  Returns:
    (model, step, meta dict).
  """
  from opformer_jax import model as model_lib  # avoid a cycle at import

  mngr = manager(workdir, read_only=True)
  step = resolve_step(mngr, step)
  saved_cfg = mngr.restore(step, args=ocp.args.Composite(
      config=ocp.args.JsonRestore()))["config"]
  saved_model = ml_collections.ConfigDict(saved_cfg.get("model", {}))
  diff = {k: (saved_model[k], config.model[k]) for k in saved_model
          if k in config.model and saved_model[k] != config.model[k]
          and k not in ("remat", "dtype", "attention_impl")}
  if diff:
    raise ValueError(
        f"checkpoint {mngr.directory}/{step} was trained with a different "
        "model config: " + ", ".join(
            f"model.{k}: checkpoint {a!r} vs given {b!r}"
            for k, (a, b) in sorted(diff.items())))
  model = model_lib.abstract_model(config.model)
  graphdef, state = nnx.split(model)
  sharding = sharding or jax.sharding.SingleDeviceSharding(
      jax.local_devices()[0])
  try:
    out = mngr.restore(step, args=ocp.args.Composite(
        model=ocp.args.StandardRestore(_abstract(state, sharding)),
        meta=ocp.args.JsonRestore()))
  except Exception as e:
    raise RuntimeError(
        f"could not restore the model from {mngr.directory}/{step}: "
        f"{type(e).__name__}: {e}") from e
  return nnx.merge(graphdef, out["model"]), step, dict(out["meta"])

