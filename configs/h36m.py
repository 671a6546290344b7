r"""OPFormer on Human3.6M (paper Tables 1, 2, 4, 5, 6).

Prepare the data once (any of the three layouts; docs/data.md):

  python tools/prepare_h36m.py --layout=motionbert_pkl \
      --input=h36m_sh_conf_cam_source_final.pkl --output_dir=data/h36m_sh

Train + evaluate (the paper's row: SH detections with confidence, T = 243):

  python -m opformer_jax.train --config=configs/h36m.py:data_dir=data/h36m_sh \
      --workdir=runs/h36m_t243

Arguments after the colon (comma-separated):
  t27 | t81 | t243   clip length T (train stride T // 3, test stride T).
  gt                 GT-2D input (projected 3D GT, confidence 1), Table 2;
                     evaluation reports both GT-2D conventions.
  variant=...        Table 4: temporal_part, temporal_spatial,
                     independent_parts, full (default).
  depth=N, dim=N     Table 5.
  origin=...         Table 6: hip (default), spine, thorax.
  per_part           separate weights per part (the paper shares them).
  motionbert_loss    MotionBERT's loss and optimizer (AdamW 0.01,
                     + 0.5 N-MPJPE) instead of the paper's eq. 16 + Adam.
  tiny               depth 2, dim 64 (a smoke test, not a result).
  cpu[,budget=2h]    the CPU recipe for a wall-clock budget on a 2-core
                     CPU (`config_lib.cpu_recipe`; docs/training.md,
                     "The CPU recipe"), e.g. configs/h36m.py:data_dir=...,cpu,budget=2h;
                     with cpu, t27 / frames=, depth=, dim= and lr= change
                     the recipe's T, size and learning rate
                     (no Human3.6M here; on CMU mocap through its cameras,
                     configs/mocap.py:cpu, 27 min on a 2-core EPYC, about
                     1 h of a 2-core Xeon: 36.1 mm)

Hardware and expected runtime: the paper row (depth 8, dim 512, T = 243,
61.1 M parameters, 472 forward GFLOPs per clip) needs a GPU: 120 epochs of
~17.7k clips, one epoch ~25 PFLOP of training. Estimated ~3 minutes per
epoch on one H100 at 160 TFLOP/s (not measured here; `tools/benchmark.py`
measures yours); measured on a 2-core CPU: 42.4 hours per epoch.

Expected MPJPE (paper, action-averaged, MotionBERT protocol): T = 243 SH
detections 37.6 mm (P-MPJPE 31.8 mm); GT 2D 15.2 mm. The paper's numbers
for T = 27 / 81 and the ablation rows (Tables 4-6) were not available to us;
runs of those rows are ours to report.
"""

from opformer_jax import config_lib


def get_config(arg=None):
  a = config_lib.parse_arg(
      arg, data_dir="", frames=0, gt=False, variant="full", depth=0,
      dim=0, origin="hip", per_part=False, motionbert_loss=False,
      tiny=False, cpu=False, budget="2h", lr=0.0,
      _aliases={"t27": {"frames": 27}, "t81": {"frames": 81},
                "t243": {"frames": 243}})
  # 0 = not given: the paper's T / depth / dim / lr, or the CPU recipe's.
  paper = dict(frames=243, depth=8, dim=512)
  size = {k: a[k] or paper[k] for k in paper}
  config = config_lib.base_config()
  config.data.name = "h36m"
  config_lib.set_frames(config, size["frames"])
  if a.data_dir:
    config.data.train_path = f"{a.data_dir}/train.npz"
    config.data.test_path = f"{a.data_dir}/test.npz"
  if a.gt:
    config.data.input_2d = "gt"
  m = config.model
  m.variant, m.origin = a.variant, a.origin
  m.depth, m.dim = size["depth"], size["dim"]
  m.part_weights = "per_part" if a.per_part else "shared"
  if a.motionbert_loss:
    config.optim.name, config.optim.weight_decay = "adamw", 0.01
    config.loss.w_nmpjpe = 0.5
  if a.tiny:
    m.depth, m.dim, m.num_heads = 2, 64, 4
  if a.cpu:
    given = {k: a[k] for k in (*paper, "lr") if a[k]}
    config_lib.cpu_recipe(config, a.budget, **given)
  elif a.lr:
    config.optim.lr = a.lr
  return config
