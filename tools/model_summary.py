r"""Prints an OPFormer config's parameter count and forward FLOPs.

  python tools/model_summary.py --config=configs/h36m.py
  python tools/model_summary.py --config=configs/h36m.py:t27 --xla

FLOPs follow PyTorch's `flop_counter` convention (matmuls only, 1 MAC = 2
FLOPs) so they compare with MotionBERT / MotionAGFormer numbers; `--xla`
adds XLA's own count of the compiled forward (all ops, padded part tokens).
"""

from absl import flags
from ml_collections import config_flags

from opformer_jax import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.",
                                          lock_config=True)
_FRAMES = flags.DEFINE_integer("frames", None,
                               "Clip length T (default: config.data).")
_XLA = flags.DEFINE_bool("xla", False, "Also compile and print XLA's count.")


def main(argv):
  del argv
  import jax
  import jax.numpy as jnp
  from flax import nnx
  from opformer_jax import model as model_lib

  cfg = _CONFIG.value
  t = _FRAMES.value or cfg.data.num_frames
  model = model_lib.abstract_model(cfg.model)
  params = model_lib.count_params(model)
  flops = model_lib.flops_per_clip(cfg.model, t)
  m = cfg.model
  print(f"OPFormer variant={m.variant} depth={m.depth} dim={m.dim} "
        f"heads={m.num_heads} mlp_ratio={m.mlp_ratio} origin={m.origin} "
        f"part_weights={m.part_weights} T={t}")
  print(f"parameters: {params:,} ({params / 1e6:.2f} M)")
  print(f"forward GFLOPs per clip: {flops['total'] / 1e9:.2f} "
        f"(= {flops['total'] / 2e9:.2f} GMACs)")
  print(f"forward GFLOPs per frame: {flops['per_frame'] / 1e9:.3f}")
  print(f"train step GFLOPs per clip (3 x forward): "
        f"{3 * flops['total'] / 1e9:.2f}")
  for k, v in flops.items():
    if k not in ("total", "per_frame"):
      print(f"  {k:10s} {v / 1e9:9.3f} GFLOPs ({100 * v / flops['total']:.1f} %)")
  if _XLA.value:
    graphdef, state = nnx.split(model)
    fn = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    x = jax.ShapeDtypeStruct((1, t, 17, 3), jnp.float32)
    cost = fn.lower(state, x).compile().cost_analysis()
    print(f"XLA forward GFLOPs per clip (all ops, padded parts): "
          f"{cost['flops'] / 1e9:.2f}")


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  cli.run(main)
