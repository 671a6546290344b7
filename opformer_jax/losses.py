"""Training losses on (B, T, J, 3) poses in normalised units, in float32.

Paper eq. 16 is `L = L_pos + lambda_M * L_vel`; MotionBERT / MotionAGFormer
add `0.5 * N-MPJPE` and use lambda = 20 in the same normalised units.
"""

import jax.numpy as jnp


def _norm(d):
  # The Euclidean norm's gradient is NaN at 0 (jnp.linalg.norm); PyTorch's
  # is 0. A joint predicted exactly right (e.g. a constant root, whose
  # velocity error is 0) must not poison the step with NaNs.
  sq = jnp.sum(d * d, axis=-1)
  safe = jnp.where(sq > 0, sq, 1.0)
  return jnp.where(sq > 0, jnp.sqrt(safe), 0.0)


def mpjpe(pred, gt):
  """Mean per-joint Euclidean error, averaged over everything."""
  return jnp.mean(_norm(pred - gt))


def velocity(pred, gt):
  """Mean Euclidean error of first differences over time (axis 1)."""
  if pred.shape[1] <= 1:
    return jnp.zeros((), jnp.float32)
  return mpjpe(jnp.diff(pred, axis=1), jnp.diff(gt, axis=1))


def n_mpjpe(pred, gt):
  """MPJPE after the per-frame least-squares scale of `pred` onto `gt`."""
  num = jnp.sum(gt * pred, axis=(-2, -1), keepdims=True)
  den = jnp.sum(pred * pred, axis=(-2, -1), keepdims=True)
  return mpjpe(pred * num / jnp.maximum(den, 1e-12), gt)


def total_loss(pred, gt, cfg):
  """Weighted sum of the terms named in `config.loss`.

  Args:
    pred, gt: (B, T, J, 3) root-relative poses, normalised units.
    cfg: `config.loss` with weights w_pos, w_vel, w_nmpjpe.

  Returns:
    (scalar loss, dict of the individual terms).
  """
  pred = pred.astype(jnp.float32)
  gt = gt.astype(jnp.float32)
  terms = {"pos": mpjpe(pred, gt), "vel": velocity(pred, gt)}
  if cfg.w_nmpjpe:
    terms["nmpjpe"] = n_mpjpe(pred, gt)
  loss = cfg.w_pos * terms["pos"] + cfg.w_vel * terms["vel"]
  if cfg.w_nmpjpe:
    loss = loss + cfg.w_nmpjpe * terms["nmpjpe"]
  return loss, terms
