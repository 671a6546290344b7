"""Transformer building blocks: attention, MLP, pre-LN block, stochastic ops.

Randomness is explicit: layers take a `key` (a JAX PRNG key, or None for
deterministic evaluation) instead of holding RNG state, so the training step
derives every dropout mask from `fold_in(seed_key, step)` and a resumed run
draws exactly the same masks as an uninterrupted one.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# DSTformer's initialisation: trunc-normal(0.02) weights, zero biases.
kernel_init = nnx.initializers.truncated_normal(stddev=0.02)


def dropout(x: jax.Array, rate: float, key) -> jax.Array:
  """Inverted dropout; identity when `key` is None or `rate` is 0."""
  if key is None or rate == 0.0:
    return x
  keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


def drop_path(x: jax.Array, rate, key) -> jax.Array:
  """Stochastic depth: drops the residual branch per sample (axis 0).

  `rate` may be traced (it varies over the scanned loops).
  """
  if key is None:
    return x
  keep_prob = 1.0 - rate
  shape = (x.shape[0],) + (1,) * (x.ndim - 1)
  keep = jax.random.bernoulli(key, keep_prob, shape)
  return jnp.where(keep, x / keep_prob, 0).astype(x.dtype)


def take_static(x, idx, axis: int):
  """`jnp.take(x, idx, axis)` for a constant index list, as slices.

  Written as a concatenation of static slices (consecutive indices merged),
  whose gradient is a pad-and-add; XLA's gather gradient is a scatter-add,
  slow on CPU.
  """
  idx = [int(i) for i in np.asarray(idx).reshape(-1)]
  runs, start = [], 0
  for k in range(1, len(idx) + 1):
    if k == len(idx) or idx[k] != idx[k - 1] + 1:
      runs.append((idx[start], idx[k - 1] + 1))
      start = k
  axis = axis % x.ndim
  pieces = [jax.lax.slice_in_dim(x, a, b, axis=axis) for a, b in runs]
  return pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces, axis)


def gelu(x: jax.Array) -> jax.Array:
  """Exact GELU as PyTorch computes it, x * (1 + erf(x / sqrt 2)) / 2.

  `jax.nn.gelu(approximate=False)` goes through erfc, 20 % slower on CPU
  (fwd + bwd); the two agree to 1e-6.
  """
  return 0.5 * x * (1.0 + jax.lax.erf(x * np.sqrt(0.5).astype(x.dtype)))


# How attention inside the OParts of the shared part block is computed:
# 'grouped' gathers the tokens into padded OParts and vmaps over them (many
# tiny L_p x L_p matrices); 'masked_dense' is one attention over all tokens
# of a frame with a block-diagonal mask. Same function; the floating-point
# results differ in the last bits.
GROUP_IMPLS = ("grouped", "masked_dense")
# `attention_core`'s implementations (model.attention_impl).
ATTENTION_IMPLS = ("einsum", "xla", "cudnn")


def _fold(key, i):
  return None if key is None else jax.random.fold_in(key, i)


def attention_core(q, k, v, *, kv_len=None, mask=None, impl="einsum",
                   dropout_rate=0.0, key=None, return_weights=False):
  """Multi-head scaled dot-product attention.

  Args:
    q, k, v: (N, L, H, D) queries, keys and values.
    kv_len: optional (N,) int number of valid keys; keys at positions >=
      kv_len are masked (padding of the shorter OParts).
    mask: optional (L, L) bool, True where query i may attend to key j.
    impl: 'einsum' (plain XLA ops, can return weights), 'xla' or 'cudnn'
      (`jax.nn.dot_product_attention`; 'cudnn' needs a GPU and bf16).
    dropout_rate, key: attention-probability dropout (einsum only).
    return_weights: also return the (N, H, L, L) probabilities.

  Returns:
    (N, L, H, D) outputs, and the weights when asked.
  """
  if impl in ("xla", "cudnn") and not return_weights and (
      dropout_rate == 0.0 or key is None):
    return jax.nn.dot_product_attention(
        q, k, v, mask=None if mask is None else mask[None, None],
        key_value_seq_lengths=kv_len,
        implementation=None if impl == "xla" else "cudnn")
  scale = q.shape[-1] ** -0.5
  # Head-major operands for the two batched matmuls: explicit transposes
  # measured 15-20 % faster than letting XLA pick layouts for the einsums
  # on a 2-core CPU (fwd + bwd at the paper's part/spatial/temporal shapes).
  q, k, v = (a.transpose(0, 2, 1, 3) for a in (q, k, v))  # (N, H, L, D)
  logits = (q * jnp.asarray(scale, q.dtype)) @ k.transpose(0, 1, 3, 2)
  # Softmax in float32 whatever the compute dtype.
  logits = logits.astype(jnp.float32)
  if kv_len is not None:
    valid = jnp.arange(k.shape[2])[None, :] < kv_len[:, None]  # (N, Lk)
    logits = jnp.where(valid[:, None, None, :], logits,
                       jnp.finfo(jnp.float32).min)
  if mask is not None:
    logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
  weights = jax.nn.softmax(logits, axis=-1)
  probs = dropout(weights, dropout_rate, key).astype(v.dtype)
  out = (probs @ v).transpose(0, 2, 1, 3)
  return (out, weights) if return_weights else out


class Attention(nnx.Module):
  """Multi-head self-attention over the token axis of (N, L, C) inputs."""

  def __init__(self, dim: int, num_heads: int, *, qkv_bias=True,
               attn_drop=0.0, proj_drop=0.0, impl="einsum",
               group_impl="grouped", dtype=None, rngs: nnx.Rngs):
    if dim % num_heads:
      raise ValueError(f"model.dim={dim} is not divisible by "
                       f"model.num_heads={num_heads}")
    if group_impl not in GROUP_IMPLS:
      raise ValueError(f"model.part_attention={group_impl!r}; expected one "
                       f"of {GROUP_IMPLS}")
    if impl not in ATTENTION_IMPLS:
      raise ValueError(f"model.attention_impl={impl!r}; expected one of "
                       f"{ATTENTION_IMPLS}")
    self.group_impl = group_impl
    self.num_heads = num_heads
    self.attn_drop = attn_drop
    self.proj_drop = proj_drop
    self.impl = impl
    linear = functools.partial(nnx.Linear, kernel_init=kernel_init,
                               dtype=dtype, rngs=rngs)
    self.qkv = linear(dim, 3 * dim, use_bias=qkv_bias)
    self.proj = linear(dim, dim)

  def __call__(self, x, *, kv_len=None, groups=None, key=None,
               return_weights=False):
    """Args: x (N, L, C); kv_len (N,) valid keys; groups: a
    `skeleton.PartTable` whose OParts partition the L tokens (attention
    then runs inside each group only: vmapped over the padded groups, or,
    with group_impl 'masked_dense', over all L tokens with a block-diagonal
    mask; the weights are always returned per group)."""
    n, l, c = x.shape
    qkv = self.qkv(x).reshape(n, l, 3, self.num_heads, c // self.num_heads)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    attend = functools.partial(
        attention_core, impl=self.impl, dropout_rate=self.attn_drop,
        return_weights=return_weights)
    if groups is None:
      res = attend(q, k, v, kv_len=kv_len, key=_fold(key, 0))
    elif self.group_impl == "masked_dense" and not return_weights:
      res = attend(q, k, v, mask=jnp.asarray(group_mask(groups)),
                   key=_fold(key, 0))
    else:
      res = _grouped(attend, q, k, v, groups, _fold(key, 0))
    out, weights = res if return_weights else (res, None)
    out = self.proj(out.reshape(n, l, c))
    out = dropout(out, self.proj_drop, _fold(key, 1))
    return (out, weights) if return_weights else out


def group_mask(table) -> np.ndarray:
  """(L, L) bool: token i attends to token j iff they share an OPart."""
  n_tok = len(table.token_joints)
  mask = np.zeros((n_tok, n_tok), bool)
  for p, n in enumerate(table.part_len):
    toks = table.group_tokens[p, :n]
    mask[np.ix_(toks, toks)] = True
  return mask


def _grouped(attend, q, k, v, table, key):
  """Attention inside each OPart: tokens -> padded (N, P, Lp, H, D) groups,
  `attend` vmapped over the part axis, back to the (N, L, H, D) tokens."""
  num_parts, max_len = table.group_tokens.shape
  n = q.shape[0]

  def to_groups(a):
    a = take_static(a, table.group_tokens, axis=1)
    return a.reshape((n, num_parts, max_len) + a.shape[2:])

  keys = None if key is None else jax.random.split(key, num_parts)
  res = jax.vmap(
      lambda q, k, v, m, key: attend(q, k, v, kv_len=jnp.full((n,), m),
                                     key=key),
      in_axes=(1, 1, 1, 0, None if keys is None else 0), out_axes=1)(
          to_groups(q), to_groups(k), to_groups(v),
          jnp.asarray(table.part_len), keys)
  out, weights = res if isinstance(res, tuple) else (res, None)
  out = take_static(out.reshape((n, num_parts * max_len) + out.shape[3:]),
                    table.token_slots, axis=1)
  return out if weights is None else (out, weights)


class Mlp(nnx.Module):
  """Linear -> GELU -> Linear, with dropout after each."""

  def __init__(self, dim: int, hidden: int, *, drop=0.0, dtype=None,
               rngs: nnx.Rngs):
    linear = functools.partial(nnx.Linear, kernel_init=kernel_init,
                               dtype=dtype, rngs=rngs)
    self.fc1 = linear(dim, hidden)
    self.fc2 = linear(hidden, dim)
    self.drop = drop

  def __call__(self, x, *, key=None):
    x = dropout(gelu(self.fc1(x)), self.drop, _fold(key, 0))
    return dropout(self.fc2(x), self.drop, _fold(key, 1))


class Block(nnx.Module):
  """Pre-LN transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

  def __init__(self, dim: int, num_heads: int, mlp_ratio: float, *,
               qkv_bias=True, drop=0.0, attn_drop=0.0, impl="einsum",
               group_impl="grouped", eps=1e-6, dtype=None, rngs: nnx.Rngs):
    self.norm1 = nnx.LayerNorm(dim, epsilon=eps, dtype=dtype, rngs=rngs)
    self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias,
                          attn_drop=attn_drop, proj_drop=drop, impl=impl,
                          group_impl=group_impl, dtype=dtype, rngs=rngs)
    self.norm2 = nnx.LayerNorm(dim, epsilon=eps, dtype=dtype, rngs=rngs)
    self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop, dtype=dtype,
                   rngs=rngs)

  def __call__(self, x, *, kv_len=None, groups=None, key=None,
               drop_path_rate=None, return_weights=False):
    """Args: x (N, L, C); kv_len (N,) valid tokens; groups: see Attention.
    Returns (N, L, C)."""
    dp_key = lambda i: (None if drop_path_rate is None else _fold(key, i))
    res = self.attn(self.norm1(x), kv_len=kv_len, groups=groups,
                    key=_fold(key, 0), return_weights=return_weights)
    y, weights = res if return_weights else (res, None)
    x = x + drop_path(y, drop_path_rate, dp_key(2))
    x = x + drop_path(self.mlp(self.norm2(x), key=_fold(key, 1)),
                      drop_path_rate, dp_key(3))
    return (x, weights) if return_weights else x
