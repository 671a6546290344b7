"""Training: `train_and_evaluate(config, workdir)` and its `python -m` entry.

  python -m opformer_jax.train --config=configs/quickstart.py --workdir=DIR

The loop runs one jitted, donated step per micro-batch; `optax.MultiSteps`
accumulates `train.accum_steps` micro-batches per optimizer update. State,
randomness and data order are all functions of the micro-step number, so a
run resumed from `workdir` (automatically) ends with the parameters of an
uninterrupted run. Parameters are replicated and batches split over every
device of every process.
"""

import dataclasses
import math
import os
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


@dataclasses.dataclass(frozen=True)
class Plan:
  """The length of a run and the period of its work, in micro-steps."""
  steps_per_epoch: int
  total_steps: int
  eval_every: int | None       # None: no validation while training

  def is_eval_step(self, step: int) -> bool:
    return self.eval_every is not None and (
        step % self.eval_every == 0 or step == self.total_steps)


def make_plan(config: ml_collections.ConfigDict, n_clips: int) -> Plan:
  """Epochs (capped by `train.max_updates`) -> micro-steps."""
  t = config.train
  steps_per_epoch = input_pipeline.steps_per_epoch(n_clips, t.batch_size)
  total_steps = steps_per_epoch * t.num_epochs
  if t.max_updates > 0:
    total_steps = min(total_steps, t.max_updates * t.accum_steps)
  eval_every = (max(1, round(t.eval_every_epochs * steps_per_epoch))
                if t.eval_every_epochs > 0 else None)
  return Plan(steps_per_epoch, total_steps, eval_every)


class Trainer:
  """One run: its replicated state, data position and periodic work.

  The loop (`run`) calls small helpers for what happens between steps:
  `_log` (metrics), `_check_finite` (stop on NaN / inf), `_save`
  (checkpoint) and `_validate`.
  """

  def __init__(self, config, workdir: str, mesh, plan: Plan, train_ds):
    self.config, self.plan = config, plan
    self.is_main = jax.process_index() == 0
    model = model_lib.build_model(config.model, config.seed)
    opt = nnx.Optimizer(
        model, optimizer_lib.make(config, plan.steps_per_epoch),
        wrt=nnx.Param)
    nnx.update((model, opt), parallel.replicate(nnx.state((model, opt)),
                                                mesh))
    self.n_params = model_lib.count_params(model)
    self.mngr = checkpointing.manager(workdir)
    self.data_iter = iter(train_ds)
    self.step, self.best = 0, math.inf
    self._resume(model, opt, parallel.replicated(mesh))
    self.last_good = self.mngr.latest_step()
    self._unsealed = None   # the step whose save may still be running
    self._predict = evaluate.make_predict(nnx.graphdef(model), config)
    self.graphdef, self.state = nnx.split((model, opt))
    state_sharding = jax.tree.map(lambda x: x.sharding, self.state)
    self._step_fn = jax.jit(make_train_step(self.graphdef, config),
                            donate_argnums=0,
                            out_shardings=(state_sharding, None))
    self.mesh = mesh
    self.writer = metric_writer.MetricWriter(workdir)
    self._pending = []  # device scalars not yet checked for NaN / inf
    self._clock = (time.perf_counter(), 0)  # (start, clips since start)

  def _resume(self, model, opt, sharding) -> None:
    """Restores the newest intact kept step; damaged ones are set aside."""
    for step in sorted(self.mngr.all_steps(), reverse=True):
      try:
        meta = checkpointing.restore_train_state(
            self.mngr, step, model=model, optimizer=opt,
            data_iter=self.data_iter, sharding=sharding)
      except checkpointing.CheckpointError as e:
        logging.warning("%s. Moved to %s; resuming from an earlier step.",
                        e, checkpointing.set_aside(self.mngr, step))
        continue
      checkpointing.seal(self.mngr, step)  # it restored: record its files
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
      while self.step < plan.total_steps:
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
      checkpointing.seal(self.mngr, self._unsealed)
      self.writer.close()

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
    val = self._validate()
    self.best = min(self.best, val)
    self.writer.write(self.step, {"val_mpjpe": val,
                                  "best_val_mpjpe": self.best})
    if self.is_main:
      bar.write(f"step {self.step} (epoch "
                f"{self.step / self.plan.steps_per_epoch:.2f}): validation "
                f"MPJPE {val:.1f} mm (best {self.best:.1f})")
    self._save(val)
    self._clock = (time.perf_counter(), 0)

  def _validate(self) -> float:
    model, _ = nnx.merge(self.graphdef, self.state)
    res = evaluate.run_protocol(
        evaluate.make_predict_fn(model, self.config, self._predict),
        self.config, max_clips=self.config.train.eval_max_clips,
        progress=False)
    return evaluate.headline(res, self.config)

  def _save(self, val_mpjpe: float | None = None) -> None:
    checkpointing.seal(self.mngr, self._unsealed)
    model, opt = nnx.merge(self.graphdef, self.state)
    checkpointing.save(
        self.mngr, self.step, model=model, optimizer=opt,
        data_iter=self.data_iter, config=self.config, val_mpjpe=val_mpjpe,
        meta={"step": self.step,
              "epoch": self.step / self.plan.steps_per_epoch,
              "best_val_mpjpe": self.best, "val_mpjpe": val_mpjpe})
    self.last_good = self._unsealed = self.step


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> dict:
  """Trains (resuming from `workdir` when it holds a checkpoint), validates
  periodically, keeps latest and best checkpoints, then runs the full
  evaluation protocol on the best checkpoint.

  Returns:
    {'step', 'val_mpjpe' (best validation), 'results' (final protocol)}.
  """
  setup_jax(config)
  config = sources.resolve(config, _splits_read(config))
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  mesh = parallel.make_mesh()
  parallel.local_batch_size(config.train.batch_size, mesh)
  logging.info("devices: %d (%d processes), mesh %s", jax.device_count(),
               jax.process_count(), mesh.shape)
  train_ds, n_clips = input_pipeline.train_dataset(config)
  plan = make_plan(config, n_clips)
  trainer = Trainer(config, workdir, mesh, plan, train_ds)
  if trainer.is_main:
    _print_header(config, trainer.n_params, n_clips, plan)
  trainer.run()
  results = (evaluate.evaluate(config, workdir, step="best")
             if config.train.final_eval else None)
  return {"step": trainer.step, "val_mpjpe": trainer.best,
          "results": results}


def _splits_read(config) -> tuple[str, ...]:
  t = config.train
  return ("train", "test") if (t.eval_every_epochs > 0 or t.final_eval) else (
      "train",)


def _print_header(config, n_params: int, n_clips: int, plan: Plan) -> None:
  t = config.train
  synthetic = dataset.load(config.data.train_path).synthetic
  data_note = " (SYNTHETIC data)" if synthetic else ""
  print(f"OPFormer {n_params / 1e6:.2f} M params; {n_clips} clips/epoch "
        f"of T={config.data.num_frames}{data_note}; {plan.steps_per_epoch} "
        f"micro-steps/epoch, batch {t.batch_size} x {t.accum_steps} "
        f"accumulation; {plan.total_steps} micro-steps on "
        f"{jax.device_count()} device(s)")


def main():
  """`python -m opformer_jax.train --config=... --workdir=...`."""
  from opformer_jax import cli  # pylint: disable=g-import-not-at-top
  cli.reexec_with_allocator()
  config, workdir = cli.define_config_and_workdir(
      "Directory for checkpoints, logs and results; an existing run there "
      "is resumed.")

  def run(argv):
    del argv
    cli.start_jax(workdir.value)
    train_and_evaluate(config.value, workdir.value)
  cli.run(run)


if __name__ == "__main__":
  main()
