"""Training: `train_and_evaluate(config, workdir)` and its `python -m` entry.

  python -m opformer_jax.train --config=configs/quickstart.py --workdir=DIR

The loop runs one jitted, donated step per micro-batch; `optax.MultiSteps`
accumulates `train.accum_steps` micro-batches per optimizer update. State,
randomness and data order are all functions of the micro-step number, so a
run resumed from `workdir` (automatically) ends with the parameters of an
uninterrupted run. Parameters are replicated and batches split over every
device of every process.
"""

import contextlib
import dataclasses
import math
import os
import re
import signal
import threading
import time

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from opformer_jax import checkpointing
from opformer_jax import errors
from opformer_jax import fileio
from opformer_jax import layers
from opformer_jax.evaluate import protocols
from opformer_jax.evaluate import run as evaluate
from opformer_jax.data import dataset
from opformer_jax.data import input_pipeline
from opformer_jax.data import sources
from opformer_jax import losses
from opformer_jax import metric_writer
from opformer_jax import model as model_lib
from opformer_jax import optimizer as optimizer_lib
from opformer_jax import parallel

_DEVICE_KEYS = ("kp2d", "kp3d", "scale_mm")


def setup_jax(config: ml_collections.ConfigDict) -> None:
  """Persistent compilation cache (a restart compiles in seconds)."""
  if config.train.compilation_cache:
    jax.config.update("jax_compilation_cache_dir",
                      os.path.expanduser(config.train.compilation_cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def make_train_step(graphdef, config: ml_collections.ConfigDict):
  """The pure step `(state, batch, step) -> (state, measurements)`.

  `state` is `nnx.state((model, optimizer))`; dropout keys are
  `fold_in(key(seed), step)`, so they depend on the step number only.
  """
  base_key = jax.random.key(config.seed)

  def train_step(state, batch, step):
    model, opt = nnx.merge(graphdef, state)
    key = jax.random.fold_in(base_key, step)

    def loss_fn(model):
      pred = model(batch["kp2d"], key=key)
      loss, terms = losses.total_loss(pred, batch["kp3d"], config.loss)
      return loss, (terms, pred)

    (loss, (terms, pred)), grads = nnx.value_and_grad(
        loss_fn, has_aux=True)(model)
    lr = optimizer_lib.learning_rate(opt.opt_state)
    opt.update(model, grads)
    err_mm = jnp.linalg.norm(pred - batch["kp3d"], axis=-1) * batch[
        "scale_mm"][..., None]
    measurements = {
        "loss": loss, "lr": lr, "grad_norm": optax.tree.norm(grads),
        "param_norm": optax.tree.norm(nnx.state(model, nnx.Param)),
        "train_mpjpe_mm": jnp.mean(err_mm),
        **{f"loss_{k}": v for k, v in terms.items()}}
    return nnx.state((model, opt)), measurements
  return train_step


_BUDGET = re.compile(r"^(\d+(?:\.\d*)?)(h|m|s|u|updates)$")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_budget(budget: str) -> tuple[str, float] | None:
  """`train.budget` -> ('seconds', s) or ('updates', n); '' -> None.

  '2h' -> ('seconds', 7200.0), '90m', '45s', '1.5h'; '5000u' and
  '5000updates' -> ('updates', 5000.0).
  """
  text = str(budget or "").strip().lower().replace(" ", "")
  if not text:
    return None
  match = _BUDGET.match(text)
  if not match or float(match.group(1)) <= 0:
    raise errors.ConfigError(
        f"train.budget={budget!r}; expected a duration (2h, 90m, 45s) or a "
        "number of optimizer updates (5000u, 5000updates)")
  value, unit = float(match.group(1)), match.group(2)
  if unit in _SECONDS:
    return "seconds", value * _SECONDS[unit]
  if value != int(value):
    raise errors.ConfigError(f"train.budget={budget!r}; expected a whole "
                             "number of updates")
  return "updates", value


@dataclasses.dataclass(frozen=True)
class Plan:
  """The length of a run and the period of its work.

  Attributes:
    steps_per_epoch: micro-steps in one epoch.
    total_steps: the micro-step this invocation stops at.
    eval_every: micro-steps between validations (None: none).
    total_updates: U, the updates the lr schedule spans.
    schedule: the lr schedule's shape ('exponential', 'cosine', 'linear').
    budget: the `train.budget` that fixed U ('' for epochs).
  """
  steps_per_epoch: int
  total_steps: int
  eval_every: int | None
  total_updates: int
  schedule: str
  budget: str = ""

  def is_eval_step(self, step: int) -> bool:
    return self.eval_every is not None and (
        step % self.eval_every == 0 or step == self.total_steps)

  def record(self) -> dict | None:
    """What a checkpoint keeps so that a resumed run has this plan."""
    if not self.budget:
      return None   # epochs: the config alone gives the same plan
    return {"budget": self.budget, "total_updates": self.total_updates,
            "schedule": self.schedule}


def make_plan(config: ml_collections.ConfigDict, n_clips: int,
              total_updates: int | None = None,
              recorded: dict | None = None) -> Plan:
  """The run's plan from epochs, or from a budget of `total_updates`.

  Args:
    config: the experiment config.
    n_clips: training clips per epoch.
    total_updates: U of a budgeted run (`train.budget`).
    recorded: `Plan.record()` of the checkpoint being resumed; it wins.
  """
  t, o = config.train, config.optim
  steps_per_epoch = input_pipeline.steps_per_epoch(n_clips, t.batch_size)
  budget = recorded["budget"] if recorded else (t.budget or "")
  if recorded:
    total_updates, schedule = recorded["total_updates"], recorded["schedule"]
  else:
    schedule = o.schedule if o.schedule != "auto" else (
        "cosine" if budget else "exponential")
  if budget:
    full_steps = total_updates * t.accum_steps
    eval_every = (max(1, full_steps // t.budget_evals)
                  if t.budget_evals > 0 else None)
  else:
    full_steps = steps_per_epoch * t.num_epochs
    total_updates = max(1, full_steps // t.accum_steps)
    eval_every = (max(1, round(t.eval_every_epochs * steps_per_epoch))
                  if t.eval_every_epochs > 0 else None)
  total_steps = full_steps
  if t.max_updates > 0:
    total_steps = min(total_steps, t.max_updates * t.accum_steps)
  return Plan(steps_per_epoch, total_steps, eval_every, total_updates,
              schedule, budget)


class Validator:
  """Validation while training: the headline MPJPE of a model on the test
  split, or on its fixed subset when `train.eval_max_clips` > 0. The split
  is loaded once and the jitted forward built once."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    self.config = config
    path = config.data.test_path
    if config.train.eval_max_clips > 0:
      centered = protocols.protocol_class(config).eval_mode == "centered"
      path = sources.validation_subset(
          path, os.path.join(workdir, "validation_subset.npz"),
          config.train.eval_max_clips, config.data.num_frames,
          config.data.test_stride, centered=centered)
    self.data = evaluate.load_test_data(config, path)
    self.protocol = protocols.for_config(config, self.data)
    self._predict = None

  def __call__(self, model) -> float:
    if self._predict is None:
      self._predict = evaluate.make_predict(nnx.graphdef(model), self.config)
    res = evaluate.run_protocol(
        evaluate.make_predict_fn(model, self.config, self._predict),
        self.config, progress=False, data=self.data, protocol=self.protocol)
    return evaluate.headline(res, self.config, self.protocol)


def _build_state(config, plan: Plan, mesh):
  """Model and optimizer of `plan`, replicated over `mesh`."""
  model = model_lib.build_model(config.model, config.seed)
  opt = nnx.Optimizer(
      model, optimizer_lib.make(config, plan.steps_per_epoch,
                                plan.total_updates, plan.schedule),
      wrt=nnx.Param)
  nnx.update((model, opt), parallel.replicate(nnx.state((model, opt)),
                                              mesh))
  return model, opt


class Trainer:
  """One run: its replicated state, data position and periodic work.

  The loop (`run`) calls small helpers for what happens between steps:
  `_log` (metrics), `_check_finite` (stop on NaN / inf), `_save`
  (checkpoint) and `_validate_and_save`.
  """

  def __init__(self, config, mngr, mesh, plan: Plan, train_ds,
               validator: Validator | None):
    self.config, self.plan, self.mngr = config, plan, mngr
    self.validator = validator
    self.is_main = jax.process_index() == 0
    model, opt = _build_state(config, plan, mesh)
    self.n_params = model_lib.count_params(model)
    self.data_iter = iter(train_ds)
    self.step, self.best = 0, math.inf
    self._resume(model, opt, parallel.replicated(mesh))
    self.last_good = self.mngr.latest_step()
    self.graphdef, self.state = nnx.split((model, opt))
    state_sharding = jax.tree.map(lambda x: x.sharding, self.state)
    self._step_fn = jax.jit(make_train_step(self.graphdef, config),
                            donate_argnums=0,
                            out_shardings=(state_sharding, None))
    self.mesh = mesh
    # Rows of steps after the restored one were written by the run that
    # stopped; the steps are trained again, and logged once.
    self.writer = metric_writer.MetricWriter(
        os.path.dirname(str(mngr.directory)), resume_step=self.step)
    self._pending = []  # device scalars not yet checked for NaN / inf
    self._clock = (time.perf_counter(), 0)  # (start, clips since start)

  def _resume(self, model, opt, sharding) -> None:
    """Restores the newest kept step (`checkpointing.set_aside_damaged` has
    left only verified ones); one that still fails (non-finite weights, a
    file Orbax cannot read) is set aside too, and the one before tried."""
    steps = sorted(self.mngr.all_steps(), reverse=True)
    for step in steps:
      try:
        meta = checkpointing.restore_train_state(
            self.mngr, step, model=model, optimizer=opt,
            data_iter=self.data_iter, sharding=sharding)
      except checkpointing.CheckpointError as e:
        checkpointing.set_aside_with_warning(self.mngr, step, e.problem,
                                             len(steps))
        continue
      self.step = int(meta["step"])
      self.best = float(meta.get("best_val_mpjpe", math.inf))
      logging.info("Resumed from step %d", self.step)
      if self.is_main:
        print(f"Resumed from {self.mngr.directory}/{self.step}")
      return

  def run(self) -> None:
    """Trains up to `plan.total_steps`, validating and saving on the way."""
    plan, t = self.plan, self.config.train
    bar = tqdm(total=plan.total_steps, initial=self.step, desc="train",
               unit="step", disable=not self.is_main, dynamic_ncols=True)
    self._clock = (time.perf_counter(), 0)
    try:
      with _stop_requests() as requests:
        while self.step < plan.total_steps:
          if requests:
            self._stop(requests[0])
          meas = self._train_step()
          bar.update(1)
          do_eval = plan.is_eval_step(self.step)
          if self.step % t.log_every == 0 or do_eval:
            self._log(meas, bar)
          if do_eval:
            self._validate_and_save(bar)
          elif (self.step % t.checkpoint_every == 0 or
                self.step == plan.total_steps):
            self._check_finite()
            self._save()
    finally:
      bar.close()
      self.mngr.wait_until_finished()
      self.writer.close()

  def _stop(self, signum: int) -> None:
    """Saves the state at this micro-step (if not saved yet) and stops."""
    self._check_finite()
    if self.mngr.latest_step() != self.step:
      self._save()
    self.mngr.wait_until_finished()
    raise errors.Interrupted(
        f"{signal.Signals(signum).name}: stopped at micro-step {self.step} "
        f"of {self.plan.total_steps}, saved in {self.mngr.directory}/"
        f"{self.step}; run the same command to resume.", signum)

  def _train_step(self) -> dict:
    batch = next(self.data_iter)
    batch = parallel.to_global({k: batch[k] for k in _DEVICE_KEYS},
                               self.mesh)
    self.state, meas = self._step_fn(self.state, batch,
                                     jnp.asarray(self.step, jnp.int32))
    # A finite loss can still come with NaN gradients: check both.
    self._pending.append(meas["loss"] + meas["grad_norm"])
    self.step += 1
    start, clips = self._clock
    self._clock = (start, clips + self.config.train.batch_size)
    return meas

  def _log(self, meas: dict, bar) -> None:
    self._check_finite()
    meas = {k: float(v) for k, v in jax.device_get(meas).items()}
    if not math.isfinite(meas["train_mpjpe_mm"]):
      del meas["train_mpjpe_mm"]   # the split has no 2.5D factor
    start, clips = self._clock
    meas["clips_per_s"] = clips / (time.perf_counter() - start)
    meas["epoch"] = self.step / self.plan.steps_per_epoch
    self.writer.write(self.step, meas)
    bar.set_postfix(loss=f"{meas['loss']:.4f}", lr=f"{meas['lr']:.2e}",
                    clips_s=f"{meas['clips_per_s']:.1f}")
    self._clock = (time.perf_counter(), 0)

  def _check_finite(self) -> None:
    if not self._pending:
      return
    values = np.asarray(jax.device_get(jnp.stack(self._pending)))
    self._pending = []
    if not np.isfinite(values).all():
      self.mngr.wait_until_finished()
      raise FloatingPointError(
          "non-finite training loss or gradient before micro-step "
          f"{self.step}; stopped. The last good checkpoint (step "
          f"{self.last_good}) is kept in {self.mngr.directory}. Lower "
          "optim.lr or check the data.")

  def _validate_and_save(self, bar) -> None:
    self._check_finite()
    val = self.validator(nnx.merge(self.graphdef, self.state)[0])
    self.best = min(self.best, val)
    self.writer.write(self.step, {"val_mpjpe": val,
                                  "best_val_mpjpe": self.best})
    if self.is_main:
      bar.write(f"step {self.step} (epoch "
                f"{self.step / self.plan.steps_per_epoch:.2f}): validation "
                f"MPJPE {val:.1f} mm (best {self.best:.1f})")
    self._save(val)
    self._clock = (time.perf_counter(), 0)

  def _save(self, val_mpjpe: float | None = None) -> None:
    model, opt = nnx.merge(self.graphdef, self.state)
    meta = {"step": self.step, "epoch": self.step / self.plan.steps_per_epoch,
            "best_val_mpjpe": self.best, "val_mpjpe": val_mpjpe}
    if self.plan.record():
      meta["plan"] = self.plan.record()
    checkpointing.save(
        self.mngr, self.step, model=model, optimizer=opt,
        data_iter=self.data_iter, config=self.config, val_mpjpe=val_mpjpe,
        meta=meta)
    self.last_good = self.step


@contextlib.contextmanager
def _stop_requests():
  """SIGINT / SIGTERM append their number to the yielded list instead of
  killing the run, so the loop can save a whole step first; a second one
  raises KeyboardInterrupt at once. Single-process runs only: processes that
  stop at different steps cannot write one checkpoint together.
  """
  requests = []
  if (jax.process_count() > 1 or
      threading.current_thread() is not threading.main_thread()):
    yield requests
    return

  def request(signum, frame):
    del frame
    if requests:
      raise KeyboardInterrupt
    requests.append(signum)
  kept = {s: signal.signal(s, request) for s in (signal.SIGINT,
                                                 signal.SIGTERM)}
  try:
    yield requests
  finally:
    for s, handler in kept.items():
      signal.signal(s, handler)


def time_budget_updates(seconds: float, spent: float, *, compile_s: float,
                        update_s: float, val_s: float, num_vals: int,
                        final_s: float) -> int:
  """Optimizer updates that fit in a wall-clock budget.

  Args:
    seconds: the budget.
    spent: seconds already used (start-up, the timed warm-up).
    compile_s: the training step's compilation, still to come.
    update_s: seconds per optimizer update (accumulation included).
    val_s, num_vals: seconds per validation and validations planned.
    final_s: the final evaluation of the best step.

  Raises:
    ConfigError: not even one update fits.
  """
  left = seconds - spent - compile_s - val_s * num_vals - final_s
  updates = int(left // update_s) if left > 0 else 0
  if updates < 1:
    raise errors.ConfigError(
        f"train.budget of {seconds:.0f} s is too short: start-up took "
        f"{spent:.0f} s, {num_vals} validations need {val_s * num_vals:.0f}"
        f" s, the final evaluation {final_s:.0f} s and one update "
        f"{update_s:.2f} s; expected a longer budget, or fewer "
        "train.budget_evals / a smaller train.eval_max_clips")
  return updates


def final_eval_seconds(first_s: float, steady_s: float,
                       frames_ratio: float) -> float:
  """The final evaluation's estimated seconds: the full test split costs
  what the validation subset does per frame (`frames_ratio` = full frames /
  subset frames), and its step compiles anew for its own batch, as the
  first (`first_s`, compiling) validation did; `steady_s` is a later one.
  """
  return first_s + steady_s * max(0.0, frames_ratio - 1.0)


def _timed_warm_up(config, mesh, train_ds, plan: Plan,
                   validator: Validator | None) -> dict:
  """Times real train steps and two validations on a throwaway copy of the
  model (the run itself starts from the initial state and the first batch).

  Returns:
    {'compile_s' (first step minus a steady one), 'step_s' (per micro-step),
    'val_s' (a steady validation, 0 without), 'val_first_s' (the first,
    compiling one), 'steps' (timed)}.
  """
  model, opt = _build_state(config, plan, mesh)
  graphdef, state = nnx.split((model, opt))
  step_fn = jax.jit(make_train_step(graphdef, config), donate_argnums=0)
  data_iter = iter(train_ds)
  n = max(1, config.train.budget_timing_steps)
  times = []
  for i in range(n + 1):
    start = time.perf_counter()
    batch = parallel.to_global(
        {k: v for k, v in next(data_iter).items() if k in _DEVICE_KEYS}, mesh)
    state, meas = step_fn(state, batch, jnp.asarray(i, jnp.int32))
    jax.block_until_ready(meas)
    times.append(time.perf_counter() - start)
  step_s = float(np.mean(times[1:]))
  val_times = [0.0, 0.0]
  if validator is not None:
    # Twice: the first compiles, and counting that in all the run's
    # validations left a quarter of a short budget unused.
    for i in range(2):
      start = time.perf_counter()
      validator(nnx.merge(graphdef, state)[0])
      val_times[i] = time.perf_counter() - start
  return {"compile_s": max(0.0, times[0] - step_s), "step_s": step_s,
          "val_s": val_times[1], "val_first_s": val_times[0], "steps": n}


def _budget_updates(config, mesh, train_ds, n_clips, validator,
                    started: float) -> int:
  """U for `train.budget` (timed when it is a duration)."""
  kind, value = parse_budget(config.train.budget)
  if kind == "updates":
    return int(value)
  draft = make_plan(config, n_clips, total_updates=1000)
  timing = _timed_warm_up(config, mesh, train_ds, draft, validator)
  final_s = 0.0
  if config.train.final_eval and validator is not None:
    # The full test split costs what the validation subset does, per clip.
    full = evaluate.load_test_data(config)
    final_s = final_eval_seconds(
        timing["val_first_s"], timing["val_s"],
        full.num_frames / max(1, validator.data.num_frames))
  num_vals = config.train.budget_evals + 1 if validator is not None else 0
  updates = time_budget_updates(
      value, time.perf_counter() - started, compile_s=timing["compile_s"],
      update_s=timing["step_s"] * config.train.accum_steps,
      val_s=timing["val_s"], num_vals=num_vals, final_s=final_s)
  if jax.process_count() > 1:   # every process takes process 0's count
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    updates = int(multihost_utils.broadcast_one_to_all(np.int64(updates)))
  if jax.process_index() == 0:
    print(f"Budget {config.train.budget}: {timing['step_s'] * 1e3:.0f} ms "
          f"per micro-step (timed over {timing['steps']}), {num_vals} "
          f"validations of {timing['val_s']:.1f} s, final evaluation "
          f"~{final_s:.0f} s -> {updates} optimizer updates")
  return updates


def _plan_run(config, mngr, mesh, train_ds, n_clips, validator,
              started: float) -> Plan:
  """The plan recorded in the checkpoints, or a new one."""
  recorded = checkpointing.latest_meta(mngr).get("plan")
  if recorded:
    if config.train.budget and config.train.budget != recorded["budget"]:
      logging.warning(
          "train.budget=%r ignored: the run in %s was planned for budget %r "
          "(%d updates) and keeps that plan; use a new workdir for a new "
          "budget.", config.train.budget, mngr.directory, recorded["budget"],
          recorded["total_updates"])
    return make_plan(config, n_clips, recorded=recorded)
  if not config.train.budget:
    return make_plan(config, n_clips)
  if mngr.all_steps():
    raise errors.ConfigError(
        f"train.budget={config.train.budget!r}: {mngr.directory} holds a run"
        " planned by epochs; expected a new workdir for a budgeted run")
  updates = _budget_updates(config, mesh, train_ds, n_clips, validator,
                            started)
  return make_plan(config, n_clips, total_updates=updates)


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> dict:
  """Trains (resuming from `workdir` when it holds a checkpoint), validates
  periodically, keeps latest and best checkpoints, then runs the full
  evaluation protocol on the best checkpoint.

  Returns:
    {'step', 'val_mpjpe' (best validation), 'results' (final protocol)}.
  """
  started = time.perf_counter()
  setup_jax(config)
  config = sources.resolve(config, _splits_read(config))
  parse_budget(config.train.budget)   # a typo fails before any work
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  mesh = parallel.make_mesh()
  parallel.local_batch_size(config.train.batch_size, mesh)
  logging.info("devices: %d (%d processes), mesh %s", jax.device_count(),
               jax.process_count(), mesh.shape)
  train_ds, n_clips = input_pipeline.train_dataset(config)
  mngr = checkpointing.manager(workdir)
  checkpointing.set_aside_damaged(mngr)   # before the plan is read
  validator = Validator(config, workdir) if _validates(config) else None
  plan = _plan_run(config, mngr, mesh, train_ds, n_clips, validator, started)
  if plan.eval_every is None:
    validator = None
  elif validator is None:   # a resumed budget run, without the flag
    validator = Validator(config, workdir)
  trainer = Trainer(config, mngr, mesh, plan, train_ds, validator)
  if trainer.is_main:
    _print_header(config, trainer.n_params, n_clips, plan)
  trainer.run()
  results = (evaluate.evaluate(config, workdir, step="best")
             if config.train.final_eval else None)
  return {"step": trainer.step, "val_mpjpe": trainer.best,
          "results": results}


def check_inputs(config: ml_collections.ConfigDict) -> None:
  """What `train_and_evaluate` checks before it writes anything (the data
  files, the budget); a one-line `errors.UserError` when one is wrong."""
  sources.resolve(config, _splits_read(config))
  parse_budget(config.train.budget)
  m = config.model
  for field, value, allowed in (
      ("attention_impl", m.attention_impl, layers.ATTENTION_IMPLS),
      ("part_attention", m.get("part_attention", "grouped"),
       layers.GROUP_IMPLS),
      ("loop_impl", m.get("loop_impl", "scan"), model_lib.LOOP_IMPLS)):
    if value not in allowed:
      raise errors.UserError(f"--config.model.{field}={value!r}: expected "
                             f"one of {', '.join(allowed)}")


def _validates(config) -> bool:
  t = config.train
  return t.budget_evals > 0 if t.budget else t.eval_every_epochs > 0


def _splits_read(config) -> tuple[str, ...]:
  return ("train", "test") if (_validates(config) or
                               config.train.final_eval) else ("train",)


def _print_header(config, n_params: int, n_clips: int, plan: Plan) -> None:
  t = config.train
  synthetic = dataset.load(config.data.train_path).synthetic
  data_note = " (SYNTHETIC data)" if synthetic else ""
  print(f"OPFormer {n_params / 1e6:.2f} M params; {n_clips} clips/epoch "
        f"of T={config.data.num_frames}{data_note}; {plan.steps_per_epoch} "
        f"micro-steps/epoch, batch {t.batch_size} x {t.accum_steps} "
        f"accumulation; {plan.total_steps} micro-steps on "
        f"{jax.device_count()} device(s)")
  if plan.budget:
    o = config.optim
    lr = (f"{plan.schedule} from {o.lr:g} (warm-up {o.warmup:.0%}) to "
          f"{o.lr_floor:g} x lr" if plan.schedule in ("cosine", "linear")
          else f"{o.lr:g} x {o.lr_decay:g} per epoch")
    print(f"Budget {plan.budget}: {plan.total_updates} optimizer updates, "
          f"lr {lr}")


def main():
  """`python -m opformer_jax.train --config=... --workdir=...`."""
  from opformer_jax import cli  # pylint: disable=g-import-not-at-top
  cli.reexec_with_allocator()
  config, workdir = cli.define_config_and_workdir(
      "Directory for checkpoints, logs and results; an existing run there "
      "is resumed.")

  def run(argv):
    del argv

    def check():   # before the workdir and its log.txt exist
      fileio.check_output_dir(workdir.value, "--workdir")
      check_inputs(config.value)
    cli.start_jax(workdir.value, check)
    train_and_evaluate(config.value, workdir.value)
  cli.run(run)


if __name__ == "__main__":
  main()
