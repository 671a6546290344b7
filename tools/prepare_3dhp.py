r"""Converts MPI-INF-3DHP (MotionAGFormer / P-STMO npz files) to the project
NPZ schema: <output_dir>/{train,test}.npz, layout mpi17, GT 2D.

  python tools/prepare_3dhp.py --train=data_train_3dhp.npz \
      --test=data_test_3dhp.npz --output_dir=data/3dhp

The 3D is univ_annot3 (camera-frame mm, universal skeleton); the test file's
`valid` mask is kept for scoring. A camera or test sequence without 2D or 3D
is left out with a warning naming it and counted in the summary; --strict
makes that an error. Nothing is written unless the whole conversion succeeds.
"""

from absl import flags

from opformer_jax import cli
from opformer_jax import errors
from opformer_jax import fileio
from opformer_jax.data import convert_util
from opformer_jax.data import mpi3dhp

_TRAIN = flags.DEFINE_string("train", None, "data_train_3dhp.npz.")
_TEST = flags.DEFINE_string("test", None, "data_test_3dhp.npz.")
_STRICT = flags.DEFINE_bool(
    "strict", False, "Stop at the first sequence without 2D or 3D instead of "
    "leaving it out.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None,
                                  "Where train.npz and test.npz go.")
flags.mark_flag_as_required("output_dir")


def main(argv):
  del argv
  fileio.check_output_dir(_OUTPUT_DIR.value)
  if not (_TRAIN.value or _TEST.value):
    raise errors.UserError(errors.bad_input(
        "--train, --test", "neither given", "data_train_3dhp.npz and/or "
        "data_test_3dhp.npz"))
  convert_util.run_cli(lambda gaps: mpi3dhp.convert(
      _OUTPUT_DIR.value, _TRAIN.value, _TEST.value, progress=True,
      gaps=gaps), _STRICT.value)


if __name__ == "__main__":
  cli.run(main)
