r"""OPFormer on MPI-INF-3DHP (paper Table 3: T = 81, GT 2D).

Prepare MotionAGFormer / P-STMO's npz files once:

  python tools/prepare_3dhp.py --train=data_train_3dhp.npz \
      --test=data_test_3dhp.npz --output_dir=data/3dhp

Train + evaluate:

  python -m opformer_jax.train --config=configs/mpi_inf_3dhp.py:data_dir=data/3dhp \
      --workdir=runs/3dhp_t81

MPI-17 joint order (root = pelvis 14, parts re-mapped, skeleton.py); labels
are camera-frame mm normalised as pixels (MotionAGFormer); train clips of 81
frames with stride 9; test: one 81-frame window centred on every valid
frame (edge padding), only the centre frame scored, flip TTA; PCK@150 and
AUC over 14 joints, MPJPE over 17, pooled over TS1-TS6.

Hardware and runtime: a GPU (depth 8, dim 512 at T = 81 is ~157 forward
GFLOPs per clip). Expected (paper): PCK 98.7, AUC 85.3, MPJPE 15.9 mm.

Arguments: data_dir=..., depth=N, dim=N, tiny.
"""

from opformer_jax import config_lib


def get_config(arg=None):
  a = config_lib.parse_arg(arg, data_dir="", depth=8, dim=512, tiny=False)
  config = config_lib.base_config()
  config.data.name = "3dhp"
  config_lib.set_frames(config, 81)
  config.data.train_stride = 9
  config.data.label_space = "camera"
  config.data.input_2d = "gt"
  if a.data_dir:
    config.data.train_path = f"{a.data_dir}/train.npz"
    config.data.test_path = f"{a.data_dir}/test.npz"
  config.model.layout = "mpi17"
  config.model.depth, config.model.dim = a.depth, a.dim
  if a.tiny:
    config.model.depth, config.model.dim, config.model.num_heads = 2, 64, 4
  return config
