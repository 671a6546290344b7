r"""How much does a 2D detector's joint placement cost a model?

  python tools/measure_conventions.py                    # the bundled model
  python tools/measure_conventions.py --model=DIR --model=old=DIR2

Films the held-out CMU validation sequences of the default model's data
(`wild_views.validation_splits`, same seed: the same cameras, frames and
noise as its test_noisy split) once per 2D convention, each placing hips,
head and neck its own way (`wild_views.CONVENTIONS`: the mocap's joint
centres, COCO-17 / OpenPose BODY_25, Halpe-26, BlazePose), plus hips moved
straight up by each --hip_up (mm), and prints each model's MPJPE
(action-averaged, flip TTA) per placement with its cost against the joint
centres.
"""

import json
import os
import tempfile

from absl import flags

from opformer_jax import cli

_MODEL = flags.DEFINE_multi_string(
    "model", [], "A pretrained.save folder, DIR or LABEL=DIR; may be "
    "repeated (default: the bundled default model).")
_MOCAP_DIR = flags.DEFINE_string(
    "mocap_dir", "../shared/data/mocap", "Folder with the CMU joint npz "
    "files (cmu_gait.npz, cmu_actions.npz, cmu_subject131.npz).")
_HIP_UP = flags.DEFINE_list("hip_up", ["-20", "20", "40", "60", "80"],
                            "Extra placements: hips this many mm up.")
_SEED = flags.DEFINE_integer("seed", 0, "Data seed (train_default_model's "
                             "--data_seed).")
_JSON = flags.DEFINE_string("json", None, "Also write the figures here.")


def placements(hip_up):
  """{split name: Convention}: the named conventions, then the hip sweep."""
  from opformer_jax.data import wild_views
  out = {f"test_noisy_{c}": wild_views.CONVENTIONS[c]
         for c in wild_views.VAL_CONVENTIONS}
  for up in hip_up:
    out[f"test_noisy_hips_up_{up:g}mm"] = wild_views.Convention(
        hip_mm=(up, 0.0, 0.0))
  return out


def write_views(data_dir, inputs, seed, hip_up, min_frames):
  """Writes one noisy split per placement (and the joint-centre one) of the
  mocap files `inputs`; returns {split: path}."""
  from opformer_jax.data import convert_util
  from opformer_jax.data import mocap
  from opformer_jax.data import wild_views
  items = mocap.read_inputs(inputs)
  splits = wild_views.validation_splits(items, seed, min_frames=min_frames,
                                        conventions=placements(hip_up))
  del splits["test_clean"]
  return convert_util.write_splits(
      {s: convert_util.pack(seqs, layout="h36m17", source="held-out CMU "
                            "views", input_2d="detected")
       for s, seqs in splits.items()}, data_dir)


def table(results):
  """Markdown: placement x model, MPJPE and its cost (mm)."""
  labels = list(results)
  head = "| 2D placement | " + " | ".join(
      f"{m} MPJPE | cost" for m in labels) + " |"
  rows = [head, "|---|" + "---:|---:|" * len(labels)]
  for split in results[labels[0]]:
    cells = []
    for m in labels:
      r, base = results[m][split], results[m]["test_noisy"]
      cost = r["mpjpe_action_avg"] - base["mpjpe_action_avg"]
      cells.append(f"{r['mpjpe_action_avg']:.1f} | {cost:+.1f}")
    name = split.replace("test_noisy_", "").replace("test_noisy",
                                                     "joint_centres")
    rows.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(rows)


def _models():
  from opformer_jax import pretrained
  out = {}
  for value in _MODEL.value or [""]:
    label, _, path = value.rpartition("=")
    model, config = pretrained.load(path or None)
    out[label or os.path.basename(os.path.normpath(path or "default"))] = (
        model, config)
  return out


def main(argv):
  del argv
  from opformer_jax import errors
  from opformer_jax import fileio
  from opformer_jax.data import wild_views
  from opformer_jax.evaluate import run as evaluate
  try:
    hip_up = [float(v) for v in _HIP_UP.value]
  except ValueError as e:
    raise errors.UserError(f"--hip_up={','.join(_HIP_UP.value)}: expected "
                           "numbers (mm)") from e
  if _JSON.value:
    fileio.check_output_file(_JSON.value, "--json")
  models = _models()
  inputs = wild_views.mocap_inputs(_MOCAP_DIR.value)
  # 27: the default model data's shortest run, so the views are its own.
  min_frames = max([27] + [c.data.num_frames for _, c in models.values()])
  results = {}
  with tempfile.TemporaryDirectory() as tmp:
    paths = write_views(tmp, inputs, _SEED.value, hip_up, min_frames)
    paths = {"test_noisy": paths.pop("test_noisy"), **paths}
    for label, (model, config) in models.items():
      results[label] = evaluate.score_files(model, config, paths, echo=None)
  print(table(results))
  if _JSON.value:
    fileio.write_text(_JSON.value, json.dumps(results, indent=1))


if __name__ == "__main__":
  cli.run(main)
