"""Tests of the training losses against hand-computed values."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from opformer_jax import losses


def test_mpjpe_velocity_and_nmpjpe_by_hand():
  gt = jnp.zeros((1, 3, 2, 3))
  pred = gt.at[0, :, 0].set(jnp.array([3.0, 4.0, 0.0]))   # joint 0 off by 5
  assert float(losses.mpjpe(pred, gt)) == pytest.approx(2.5)
  assert float(losses.velocity(pred, gt)) == pytest.approx(0.0)
  moving = gt.at[0, :, 0, 0].set(jnp.array([0.0, 1.0, 3.0]))
  # Velocity errors of joint 0: 1 and 2; joint 1: 0 -> mean 0.75.
  assert float(losses.velocity(moving, gt)) == pytest.approx(0.75)
  base = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 17, 3)),
                     jnp.float32)
  assert float(losses.n_mpjpe(3.0 * base, base)) == pytest.approx(0, abs=1e-5)
  assert float(losses.velocity(base[:, :1], base[:, :1] + 1)) == 0.0


def test_gradients_are_finite_where_a_joint_is_exact():
  cfg = ml_collections.ConfigDict(dict(w_pos=1.0, w_vel=20.0, w_nmpjpe=0.5))
  gt = jnp.asarray(np.random.default_rng(1).normal(size=(2, 5, 17, 3)),
                   jnp.float32)
  pred = gt.at[:, :, 1:].add(0.1)          # the root (joint 0) is exact
  grad = jax.grad(lambda p: losses.total_loss(p, gt, cfg)[0])(pred)
  assert np.isfinite(np.asarray(grad)).all()
  cfg.w_nmpjpe = 0.0   # N-MPJPE's scale couples the root to the others
  grad = jax.grad(lambda p: losses.total_loss(p, gt, cfg)[0])(pred)
  np.testing.assert_allclose(grad[:, :, 0], 0.0, atol=1e-7)
