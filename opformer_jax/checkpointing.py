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

Once a save has finished, `seal` records the size and CRC-32 of each of its
files in `<step>/files.json`. A restore first checks them, so a truncated,
missing or altered file is reported in one line (`CheckpointError`, naming
the step, the file and the other kept steps `--step=` can restore) instead
of an Orbax traceback; training sets such a step aside (`set_aside`) and
resumes from the newest intact one.
"""

import json
import math
import os
import re
import zlib

import jax
import ml_collections
import orbax.checkpoint as ocp
from flax import nnx
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

import grain

from opformer_jax import errors
from opformer_jax import fileio

MANIFEST = "files.json"
# Items whose files the manifest covers (Orbax's own `metrics` and
# `_CHECKPOINT_METADATA` are Orbax's to rewrite).
_SEALED_ITEMS = ("model", "optimizer", "data_iter", "config", "meta")
DAMAGED_DIR = "damaged_checkpoints"


class CheckpointError(errors.UserError):
  """A kept checkpoint step cannot be restored (damaged or unreadable)."""

  def __init__(self, message: str, step: int | None = None):
    super().__init__(message)
    self.step = step


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


def _step_dir(mngr: ocp.CheckpointManager, step: int) -> str:
  return os.path.join(str(mngr.directory), str(step))


def _crc32(path: str) -> int:
  crc = 0
  with open(path, "rb") as f:
    while chunk := f.read(1 << 22):
      crc = zlib.crc32(chunk, crc)
  return crc


def _item_files(step_dir: str) -> list[str]:
  """Paths, relative to `step_dir`, of the files of the sealed items."""
  out = []
  for item in _SEALED_ITEMS:
    for root, _, files in os.walk(os.path.join(step_dir, item)):
      out += [os.path.relpath(os.path.join(root, f), step_dir) for f in files]
  return sorted(out)


def seal(mngr: ocp.CheckpointManager, step: int | None) -> None:
  """Waits for the save of `step` and records its files' sizes and CRCs.

  Process 0 writes `<step>/files.json` (atomically) once Orbax has finished
  the step; a step without it (saved by a run killed right after, or by an
  older version) is still restored, only less precisely diagnosed.
  """
  mngr.wait_until_finished()
  if step is None or jax.process_index() != 0:
    return
  step_dir = _step_dir(mngr, step)
  if not os.path.isdir(step_dir) or os.path.exists(
      os.path.join(step_dir, MANIFEST)):
    return
  files = {rel: [os.path.getsize(os.path.join(step_dir, rel)),
                 _crc32(os.path.join(step_dir, rel))]
           for rel in _item_files(step_dir)}
  fileio.write_text(os.path.join(step_dir, MANIFEST),
                    json.dumps({"files": files}, indent=0))


def find_damage(mngr: ocp.CheckpointManager,
                step: int) -> tuple[str, str] | None:
  """(file, what is wrong) for the first file of `step` that differs from
  its record in `files.json`; None when all match or nothing was recorded."""
  step_dir = _step_dir(mngr, step)
  try:
    with open(os.path.join(step_dir, MANIFEST)) as f:
      files = json.load(f)["files"]
  except (OSError, ValueError, KeyError):
    return None
  for rel, (size, crc) in sorted(files.items()):
    path = os.path.join(step_dir, rel)
    if not os.path.isfile(path):
      return path, "missing"
    actual = os.path.getsize(path)
    if actual != size:
      return path, f"{actual} bytes instead of {size} (truncated)" if (
          actual < size) else f"{actual} bytes instead of {size}"
    if _crc32(path) != crc:
      return path, "contents changed since the save (CRC-32 mismatch)"
  return None


def _innermost(e: BaseException) -> BaseException:
  seen = set()
  while (e.__cause__ or e.__context__) is not None and id(e) not in seen:
    seen.add(id(e))
    e = e.__cause__ or e.__context__
  return e


def _other_steps_hint(mngr: ocp.CheckpointManager, step: int) -> str:
  others = [s for s in sorted(mngr.all_steps(), reverse=True)
            if s != step and find_damage(mngr, s) is None]
  if not others:
    return "no other kept step to restore; train again"
  return " or ".join(f"--step={s}" for s in others) + (
      " restores the other kept step" if len(others) == 1 else
      " restore other kept steps")


def _check_intact(mngr: ocp.CheckpointManager, step: int) -> None:
  """Raises CheckpointError when a recorded file of `step` is damaged."""
  damage = find_damage(mngr, step)
  if damage is not None:
    path, what = damage
    raise CheckpointError(errors.bad_input(
        path, f"{what}: checkpoint step {step} is damaged",
        _other_steps_hint(mngr, step)), step)


def _restore(mngr: ocp.CheckpointManager, step: int, args: dict):
  """`mngr.restore` of the items `args`; a failure on a step whose files
  are not all recorded becomes one CheckpointError line (Orbax's innermost
  message, which names the array and often the file)."""
  _check_intact(mngr, step)
  try:
    return mngr.restore(step, args=ocp.args.Composite(**args))
  except Exception as e:  # pylint: disable=broad-except
    if os.path.exists(os.path.join(_step_dir(mngr, step), MANIFEST)):
      raise  # the files are as saved: not damage, a bug or a mismatch
    cause = str(_innermost(e)).strip().splitlines()
    cause = cause[0][:300] if cause else type(e).__name__
    where = re.search(r'local file "([^"]+)"', cause)
    raise CheckpointError(errors.bad_input(
        where.group(1) if where else _step_dir(mngr, step),
        f"checkpoint step {step} could not be restored ({cause})",
        _other_steps_hint(mngr, step)), step) from e


def restore_train_state(mngr: ocp.CheckpointManager, step: int, *, model,
                        optimizer, data_iter, sharding) -> dict:
  """Restores model, optimizer and iterator in place; returns `meta`.

  Raises:
    CheckpointError: `step` is damaged (model and optimizer are untouched).
  """
  args = dict(
      model=ocp.args.StandardRestore(_abstract(nnx.state(model), sharding)),
      optimizer=ocp.args.StandardRestore(
          _abstract(nnx.state(optimizer), sharding)),
      meta=ocp.args.JsonRestore())
  if data_iter is not None:
    args["data_iter"] = grain.checkpoint.CheckpointRestore(data_iter)
  out = _restore(mngr, step, args)
  nnx.update(model, out["model"])
  nnx.update(optimizer, out["optimizer"])
  return dict(out["meta"])


def latest_meta(mngr: ocp.CheckpointManager) -> dict:
  """The `meta` of the newest readable kept step ({} when there is none)."""
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      return dict(_restore(mngr, step, dict(meta=ocp.args.JsonRestore()))[
          "meta"])
    except CheckpointError:
      continue
  return {}


def set_aside(mngr: ocp.CheckpointManager, step: int) -> str:
  """Moves a damaged step out of the manager's sight, into
  `workdir/damaged_checkpoints/<step>` (never deleted or overwritten: a
  second damaged copy of the same step gets a suffix); returns that path.
  Every process calls it; process 0 moves."""
  workdir = os.path.dirname(str(mngr.directory))
  dest = os.path.join(workdir, DAMAGED_DIR, str(step))
  n = 1
  while os.path.exists(dest):
    n += 1
    dest = os.path.join(workdir, DAMAGED_DIR, f"{step}-{n}")
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    os.rename(_step_dir(mngr, step), dest)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(f"set_aside_{step}")
  mngr.reload()
  return dest


def resolve_step(mngr: ocp.CheckpointManager, step="best") -> int:
  """'best', 'latest' or an int -> an existing step number."""
  steps = mngr.all_steps()
  if not steps:
    raise CheckpointError(errors.bad_input(
        mngr.directory, "no checkpoint in this directory",
        "a training run's workdir: train first with `python -m "
        "opformer_jax.train --config=... --workdir=...`"))
  if step == "latest":
    return mngr.latest_step()
  if step == "best":
    best = mngr.best_step()
    metrics = mngr.metrics(best) if best is not None else None
    if best is None or not metrics or math.isinf(_best_fn(metrics)):
      return mngr.latest_step()  # no validation ran: latest is all we have
    return best
  try:
    step = int(step)
  except ValueError:
    raise errors.UserError(f"--step={step}: expected 'best', 'latest' or a "
                           "step number") from None
  if step not in steps:
    raise CheckpointError(errors.bad_input(
        mngr.directory, f"no checkpoint step {step}",
        " or ".join(f"--step={s}" for s in sorted(steps))), step)
  return step


def saved_config(workdir: str, step="best") -> dict:
  """The config dict a checkpoint step was saved with (infer without
  --config)."""
  mngr = manager(workdir, read_only=True)
  step = resolve_step(mngr, step)
  return dict(_restore(mngr, step, dict(config=ocp.args.JsonRestore()))[
      "config"])


def restore_model(config: ml_collections.ConfigDict, workdir: str,
                  step="best", sharding=None):
  """Builds the model of `config.model` and loads a checkpoint's weights.

  Works on whatever devices exist, whatever layout the checkpoint was
  saved from (the arrays are re-sharded to `sharding`, default: this
  process's first device).

  Returns:
    (model, step, meta dict).

  Raises:
    CheckpointError: the step is damaged (names the file and the other
      kept steps).
  """
  from opformer_jax import model as model_lib  # avoid a cycle at import

  mngr = manager(workdir, read_only=True)
  step = resolve_step(mngr, step)
  saved_cfg = _restore(mngr, step, dict(config=ocp.args.JsonRestore()))[
      "config"]
  saved_model = ml_collections.ConfigDict(saved_cfg.get("model", {}))
  diff = {k: (saved_model[k], config.model[k]) for k in saved_model
          if k in config.model and saved_model[k] != config.model[k]
          and k not in ("remat", "dtype", "attention_impl",
                        "part_attention", "scan_unroll", "loop_impl")}
  if diff:
    raise errors.ConfigError(
        f"checkpoint {mngr.directory}/{step} was trained with a different "
        "model config: " + ", ".join(
            f"model.{k}: checkpoint {a!r} vs given {b!r}"
            for k, (a, b) in sorted(diff.items())))
  model = model_lib.abstract_model(config.model)
  graphdef, state = nnx.split(model)
  sharding = sharding or jax.sharding.SingleDeviceSharding(
      jax.local_devices()[0])
  out = _restore(mngr, step, dict(
      model=ocp.args.StandardRestore(_abstract(state, sharding)),
      meta=ocp.args.JsonRestore()))
  return nnx.merge(graphdef, out["model"]), step, dict(out["meta"])

