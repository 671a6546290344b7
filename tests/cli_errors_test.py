"""Bad input at every entry point: one line, exit 2, nothing written (#35).

Each table row is a command line and the words its error line must hold.
The rows of one entry point run in forked children of one warm process
(`tests/entry_runner.py`), in a folder that holds good inputs, bad inputs
and earlier outputs; after all rows every file there must be byte-identical
and no file or folder may have appeared (no output folder, no log.txt).
"""

import hashlib
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import conftest

REPO = conftest.REPO
CONFIGS = REPO / "configs"
QUICK = f"--config={CONFIGS / 'quickstart.py'}"
HELP_HINT = "(run with --helpshort for the flags of"

# --output / --workdir / --output_dir values: "new" must not be created,
# "earlier" (an earlier run's outputs) must not change.
NEW, EARLIER = "new_out", "earlier_out"
WALK = ["--input=walk.npz", f"--output={EARLIER}"]
# A run whose only step, saved without an integrity record (an older
# version), holds a NaN weight (`_write_nan_run`).
NAN_RUN = [f"nan_run{os.sep}checkpoints{os.sep}1{os.sep}model: weights hold "
           "NaN/inf values (1 of ", "checkpoint step 1 is damaged",
           "no other kept step"]

INFER = [
    (WALK + ["--image_size=abc"], ["--image_size=abc", "WIDTH,HEIGHT"]),
    (WALK + ["--image_size=1000"], ["--image_size=1000", "WIDTH,HEIGHT"]),
    (WALK + ["--overlap=1"], ["--overlap=1", "[0, 1)"]),
    (["--input=walk.npz", "--output=a_file"], ["a_file", "existing file"]),
    (["--input=huge.npz", f"--output={NEW}"],
     ["huge.npz", "track 'walk'", "1e+30 px", "pixel coordinates"]),
    (WALK + ["--focal_px=-5"], ["--focal_px=-5", "> 0"]),
    (WALK + ["--focal_px=0"], ["--focal_px=0", "> 0"]),
    (WALK + ["--subject_height_mm=-1"], ["--subject_height_mm=-1", "mm"]),
    (WALK + ["--fps=-30"], ["--fps=-30", "> 0"]),
    (WALK + ["--fps=nan"], ["--fps=nan", "> 0"]),
    (WALK + ["--render_fps=0"], ["--render_fps=0", "> 0"]),
    (WALK + ["--render_max_frames=0"], ["--render_max_frames=0"]),
    (["--input=text.npz", f"--output={NEW}"],
     ["text.npz", "text file", "'hello world'", "NumPy"]),
    (["--input=nothere.npz", f"--output={NEW}"], ["nothere.npz", "not found"]),
    (["--input=noimage.npz", f"--output={NEW}"],
     ["noimage.npz", "no image size", "--image_size"]),
    (WALK + ["--workdir=no_run"], ["no_run", "checkpoints"]),
    (["--input=walk.npz", f"--output={NEW}", "--workdir=nan_run"], NAN_RUN),
    (WALK + ["--model=no_model"], ["--model=no_model", "no such folder"]),
    (["--input=clip.mp4", f"--output={NEW}", "--start=3", "--end=2"],
     ["--start=3 --end=2", "start < end"]),
    (WALK + ["--nosuchflag=1"], ["nosuchflag"]),
    # Video input (with the [video] extra: ffmpeg's verdict; without, the
    # line names the extra).
    (["--input=clip.mp4", f"--output={NEW}"], ["clip.mp4"]),
    (["--input=no_images", f"--output={NEW}"], ["no_images"]),
    (["--input=walk.npz", f"--output={NEW}", "--image_size=1000,1000",
      "--bvh", "--format=openpose"], ["walk.npz"]),
]

TRAIN = [
    ([f"--config={CONFIGS / 'mocap.py'}:data_dir=/does/not/exist"],
     ["/does/not/exist/train.npz", "no such data file", "docs/data.md"]),
    ([f"{QUICK}:bogus_arg"], ["quickstart.py:bogus_arg", "takes no arguments"]),
    ([f"--config={CONFIGS / 'mocap.py'}:data_dri=x"],
     ["'data_dri' is unknown", "data_dir"]),
    ([f"--config={CONFIGS / 'h36m.py'}:t82"], ["'t82' is unknown", "t81"]),
    ([f"--config={CONFIGS / 'mocap.py'}:data_dir=.",
      "--config.data.train_path=text.npz", "--config.data.test_path=text.npz"],
     ["text.npz", "text file", "NumPy"]),
    ([QUICK, "--config.model.dpeth=3"], ["dpeth", "'depth'"]),
    ([QUICK, "--config.optim.lr=fast"], ["--config.optim.lr=fast"]),
    ([QUICK, "--config.model.attention_impl=flash"],
     ["attention_impl='flash'", "einsum"]),
]

EVALUATE = [
    ([QUICK, "--workdir=no_run"], ["no_run", "checkpoints"]),
    (["--config=nan_run_config.py", "--workdir=nan_run"], NAN_RUN),
    ([QUICK, f"--workdir={EARLIER}"], [EARLIER, "checkpoints"]),
    (["--workdir=no_run"], ["--config"]),
]

PREPARE_MOCAP = [
    (["--inputs=nothere.bvh", f"--output_dir={NEW}"], ["nothere.bvh"]),
    (["--inputs=walk.npz", "--output_dir=a_file"], ["a_file", "existing file"]),
    (["--inputs=walk.npz", f"--output_dir={NEW}", "--fps=-1"], ["--fps=-1"]),
    (["--inputs=walk.npz", f"--output_dir={NEW}", "--noise_px=nan"],
     ["--noise_px=nan"]),
    (["--inputs=walk.npz", f"--output_dir={NEW}", "--num_random_cameras=0"],
     ["--num_random_cameras=0"]),
    (["--inputs=text.npz", f"--output_dir={NEW}"], ["text.npz", "text file"]),
]

PREPARE_H36M = [
    (["--layout=videopose3d", "--input=nothere.npz", f"--output_dir={NEW}"],
     ["nothere.npz"]),
    (["--layout=videopose3d", "--input=text.npz", f"--output_dir={NEW}"],
     ["text.npz", "text file"]),
    (["--layout=motionbert_pkl", "--input=walk.npz", "--output_dir=a_file"],
     ["a_file", "existing file"]),
    (["--layout=martinez", "--input=no_folder", f"--output_dir={NEW}"],
     ["no_folder"]),
]

PREPARE_3DHP = [
    (["--train=nothere.npz", f"--output_dir={NEW}"], ["nothere.npz"]),
    (["--train=text.npz", f"--output_dir={NEW}"], ["text.npz", "text file"]),
]

BENCHMARK = [
    ([QUICK, "--batch=0"], ["--batch=0"]),
    ([QUICK, "--steps=0"], ["--steps=0"]),
    ([QUICK, "--json=a_file/x.json"], ["--json=a_file/x.json", "a_file is a file"]),
    ([QUICK, f"--json={EARLIER}"], [f"--json={EARLIER}", "is a folder"]),
]

BENCHMARK_VIDEO = [
    (["--frames=0"], ["--frames=0", ">= 1"]),
    (["--size=abc"], ["--size=abc", "W,H"]),
    (["--size=1279,720"], ["--size=1279,720", "even"]),
]

MEASURE_BVH = [
    (["--input=text.npz"], ["text.npz", "text file"]),
    (["--input=noimage.npz"], ["noimage.npz", "no image size"]),
    (["--input=walk.npz", "--output=a_file"], ["a_file", "existing file"]),
    (["--input=walk.npz", "--model=no_model"], ["--model=no_model"]),
]

RENDER_FRAMES = [
    (["--input=text.npz", "--output=x.png"], ["text.npz", "text file"]),
    (["--input=walk.npz", "--output=x.png"], ["walk.npz", "lacks", "infer"]),
    (["--input=walk.npz", f"--output={EARLIER}"], ["is a folder"]),
    (["--input=walk.npz", "--output=x.png", "--frames=0"], ["--frames=0"]),
]

MEASURE_TRAJECTORY = [
    (["--inputs=walk.npz", "--fps=0"], ["--fps=0"]),
    (["--inputs=nothere.npz"], ["nothere.npz"]),
    (["--inputs=text.npz"], ["text.npz", "text file"]),
]

MEASURE_WILD = [
    (["--input=text.npz"], ["text.npz", "text file"]),
    (["--input=nothere.npz"], ["nothere.npz"]),
    (["--input=walk.npz", "--model=no_model"], ["--model=no_model"]),
    (["--input=walk.npz", f"--json={EARLIER}"], [f"--json={EARLIER}",
                                                 "is a folder"]),
]

MEASURE_CONVENTIONS = [
    (["--hip_up=20,abc"], ["--hip_up=20,abc", "expected numbers"]),
    ([f"--json={EARLIER}"], [f"--json={EARLIER}", "is a folder"]),
    (["--model=no_model"], ["no_model"]),
    (["--mocap_dir=no_images"], ["--mocap_dir=no_images",
                                 "missing cmu_gait.npz"]),
]

TRAIN_DEFAULT_MODEL = [
    ([f"--workdir={NEW}", "--mocap_dir=no_images", "--wild="],
     ["--mocap_dir=no_images", "missing cmu_gait.npz"]),
    ([f"--workdir={NEW}", "--baseline=no_model"], ["no_model"]),
    ([f"--workdir={NEW}", "--wild=text.npz"], ["text.npz", "text file"]),
    (["--workdir=a_file"], ["a_file", "existing file"]),
    ([f"--workdir={NEW}", "--export=a_file"], ["a_file", "existing file"]),
    ([f"--data_dir={NEW}"], ["--workdir", "--prepare_only"]),
]

ENTRIES = {
    "infer": ("-m opformer_jax.infer", "opformer_jax.infer.lift", INFER),
    "train": ("-m opformer_jax.train", "opformer_jax.train",
              [(args + [f"--workdir={NEW if i % 2 else EARLIER}"], needles)
               for i, (args, needles) in enumerate(TRAIN)]
              + [([QUICK, "--workdir=a_file"], ["a_file", "existing file"])]),
    "evaluate": ("-m opformer_jax.evaluate", "opformer_jax.evaluate.run",
                 EVALUATE),
    "prepare_mocap": (str(REPO / "tools/prepare_mocap.py"),
                      "opformer_jax.data.mocap", PREPARE_MOCAP),
    "prepare_h36m": (str(REPO / "tools/prepare_h36m.py"),
                     "opformer_jax.data.dataset", PREPARE_H36M),
    "prepare_3dhp": (str(REPO / "tools/prepare_3dhp.py"),
                     "opformer_jax.data.dataset", PREPARE_3DHP),
    "benchmark": (str(REPO / "tools/benchmark.py"), "opformer_jax.train",
                  BENCHMARK),
    "benchmark_video": (str(REPO / "tools/benchmark_video.py"),
                        "opformer_jax.cli", BENCHMARK_VIDEO),
    "measure_bvh": (str(REPO / "tools/measure_bvh.py"),
                    "opformer_jax.infer.lift", MEASURE_BVH),
    "render_frames": (str(REPO / "tools/render_frames.py"),
                      "opformer_jax.infer.render", RENDER_FRAMES),
    "measure_trajectory": (str(REPO / "tools/measure_trajectory.py"),
                           "opformer_jax.infer.lift", MEASURE_TRAJECTORY),
    "measure_wild": (str(REPO / "tools/measure_wild.py"),
                     "opformer_jax.infer.plausibility", MEASURE_WILD),
    "measure_conventions": (str(REPO / "tools/measure_conventions.py"),
                            "opformer_jax.evaluate.run", MEASURE_CONVENTIONS),
    "train_default_model": (str(REPO / "tools/train_default_model.py"),
                            "opformer_jax.infer.lift", TRAIN_DEFAULT_MODEL),
}


def _write_inputs(site: pathlib.Path) -> None:
  """Good and bad inputs, and an earlier run's outputs, in `site`."""
  kp = np.random.default_rng(0).uniform(200, 800, (30, 17, 3)).astype("f4")
  kp[..., 2] = 1
  size = np.array([1000, 1000])
  np.savez(site / "walk.npz", walk=kp, image_size=size)
  np.savez(site / "noimage.npz", walk=kp)
  huge = kp.copy()
  huge[..., :2] = 1e30
  np.savez(site / "huge.npz", walk=huge, image_size=size)
  (site / "text.npz").write_text("hello world\n")
  (site / "a_file").write_text("not a folder\n")
  (site / "clip.mp4").write_bytes(b"\x00" * 100)
  (site / "no_images").mkdir()
  earlier = site / EARLIER
  earlier.mkdir()
  (earlier / "walk.npz").write_bytes(b"an earlier run's output")
  (earlier / "log.txt").write_text("an earlier run's log\n")


def _write_nan_run(site: pathlib.Path) -> None:
  """`site/nan_run`: a tiny model's only step, one weight NaN, saved without
  files.json; its config (and test split) for `evaluate --config`."""
  import jax  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from opformer_jax import checkpointing, model as model_lib  # pylint: disable=g-import-not-at-top
  from opformer_jax import optimizer as optimizer_lib  # pylint: disable=g-import-not-at-top
  from checkpointing_test import tiny_config  # pylint: disable=g-import-not-at-top
  conftest.write_toy_split(site / "nan_test.npz", num_seqs=2, length=20)
  c = tiny_config(site)
  c.data.test_path = str(site / "nan_test.npz")
  model = model_lib.build_model(c.model, c.seed)
  params = nnx.state(model, nnx.Param)
  first = jax.tree.leaves(params)[0]
  nnx.update(model, jax.tree.map(
      lambda p: p.at[(0,) * p.ndim].set(np.nan) if p is first else p,
      params))
  opt = nnx.Optimizer(model, optimizer_lib.make(c, 10), wrt=nnx.Param)
  mngr = checkpointing.manager(str(site / "nan_run"))
  checkpointing.save(mngr, 1, model=model, optimizer=opt, data_iter=None,
                     config=c, meta={"step": 1})
  mngr.wait_until_finished()
  os.remove(site / "nan_run" / "checkpoints" / "1" / "files.json")
  (site / "nan_run_config.py").write_text(
      "import ml_collections\n"
      f"def get_config():\n  return ml_collections.ConfigDict({c.to_dict()!r})"
      "\n")


def _snapshot(site: pathlib.Path) -> dict:
  return {str(p.relative_to(site)): (hashlib.sha256(p.read_bytes()).hexdigest()
                                     if p.is_file() else "dir")
          for p in sorted(site.rglob("*"))}


@pytest.fixture(name="runs", scope="module")
def _runs(tmp_path_factory):
  """{entry: (site snapshot before, after, [(code, stderr), ...])}."""
  root = tmp_path_factory.mktemp("cli_errors")
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tools")]))
  results = {}
  for name, (entry, preload, table) in ENTRIES.items():
    site, errs = root / name, root / f"{name}.err"
    site.mkdir()
    errs.mkdir()
    _write_inputs(site)
    if name in ("evaluate", "infer"):
      _write_nan_run(site)
    spec = root / f"{name}.json"
    spec.write_text(json.dumps({"entry": entry, "preload": [preload],
                                "cases": [args for args, _ in table],
                                "out": str(errs)}))
    before = _snapshot(site)
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests/entry_runner.py"), str(spec)],
        cwd=site, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    codes = json.loads(proc.stdout.strip().splitlines()[-1])
    stderrs = [(errs / f"{i}.err").read_text() for i in range(len(table))]
    results[name] = (before, _snapshot(site), list(zip(codes, stderrs)))
  return results


def _error_line(stderr: str) -> str:
  """The one `error:` line; only absl's usage hint may follow it."""
  assert "Traceback" not in stderr, stderr
  lines = [l for l in stderr.splitlines() if l.strip()]
  found = [l for l in lines if l.startswith("error:")]
  assert len(found) == 1, stderr
  after = lines[lines.index(found[0]) + 1:]
  assert all(l.startswith(HELP_HINT) for l in after), stderr
  return found[0]


CASES = [(name, i) for name, (_, _, table) in ENTRIES.items()
         for i in range(len(table))]


@pytest.mark.parametrize(
    "name, i", CASES,
    ids=[f"{n}:{' '.join(ENTRIES[n][2][i][0])}"[:90] for n, i in CASES])
def test_bad_input_is_one_line_exit_2(runs, name, i):
  code, stderr = runs[name][2][i]
  assert code == 2, stderr[-3000:]
  line = _error_line(stderr)
  for needle in ENTRIES[name][2][i][1]:
    assert needle in line, line


@pytest.mark.parametrize("name", list(ENTRIES))
def test_nothing_is_written_or_changed(runs, name):
  before, after, _ = runs[name]
  assert after == before


def test_error_line_rejects_tracebacks_and_second_errors():
  with pytest.raises(AssertionError):
    _error_line("Traceback (most recent call last):\nerror: x")
  with pytest.raises(AssertionError):
    _error_line("error: a\nerror: b")
  with pytest.raises(AssertionError):
    _error_line("error: a\nmore text")
  assert _error_line("W0000 a warning\nerror: a\n"
                     f"{HELP_HINT} x.py)") == "error: a"
