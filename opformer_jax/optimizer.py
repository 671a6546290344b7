"""Optimizer: Adam/AdamW, per-epoch lr decay, MultiSteps accumulation.

Two step counters exist and must not be confused: the trainer counts
micro-steps (one jitted call per micro-batch), while `optax.MultiSteps` only
applies an update, and only advances the inner schedule, every
`accum_steps` micro-steps. The lr schedule is therefore expressed in
optimizer updates: lr = lr0 * decay ** (updates // updates_per_epoch).
"""

import ml_collections
import optax
from flax import nnx


def updates_per_epoch(steps_per_epoch: int, accum_steps: int) -> float:
  """Optimizer updates in one epoch of `steps_per_epoch` micro-batches.

  Fractional when they do not divide: MultiSteps carries the partial
  accumulation into the next epoch, so the decay stays once per epoch.
  """
  return max(1.0, steps_per_epoch / accum_steps)


def lr_schedule(cfg: ml_collections.ConfigDict, updates_in_epoch: int):
  """lr0 x decay per epoch, counted in optimizer updates (staircase)."""
  return optax.exponential_decay(
      cfg.lr, transition_steps=updates_in_epoch, decay_rate=cfg.lr_decay,
      staircase=True)


def make(config: ml_collections.ConfigDict,
         steps_per_epoch: int) -> optax.GradientTransformation:
  """The full transformation: MultiSteps(clip? -> Adam/AdamW(lr schedule)).

  Args:
    config: the experiment config (uses `optim` and `train.accum_steps`).
    steps_per_epoch: micro-batches per epoch.
  """
  o = config.optim
  accum = config.train.accum_steps
  sched = lr_schedule(o, updates_per_epoch(steps_per_epoch, accum))
  if o.name == "adam":
    inner = optax.inject_hyperparams(optax.adam)(
        learning_rate=sched, b1=o.b1, b2=o.b2, eps=o.eps)
  elif o.name == "adamw":
    inner = optax.inject_hyperparams(optax.adamw)(
        learning_rate=sched, b1=o.b1, b2=o.b2, eps=o.eps,
        weight_decay=o.weight_decay)
  else:
    raise ValueError(f"optim.name={o.name!r}; expected 'adam' or 'adamw'")
  if o.name == "adam" and o.weight_decay:
    raise ValueError("optim.weight_decay is set but optim.name='adam' has "
                     "no weight decay; use optim.name='adamw'")
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
