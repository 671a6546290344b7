r"""Is a model's output usable on real detections that have no 3D truth?

  python tools/measure_wild.py                       # the bundled model
  python tools/measure_wild.py --model=DIR           # a pretrained.save folder
  python tools/measure_wild.py --workdir=runs/x      # a training run

Lifts each --input (default: the two real Detectron2 COCO-17 files of
../shared/data/wild2d) as `python -m opformer_jax.infer` does (flip TTA, 50 %
window overlap, mm from the default stature) and prints, per file and over
all, bone-length variation, left/right symmetry, foot skating and joint
acceleration (`opformer_jax.infer.plausibility` defines them).
"""

import json

from absl import flags

from opformer_jax import cli

_INPUT = flags.DEFINE_list("input", None, "Keypoint files (infer formats; "
                           "default: the wild2d files of the shared data).")
_MODEL = flags.DEFINE_string("model", None, "A pretrained.save folder.")
_WORKDIR = flags.DEFINE_string("workdir", None, "A training run.")
_JSON = flags.DEFINE_string("json", None, "Also write the figures here.")


def main(argv):
  del argv
  from opformer_jax import fileio  # pylint: disable=g-import-not-at-top
  from opformer_jax.infer import lift  # pylint: disable=g-import-not-at-top
  from opformer_jax.infer import plausibility  # pylint: disable=g-import-not-at-top
  paths = _INPUT.value or plausibility.wild2d_paths()
  for path in paths:
    lift.check_input(path, lift.Options(render="none"))
  if _JSON.value:
    fileio.check_output_file(_JSON.value, "--json")
  model, config, name = lift.load_model(workdir=_WORKDIR.value,
                                        model_dir=_MODEL.value)
  res = plausibility.measure(model, config, paths)
  print(f"{name}: mm; skating mm/frame, accel mm/frame^2")
  print(plausibility.table(res))
  if _JSON.value:
    fileio.write_text(_JSON.value, json.dumps({"model": name, **res},
                                              indent=1))


if __name__ == "__main__":
  cli.run(main)
