"""OPFormer in plain PyTorch: the reference `tools/benchmark.py --compare=torch`
times against the JAX model.

Written from the paper's "Methods" section and SPEC.md §1, in the idiom a
PyTorch user would write (`nn.Linear`, `nn.LayerNorm`, eager mode), with the
same choices as `opformer_jax.model` where the paper is silent (heads,
MLP ratio, LayerNorm eps, fusion init, W_O, the temporal embedding added in
every loop). One loop, on the same input F (B, T, J, C):

  part branch     one shared pre-LN block over the P origin-prefixed parts
                  laid out contiguously (21 tokens for H36M-17): its dense
                  layers run on all tokens at once, its attention on each
                  part's slice; the P origin outputs concatenated -> W_O
  spatial branch  pre-LN block over the J joints of each frame
  fusion          alpha = softmax(Linear(2C, 2)(concat)), per token
  temporal        + P_T, then a pre-LN block over the T frames of each joint

`load_jax_weights` copies an `opformer_jax.model.OPFormer`'s parameters in,
so both compute the same function (tested to 1e-4). Supported: shared part
weights, every Table-4 variant, every origin and layout, no dropout (the
benchmark's configs have none). Requires `pip install -e ".[bench]"`.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from opformer_jax import skeleton


class Attention(nn.Module):
  """Multi-head self-attention; optionally only inside contiguous groups."""

  def __init__(self, dim, num_heads, qkv_bias, impl):
    super().__init__()
    self.num_heads = num_heads
    self.impl = impl
    self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
    self.proj = nn.Linear(dim, dim)

  def _attend(self, q, k, v):
    if self.impl == "sdpa":
      return F.scaled_dot_product_attention(q, k, v)
    # Explicit matmuls: what torch's FLOP counter sees on CPU (it has no
    # formula for the CPU flash-attention kernel behind 'sdpa').
    w = torch.softmax((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1), -1)
    return w @ v

  def forward(self, x, group_sizes=None):
    """x (N, L, C); group_sizes: lengths of consecutive token groups that
    attend only among themselves (None: all L tokens together)."""
    n, l, c = x.shape
    qkv = self.qkv(x).reshape(n, l, 3, self.num_heads, c // self.num_heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (N, H, L, D)
    if group_sizes is None:
      out = self._attend(q, k, v)
    else:
      out = torch.cat([self._attend(*g) for g in zip(
          q.split(group_sizes, 2), k.split(group_sizes, 2),
          v.split(group_sizes, 2))], dim=2)
    return self.proj(out.transpose(1, 2).reshape(n, l, c))


class Block(nn.Module):
  """Pre-LN transformer block with an exact-GELU MLP."""

  def __init__(self, cfg, impl):
    super().__init__()
    dim, hidden = cfg.dim, int(cfg.dim * cfg.mlp_ratio)
    self.norm1 = nn.LayerNorm(dim, eps=cfg.ln_eps)
    self.attn = Attention(dim, cfg.num_heads, cfg.qkv_bias, impl)
    self.norm2 = nn.LayerNorm(dim, eps=cfg.ln_eps)
    self.fc1 = nn.Linear(dim, hidden)
    self.fc2 = nn.Linear(hidden, dim)

  def forward(self, x, group_sizes=None):
    x = x + self.attn(self.norm1(x), group_sizes)
    return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class PartBranch(nn.Module):
  """Skeleton separation, per-part attention, recombination (+ W_O)."""

  def __init__(self, cfg, impl):
    super().__init__()
    with_origin = cfg.variant == "full"
    tab = skeleton.part_table(cfg.layout, cfg.origin, with_origin)
    self.origin = tab.origin
    self.group_sizes = [len(p) for p in tab.parts]
    tokens = [j for p in tab.parts for j in p]
    self.register_buffer("token_joints", torch.tensor(tokens),
                         persistent=False)
    # Joint j reads token recombine[j]; the origin reads the merged feature
    # appended after the tokens.
    recombine = np.zeros(tab.num_joints, np.int64)
    for t, j in enumerate(tokens):
      if j != tab.origin:
        recombine[j] = t
    starts = np.cumsum([0] + self.group_sizes[:-1])
    if with_origin:
      recombine[tab.origin] = len(tokens)
      self.register_buffer("origin_tokens", torch.tensor(starts),
                           persistent=False)
      self.origin_merge = nn.Linear(tab.num_parts * cfg.dim, cfg.dim)
    self.register_buffer("recombine", torch.tensor(recombine),
                         persistent=False)
    self.block = Block(cfg, impl)

  def forward(self, x):
    """x (B, T, J, C) -> (B, T, J, C)."""
    b, t, _, c = x.shape
    tokens = x[:, :, self.token_joints].reshape(b * t, -1, c)
    out = self.block(tokens, self.group_sizes).reshape(b, t, -1, c)
    if self.origin is not None:
      copies = out[:, :, self.origin_tokens].reshape(b, t, -1)
      out = torch.cat([out, self.origin_merge(copies)[:, :, None]], dim=2)
    return out[:, :, self.recombine]


class Loop(nn.Module):
  """(part || spatial) -> adaptive fusion -> + P_T -> temporal."""

  def __init__(self, cfg, impl):
    super().__init__()
    use_part = cfg.variant != "temporal_spatial"
    use_spatial = cfg.variant != "temporal_part"
    self.part = PartBranch(cfg, impl) if use_part else None
    self.spatial = Block(cfg, impl) if use_spatial else None
    self.fusion = (nn.Linear(2 * cfg.dim, 2) if use_part and use_spatial
                   else None)
    self.temporal = Block(cfg, impl)

  def forward(self, x, pos_t):
    b, t, j, c = x.shape
    branches = []
    if self.part is not None:
      branches.append(self.part(x))
    if self.spatial is not None:
      branches.append(self.spatial(x.reshape(b * t, j, c)).reshape(
          b, t, j, c))
    if self.fusion is not None:
      alpha = torch.softmax(self.fusion(torch.cat(branches, -1)), -1)
      x = alpha[..., :1] * branches[0] + alpha[..., 1:] * branches[1]
    else:
      x = branches[0]
    if pos_t is not None:
      x = x + pos_t[:, None]
    xt = x.transpose(1, 2).reshape(b * j, t, c)
    return self.temporal(xt).reshape(b, j, t, c).transpose(1, 2)


class TorchOPFormer(nn.Module):
  """(B, T, J, 3) normalised (x, y, conf) -> (B, T, J, 3) root-relative 3D.

  Args:
    cfg: `config.model` of opformer_jax (the same fields).
    impl: 'sdpa' (F.scaled_dot_product_attention, fastest on CPU) or
      'matmul' (explicit matmuls; what torch's FLOP counter can count).
  """

  def __init__(self, cfg, impl="sdpa"):
    super().__init__()
    if cfg.part_weights != "shared":
      raise NotImplementedError("the reference shares the part weights")
    if cfg.drop_rate or cfg.attn_drop_rate or cfg.drop_path_rate:
      raise NotImplementedError("the reference has no dropout / drop-path")
    j = skeleton.get_layout(cfg.layout).num_joints
    self.every_loop = cfg.temporal_embed == "every_loop"
    self.embed = nn.Linear(3, cfg.dim)
    self.pos_s = nn.Parameter(torch.zeros(j, cfg.dim))
    self.pos_t = nn.Parameter(torch.zeros(cfg.max_frames, cfg.dim))
    self.loops = nn.ModuleList(Loop(cfg, impl) for _ in range(cfg.depth))
    self.norm = nn.LayerNorm(cfg.dim, eps=cfg.ln_eps)
    self.pre_logits = (nn.Linear(cfg.dim, cfg.pre_logits_dim)
                       if cfg.pre_logits_dim else None)
    self.head = nn.Linear(cfg.pre_logits_dim or cfg.dim, 3)

  def forward(self, x):
    h = self.embed(x) + self.pos_s
    pos_t = self.pos_t[:x.shape[1]]
    if not self.every_loop:
      h = h + pos_t[:, None]
    for loop in self.loops:
      h = loop(h, pos_t if self.every_loop else None)
    h = self.norm(h)
    if self.pre_logits is not None:
      h = torch.tanh(self.pre_logits(h))
    return self.head(h)


def total_loss(pred, gt, loss_cfg):
  """`opformer_jax.losses.total_loss` (paper eq. 16 + optional N-MPJPE)."""
  mpjpe = lambda p, g: torch.linalg.vector_norm(p - g, dim=-1).mean()
  loss = loss_cfg.w_pos * mpjpe(pred, gt)
  if pred.shape[1] > 1:
    loss = loss + loss_cfg.w_vel * mpjpe(pred.diff(dim=1), gt.diff(dim=1))
  if loss_cfg.w_nmpjpe:
    num = (gt * pred).sum((-2, -1), keepdim=True)
    den = (pred * pred).sum((-2, -1), keepdim=True).clamp_min(1e-12)
    loss = loss + loss_cfg.w_nmpjpe * mpjpe(pred * num / den, gt)
  return loss


def make_optimizer(model, config):
  """Adam / AdamW with `config.optim`'s lr, betas, eps and weight decay."""
  o = config.optim
  kw = dict(lr=o.lr, betas=(o.b1, o.b2), eps=o.eps)
  if o.name == "adamw":
    return torch.optim.AdamW(model.parameters(), weight_decay=o.weight_decay,
                             **kw)
  return torch.optim.Adam(model.parameters(), **kw)


def train_runner(model, config, batch):
  """One micro-step as `opformer_jax.train` takes it: forward, loss,
  backward, and every `train.accum_steps` micro-steps an optimizer update
  on the gradient averaged over them (optax.MultiSteps).

  Args:
    model: a TorchOPFormer; batch: numpy 'kp2d', 'kp3d' (B, T, J, 3).

  Returns:
    run(): takes one micro-step.
  """
  opt = make_optimizer(model, config)
  x = torch.from_numpy(batch["kp2d"])
  y = torch.from_numpy(batch["kp3d"])
  accum = config.train.accum_steps
  count = [0]

  def run():
    model.train()
    (total_loss(model(x), y, config.loss) / accum).backward()
    count[0] += 1
    if count[0] % accum == 0:
      if config.optim.grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
      opt.step()
      opt.zero_grad(set_to_none=True)
  return run


def inference_runner(model, kp2d):
  """run(): one forward in evaluation mode without autograd."""
  x = torch.from_numpy(kp2d)

  def run():
    model.eval()
    with torch.inference_mode():
      model(x)
  return run


def _tensor(a):
  return torch.from_numpy(np.array(a, np.float32))  # a writable copy


def _linear(dst: nn.Linear, src):
  """nnx.Linear (kernel (in, out)) -> nn.Linear (weight (out, in))."""
  dst.weight.copy_(_tensor(src["kernel"]).T)
  if dst.bias is not None:
    dst.bias.copy_(_tensor(src["bias"]))


def _norm(dst: nn.LayerNorm, src):
  dst.weight.copy_(_tensor(src["scale"]))
  dst.bias.copy_(_tensor(src["bias"]))


def _block(dst: Block, src):
  _norm(dst.norm1, src["norm1"])
  _norm(dst.norm2, src["norm2"])
  _linear(dst.attn.qkv, src["attn"]["qkv"])
  _linear(dst.attn.proj, src["attn"]["proj"])
  _linear(dst.fc1, src["mlp"]["fc1"])
  _linear(dst.fc2, src["mlp"]["fc2"])


@torch.no_grad()
def load_jax_weights(dst: TorchOPFormer, jax_model) -> TorchOPFormer:
  """Copies a (scan-stacked) `opformer_jax.model.OPFormer`'s parameters."""
  import jax
  from flax import nnx
  params = jax.tree.map(np.asarray, nnx.to_pure_dict(
      nnx.state(jax_model, nnx.Param)))
  _linear(dst.embed, params["embed"])
  dst.pos_s.copy_(_tensor(params["pos_s"]))
  dst.pos_t.copy_(_tensor(params["pos_t"]))
  loops = params["loops"]
  stacked = not isinstance(loops, (list, tuple)) and not all(
      isinstance(k, int) for k in loops)
  for i, loop in enumerate(dst.loops):
    src = (jax.tree.map(lambda a, i=i: a[i], loops) if stacked
           else loops[i])
    if loop.part is not None:
      _block(loop.part.block, src["part"]["block"])
      if loop.part.origin is not None:
        _linear(loop.part.origin_merge, src["part"]["origin_merge"])
    if loop.spatial is not None:
      _block(loop.spatial, src["spatial"])
    if loop.fusion is not None:
      _linear(loop.fusion, src["fusion"])
    _block(loop.temporal, src["temporal"])
  _norm(dst.norm, params["norm"])
  if dst.pre_logits is not None:
    _linear(dst.pre_logits, params["pre_logits"])
  _linear(dst.head, params["head"])
  return dst
