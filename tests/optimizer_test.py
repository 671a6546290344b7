"""Tests of the optimizer: lr per epoch of updates, accumulation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from opformer_jax import config_lib
from opformer_jax import errors
from opformer_jax import optimizer


def make_config(**optim):
  c = config_lib.base_config()
  c.train.accum_steps = 4
  c.optim.update(optim)
  return c


def test_lr_decays_once_per_epoch_counted_in_optimizer_updates():
  config = make_config(lr=1.0, lr_decay=0.5)
  steps_per_epoch = 12                   # micro-batches -> 3 updates/epoch
  tx = optimizer.make(config, steps_per_epoch)
  params = {"w": jnp.zeros(3)}
  state = tx.init(params)
  steps = []
  for _ in range(3 * steps_per_epoch):
    upd, state = tx.update({"w": jnp.ones(3)}, state, params)
    new = optax.apply_updates(params, upd)
    steps.append(float(params["w"][0] - new["w"][0]))
    params = new
  assert int(optimizer.num_updates(state)) == 9   # 36 micro-steps / 4
  # Adam with a constant gradient moves each parameter by exactly its lr,
  # so the step sizes are the lr schedule: applied on micro-steps 4, 8, ...
  # and halved after every 3 updates (one epoch of 12 micro-steps).
  applied = [s for s in steps if s != 0]
  assert [i for i, s in enumerate(steps) if s != 0] == list(range(3, 36, 4))
  np.testing.assert_allclose(applied, [1, 1, 1, .5, .5, .5, .25, .25, .25],
                             rtol=1e-5)
  assert float(optimizer.learning_rate(state)) == 0.25


def test_decay_stays_once_per_epoch_when_updates_do_not_divide_it():
  config = make_config(lr=1.0, lr_decay=0.5)
  tx = optimizer.make(config, 10)          # 10 micro-steps = 2.5 updates
  params = {"w": jnp.zeros(1)}
  state = tx.init(params)
  steps = []
  for _ in range(40):                      # 4 epochs, 10 updates
    upd, state = tx.update({"w": jnp.ones(1)}, state, params)
    steps.append(-float(upd["w"][0]))
  applied = [s for s in steps if s != 0]
  # Update u uses 0.5 ** floor(u / 2.5): epochs end after 2.5, 5, 7.5.
  want = [0.5 ** np.floor(u / 2.5) for u in range(10)]
  np.testing.assert_allclose(applied, want, rtol=1e-5)


def test_params_change_only_on_every_kth_micro_step():
  tx = optimizer.make(make_config(lr=0.1), 100)
  params = {"w": jnp.zeros(2)}
  state = tx.init(params)
  seen = []
  for _ in range(8):
    upd, state = tx.update({"w": jnp.ones(2)}, state, params)
    params = optax.apply_updates(params, upd)
    seen.append(float(params["w"][0]))
  changed = [i + 1 for i in range(8) if seen[i] != (seen[i - 1] if i else 0)]
  assert changed == [4, 8]


def test_accumulated_update_equals_one_big_batch_adam_step():
  rng = np.random.default_rng(0)
  grads = [{"w": jnp.asarray(rng.normal(size=5), jnp.float32)}
           for _ in range(4)]
  c = make_config(lr=0.01)
  tx = optimizer.make(c, 100)
  params = {"w": jnp.ones(5)}
  state = tx.init(params)
  p = params
  for g in grads:
    upd, state = tx.update(g, state, p)
    p = optax.apply_updates(p, upd)
  ref = optax.adam(0.01)
  mean = jax.tree.map(lambda *g: sum(g) / 4, *grads)
  upd, _ = ref.update(mean, ref.init(params), params)
  np.testing.assert_allclose(p["w"], optax.apply_updates(params, upd)["w"],
                             rtol=1e-6)


def test_adamw_weight_decay_and_bad_names():
  tx = optimizer.make(make_config(name="adamw", weight_decay=0.5, lr=0.1),
                      100)
  assert tx is not None
  with pytest.raises(ValueError, match="adamw"):
    optimizer.make(make_config(weight_decay=0.1), 100)
  with pytest.raises(ValueError, match="sgd"):
    optimizer.make(make_config(name="sgd"), 100)


def applied_lrs(config, steps_per_epoch, total_updates, shape, micro_steps):
  """The lr of every applied update: Adam on a constant gradient moves a
  parameter by exactly its lr."""
  tx = optimizer.make(config, steps_per_epoch, total_updates, shape)
  params = {"w": jnp.zeros(1)}
  state = tx.init(params)
  out = []
  for _ in range(micro_steps):
    upd, state = tx.update({"w": jnp.ones(1)}, state, params)
    if float(upd["w"][0]) != 0:
      out.append(-float(upd["w"][0]))
  return out


@pytest.mark.parametrize("shape", ["cosine", "linear"])
def test_budget_schedule_warms_up_then_decays_to_the_floor_on_the_last_update(
    shape):
  # 12 updates of 4 micro-steps; warm-up round(0.25 * 12) = 3 updates.
  config = make_config(lr=1.0, warmup=0.25, lr_floor=0.1)
  lrs = applied_lrs(config, 1000, 12, shape, 48)
  assert len(lrs) == 12
  want = [1 / 4, 2 / 4, 3 / 4]                        # (u + 1) / (3 + 1)
  for u in range(3, 12):
    p = (u - 3) / 8                                   # 0 ... 1 over 9 updates
    want.append(0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * p)) if shape ==
                "cosine" else 1 - 0.9 * p)
  np.testing.assert_allclose(lrs, want, rtol=1e-5)
  assert lrs[3] == pytest.approx(1.0, rel=1e-5)
  assert lrs[-1] == pytest.approx(0.1, rel=1e-5)


def test_updates_past_the_budget_stay_at_the_floor_and_auto_is_the_paper():
  config = make_config(lr=1.0, warmup=0.0, lr_floor=0.05)
  lrs = applied_lrs(config, 1000, 3, "cosine", 4 * 5)
  np.testing.assert_allclose(lrs, [1.0, 0.525, 0.05, 0.05, 0.05], rtol=1e-5)
  # 'auto' without a budget is the paper's per-epoch decay.
  config = make_config(lr=1.0, lr_decay=0.5, schedule="auto")
  np.testing.assert_allclose(applied_lrs(config, 8, None, None, 16),
                             [1, 1, .5, .5], rtol=1e-5)


def test_budget_schedule_needs_the_run_length_and_a_known_shape():
  with pytest.raises(errors.ConfigError, match="number of updates"):
    optimizer.make(make_config(), 100, None, "cosine")
  with pytest.raises(errors.ConfigError, match="optim.schedule='step'"):
    optimizer.make(make_config(), 100, 10, "step")
