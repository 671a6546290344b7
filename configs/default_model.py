r"""The default model shipped in the package (`opformer_jax/pretrained/default`).

Trained only on licence-clean motion: the CMU motion capture of
../shared/data/mocap plus the built-in synthetic motion, filmed by random
phone / tripod cameras with COCO-17 detector-like 2D (`data/wild_views.py`),
image-space (2.5D) labels, so that `python -m opformer_jax.infer` without
--workdir works on users' detector files. Reproduce it (data, training,
evaluation on the held-out CMU validation split with clean and noisy 2D,
export) with one command on a 2-core CPU:

  python tools/train_default_model.py --mocap_dir=../shared/data/mocap \
      --workdir=runs/default_model --export=opformer_jax/pretrained/default

or train on prepared files directly:

  python tools/train_default_model.py --mocap_dir=... --data_dir=data/wild \
      --prepare_only
  python -m opformer_jax.train \
      --config=configs/default_model.py:data_dir=data/wild \
      --workdir=runs/default_model

Size: T and width are chosen for real use: flip-TTA inference must exceed 300
frames/s on a 2-core CPU, and the fixed number of optimizer updates
(`updates=N`) must train in under 90 minutes there. Runs are deterministic
for a given seed and machine (fixed data seed, fixed update count).

Arguments: data_dir=..., frames=N, depth=N, dim=N, updates=N, test=clean|noisy.
"""

from opformer_jax import config_lib


def get_config(arg=None):
  a = config_lib.parse_arg(arg, data_dir="", frames=27, depth=4, dim=64,
                           updates=3000, test="noisy")
  config = config_lib.base_config()
  config.data.name = "wild_views"
  # Image-space labels (px at the root depth, MotionBERT's 2.5D): with
  # random focal lengths and distances only these are predictable from 2D,
  # and infer's pose3d_px / pose3d_mm assume them.
  config.data.label_space = "image"
  if a.data_dir:
    config.data.train_path = f"{a.data_dir}/train.npz"
    config.data.test_path = f"{a.data_dir}/test_{a.test}.npz"
  config_lib.set_frames(config, a.frames)
  config_lib.small_cpu_model(config, a.depth, a.dim)
  t = config.train
  t.batch_size, t.accum_steps = 16, 1
  # A fixed number of optimizer updates, not epochs: the same run whatever
  # the data size; epochs only set the lr decay period below.
  t.max_updates = a.updates
  t.num_epochs = 1000
  t.log_every = 100
  t.eval_every_epochs = 1.0
  t.eval_max_clips = 256       # fast validation while training
  t.checkpoint_every = 500
  o = config.optim
  o.name = "adamw"
  o.lr = 1e-3
  o.weight_decay = 0.01
  # Staircase decay per epoch (1,677 updates of the default data): the
  # second half of the run takes half steps.
  o.lr_decay = 0.5
  o.grad_clip = 1.0
  config.loss.w_vel = 1.0      # a light velocity term for a short run
  config.eval.batch_size = 32
  config.eval.figures = False
  return config
