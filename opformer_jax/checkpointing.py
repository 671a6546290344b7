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

Each save records the size and CRC-32 of each of its files in
`<step>/files.json` while the step is still in Orbax's temporary directory,
so a step visible under its final name always carries its record
(`_SealedRename`). A restore first checks the files against it, so a
truncated, missing or altered file is reported in one line
(`CheckpointError`, naming the step, the file and the other kept steps
`--step=` can restore) instead of an Orbax traceback. Training trusts only
verified steps: one without a readable record that matches its files is set
aside (`set_aside`, into `workdir/damaged_checkpoints/`, with its
`eval/step_<N>` results) and the newest intact one resumed. `evaluate` and
`infer` still read a step saved without a record (an older version), and
refuse one whose restored weights are not finite.
"""

import asyncio
import json
import logging as logging_std
import math
import os
import re
import sys
import warnings
import zlib

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
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
  """A kept checkpoint step cannot be restored (damaged or unreadable).

  `problem` is the message without its hint of other steps to restore
  (what training's warnings say, since training moves the step aside).
  """

  def __init__(self, message: str, step: int | None = None,
               problem: str | None = None):
    super().__init__(message)
    self.step = step
    self.problem = problem or message


def _damaged(mngr, step: int, path, what: str,
             need_record: bool) -> CheckpointError:
  """The error `<path>: <what>: checkpoint step <step> is damaged`, with
  the other kept steps `--step=` can restore."""
  return CheckpointError(
      _damage_text(path, what, step, _other_steps_hint(mngr, step,
                                                        need_record)),
      step, problem=_damage_text(path, what, step))


def _damage_text(path, what: str, step: int, expected: str | None = None):
  return errors.bad_input(path, f"{what}: checkpoint step {step} is damaged",
                          expected)


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
      create=not read_only, temporary_path_class=_SealedRename)
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


def _record(step_dir: str) -> str:
  """The integrity record (JSON) of the item files now in `step_dir`."""
  files = {rel: [os.path.getsize(os.path.join(step_dir, rel)),
                 _crc32(os.path.join(step_dir, rel))]
           for rel in _item_files(step_dir)}
  return json.dumps({"files": files}, indent=0)


def write_record(step_dir: str) -> None:
  """Writes `<step_dir>/files.json` (atomically) for the files there now."""
  fileio.write_text(os.path.join(step_dir, MANIFEST), _record(step_dir))


class _SealedRename(ocp.path.atomicity.AtomicRenameTemporaryPath):
  """Orbax's atomic rename, with the step's integrity record written into
  its temporary directory first: a step under its final name always has
  one, so a kill at any moment leaves either no step or a recorded one.

  Orbax finalizes each item's directory (inside the step's) with this class
  too; only the step directory, named by its number, gets a record. Runs on
  the primary process once every process has written its files.
  """

  async def finalize(self):
    if self.get_final().name.isdigit():
      await asyncio.to_thread(write_record, str(self.get()))
    await super().finalize()


def _read_record(step_dir: str) -> dict[str, tuple[int, int]]:
  """{file: (size, crc)} of `<step_dir>/files.json`.

  Raises:
    FileNotFoundError: there is none.
    ValueError: it is not a record.
  """
  with open(os.path.join(step_dir, MANIFEST), "rb") as f:
    text = f.read()
  try:
    return {str(rel): (int(size), int(crc)) for rel, (size, crc) in
            json.loads(text)["files"].items()}
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise ValueError(type(e).__name__) from e


def find_damage(mngr: ocp.CheckpointManager, step: int,
                need_record: bool = True) -> tuple[str, str] | None:
  """(file, what is wrong) for the first problem of `step`: a file that
  differs from its record in `files.json`, a file the record does not
  list, or no readable record (without one nothing can be checked, so it
  is a problem unless `need_record` is False: an older version's step, read
  by `evaluate`); None when every file matches."""
  step_dir = _step_dir(mngr, step)
  record_path = os.path.join(step_dir, MANIFEST)
  try:
    files = _read_record(step_dir)
  except FileNotFoundError:
    return None if not need_record else (
        record_path, "missing (the step's integrity record), so its files "
        "cannot be checked")
  except (OSError, ValueError) as e:
    return record_path, ("not a readable integrity record "
                         f"({getattr(e, 'strerror', None) or e})")
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
  unlisted = sorted(set(_item_files(step_dir)) - set(files))
  if unlisted:
    return (os.path.join(step_dir, unlisted[0]),
            f"not in the step's integrity record {record_path}")
  return None


def _innermost(e: BaseException) -> BaseException:
  seen = set()
  while (e.__cause__ or e.__context__) is not None and id(e) not in seen:
    seen.add(id(e))
    e = e.__cause__ or e.__context__
  return e


def _other_steps_hint(mngr: ocp.CheckpointManager, step: int,
                      need_record: bool = False) -> str:
  others = [s for s in sorted(mngr.all_steps(), reverse=True)
            if s != step and find_damage(mngr, s, need_record) is None]
  if not others:
    return "no other kept step to restore; train again"
  return " or ".join(f"--step={s}" for s in others) + (
      " restores the other kept step" if len(others) == 1 else
      " restore other kept steps")


def check_intact(mngr: ocp.CheckpointManager, step: int,
                 need_record: bool = True) -> None:
  """Raises CheckpointError when `step` fails `find_damage`."""
  damage = find_damage(mngr, step, need_record)
  if damage is not None:
    path, what = damage
    raise _damaged(mngr, step, path, what, need_record)


def _non_finite(state) -> tuple[int, int]:
  """(values that are NaN / inf, all values) among `state`'s float arrays.

  Read from this process's copy of each array (restored states are
  replicated or on one device), so no process waits on another."""
  bad = total = 0
  for x in jax.tree.leaves(state):
    if not jnp.issubdtype(x.dtype, jnp.inexact):
      continue
    local = np.asarray(x.addressable_shards[0].data if hasattr(
        x, "addressable_shards") else x)
    bad += int(local.size - np.isfinite(local).sum())
    total += int(local.size)
  return bad, total


def _check_finite(mngr: ocp.CheckpointManager, step: int, state,
                  need_record: bool) -> None:
  """Raises CheckpointError when restored weights hold NaN / inf (bytes
  changed in a step without a record to show it, or a diverged save)."""
  bad, total = _non_finite(state)
  if bad:
    raise _damaged(mngr, step, os.path.join(_step_dir(mngr, step), "model"),
                   f"weights hold NaN/inf values ({bad} of {total})",
                   need_record)


def _from_orbax(exc: BaseException | None) -> bool:
  """Whether `exc`, or an exception it came from, passed through Orbax."""
  seen = set()
  while exc is not None and id(exc) not in seen:
    seen.add(id(exc))
    tb = exc.__traceback__
    while tb is not None:
      if f"{os.sep}orbax{os.sep}" in tb.tb_frame.f_code.co_filename:
        return True
      tb = tb.tb_next
    exc = exc.__cause__ or exc.__context__
  return False


def _is_abandoned_read(unraisable) -> bool:
  """Whether an exception Python could not raise comes from an Orbax read
  that a failed restore abandoned: its coroutine, collected unfinished, or
  TensorStore's callback finding Orbax's event loop closed."""
  code = getattr(unraisable.object, "cr_code", None)
  if code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename:
    return True
  tb = unraisable.exc_traceback
  return (unraisable.exc_type is RuntimeError and tb is not None and
          "Event loop is closed" in str(unraisable.exc_value) and
          tb.tb_frame.f_code.co_name == "call_soon_threadsafe")


class _AbandonedReads(logging_std.Filter):
  """Drops asyncio's reports ('exception was never retrieved') of Orbax
  reads a failed restore left behind: those that name Orbax, and once a
  restore has failed (`failed`), TensorStore's futures, which do not."""

  failed = False

  def filter(self, record):
    exc = record.exc_info[1] if record.exc_info else None
    if _from_orbax(exc) or "orbax" in record.getMessage():
      return False
    return not (_AbandonedReads.failed and
                "exception was never retrieved" in record.getMessage())


def _quiet_abandoned_reads() -> None:
  """Silences what a failed restore leaves behind. When one array cannot be
  read, Orbax gives up on the others and closes its event loop; their reads
  then report, as tracebacks before or after the one-line error, that they
  failed too or found the loop closed.
  Installed once per process, before the first restore; anything else
  still reaches the previous hooks."""
  if getattr(sys.unraisablehook, "_opformer_quiet", False):
    return
  previous = sys.unraisablehook

  def on_unraisable(u):
    if not _is_abandoned_read(u):
      previous(u)
  on_unraisable._opformer_quiet = True  # pylint: disable=protected-access
  sys.unraisablehook = on_unraisable
  logging_std.getLogger("asyncio").addFilter(_AbandonedReads())


def _abandon_reads() -> None:
  """After a failed restore, also silences the reports of reads that carry
  no trace of Orbax: TensorStore's futures, and coroutines never started."""
  _AbandonedReads.failed = True
  warnings.filterwarnings("ignore", r"coroutine '.*' was never awaited",
                          RuntimeWarning)


def _restore(mngr: ocp.CheckpointManager, step: int, args: dict,
             need_record: bool = False):
  """`mngr.restore` of the items `args` after `check_intact`; a failure on
  a step without a record becomes one CheckpointError line (Orbax's
  innermost message, which names the array and often the file)."""
  check_intact(mngr, step, need_record)
  _quiet_abandoned_reads()
  try:
    return mngr.restore(step, args=ocp.args.Composite(**args))
  except Exception as e:  # pylint: disable=broad-except
    if os.path.exists(os.path.join(_step_dir(mngr, step), MANIFEST)):
      raise  # the files are as saved: not damage, a bug or a mismatch
    _abandon_reads()
    cause = str(_innermost(e)).strip().splitlines()
    cause = cause[0][:300] if cause else type(e).__name__
    where = re.search(r'local file "([^"]+)"', cause)
    path = where.group(1) if where else _step_dir(mngr, step)
    what = f"checkpoint step {step} could not be restored ({cause})"
    raise CheckpointError(errors.bad_input(
        path, what, _other_steps_hint(mngr, step, need_record)), step,
                          problem=errors.bad_input(path, what)) from e


def restore_train_state(mngr: ocp.CheckpointManager, step: int, *, model,
                        optimizer, data_iter, sharding) -> dict:
  """Restores model, optimizer and iterator in place; returns `meta`.

  Only a verified step restores: one without a readable integrity record
  matching its files, or with non-finite weights, is damaged.

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
  out = _restore(mngr, step, args, need_record=True)
  _check_finite(mngr, step, out["model"], need_record=True)
  nnx.update(model, out["model"])
  nnx.update(optimizer, out["optimizer"])
  return dict(out["meta"])


def latest_meta(mngr: ocp.CheckpointManager) -> dict:
  """The `meta` of the newest verified kept step ({} when there is none)."""
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      return dict(_restore(mngr, step, dict(meta=ocp.args.JsonRestore()),
                           need_record=True)["meta"])
    except CheckpointError:
      continue
  return {}


def eval_dir(workdir: str, step: int) -> str:
  """Where `evaluate` writes the results of checkpoint `step`."""
  return os.path.join(workdir, "eval", f"step_{step}")


def _sync(name: str) -> None:
  """A barrier of all processes (nothing in a single-process run)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


def set_aside(mngr: ocp.CheckpointManager, step: int) -> str:
  """Moves a damaged step out of the manager's sight, into
  `workdir/damaged_checkpoints/<step>` (never deleted or overwritten: a
  second damaged copy of the same step gets a suffix); returns that path.
  Its `eval/step_<N>` results, if any, go beside it as `<step>.eval`, so no
  results remain of a step the run no longer has. Every process calls it;
  process 0 moves."""
  workdir = os.path.dirname(str(mngr.directory))
  dest = os.path.join(workdir, DAMAGED_DIR, str(step))
  n = 1
  while os.path.exists(dest) or os.path.exists(dest + ".eval"):
    n += 1
    dest = os.path.join(workdir, DAMAGED_DIR, f"{step}-{n}")
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    os.rename(_step_dir(mngr, step), dest)
    if os.path.isdir(eval_dir(workdir, step)):
      os.rename(eval_dir(workdir, step), dest + ".eval")
  _sync(f"set_aside_{step}")
  mngr.reload()
  return dest


def set_aside_with_warning(mngr: ocp.CheckpointManager, step: int,
                           problem: str, kept_before: int) -> str:
  """`set_aside`, and one warning line: `problem`, where the step went and,
  when no kept step is left, that training restarts from step 0
  (`kept_before`: how many steps were kept before this round of checks).

  Returns:
    Where the step was moved.
  """
  dest = set_aside(mngr, step)
  restart = ""
  if not mngr.all_steps():
    restart = ("; it was the only kept step" if kept_before == 1 else
               "; no intact step is left") + ", so training restarts from step 0"
  logging.warning("%s; moved to %s%s", problem, dest, restart)
  return dest


def set_aside_damaged(mngr: ocp.CheckpointManager) -> list[tuple[int, str]]:
  """Sets aside every kept step that fails `find_damage` (training trusts
  verified steps only: a step without its integrity record counts), each
  with one warning line (`set_aside_with_warning`).

  Returns:
    [(step, where it was moved)], newest first.
  """
  steps = sorted(mngr.all_steps(), reverse=True)
  damaged = [(s, d) for s in steps if (d := find_damage(mngr, s))]
  _sync("checked_steps")   # every process has read before any step moves
  return [(step, set_aside_with_warning(
      mngr, step, _damage_text(path, what, step), len(steps)))
          for step, (path, what) in damaged]


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
  _check_finite(mngr, step, out["model"], need_record=False)
  return nnx.merge(graphdef, out["model"]), step, dict(out["meta"])

