r"""Reproduces the default model shipped in `opformer_jax/pretrained/default`.

  python tools/train_default_model.py --mocap_dir=../shared/data/mocap \
      --workdir=runs/default_model --export=opformer_jax/pretrained/default

One command, deterministic for a given machine: (1) writes the wild-view
data (`opformer_jax.data.wild_views`, seed --data_seed) into
WORKDIR/data/{train,test_clean,test_noisy}.npz, or reuses files written by
the same generator settings; (2) trains `configs/default_model.py` (a fixed
number of optimizer updates; resumes an interrupted run); (3) scores the
last step on the held-out CMU validation split with clean and with noisy
COCO-derived 2D; (4) with --export, writes the model, its config and a model
card (`opformer_jax.pretrained.save`). Any config field can be overridden
(--config.train.max_updates=200 for a quick try).
"""

import json
import os
import platform
import time

from absl import flags
from ml_collections import config_flags

from opformer_jax import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(__file__), "..", "configs",
                           "default_model.py"),
    "Config file (default configs/default_model.py).", lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "Training directory.")
_MOCAP_DIR = flags.DEFINE_string(
    "mocap_dir", "../shared/data/mocap", "Folder with the CMU joint npz "
    "files (cmu_gait.npz, cmu_actions.npz, cmu_subject131.npz).")
_DATA_DIR = flags.DEFINE_string("data_dir", None,
                                "Where the data go (default WORKDIR/data).")
_DATA_SEED = flags.DEFINE_integer("data_seed", 0, "Seed of the views.")
_VIEWS = flags.DEFINE_integer("views", 8, "Cameras per training sequence.")
_EXPORT = flags.DEFINE_string("export", None,
                              "Folder to export the trained model to.")
_PREPARE_ONLY = flags.DEFINE_bool("prepare_only", False,
                                  "Only write the data.")
MOCAP_FILES = ("cmu_gait.npz", "cmu_actions.npz", "cmu_subject131.npz")


def prepare(data_dir, mocap_dir, seed, views):
  """Writes (or reuses) the three splits; returns {split: path}."""
  from opformer_jax.data import dataset
  from opformer_jax.data import mocap
  from opformer_jax.data import wild_views
  inputs = [os.path.join(mocap_dir, f) for f in MOCAP_FILES]
  stamp = os.path.join(data_dir, "generator.json")
  want = {"version": wild_views.GENERATOR_VERSION, "seed": seed,
          "views": views, "inputs": list(MOCAP_FILES)}
  paths = {s: os.path.join(data_dir, f"{s}.npz")
           for s in ("train", "test_clean", "test_noisy")}
  if os.path.exists(stamp) and all(map(os.path.exists, paths.values())):
    with open(stamp) as f:
      if json.load(f) == want:
        return paths
  t0 = time.time()
  items = mocap.read_inputs(inputs)
  paths = wild_views.convert_util.write_splits(
      wild_views.make_splits(items, seed, views=views, progress=True),
      data_dir)
  from opformer_jax import fileio
  fileio.write_text(stamp, json.dumps(want))
  for p in paths.values():
    print(wild_views.convert_util.describe(p))
  print(f"data written in {time.time() - t0:.0f} s")
  del dataset
  return paths


def score(config, workdir, paths):
  """The last step on test_clean and test_noisy -> (model, step, results)."""
  from opformer_jax import checkpointing
  from opformer_jax.evaluate import protocols
  from opformer_jax.evaluate import run as evaluate
  model, step, _ = checkpointing.restore_model(config, workdir, "latest")
  predict_fn = evaluate.make_predict_fn(model, config)
  results = {}
  for split in ("test_clean", "test_noisy"):
    res = evaluate.run_protocol(predict_fn, config, paths[split])
    proto = protocols.for_config(config, evaluate.load_test_data(
        config, paths[split]))
    print(f"{split}: " + " ".join(proto.summary(res)))
    r = res["default"]
    results[split] = {
        "mpjpe_action_avg": r["action_avg"]["mpjpe"],
        "mpjpe_frame_avg": r["frame_avg"]["mpjpe"],
        "p_mpjpe_action_avg": r["action_avg"]["p_mpjpe"],
        "p_mpjpe_frame_avg": r["frame_avg"]["p_mpjpe"],
        "num_frames": r["num_frames"]}
  return model, step, results


def card_text(config, step, results, minutes):
  """The MODEL_CARD.md of the exported model."""
  m, t = config.model, config.data.num_frames
  rows = "\n".join(
      f"| {split.replace('test_', '')} | {r['mpjpe_action_avg']:.1f} | "
      f"{r['mpjpe_frame_avg']:.1f} | {r['p_mpjpe_action_avg']:.1f} | "
      f"{r['num_frames']} |" for split, r in results.items())
  return f"""# opformer-jax default model

OPFormer, depth {m.depth}, dim {m.dim}, T = {t}, {step} optimizer updates
(batch {config.train.batch_size}), image-space (2.5D) output; trained in
{minutes:.0f} min on {platform.processor() or platform.machine()}
({os.cpu_count()} CPUs) by `python tools/train_default_model.py`.

Data: the CMU Graphics Lab motion capture (../shared/data/mocap) and the
built-in synthetic motion, filmed by random phone / tripod cameras with
COCO-17 detector-like 2D (`opformer_jax/data/wild_views.py`). The CMU
validation split (subjects 16 and 35, cmu_actions/test) is held out.

The data used in this project was obtained from mocap.cs.cmu.edu.
The database was created with funding from NSF EIA-0196217.

Held-out CMU validation split, random video cameras, flip TTA (mm):

| 2D input | MPJPE (action-avg) | MPJPE (frame-avg) | P-MPJPE | frames |
|---|---:|---:|---:|---:|
{rows}

Not trained on: Human3.6M or any other licence-restricted set, real
detector outputs, children, people seen lying down or upside down,
several interacting people, objects; its numbers say nothing about
Human3.6M.
"""


def main(argv):
  del argv
  import ml_collections
  from opformer_jax import pretrained
  from opformer_jax import train as train_lib
  workdir = os.path.abspath(_WORKDIR.value)
  data_dir = _DATA_DIR.value or os.path.join(workdir, "data")
  paths = prepare(data_dir, _MOCAP_DIR.value, _DATA_SEED.value, _VIEWS.value)
  if _PREPARE_ONLY.value:
    return
  config = ml_collections.ConfigDict(_CONFIG.value.to_dict())
  config.data.train_path = paths["train"]
  config.data.test_path = paths["test_noisy"]
  config.train.final_eval = False
  t0 = time.time()
  cli.start_jax(workdir)
  train_lib.train_and_evaluate(config, workdir)
  minutes = (time.time() - t0) / 60
  model, step, results = score(config, workdir, paths)
  with open(os.path.join(workdir, "default_model_results.json"), "w") as f:
    json.dump({"step": step, "train_minutes": minutes, **results}, f,
              indent=1)
  if _EXPORT.value:
    config.data.train_path = None
    config.data.test_path = None
    out = pretrained.save(model, config, _EXPORT.value,
                          card=card_text(config, step, results, minutes))
    print("exported " + ", ".join(out))


if __name__ == "__main__":
  cli.reexec_with_allocator()
  flags.mark_flag_as_required("workdir")
  cli.run(main)
