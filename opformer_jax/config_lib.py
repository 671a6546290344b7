"""The full set of config fields with defaults; config files override them.

Every experiment config in `configs/` starts from `base_config()`, so a field
exists in every config and an override with a typo fails at start-up
(`--config.model.dpeth=4` -> "Did you mean depth?").
"""

import math

import ml_collections
from ml_collections import config_dict

from opformer_jax import errors


def base_config() -> ml_collections.ConfigDict:
  """Paper defaults (OPFormer, H36M, T = 243) for every field."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.model = model_config()
  c.data = data_config()
  c.train = train_config()
  c.optim = optim_config()
  c.loss = loss_config()
  c.eval = eval_config()
  return c


def model_config() -> ml_collections.ConfigDict:
  """`config.model`: the architecture (paper Tables 4-6) and its numerics."""
  m = ml_collections.ConfigDict()
  m.depth = 8                  # L loops (paper Table 5 best).
  m.dim = 512                  # C.
  m.num_heads = 8              # Not stated in the paper: DSTformer's value.
  m.mlp_ratio = 2.0            # Likewise.
  m.qkv_bias = True
  m.drop_rate = 0.0            # Dropout after attention proj and MLP.
  m.attn_drop_rate = 0.0
  m.drop_path_rate = 0.0       # Linearly increasing over the L loops.
  m.max_frames = 243           # Temporal embedding length; any T <= this.
  m.layout = "h36m17"          # Joint order: 'h36m17' or 'mpi17'.
  m.origin = "hip"             # Paper Table 6: 'hip', 'spine', 'thorax'.
  m.part_weights = "shared"    # 'shared' (paper eqs.) or 'per_part'.
  # Paper Table 4: 'full', 'temporal_part', 'temporal_spatial',
  # 'independent_parts'.
  m.variant = "full"
  m.temporal_embed = "every_loop"  # Paper; 'once' = MotionBERT.
  m.pre_logits_dim = 0         # >0: MotionBERT-style Linear+tanh pre-logits.
  m.origin_merge_init = "mean"  # W_O init: 'mean' of the 5 copies, 'normal'.
  m.dtype = "float32"          # Compute dtype: 'float32' or 'bfloat16'.
  m.remat = "none"             # 'none', 'full' or 'dots' (model.py).
  # Stack the L loops with nnx.scan (one compiled loop body: fast compile).
  # False: a Python loop over L separate loops (slower compile, no stacked
  # activations to copy; different checkpoint layout).
  m.scan_layers = True
  m.scan_unroll = 1            # Loops per scan iteration (loop_impl='scan').
  # With scan_layers, how the stacked loops run: 'scan' or 'unrolled' (same
  # function and checkpoints; the trade-off is at model.LOOP_IMPLS).
  m.loop_impl = "scan"
  m.attention_impl = "einsum"  # 'einsum', 'xla' or 'cudnn' (GPU, bf16).
  # OPart attention: 'grouped' (padded parts, vmapped) or 'masked_dense'
  # (one attention over the frame's tokens, block-diagonal mask).
  m.part_attention = "grouped"
  m.ln_eps = 1e-6
  return m


def data_config() -> ml_collections.ConfigDict:
  """`config.data`: which files, clip length and strides, input and labels."""
  d = ml_collections.ConfigDict()
  d.name = "h36m"              # Selects the evaluation protocol.
  d.train_path = config_dict.placeholder(str)  # Project NPZ files.
  d.test_path = config_dict.placeholder(str)
  d.num_frames = 243           # T.
  d.train_stride = 81          # T // 3 (MotionBERT / MotionAGFormer).
  d.test_stride = 243          # Non-overlapping test clips.
  d.test_tail = "drop"         # 'drop' (MotionBERT) or 'last' (VideoPose3D).
  d.input_2d = "file"          # 'file' = the file's kp2d; 'gt' = projection.
  d.label_space = "image"      # 'image' (2.5D, MotionBERT) or 'camera'.
  d.flip_prob = 0.5
  d.num_workers = 0            # Grain worker processes (0 = in-process).
  d.prefetch = 4
  return d


def train_config() -> ml_collections.ConfigDict:
  """`config.train`: batch, length of the run, logs, validation, saves."""
  t = ml_collections.ConfigDict()
  t.batch_size = 4             # Micro-batch (global, over all devices).
  t.accum_steps = 8            # optax.MultiSteps: 4 x 8 = 32 clips/update.
  t.num_epochs = 120
  t.max_updates = -1           # >0: stop after this many optimizer updates
                               # (the lr schedule is not shortened).
  # A budget instead of epochs: '2h', '90m', '45s' (wall clock, from a timed
  # warm-up of real steps) or '5000u' / '5000updates'. It fixes the number of
  # updates U at the start (recorded in the checkpoints, so a resumed run
  # keeps it) and, with optim.schedule='auto', a warm-up + cosine lr over U.
  t.budget = ""
  t.budget_evals = 10          # Validations spread over a budgeted run.
  t.budget_timing_steps = 10   # Timed train steps that size a time budget.
  t.log_every = 50             # Micro-steps between metric logs.
  t.eval_every_epochs = 1.0    # Validation (and best checkpoint) period;
                               # <= 0: no validation while training.
  t.checkpoint_every = 500     # Micro-steps between periodic checkpoints.
  # >0: validate on a fixed subset of about this many test clips, the same
  # stretch of every sequence (fast feedback); the final evaluation of the
  # best step always uses the whole test split.
  t.eval_max_clips = -1
  t.final_eval = True          # Full protocol on the best step at the end.
  t.compilation_cache = "~/.cache/opformer_jax/jax"
  return t


def optim_config() -> ml_collections.ConfigDict:
  """`config.optim`: Adam / AdamW and the learning-rate schedule."""
  o = ml_collections.ConfigDict()
  o.name = "adam"              # 'adam' (paper) or 'adamw' (MotionBERT).
  o.lr = 2e-4
  # 'auto': 'exponential' (lr x lr_decay per epoch of updates, the paper's),
  # or with a train.budget 'cosine'; 'cosine' / 'linear': warm-up over
  # `warmup` of the run's updates, then decay to lr_floor x lr at its end.
  o.schedule = "auto"
  o.lr_decay = 0.99            # x per epoch of optimizer updates.
  o.warmup = 0.05
  o.lr_floor = 0.01
  o.weight_decay = 0.0         # AdamW only; MotionBERT uses 0.01.
  o.b1 = 0.9
  o.b2 = 0.999
  o.eps = 1e-8
  o.grad_clip = 0.0            # >0: clip by global norm.
  return o


def loss_config() -> ml_collections.ConfigDict:
  """`config.loss`: weights of the terms of paper eq. 16 (+ MotionBERT's)."""
  l = ml_collections.ConfigDict()
  l.w_pos = 1.0                # Paper eq. 16: position term.
  l.w_vel = 20.0               # lambda_M (velocity); MotionBERT's value.
  l.w_nmpjpe = 0.0             # MotionBERT adds 0.5 x N-MPJPE.
  return l


def eval_config() -> ml_collections.ConfigDict:
  """`config.eval`: evaluation batch, TTA, GT-2D convention, figures."""
  e = ml_collections.ConfigDict()
  e.batch_size = 8
  e.flip_tta = True
  # GT-2D scoring convention: 'motionagformer' keeps predicted xy,
  # 'motionbert' overwrites it with the input xy (only depth predicted).
  e.gt2d_convention = "motionagformer"
  e.figures = True
  e.attention_clips = 4        # Clips averaged in the attention-map figure.
  return e


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses a config-file argument like 't81,gt,origin=spine'.

  Each comma-separated item is `key=value` (value converted to the type of
  `defaults[key]`) or a bare `flag`, which sets a bool default to True or,
  for a key listed in `defaults['_aliases']`, expands to key=value pairs.

  Raises:
    errors.ConfigError: an unknown key (the message lists the known ones),
      a value of the wrong type or a missing value, in one line.
  """
  aliases = defaults.pop("_aliases", {})
  out = ml_collections.ConfigDict(defaults)
  known = ", ".join(sorted(set(defaults) | set(aliases))) or "none"
  for item in filter(None, (arg or "").split(",")):
    item = item.strip()
    if item in aliases:
      for k, v in aliases[item].items():
        out[k] = v
      continue
    key, eq, value = item.partition("=")
    if key not in defaults:
      raise errors.ConfigError(
          f"config argument {key!r} is unknown; expected one of: {known}")
    default = defaults[key]
    if not eq:
      if not isinstance(default, bool):
        raise errors.ConfigError(
            f"config argument {key!r} has no value; expected {key}=<"
            f"{type(default).__name__}>")
      out[key] = True
    elif isinstance(default, bool):
      if value.lower() not in ("1", "true", "yes", "0", "false", "no"):
        raise errors.ConfigError(
            f"config argument {item!r}; expected {key}=true or {key}=false")
      out[key] = value.lower() in ("1", "true", "yes")
    else:
      out[key] = _typed_arg(key, value, default)
  return out


def _typed_arg(key: str, value: str, default):
  """`value` as the type of `default`: a finite number >= 0 for numbers
  (every numeric config argument is a size, count or rate; 0 = not given)."""
  kind = type(default)
  try:
    typed = kind(value)
  except ValueError:
    what = {int: "an integer", float: "a number"}.get(kind, kind.__name__)
    raise errors.ConfigError(
        f"config argument {key}={value!r} is not {what}; expected "
        f"{key}=<{what}>") from None
  if kind in (int, float) and not (math.isfinite(typed) and typed >= 0):
    raise errors.ConfigError(
        f"config argument {key}={value!r}; expected a number >= 0")
  if kind is str and key.endswith("_dir") and not typed:
    raise errors.ConfigError(
        f"config argument {key}= is empty; expected {key}=<a folder>")
  return typed


def no_args(arg: str | None) -> None:
  """For a config file that takes no argument: refuses one in one line."""
  if arg:
    raise errors.ConfigError(
        f"config argument {arg!r}: this config file takes no arguments; "
        "expected the file alone (override fields with --config.a.b=value)")


def set_frames(config: ml_collections.ConfigDict, num_frames: int) -> None:
  """T for data and model, with the strides of MotionAGFormer (T // 3, T)."""
  config.data.num_frames = num_frames
  config.data.train_stride = max(1, num_frames // 3)
  config.data.test_stride = num_frames
  config.model.max_frames = num_frames


def small_cpu_model(config: ml_collections.ConfigDict, depth: int,
                    dim: int) -> None:
  """A small OPFormer (4 heads, MLP ratio 2) with the options that compute
  the same function faster at this size on a CPU (T = 27, batch 16 on 2
  cores: 1.42 s -> 1.03 s per step): the depth loop unrolled (no stacked
  saved activations; the memory does not matter at this size) and the part
  attention as one block-masked attention instead of thousands of tiny
  5 x 5 products in the backward pass."""
  m = config.model
  m.depth, m.dim, m.num_heads, m.mlp_ratio = depth, dim, 4, 2.0
  m.loop_impl = "unrolled"
  m.part_attention = "masked_dense"


def cpu_recipe(config: ml_collections.ConfigDict, budget: str = "2h",
               lr: float = 2e-3, frames: int = 5, depth: int = 2,
               dim: int = 64) -> None:
  """The CPU recipe (`configs/h36m.py:cpu`, `configs/mocap.py:cpu`): the
  settings for a wall-clock budget on a 2-core CPU (docs/training.md, "The
  CPU recipe", has the measured comparison with the old settings).

  A small model (depth 2, dim 64, T = 5) whose batch of 16 costs about a
  tenth of the old recipe's (depth 4, T = 27, ~1 s there), so it buys ~10x
  the updates; in a search at equal time budgets on CMU mocap
  (docs/training.md, "The CPU recipe") those updates beat a longer clip, a
  deeper or wider model and other batch sizes. Noisier 2D (real detections) may favour a longer clip:
  `frames=27,depth=4,lr=1e-3` is the old recipe. One update per batch (no
  accumulation: a short run needs updates, not big batches); AdamW 2e-3
  with a warm-up and cosine decay over exactly the updates the budget buys;
  validation on a fixed subset while training and the full protocol on the
  best step at the end; `small_cpu_model`.
  """
  set_frames(config, frames)
  small_cpu_model(config, depth=depth, dim=dim)
  t = config.train
  t.batch_size, t.accum_steps = 16, 1
  t.budget = budget
  t.budget_evals = 8
  t.eval_max_clips = 512
  t.log_every = 100
  t.checkpoint_every = 500
  o = config.optim
  o.name, o.lr, o.weight_decay, o.grad_clip = "adamw", lr, 0.01, 1.0
  o.schedule, o.warmup, o.lr_floor = "cosine", 0.05, 0.01
  config.loss.w_vel = 1.0
  config.eval.batch_size = 32
