"""Training: `train_and_evaluate(config, workdir)` and its `python -m` entry.

  python -m opformer_jax.train --config=configs/quickstart.py --workdir=DIR

The loop runs one jitted, donated step per micro-batch; `optax.MultiSteps`
accumulates `train.accum_steps` micro-batches per optimizer update. State,
randomness and data order are all functions of the micro-step number, so a
run resumed from `workdir` (automatically) ends with the parameters of an
uninterrupted run. Parameters are replicated and batches split over every
device of every process.
"""

import logging
import math
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from opformer_jax import checkpointing
from opformer_jax.evaluate import run as evaluate
from opformer_jax.data import input_pipeline
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


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> dict:
  """Trains (resuming from `workdir` when it holds a checkpoint), validates
  periodically, keeps latest and best checkpoints, then runs the full
  evaluation protocol on the best checkpoint.

  Returns:
    {'step', 'val_mpjpe' (best validation), 'results' (final protocol)}.
  """
  setup_jax(config)
  config = resolve_data(config)
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  is_main = jax.process_index() == 0
  mesh = parallel.make_mesh()
  parallel.local_batch_size(config.train.batch_size, mesh)
  logging.info("devices: %d (%d processes), mesh %s", jax.device_count(),
               jax.process_count(), mesh.shape)

  # ------------------------------------------------------------ input ---
  train_ds, n_clips = input_pipeline.train_dataset(config)
  steps_per_epoch = input_pipeline.steps_per_epoch(
      n_clips, config.train.batch_size)
  total_steps = steps_per_epoch * config.train.num_epochs
  if config.train.max_updates > 0:
    total_steps = min(total_steps,
                      config.train.max_updates * config.train.accum_steps)
  eval_every = (max(1, round(config.train.eval_every_epochs * steps_per_epoch))
                if config.train.eval_every_epochs > 0 else None)

  # ---------------------------------------------------- model & optimizer ---
  model = model_lib.build_model(config.model, config.seed)
  tx = optimizer_lib.make(config, steps_per_epoch)
  opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
  nnx.update((model, opt), parallel.replicate(nnx.state((model, opt)), mesh))
  n_params = model_lib.count_params(model)

  # ----------------------------------------------------------- resume ---
  mngr = checkpointing.manager(workdir)
  data_iter = iter(train_ds)
  step = 0
  best = math.inf
  if mngr.latest_step() is not None:
    meta = checkpointing.restore_train_state(
        mngr, mngr.latest_step(), model=model, optimizer=opt,
        data_iter=data_iter, sharding=parallel.replicated(mesh))
    step = int(meta["step"])
    best = float(meta.get("best_val_mpjpe", math.inf))
    logging.info("Resumed from step %d", step)
    if is_main:
      print(f"Resumed from {mngr.directory}/{step}")

  # ------------------------------------------------------------- steps ---
  graphdef, state = nnx.split((model, opt))
  state_sharding = jax.tree.map(lambda x: x.sharding, state)
  train_step = jax.jit(make_train_step(graphdef, config), donate_argnums=0,
                       out_shardings=(state_sharding, None))

  writer = metric_writer.MetricWriter(workdir)
  if is_main:
    data_note = " (SYNTHETIC data)" if _is_synthetic(config) else ""
    print(f"OPFormer {n_params / 1e6:.2f} M params; {n_clips} clips/epoch "
          f"of T={config.data.num_frames}{data_note}; {steps_per_epoch} "
          f"micro-steps/epoch, batch {config.train.batch_size} x "
          f"{config.train.accum_steps} accumulation; {total_steps} "
          f"micro-steps on {jax.device_count()} device(s)")

  def save(val_mpjpe=None):
    model_, opt_ = nnx.merge(graphdef, state)
    checkpointing.save(
        mngr, step, model=model_, optimizer=opt_, data_iter=data_iter,
        config=config, val_mpjpe=val_mpjpe,
        meta={"step": step, "epoch": step / steps_per_epoch,
              "best_val_mpjpe": best, "val_mpjpe": val_mpjpe})

  predict = evaluate.make_predict(nnx.graphdef(model), config)

  def validate():
    model_, _ = nnx.merge(graphdef, state)
    res = evaluate.run_protocol(
        evaluate.make_predict_fn(model_, config, predict), config,
        max_clips=config.train.eval_max_clips, progress=False)
    return evaluate.headline(res, config)

  pending = []  # device scalars of losses not yet checked for NaN/inf
  last_good = mngr.latest_step()

  def check_finite():
    nonlocal pending
    if pending:
      losses_host = np.asarray(jax.device_get(jnp.stack(pending)))
      pending = []
      if not np.isfinite(losses_host).all():
        mngr.wait_until_finished()
        raise FloatingPointError(
            f"non-finite training loss or gradient before micro-step {step}; "
            "stopped. "
            f"The last good checkpoint (step {last_good}) is kept in "
            f"{mngr.directory}. Lower optim.lr or check the data.")

  bar = tqdm(total=total_steps, initial=step, desc="train", unit="step",
             disable=not is_main, dynamic_ncols=True)
  t0, clips0, step0 = time.perf_counter(), 0, step
  try:
    while step < total_steps:
      batch = next(data_iter)
      batch = parallel.to_global({k: batch[k] for k in _DEVICE_KEYS}, mesh)
      state, meas = train_step(state, batch, jnp.asarray(step, jnp.int32))
      # A finite loss can still come with NaN gradients: check both.
      pending.append(meas["loss"] + meas["grad_norm"])
      step += 1
      clips0 += config.train.batch_size
      bar.update(1)
      do_eval = eval_every is not None and (
          step % eval_every == 0 or step == total_steps)
      if step % config.train.log_every == 0 or do_eval:
        check_finite()
        meas = {k: float(v) for k, v in jax.device_get(meas).items()}
        if not math.isfinite(meas["train_mpjpe_mm"]):
          del meas["train_mpjpe_mm"]   # the split has no 2.5D factor
        dt = time.perf_counter() - t0
        meas["clips_per_s"] = clips0 / dt if step > step0 else 0.0
        meas["epoch"] = step / steps_per_epoch
        writer.write(step, meas)
        bar.set_postfix(loss=f"{meas['loss']:.4f}", lr=f"{meas['lr']:.2e}",
                        clips_s=f"{meas['clips_per_s']:.1f}")
        t0, clips0 = time.perf_counter(), 0
      if do_eval:
        check_finite()
        val = validate()
        best = min(best, val)
        writer.write(step, {"val_mpjpe": val, "best_val_mpjpe": best})
        if is_main:
          bar.write(f"step {step} (epoch {step / steps_per_epoch:.2f}): "
                    f"validation MPJPE {val:.1f} mm (best {best:.1f})")
        save(val)
        last_good = step
        t0, clips0 = time.perf_counter(), 0
      elif (step % config.train.checkpoint_every == 0 or
            step == total_steps):
        check_finite()
        save()
        last_good = step
  finally:
    bar.close()
    mngr.wait_until_finished()
    writer.close()

  results = (evaluate.evaluate(config, workdir, step="best")
             if config.train.final_eval else None)
  return {"step": step, "val_mpjpe": best, "results": results}


def resolve_data(config: ml_collections.ConfigDict):
  """Fills in the built-in synthetic dataset's paths where it is selected.

  `data.name == 'synthetic'` with no paths generates the default dataset
  once into `~/.cache/opformer_jax/` (a few seconds) and reuses it.
  """
  if config.data.name != "synthetic" or config.data.train_path:
    return config
  from opformer_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  train_path, test_path = synthetic.ensure_default(os.path.expanduser(
      "~/.cache/opformer_jax/synthetic"))
  config = ml_collections.ConfigDict(config.to_dict())
  config.data.train_path = train_path
  config.data.test_path = config.data.test_path or test_path
  config.lock()
  return config


def _is_synthetic(config) -> bool:
  from opformer_jax.data import dataset
  try:
    return dataset.load(config.data.train_path).synthetic
  except Exception:  # reported properly by the pipeline
    return False


def main():
  """`python -m opformer_jax.train --config=... --workdir=...`."""
  from opformer_jax import cli  # pylint: disable=g-import-not-at-top
  cli.reexec_with_allocator()
  config, workdir = cli.define_config_and_workdir(
      "Directory for checkpoints, logs and results; an existing run there "
      "is resumed.")

  def run(argv):
    del argv
    cli.start_jax()
    train_and_evaluate(config.value, workdir.value)
  cli.run(run)


if __name__ == "__main__":
  main()
