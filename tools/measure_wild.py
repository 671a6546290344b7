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
import os

from absl import flags

from opformer_jax import cli

_DATA = os.environ.get("OPFORMER_SHARED_DATA", os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data"))
_INPUT = flags.DEFINE_list("input", [
    os.path.join(_DATA, "wild2d", f) for f in (
        "short_clips_detectron2_coco17.npz",
        "exercises_detectron2_coco17.npz")], "Keypoint files (infer formats).")
_MODEL = flags.DEFINE_string("model", None, "A pretrained.save folder.")
_WORKDIR = flags.DEFINE_string("workdir", None, "A training run.")
_JSON = flags.DEFINE_string("json", None, "Also write the figures here.")


def main(argv):
  del argv
  from opformer_jax import fileio  # pylint: disable=g-import-not-at-top
  from opformer_jax.infer import lift  # pylint: disable=g-import-not-at-top
  from opformer_jax.infer import plausibility  # pylint: disable=g-import-not-at-top
  for path in _INPUT.value:
    lift.check_input(path, lift.Options(render="none"))
  if _JSON.value:
    fileio.check_output_file(_JSON.value, "--json")
  model, config, name = lift.load_model(workdir=_WORKDIR.value,
                                        model_dir=_MODEL.value)
  res = plausibility.measure(model, config, _INPUT.value)
  print(f"{name}: mm; skating mm/frame, accel mm/frame^2")
  print(plausibility.table(res))
  if _JSON.value:
    fileio.write_text(_JSON.value, json.dumps({"model": name, **res},
                                              indent=1))


if __name__ == "__main__":
  cli.run(main)
