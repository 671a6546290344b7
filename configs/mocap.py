r"""OPFormer on your own motion capture (here: the CMU mocap of ../shared/data).

Prepare once (2D = projection through the Human3.6M calibrations, with
detector-like noise; validation = CMU subjects 16 and 35 plus the test/
sequences of cmu_actions):

  python tools/prepare_mocap.py \
      --inputs=../shared/data/mocap/cmu_gait.npz,../shared/data/mocap/cmu_actions.npz,../shared/data/mocap/cmu_subject131.npz \
      --cameras=h36m --noise_px=2 --output_dir=data/mocap

Train + evaluate (small model, CPU):

  python -m opformer_jax.train --config=configs/mocap.py:data_dir=data/mocap \
      --workdir=runs/mocap

Labels are camera-frame millimetres (`label_space='camera'`): the 2.5D
image-space label is off by centimetres for subjects far from the optical
axis, which mocap placed around the capture volume often is.

Hardware and runtime: the default (depth 4, dim 64, T = 27, 4 epochs of 8.9k
clips, 2,232 batches of 16) takes about 50 minutes on a 2-core Intel Xeon @
2.00 GHz (1.38 s per batch, 2026-12-01) and reaches 67.3 mm
action-averaged (60.7 mm frame-averaged, P-MPJPE 53.7 mm) on the validation
split prepared as above (measured; no paper number exists for this data).

CPU recipe for a wall-clock budget (`config_lib.cpu_recipe`; docs/training.md,
"The CPU recipe", compares it with the default above):

  python -m opformer_jax.train \
      --config=configs/mocap.py:data_dir=data/mocap,cpu,budget=2h \
      --workdir=runs/mocap_cpu

Measured on a 2-core AMD EPYC (Zen 4) on the validation split above, at
budgets that buy there what 15 min and 1 h buy on a 2-core Intel Xeon @
2.00 GHz (its batches take ~0.45 of that Xeon's): budget=7m -> 8,258
updates, 44.2 mm action-averaged (39.8 frame-averaged, P-MPJPE 35.0);
budget=27m -> 26,794 updates, 36.1 mm (33.3 frame-averaged, P-MPJPE 28.6).
The first recipe (frames=27,depth=4,lr=1e-3) on that Xeon: 112.3 mm at 15m,
54.4 mm at 1h, 42.3 mm at 2h; the default settings above 123.0 mm in 15
minutes and 52.4 mm given budget=2h (docs/training.md, "The CPU recipe").

Arguments: data_dir=..., frames=N, depth=N, dim=N, epochs=N, paper (the
paper's depth 8 / dim 512 / T 243, for a GPU), cpu (the CPU recipe) with
budget=2h|90m|5000u and lr=X (frames, depth and dim set the recipe's size
too).
"""

from opformer_jax import config_lib


def get_config(arg=None):
  # 0 = not given: 27 / 4 / 64 and Adam 1e-3, or the CPU recipe's own.
  a = config_lib.parse_arg(arg, data_dir="", frames=0, depth=0, dim=0,
                           epochs=4, paper=False, cpu=False, budget="2h",
                           lr=0.0)
  config = config_lib.base_config()
  config.data.name = "mocap"
  config.data.label_space = "camera"
  if a.data_dir:
    config.data.train_path = f"{a.data_dir}/train.npz"
    config.data.test_path = f"{a.data_dir}/test.npz"
  m = config.model
  if a.paper:
    config_lib.set_frames(config, 243)
  elif a.cpu:
    given = {k: a[k] for k in ("lr", "frames", "depth", "dim") if a[k]}
    config_lib.cpu_recipe(config, a.budget, **given)
  else:
    config_lib.set_frames(config, a.frames or 27)
    m.depth, m.dim, m.num_heads = a.depth or 4, a.dim or 64, 4
    t = config.train
    t.batch_size, t.accum_steps = 16, 2
    t.num_epochs = a.epochs
    t.log_every = 50
    t.checkpoint_every = 500
    config.optim.lr = a.lr or 1e-3
    config.optim.lr_decay = 0.9
    config.loss.w_vel = 1.0   # as the quickstart: a short run
    config.eval.batch_size = 32
  return config
