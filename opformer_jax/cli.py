"""The thin `python -m` layer: absl flags, logging, multi-host start-up.

Only this module defines flags, and only when an entry point runs, so every
library function stays importable and callable from tests and notebooks.
"""

import logging
import sys

from absl import app
from absl import flags
from ml_collections import config_flags


def _define_common(workdir_help: str):
  config = config_flags.DEFINE_config_file(
      "config", None, "Config file, e.g. configs/h36m.py or "
      "configs/h36m.py:t81,gt. Override fields with --config.a.b=value.",
      lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, workdir_help)
  flags.mark_flags_as_required(["config", "workdir"])
  return config, workdir


def _start():
  import jax  # pylint: disable=g-import-not-at-top
  from opformer_jax import parallel  # pylint: disable=g-import-not-at-top
  logging.getLogger().setLevel(logging.INFO)
  parallel.initialize_distributed()
  logging.info("JAX %s on %s: process %d of %d, %d local device(s)",
               jax.__version__, jax.default_backend(), jax.process_index(),
               jax.process_count(), jax.local_device_count())


def run(fn, kind: str):
  """Defines the flags of entry point `kind` and runs `fn` under absl."""
  if kind == "workdir":   # train
    config, workdir = _define_common(
        "Directory for checkpoints, logs and results; an existing run there "
        "is resumed.")

    def main(argv):
      del argv
      _start()
      fn(config.value, workdir.value)
  elif kind == "evaluate":
    config, workdir = _define_common("The training workdir to evaluate.")
    step = flags.DEFINE_string(
        "step", "best", "'best' (lowest validation MPJPE), 'latest' or a "
        "step number.")

    def main(argv):
      del argv
      _start()
      fn(config.value, workdir.value, step.value)
  else:
    raise ValueError(kind)
  app.run(main, argv=sys.argv)
