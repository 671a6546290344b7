r"""Reproduces the default model shipped in `opformer_jax/pretrained/default`.

  python tools/train_default_model.py --mocap_dir=../shared/data/mocap \
      --workdir=runs/default_model --export=opformer_jax/pretrained/default

One command, deterministic for a given machine: (1) writes the wild-view
data (`opformer_jax.data.wild_views`, seed --data_seed) into
WORKDIR/data/{train,test_*}.npz, or reuses files written by
the same generator settings; (2) trains `configs/default_model.py` (a fixed
number of optimizer updates; resumes an interrupted run); (3) scores the
last step on the held-out CMU validation split with clean and with noisy
COCO-derived 2D; (4) with --export, writes the model, its config and a model
card (`opformer_jax.pretrained.save`). Any config field can be overridden
(--config.train.max_updates=200 for a quick try).
"""

import json
import os
import time

from absl import flags
from ml_collections import config_flags

from opformer_jax import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(__file__), "..", "configs",
                           "default_model.py"),
    "Config file (default configs/default_model.py).", lock_config=False)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Training directory (not needed with --prepare_only "
    "and --data_dir).")
_MOCAP_DIR = flags.DEFINE_string(
    "mocap_dir", "../shared/data/mocap", "Folder with the CMU joint npz "
    "files (cmu_gait.npz, cmu_actions.npz, cmu_subject131.npz).")
_DATA_DIR = flags.DEFINE_string("data_dir", None,
                                "Where the data go (default WORKDIR/data).")
_DATA_SEED = flags.DEFINE_integer("data_seed", 0, "Seed of the views.")
_VIEWS = flags.DEFINE_integer("views", 16, "Cameras per training sequence.")
_EXPORT = flags.DEFINE_string("export", None,
                              "Folder to export the trained model to.")
_PREPARE_ONLY = flags.DEFINE_bool("prepare_only", False,
                                  "Only write the data.")
_BASELINE = flags.DEFINE_multi_string(
    "baseline", [], "A pretrained.save folder (e.g. the previous default "
    "model, from git history) scored beside the new model in the card, as "
    "DIR (labelled 'previous') or LABEL=DIR; may be repeated.")
_WILD = flags.DEFINE_list(
    "wild", None, "Real detection files scored without 3D truth "
    "(infer.plausibility; default: the wild2d files of the shared data, "
    "$OPFORMER_SHARED_DATA); --wild= for none.")


def prepare(data_dir, mocap_dir, seed, views):
  """Writes (or reuses) the splits; returns ({split: path}, whether
  they were written now)."""
  from opformer_jax import fileio
  from opformer_jax.data import convert_util
  from opformer_jax.data import mocap
  from opformer_jax.data import wild_views
  stamp = os.path.join(data_dir, "generator.json")
  want = {"version": wild_views.GENERATOR_VERSION, "seed": seed,
          "views": views, "inputs": list(wild_views.MOCAP_FILES)}
  paths = {s: os.path.join(data_dir, f"{s}.npz")
           for s in ("train",) + wild_views.VAL_SPLITS}
  if os.path.exists(stamp) and all(map(os.path.exists, paths.values())):
    with open(stamp) as f:
      if json.load(f) == want:
        return paths, False
  t0 = time.time()
  items = mocap.read_inputs(wild_views.mocap_inputs(mocap_dir))
  paths = convert_util.write_splits(
      wild_views.make_splits(items, seed, views=views, progress=True),
      data_dir)
  fileio.write_text(stamp, json.dumps(want))
  for p in paths.values():
    print(convert_util.describe(p))
  print(f"data written in {time.time() - t0:.0f} s")
  return paths, True


def _models(results):
  """[(label, figures)] of the new model and the baselines, card order."""
  return [("this model", results["new"])] + list(
      results.get("baselines", {}).items())


def _accuracy_rows(results, splits=("test_clean", "test_noisy")):
  """Markdown rows: split x model of the held-out figures."""
  rows = []
  for split in splits:
    for label, res in _models(results):
      if split in res:
        r = res[split]
        rows.append(
            f"| {split.replace('test_', '')} | {label} | "
            f"{r['mpjpe_action_avg']:.1f} | {r['mpjpe_frame_avg']:.1f} | "
            f"{r['p_mpjpe_action_avg']:.1f} | "
            f"{r['accel_error_action_avg']:.2f} | {r['num_frames']} |")
  return "\n".join(rows)


def _hips(convention):
  """'hips 40 mm higher, 30 mm wider' for a `wild_views.CONVENTIONS` name."""
  from opformer_jax.data import wild_views
  up, out, _ = wild_views.CONVENTIONS[convention].hip_mm
  return f"hips {up:g} mm higher, {out:g} mm wider"


def _mix_text():
  """The training mix of 2D conventions in words (`wild_views.MIX_*`)."""
  from opformer_jax.data import wild_views
  (up0, up1), (out0, out1), _ = wild_views.MIX_HIP_MM
  return (f"hips {up0:g} to {up1:g} mm up and {out0:g} to {out1:g} mm out of "
          f"the joint centres, {wild_views.MIX_HALPE:.0%} of the views "
          "Halpe-26 with head top and neck")


def _convention_splits(results):
  """The noisy held-out splits, joint centres first, then each convention."""
  return [s for s in results["new"] if s.startswith("test_noisy")]


def _wild_rows(results):
  """Markdown rows: file x model of the plausibility figures."""
  from opformer_jax.infer import plausibility
  rows = []
  for file in results["new"].get("wild", {}):
    for label, res in _models(results):
      if "wild" in res:
        f = res["wild"][file]
        rows.append(f"| {file} | {label} | {f['frames']} | " + " | ".join(
            f"{f[k]:.1f}" for k in plausibility.FIGURES) + " |")
  return "\n".join(rows)


def card_text(config, step, results, timings):
  """The MODEL_CARD.md of the exported model; `results` as `main` makes
  them ({'new': ..., 'baseline': ...})."""
  m, t = config.model, config.data.num_frames
  wild = _wild_rows(results)
  wild = f"""
Real detections without 3D truth (`../shared/data/wild2d`, Detectron2
COCO-17; `opformer_jax/infer/plausibility.py`): bone-length variation around
each bone's median (mm), left/right limb bone difference (mm), ankle speed
where the 2D foot stands still (mm/frame), mean joint acceleration
(mm/frame^2); lower is better for all four:

| file | model | frames | bones | symmetry | skating | accel |
|---|---|---:|---:|---:|---:|---:|
{wild}
""" if wild else ""
  return f"""# opformer-jax default model

OPFormer (depth {m.depth}, dim {m.dim}, {m.num_heads} heads, T = {t}) lifting
H36M-17 2D keypoints (derived from COCO-17 detections) to root-relative 3D in
image space (pixels at the root depth; `infer` scales to mm with
--subject_height_mm). {step:,} optimizer updates of batch
{config.train.batch_size} (AdamW, lr {config.optim.lr:g}, {config.optim.schedule} schedule,
seed {config.seed}).

Reproduce (deterministic on a given machine; `--baseline=DIR` scores another
saved model beside it, as below):

    python tools/train_default_model.py --mocap_dir=../shared/data/mocap \\
        --workdir=runs/default_model --export=opformer_jax/pretrained/default

Measured: data {timings.get('data_s', float('nan')):.0f} s, training
{timings.get('train_s', float('nan')) / 60:.0f} min, on {cli.cpu_name()}
({os.cpu_count()} cores).

Training data: the CMU Graphics Lab Motion Capture Database (subjects other
than 16 and 35, cmu_actions/train, subject 131) and the package's procedural
synthetic motion, filmed by random virtual phone and tripod cameras (image
sizes 640x480 to 3840x2160 incl. portrait, 30-80 degree field of view,
0.3-2.5 m high, any yaw, subject anywhere in the frame, handheld shake and
panning) at 25-60 fps, with the joints a COCO-17 detector gives (face points
built on the mocap head; Hip, Spine, Thorax, Head derived as `infer` derives
them) and detector-like noise: size-proportional jitter, outliers, left/right
swaps, dropped joints and missed frames (confidence 0, interpolated as
`infer` does), confidences or none (`opformer_jax/data/wild_views.py`);
each view places hips, head and neck as a random 2D convention would
({_mix_text()}: `wild_views.random_convention`).

Licence of the data: CMU Graphics Lab Motion Capture Database, free for
research and commercial use, no resale of the data. The data used in this
project was obtained from mocap.cs.cmu.edu. The database was created with
funding from NSF EIA-0196217.

Held-out CMU validation split (subjects 16 and 35, cmu_actions/test)
through 2 random cameras per sequence, flip TTA, root-relative, mm
(acceleration error mm/frame^2), scored in the same run as the previous
default model (depth 4, T = 27, 3,000 updates; its weights are in git
history) where it is listed, and under their labels the other models given
by --baseline:

| 2D input (COCO-17-derived) | model | MPJPE action-avg | MPJPE frame-avg | P-MPJPE | accel error | frames |
|---|---|---:|---:|---:|---:|---:|
{_accuracy_rows(results)}

clean = exact projections, every joint in view, confidence 1; noisy = jitter
of 1 % of the person's height (x per-joint scale), outliers, swaps, drops.
Both with the hips at the mocap's hip joint centres.

2D conventions: the same noisy views with hips, head and neck where each
detector family puts them (modelled offsets, `wild_views.CONVENTIONS`;
docs/default_model.md, "2D conventions"): coco17 = Detectron2 / MMPose /
AlphaPose COCO-17 and OpenPose BODY_25 ({_hips("coco17")}),
halpe26 = AlphaPose / MMPose Halpe-26 (also its head top and neck),
blazepose = the video path's BlazePose ({_hips("blazepose")}):

| 2D input | model | MPJPE action-avg | MPJPE frame-avg | P-MPJPE | accel error | frames |
|---|---|---:|---:|---:|---:|---:|
{_accuracy_rows(results, _convention_splits(results))}
{wild}
Not trained on: Human3.6M, MPI-INF-3DHP or any other licence-restricted data;
real detector outputs (the 2D noise is simulated); children or unusual body
proportions; lying, crawling or upside-down poses, or motion absent from the
CMU data (e.g. sports-specific or dance moves); several people or
interactions with objects; cameras with strong lens distortion. Its numbers
on simulated views say nothing about Human3.6M or real videos.
"""


def _timings(workdir, **new):
  """Reads WORKDIR/timings.json and records `new` phases (seconds) in it."""
  from opformer_jax import fileio
  path = os.path.join(workdir, "timings.json")
  old = {}
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
  if new:
    old.update(new)
    fileio.write_text(path, json.dumps(old))
  return old


def _is_done(config, workdir):
  """Whether the run in `workdir` has reached the updates it was planned
  for (a `Nu` budget, or the plan its checkpoints record)."""
  from opformer_jax import checkpointing
  from opformer_jax import train as train_lib
  if not os.path.isdir(checkpointing.checkpoint_dir(workdir)):
    return False
  mngr = checkpointing.manager(workdir, read_only=True)
  kind, value = train_lib.parse_budget(config.train.budget) or ("", 0)
  if kind == "updates":
    planned = int(value)
  else:
    plan = checkpointing.latest_meta(mngr).get("plan")
    planned = plan["total_updates"] if plan else None
  latest = mngr.latest_step()
  return planned is not None and latest == planned * config.train.accum_steps


def _score_all(model, config, paths, wild):
  """Held-out splits and, when `wild` names files, plausibility figures."""
  from opformer_jax.infer import plausibility
  from opformer_jax.evaluate import run as evaluate
  out = evaluate.score_files(model, config,
                             {s: p for s, p in paths.items() if s != "train"})
  if wild:
    out["wild"] = plausibility.measure(model, config, wild)
    print(plausibility.table(out["wild"]))
  return out


def _wild_paths():
  from opformer_jax.infer import plausibility
  if _WILD.present:
    return [p for p in _WILD.value or [] if p]
  return plausibility.wild2d_paths()


def _data_dir():
  """--data_dir, or WORKDIR/data."""
  return _DATA_DIR.value or os.path.join(_WORKDIR.value, "data")


def check_flags():
  """One line (`errors.UserError`) for a bad flag, before anything is
  written: the folders, the mocap files (when the data must be made), the
  baseline model and the real detection files.

  Returns:
    (the wild files to score, {label: loaded baseline (model, config)}).
  """
  from opformer_jax import errors
  from opformer_jax import fileio
  from opformer_jax import pretrained
  from opformer_jax.data import wild_views
  from opformer_jax.infer import lift
  if not _WORKDIR.value and not (_PREPARE_ONLY.value and _DATA_DIR.value):
    raise errors.UserError("--workdir: missing; expected a training folder "
                           "(or --prepare_only with --data_dir)")
  if _WORKDIR.value:
    fileio.check_output_dir(_WORKDIR.value, "--workdir")
  if _DATA_DIR.value:
    fileio.check_output_dir(_DATA_DIR.value, "--data_dir")
  if _EXPORT.value:
    fileio.check_output_dir(_EXPORT.value, "--export")
  baselines = {}
  for i, value in enumerate(_BASELINE.value):
    label, _, path = value.rpartition("=")
    label = label or ("previous" if i == 0 else os.path.basename(
        os.path.normpath(path)))
    baselines[label] = pretrained.load(path)
  wild = [] if _PREPARE_ONLY.value else _wild_paths()   # not scored then
  for path in wild:
    lift.check_input(path, lift.Options(render="none"))
  if not os.path.exists(os.path.join(_data_dir(), "generator.json")):
    wild_views.mocap_inputs(_MOCAP_DIR.value)
  return wild, baselines


def main(argv):
  del argv
  wild, baselines = check_flags()
  import ml_collections
  from opformer_jax import checkpointing
  from opformer_jax import fileio
  from opformer_jax import pretrained
  from opformer_jax import train as train_lib
  data_dir = _data_dir()
  t0 = time.time()
  paths, generated = prepare(data_dir, _MOCAP_DIR.value, _DATA_SEED.value,
                             _VIEWS.value)
  if generated:   # beside the data, so a run on prepared data reads it too
    _timings(data_dir, data_s=time.time() - t0)
  if _PREPARE_ONLY.value:
    return
  workdir = os.path.abspath(_WORKDIR.value)
  os.makedirs(workdir, exist_ok=True)
  config = ml_collections.ConfigDict(_CONFIG.value.to_dict())
  config.data.train_path = paths["train"]
  config.data.test_path = paths["test_noisy"]
  config.train.final_eval = False
  cli.start_jax(workdir)
  done = _is_done(config, workdir)
  t0 = time.time()
  train_lib.train_and_evaluate(config, workdir)
  if not done:   # a resumed run adds to the time already recorded
    _timings(workdir, train_s=time.time() - t0 + _timings(workdir).get(
        "train_s", 0.0))
  model, step, _ = checkpointing.restore_model(config, workdir, "latest")
  timings = {**_timings(workdir), **_timings(data_dir)}
  results = {"new": _score_all(model, config, paths, wild)}
  if baselines:
    results["baselines"] = {label: _score_all(*b, paths, wild)
                            for label, b in baselines.items()}
  fileio.write_text(os.path.join(workdir, "default_model_results.json"),
                    json.dumps({"step": step, **timings, **results},
                               indent=1))
  if _EXPORT.value:
    config.data.train_path = None
    config.data.test_path = None
    out = pretrained.save(model, config, _EXPORT.value, card=card_text(
        config, step, results, timings))
    print("exported " + ", ".join(out))


if __name__ == "__main__":
  cli.reexec_with_allocator()
  cli.run(main)
