"""OPFormer: the network of the paper's "Methods" section (SPEC.md §1).

Input (B, T, J, 3) normalised (x, y, confidence); output (B, T, J, 3)
root-relative 3D. One loop of the L loops, on the same input F:

  part branch    F_PS = skeleton recombination of per-OPart blocks
                 (attention inside each Origin+part group, vmapped over parts;
                  the five Origin outputs merged by a linear W_O)
  spatial branch F_GS = block over all J joints of a frame
  fusion         alpha = softmax([F_PS, F_GS] W_A) per token;
                 F_S = alpha_PS F_PS + alpha_GS F_GS
  temporal       F = block over the T frames of each joint (after adding the
                 temporal position embedding, shared by all loops)

The L loops are stacked with `nnx.scan` over parameters that carry a leading
depth axis; `nnx.remat` is optional. Ablation variants (paper Table 4):
'temporal_part' (the baseline row: temporal encoder + a part block over the
five plain parts, no Origin token, no W_O, no spatial branch),
'temporal_spatial' (no part branch), 'independent_parts' (both branches,
parts without the Origin) and 'full'. The origin joint (Table 6) is
configurable.
"""


import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from opformer_jax import layers
from opformer_jax import skeleton

VARIANTS = ("full", "temporal_part", "temporal_spatial", "independent_parts")
# What the backward pass keeps of each loop's forward: 'full' recomputes the
# whole loop (least memory); 'dots' keeps the matmul outputs and recomputes
# the elementwise work (measured 4 % faster than no remat on a 2-core CPU,
# fewer stacked activations to copy).
REMAT_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable}


# How the L loops run when their parameters are stacked (model.scan_layers):
# 'scan' traces one loop body inside nnx.scan (fast compile; the backward
# pass reads and writes each loop's saved activations in stacked buffers);
# 'unrolled' slices the stacked parameters and traces the L loops one after
# another (same function and checkpoints, no stacked copies: 7 % faster on a
# 2-core CPU, but twice the compile time and, as XLA schedules the unrolled
# backward pass, 1.46x the peak memory).
LOOP_IMPLS = ("scan", "unrolled")


def _dtype(name):
  return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


def part_table(cfg) -> skeleton.PartTable:
  """The (O)Part table a model config uses.

  Only the full model has the origin-centric design (the origin prepended to
  every part, its copies merged by W_O); the Table-4 ablations with a part
  block ('temporal_part', 'independent_parts') use the five parts as they
  are, with the origin joint as a sixth, one-token part.
  """
  return skeleton.part_table(cfg.layout, cfg.origin,
                             with_origin=cfg.variant == "full")


class PartBranch(nnx.Module):
  """OPFormer block: separation, per-OPart attention, recombination.

  The (B, T, J, C) features are gathered into (B, T, P, L, C) OParts padded
  to the longest part; one transformer block runs on every OPart through
  `jax.vmap` over the part axis, with the padding masked out of the keys; the
  tokens are put back in skeleton order and the P copies of the origin are
  concatenated and merged by W_O.
  """

  def __init__(self, cfg, block_fn, *, rngs: nnx.Rngs):
    self.table = part_table(cfg)
    num_parts = self.table.num_parts
    self.shared = cfg.part_weights == "shared"
    if cfg.part_weights not in ("shared", "per_part"):
      raise ValueError(f"model.part_weights={cfg.part_weights!r}; expected "
                       "'shared' or 'per_part'")
    if self.shared:
      self.block = block_fn(rngs)
    else:
      @nnx.split_rngs(splits=num_parts)
      @nnx.vmap(in_axes=(0,), out_axes=0)
      def make(r):
        return block_fn(r)
      self.block = make(rngs)
    if self.table.origin is not None:
      dim = cfg.dim
      if cfg.origin_merge_init == "mean":
        # Starts as the mean of the copies, so the origin keeps its residual
        # path at initialisation instead of being zeroed by a small W_O.
        eye = np.tile(np.eye(dim, dtype=np.float32), (num_parts, 1))
        init = lambda *_: jnp.asarray(eye / num_parts)
      elif cfg.origin_merge_init == "normal":
        init = layers.kernel_init
      else:
        raise ValueError(f"model.origin_merge_init={cfg.origin_merge_init!r}")
      self.origin_merge = nnx.Linear(num_parts * dim, dim, kernel_init=init,
                                     dtype=_dtype(cfg.dtype), rngs=rngs)

  def __call__(self, x, *, key=None, drop_path_rate=None,
               return_weights=False):
    """x (B, T, J, C) -> (B, T, J, C); with return_weights also the
    (P, H, L, L) attention averaged over batch and frames."""
    if self.shared:
      return self._shared(x, key, drop_path_rate, return_weights)
    return self._per_part(x, key, drop_path_rate, return_weights)

  def _merge_origin(self, origin_copies):
    """(B, T, P, C) origin outputs -> (B, T, C) merged by W_O."""
    b, t, p, c = origin_copies.shape
    return self.origin_merge(origin_copies.reshape(b, t, p * c))

  def _shared(self, x, key, drop_path_rate, return_weights):
    # One block for every OPart: its dense layers run once over the real
    # tokens (origin copies + joints, no padding); only the attention is
    # split into the padded OParts and vmapped over them (layers._grouped).
    b, t, j, c = x.shape
    tab = self.table
    tokens = layers.take_static(x, tab.token_joints, axis=2)
    res = self.block(tokens.reshape(b * t, -1, c), groups=tab, key=key,
                     drop_path_rate=drop_path_rate,
                     return_weights=return_weights)
    out, weights = res if return_weights else (res, None)
    out = out.reshape(b, t, -1, c)
    if tab.origin is not None:
      origin = self._merge_origin(out[:, :, :tab.num_parts])
      out = jnp.concatenate([origin[:, :, None], out[:, :, 1:]], axis=2)
    out = layers.take_static(out, tab.joint_tokens, axis=2)
    if return_weights:
      return out, weights.mean(axis=0)
    return out

  def _per_part(self, x, key, drop_path_rate, return_weights):
    # Separate weights per part: the whole block is vmapped over the padded
    # OParts and over the stacked per-part parameters.
    b, t, j, c = x.shape
    tab = self.table
    num_parts, max_len = tab.part_idx.shape
    parts = layers.take_static(x, tab.part_idx, axis=2).reshape(
        b * t, num_parts, max_len, c)
    kv_len = jnp.asarray(tab.part_len)
    keys = (None if key is None else
            jax.random.split(key, num_parts))

    def one_part(block, xp, n, k):
      """One OPart for all frames: xp (B*T, L, C), n scalar length."""
      return block(xp, kv_len=jnp.full((xp.shape[0],), n), key=k,
                   drop_path_rate=drop_path_rate,
                   return_weights=return_weights)

    out = jax.vmap(one_part, in_axes=(0, 1, 0, None if keys is None else 0),
                   out_axes=1)(self.block, parts, kv_len, keys)
    out, weights = out if return_weights else (out, None)
    out = out.reshape(b, t, num_parts * max_len, c)
    if tab.origin is not None:
      origin = self._merge_origin(out[:, :, ::max_len])
      out = jnp.concatenate([out, origin[:, :, None]], axis=2)
    out = layers.take_static(out, tab.recombine_idx, axis=2)
    if return_weights:
      # (B*T, P, H, L, L) -> (P, H, L, L) averaged over batch and time.
      return out, weights.mean(axis=0)
    return out


class Loop(nnx.Module):
  """One of the L loops: (part ∥ spatial) -> fusion -> temporal."""

  def __init__(self, cfg, *, rngs: nnx.Rngs):
    dtype = _dtype(cfg.dtype)
    block_fn = lambda r: layers.Block(
        cfg.dim, cfg.num_heads, cfg.mlp_ratio, qkv_bias=cfg.qkv_bias,
        drop=cfg.drop_rate, attn_drop=cfg.attn_drop_rate,
        impl=cfg.attention_impl,
        group_impl=cfg.get("part_attention", "grouped"), eps=cfg.ln_eps,
        dtype=dtype, rngs=r)
    self.use_part = cfg.variant != "temporal_spatial"
    self.use_spatial = cfg.variant != "temporal_part"
    self.part = PartBranch(cfg, block_fn, rngs=rngs) if self.use_part \
        else None
    self.spatial = block_fn(rngs) if self.use_spatial else None
    if self.use_part and self.use_spatial:
      # MotionBERT's att_fuse: weight 0, bias 0.5 -> equal mix at init.
      self.fusion = nnx.Linear(
          2 * cfg.dim, 2, kernel_init=nnx.initializers.zeros,
          bias_init=nnx.initializers.constant(0.5), dtype=dtype, rngs=rngs)
    else:
      self.fusion = None
    self.temporal = block_fn(rngs)

  def __call__(self, x, pos_t, *, key=None, drop_path_rate=None,
               return_weights=False):
    """x (B, T, J, C); pos_t (T, C) or None; returns (B, T, J, C)."""
    b, t, j, c = x.shape
    fold = lambda i: None if key is None else jax.random.fold_in(key, i)
    kw = dict(drop_path_rate=drop_path_rate, return_weights=return_weights)
    maps = {}
    branches = []
    if self.use_part:
      res = self.part(x, key=fold(0), **kw)
      if return_weights:
        res, maps["part"] = res
      branches.append(res)
    if self.use_spatial:
      res = self.spatial(x.reshape(b * t, j, c), key=fold(1), **kw)
      if return_weights:
        res, w = res
        maps["spatial"] = w.mean(axis=0)  # (H, J, J)
      branches.append(res.reshape(b, t, j, c))
    if self.fusion is not None:
      alpha = jax.nn.softmax(
          self.fusion(jnp.concatenate(branches, axis=-1)).astype(jnp.float32),
          axis=-1).astype(x.dtype)
      x = alpha[..., :1] * branches[0] + alpha[..., 1:] * branches[1]
    else:
      x = branches[0]
    if pos_t is not None:
      x = x + pos_t[None, :, None, :].astype(x.dtype)
    xt = x.transpose(0, 2, 1, 3).reshape(b * j, t, c)
    res = self.temporal(xt, key=fold(2), **kw)
    if return_weights:
      res, w = res
      maps["temporal"] = w.mean(axis=0)  # (H, T, T)
    x = res.reshape(b, j, t, c).transpose(0, 2, 1, 3)
    return (x, maps) if return_weights else x


class OPFormer(nnx.Module):
  """The full network; see the module docstring."""

  def __init__(self, cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
    if cfg.variant not in VARIANTS:
      raise ValueError(f"model.variant={cfg.variant!r}; expected one of "
                       f"{VARIANTS}")
    if cfg.temporal_embed not in ("every_loop", "once"):
      raise ValueError(f"model.temporal_embed={cfg.temporal_embed!r}; "
                       "expected 'every_loop' (paper) or 'once' (MotionBERT)")
    self.num_joints = skeleton.get_layout(cfg.layout).num_joints
    self.max_frames = cfg.max_frames
    self.depth = cfg.depth
    self.temporal_embed = cfg.temporal_embed
    if cfg.remat not in ("none",) + tuple(REMAT_POLICIES):
      raise ValueError(f"model.remat={cfg.remat!r}; expected 'none', "
                       f"{', '.join(map(repr, REMAT_POLICIES))}")
    self.remat = cfg.remat
    self.dtype = _dtype(cfg.dtype)
    self.drop_path_rate = cfg.drop_path_rate
    dim = cfg.dim
    init = layers.kernel_init
    # Embedding and head run in float32 whatever model.dtype: the input
    # coordinates and the output poses would lose ~1 mm in bfloat16.
    self.embed = nnx.Linear(3, dim, kernel_init=init, dtype=jnp.float32,
                            rngs=rngs)
    self.pos_s = nnx.Param(init(rngs.params(), (self.num_joints, dim)))
    self.pos_t = nnx.Param(init(rngs.params(), (cfg.max_frames, dim)))

    self.scan_layers = cfg.scan_layers
    self.scan_unroll = cfg.get("scan_unroll", 1)
    self.loop_impl = cfg.get("loop_impl", "scan")
    if self.loop_impl not in LOOP_IMPLS:
      raise ValueError(f"model.loop_impl={self.loop_impl!r}; expected one "
                       f"of {LOOP_IMPLS}")
    if cfg.scan_layers:
      @nnx.split_rngs(splits=cfg.depth)
      @nnx.vmap(in_axes=(0,), out_axes=0)
      def make_loops(r):
        return Loop(cfg, rngs=r)
      self.loops = make_loops(rngs)
    else:
      self.loops = nnx.List([Loop(cfg, rngs=rngs) for _ in range(cfg.depth)])

    self.norm = nnx.LayerNorm(dim, epsilon=cfg.ln_eps, dtype=jnp.float32,
                              rngs=rngs)
    if cfg.pre_logits_dim:
      self.pre_logits = nnx.Linear(dim, cfg.pre_logits_dim, kernel_init=init,
                                   dtype=jnp.float32, rngs=rngs)
      head_in = cfg.pre_logits_dim
    else:
      self.pre_logits = None
      head_in = dim
    self.head = nnx.Linear(head_in, 3, kernel_init=init, dtype=jnp.float32,
                           rngs=rngs)

  def _check(self, x):
    if x.ndim != 4 or x.shape[2] != self.num_joints or x.shape[3] != 3:
      raise ValueError(
          f"OPFormer input has shape {tuple(x.shape)}, expected (B, T, "
          f"{self.num_joints}, 3) normalised (x, y, confidence)")
    if x.shape[1] > self.max_frames:
      raise ValueError(f"OPFormer input has T={x.shape[1]} frames, more than "
                       f"model.max_frames={self.max_frames}; use windows "
                       "(opformer_jax.windows) or a larger max_frames")

  def __call__(self, x, *, key=None, return_attention=False):
    """Lifts 2D to 3D.

    Args:
      x: (B, T, J, 3) normalised (x, y, confidence), T <= max_frames.
      key: PRNG key for dropout / drop-path; None = deterministic.
      return_attention: also return per-loop attention maps averaged over
        batch and frames: 'part' (L, P, H, Lp, Lp), 'spatial' (L, H, J, J),
        'temporal' (L, H, T, T), as present in the variant.

    Returns:
      (B, T, J, 3) float32 root-relative 3D pose (normalised units).
    """
    self._check(x)
    t = x.shape[1]
    h = (self.embed(x.astype(jnp.float32)) + self.pos_s[...]).astype(
        self.dtype)
    pos_t = self.pos_t[:t]
    if self.temporal_embed == "once":
      h = h + pos_t[None, :, None, :].astype(self.dtype)
      pos_t = None

    use_dp = self.drop_path_rate > 0 and key is not None
    dpr = jnp.linspace(0.0, self.drop_path_rate, self.depth)
    keys = None if key is None else jax.random.split(key, self.depth)

    def body(h, loop, k, rate):
      return loop(h, pos_t, key=k, drop_path_rate=rate if use_dp else None,
                  return_weights=return_attention)
    if self.remat != "none":
      body = nnx.remat(body, policy=REMAT_POLICIES[self.remat])

    # Per-loop inputs: drop-path rate, and the dropout key when training.
    xs = (dpr,) if keys is None else (dpr, keys)

    def step(h, loop, xs):
      k = xs[1] if len(xs) > 1 else None
      return _carry(body(h, loop, k, xs[0]), return_attention)

    if self.scan_layers and self.loop_impl == "scan":
      h, maps = nnx.scan(step, in_axes=(nnx.Carry, 0, 0),
                         out_axes=(nnx.Carry, 0),
                         unroll=self.scan_unroll)(h, self.loops, xs)
    else:
      loops = (_unstack(self.loops, self.depth) if self.scan_layers
               else self.loops)
      maps = []
      for i, loop in enumerate(loops):
        h, m = step(h, loop, jax.tree.map(lambda a, i=i: a[i], xs))
        maps.append(m)
      maps = (jax.tree.map(lambda *a: jnp.stack(a), *maps)
              if return_attention else None)
    h = self.norm(h.astype(jnp.float32))
    if self.pre_logits is not None:
      h = jnp.tanh(self.pre_logits(h))
    out = self.head(h).astype(jnp.float32)
    return (out, maps) if return_attention else out


def _unstack(stacked: nnx.Module, depth: int) -> list:
  """The `depth` modules of an `nnx.vmap`-stacked module, for a Python loop.

  Split with `jnp.split`, whose gradient is one concatenate per parameter
  (indexing `a[i]` would give `depth` zero-padded copies summed).
  """
  graphdef, state = nnx.split(stacked)
  leaves, treedef = jax.tree.flatten(state)
  pieces = [jnp.split(a, depth) for a in leaves]
  return [nnx.merge(graphdef, jax.tree.unflatten(
      treedef, [p[i][0] for p in pieces])) for i in range(depth)]


def _carry(res, return_attention):
  """Splits a loop's result into the scan carry and the per-loop outputs."""
  return res if return_attention else (res, None)


def build_model(cfg: ml_collections.ConfigDict, seed: int = 0) -> OPFormer:
  """Builds an OPFormer from `config.model` with parameters from `seed`."""
  return OPFormer(cfg, rngs=nnx.Rngs(params=seed))


def abstract_model(cfg: ml_collections.ConfigDict) -> OPFormer:
  """The model with shapes only (no memory), for restore targets."""
  return nnx.eval_shape(lambda: build_model(cfg))


def count_params(model: nnx.Module) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(
      nnx.state(model, nnx.Param)))


def flops_per_clip(cfg: ml_collections.ConfigDict, num_frames: int) -> dict:
  """Forward matmul FLOPs per clip (1 MAC = 2 FLOPs), PyTorch's convention.

  Counts linear layers and the two attention matmuls (QK^T, AV), as
  `torch.utils.flop_counter` does; LayerNorm, softmax and GELU are not
  counted. Part attention is counted on the real (unpadded) OPart tokens.

  Returns:
    dict with 'total', 'per_frame' and a breakdown, in FLOPs.
  """
  t = num_frames
  c = cfg.dim
  hid = int(c * cfg.mlp_ratio)
  j = skeleton.get_layout(cfg.layout).num_joints

  def block(tokens, seq):
    """FLOPs of one block over `tokens` tokens in sequences of `seq`."""
    linear = 2 * tokens * (3 * c * c + c * c + 2 * c * hid)
    attn = 2 * 2 * tokens * seq * c   # QK^T and AV
    return linear + attn

  out = {"embed": 2 * t * j * 3 * c}
  if cfg.variant != "temporal_part":
    out["spatial"] = cfg.depth * block(t * j, j)
  if cfg.variant != "temporal_spatial":
    tab = part_table(cfg)
    part = sum(block(t * int(n), int(n)) for n in tab.part_len)
    if tab.origin is not None:
      part += 2 * t * tab.num_parts * c * c
    out["part"] = cfg.depth * part
  if cfg.variant in ("full", "independent_parts"):
    out["fusion"] = cfg.depth * 2 * t * j * 2 * c * 2
  out["temporal"] = cfg.depth * block(t * j, t)
  head_in = cfg.pre_logits_dim or c
  out["head"] = 2 * t * j * (head_in * 3 + (c * head_in
                                            if cfg.pre_logits_dim else 0))
  out["total"] = sum(out.values())
  out["per_frame"] = out["total"] / t
  return out


def flip_tta(apply_fn, kp2d, layout: str):
  """Flip test-time augmentation: (f(x) + flip(f(flip(x)))) / 2.

  Args:
    apply_fn: (B, T, J, 3) -> (B, T, J, 3).
    kp2d: (B, T, J, 3) normalised (x, y, conf); the confidence channel is
      swapped with its joints.
    layout: joint order name.
  """
  pred = apply_fn(kp2d)
  pred_flip = apply_fn(skeleton.flip_pose(kp2d, layout))
  return (pred + skeleton.flip_pose(pred_flip, layout)) / 2
