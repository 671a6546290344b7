"""`python -m opformer_jax.evaluate`: restore a checkpoint and score it.

  python -m opformer_jax.evaluate --config=configs/h36m.py --workdir=runs/h36m \
      [--step=best|latest|N]
"""

from absl import flags

from opformer_jax import cli


def main():
  cli.reexec_with_allocator()
  config, workdir = cli.define_config_and_workdir(
      "The training workdir to evaluate.")
  step = flags.DEFINE_string(
      "step", "best", "'best' (lowest validation MPJPE), 'latest' or a step "
      "number.")

  def run(argv):
    del argv
    from opformer_jax.evaluate import run as run_lib  # pylint: disable=g-import-not-at-top
    cli.start_jax(workdir.value, lambda: run_lib.check_inputs(
        config.value, workdir.value, step.value))
    run_lib.evaluate(config.value, workdir.value, step.value)
  cli.run(run)


if __name__ == "__main__":
  main()
