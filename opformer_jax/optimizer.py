"""Optimizer: Adam/AdamW, the learning-rate schedule, MultiSteps accumulation.

Two step counters exist and must not be confused: the trainer counts
micro-steps (one jitted call per micro-batch), while `optax.MultiSteps` only
applies an update, and only advances the inner schedule, every
`accum_steps` micro-steps. Every schedule is therefore expressed in
optimizer updates u = 0, 1, ...:

  'exponential' (the paper's)  lr0 * decay ** (u // updates_per_epoch)
  'cosine', 'linear'           a linear warm-up over the first
                               `optim.warmup` of the run's U updates, then
                               a cosine (or straight) decay that reaches
                               `optim.lr_floor * lr0` on the last update
                               (budgeted runs, `train.budget`).
"""

import math

import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from opformer_jax import errors


def updates_per_epoch(steps_per_epoch: int, accum_steps: int) -> float:
  """Optimizer updates in one epoch of `steps_per_epoch` micro-batches.

  Fractional when they do not divide: MultiSteps carries the partial
  accumulation into the next epoch, so the decay stays once per epoch.
  """
  return max(1.0, steps_per_epoch / accum_steps)


def lr_schedule(cfg: ml_collections.ConfigDict, updates_in_epoch: float,
                total_updates: int | None = None, shape: str | None = None):
  """The lr as a function of the optimizer update count u.

  Args:
    cfg: `config.optim` (lr, lr_decay, warmup, lr_floor).
    updates_in_epoch: updates per epoch (the exponential schedule's period).
    total_updates: U, the updates of the whole run (cosine / linear).
    shape: 'exponential', 'cosine' or 'linear'; default `cfg.schedule`
      ('auto' = 'exponential').
  """
  shape = shape or cfg.schedule
  if shape in ("auto", "exponential"):
    # lr0 x decay per epoch, counted in optimizer updates (staircase).
    return optax.exponential_decay(
        cfg.lr, transition_steps=updates_in_epoch, decay_rate=cfg.lr_decay,
        staircase=True)
  if shape not in ("cosine", "linear"):
    raise errors.ConfigError(
        f"optim.schedule={shape!r}; expected 'auto', 'exponential', "
        "'cosine' or 'linear'")
  if not total_updates or total_updates < 1:
    raise errors.ConfigError(
        f"optim.schedule={shape!r} needs the run's number of updates; "
        "expected train.budget or train.num_epochs")
  peak, floor = cfg.lr, cfg.lr * cfg.lr_floor
  warm = min(total_updates - 1, int(round(cfg.warmup * total_updates)))
  decay_len = max(1, total_updates - 1 - warm)

  def schedule(count):
    u = jnp.asarray(count, jnp.float32)
    # Warm-up: lr0 * (u + 1) / (warm + 1), so no update has lr 0.
    warm_lr = peak * (u + 1) / (warm + 1)
    p = jnp.clip((u - warm) / decay_len, 0.0, 1.0)
    if shape == "cosine":
      decay_lr = floor + (peak - floor) * 0.5 * (1 + jnp.cos(math.pi * p))
    else:
      decay_lr = peak + (floor - peak) * p
    return jnp.where(u < warm, warm_lr, decay_lr)
  return schedule


def make(config: ml_collections.ConfigDict, steps_per_epoch: int,
         total_updates: int | None = None,
         shape: str | None = None) -> optax.GradientTransformation:
  """The full transformation: MultiSteps(clip? -> Adam/AdamW(lr schedule)).

  Args:
    config: the experiment config (uses `optim` and `train.accum_steps`).
    steps_per_epoch: micro-batches per epoch.
    total_updates, shape: the run's length in updates and the schedule's
      shape (`lr_schedule`).
  """
  o = config.optim
  accum = config.train.accum_steps
  sched = lr_schedule(o, updates_per_epoch(steps_per_epoch, accum),
                      total_updates, shape)
  if o.name == "adam":
    inner = optax.inject_hyperparams(optax.adam)(
        learning_rate=sched, b1=o.b1, b2=o.b2, eps=o.eps)
  elif o.name == "adamw":
    inner = optax.inject_hyperparams(optax.adamw)(
        learning_rate=sched, b1=o.b1, b2=o.b2, eps=o.eps,
        weight_decay=o.weight_decay)
  else:
    raise errors.ConfigError(
        f"optim.name={o.name!r}; expected 'adam' or 'adamw'")
  if o.name == "adam" and o.weight_decay:
    raise errors.ConfigError(
        "optim.weight_decay is set but optim.name='adam' has no weight "
        "decay; use optim.name='adamw'")
  if o.grad_clip > 0:
    inner = optax.chain(optax.clip_by_global_norm(o.grad_clip), inner)
  # use_grad_mean: the accumulated gradient is the mean over micro-batches,
  # i.e. the gradient of the loss averaged over them.
  return optax.MultiSteps(inner, every_k_schedule=accum, use_grad_mean=True)


def _value(x):
  # Inside nnx.Optimizer the leaves are wrapped in nnx variables.
  return x[...] if isinstance(x, nnx.Variable) else x


def learning_rate(opt_state: optax.MultiStepsState):
  """The lr of the most recent optimizer update (lr0 before the first)."""
  inner = opt_state.inner_opt_state
  if not hasattr(inner, "hyperparams"):  # chain(clip, inject(adam))
    inner = inner[-1]
  return _value(inner.hyperparams["learning_rate"])


def num_updates(opt_state: optax.MultiStepsState):
  """Optimizer updates applied so far (not micro-steps)."""
  return _value(opt_state.gradient_step)
