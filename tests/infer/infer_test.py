"""End-to-end inference on real detections and on a trained checkpoint."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from opformer_jax import config_lib
from opformer_jax import errors
from opformer_jax.formats import bvh
from opformer_jax.infer import lift as infer
from opformer_jax.infer import trajectory
from opformer_jax import model as model_lib
from opformer_jax import pretrained
from opformer_jax import skeleton

REPO = pathlib.Path(__file__).resolve().parents[2]


def tiny_config(layout="h36m17"):
  c = config_lib.base_config()
  config_lib.set_frames(c, 27)
  c.model.update(depth=1, dim=32, num_heads=2, layout=layout)
  return c


def test_real_detections_run_end_to_end(shared_data, tmp_path):
  config = tiny_config()
  model = model_lib.build_model(config.model)
  path = shared_data / "wild2d" / "short_clips_detectron2_coco17.npz"
  opts = infer.Options(render="gif", render_max_frames=6, batch_size=4)
  out = infer.infer_file(model, config, str(path), str(tmp_path), opts)
  assert len(out["tracks"]) == 5 and out["frames"] == 1925
  res = np.load(tmp_path / "m1.npz")
  meta = json.loads(str(res["meta"]))
  assert res["pose3d"].shape == (113, 17, 3) == res["pose3d_px"].shape
  assert meta["image_size"] == [1280, 720] and meta["layout"] == "h36m17"
  assert np.isfinite(res["pose3d"]).all()
  np.testing.assert_allclose(res["pose3d"][:, 0], 0, atol=1e-6)  # root
  np.testing.assert_allclose(res["pose3d_px"], res["pose3d"] * 640,
                             rtol=1e-5, atol=1e-5)
  js = json.load(open(tmp_path / "m1.json"))
  np.testing.assert_allclose(js["pose3d"], res["pose3d"], atol=1e-6)
  gif = Image.open(tmp_path / "m1.gif")
  assert gif.n_frames == 6


def test_mm_outputs_trajectory_and_bvh(tmp_path):
  config = tiny_config()
  model = model_lib.build_model(config.model)
  rng = np.random.default_rng(0)
  kp = rng.uniform(100, 900, (40, 17, 2)).astype(np.float32)
  np.save(tmp_path / "track.npy", kp)
  opts = infer.Options(render="none", image_size=(1000, 1000),
                       subject_height_mm=1800.0, focal_px=1500.0, bvh=True)
  out = infer.infer_file(model, config, str(tmp_path / "track.npy"),
                         str(tmp_path / "out"), opts)
  res = np.load(tmp_path / "out" / "track.npz")
  meta = json.loads(str(res["meta"]))
  # The stature sets the scale, frame by frame (a 0.5 s running median of
  # the heights: 15 frames at the default 30 fps): head to ankles 0.9 x
  # 1800 mm.
  scale = trajectory.metric_scale(res["pose3d_px"], "h36m17", 1800.0, 15)
  np.testing.assert_allclose(res["pose3d_mm"],
                             res["pose3d_px"] * scale[:, None, None],
                             rtol=1e-5)
  # The root path: on the 2D root's rays through the image centre, at the
  # depth `trajectory` gives this pose with this focal length.
  root = res["root_cam_mm"]
  assert root.shape == (40, 3) and (root[:, 2] > 0).all()
  np.testing.assert_allclose(root[:, :2] / root[:, 2:] * 1500 + 500,
                             kp[:, 0], rtol=1e-4)
  want = trajectory.root_trajectory(
      res["pose3d_mm"], res["kp2d"], res["conf"], focal_px=1500.0,
      principal_px=(500, 500), window=15)       # 0.5 s at the default 30
  np.testing.assert_allclose(root, want, rtol=1e-4)
  assert meta["focal_px"] == 1500.0 and meta["scale"] == "stature 1800 mm"
  # The BVH reproduces the camera-frame joints (cm, y up, z to the camera)
  # up to the bone-length changes of the lifted (here: untrained) pose.
  assert sorted(out["tracks"]["track"]) == sorted(
      str(tmp_path / "out" / f"track.{e}") for e in ("npz", "json", "bvh"))
  parsed = bvh.parse_bvh(str(tmp_path / "out" / "track.bvh"))
  back = bvh.bvh_positions(parsed)[:, [parsed.joints.index(n)
                                       for n in skeleton.H36M.joints]]
  joints = bvh.camera_to_bvh(res["pose3d_mm"] + root[:, None]) / 10
  np.testing.assert_allclose(back[:, 0], joints[:, 0], atol=1e-4)
  assert parsed.fps == 30.0


def test_default_focal_and_stature(tmp_path):
  config = tiny_config()
  model = model_lib.build_model(config.model)
  kp = np.random.default_rng(2).uniform(0, 640, (12, 17, 2)).astype("f4")
  np.save(tmp_path / "t.npy", kp)
  infer.infer_file(model, config, str(tmp_path / "t.npy"), str(tmp_path),
                   infer.Options(render="none", image_size=(640, 480)))
  res = np.load(tmp_path / "t.npz")
  meta = json.loads(str(res["meta"]))
  assert meta["focal_px"] == pytest.approx(
      320 / np.tan(np.radians(trajectory.DEFAULT_HFOV_DEG / 2)))
  assert meta["scale"] == "stature 1700 mm (default)"
  scale = trajectory.metric_scale(res["pose3d_px"], "h36m17", 1700.0, 15)
  np.testing.assert_allclose(res["pose3d_mm"],
                             res["pose3d_px"] * scale[:, None, None],
                             rtol=1e-5)


def test_mpi_model_gets_its_joint_order(tmp_path):
  config = tiny_config("mpi17")
  model = model_lib.build_model(config.model)
  kp = np.random.default_rng(1).uniform(0, 500, (30, 17, 2)).astype("f4")
  np.save(tmp_path / "t.npy", kp)
  infer.infer_file(model, config, str(tmp_path / "t.npy"), str(tmp_path),
                   infer.Options(render="none", image_size=(500, 500)))
  res = np.load(tmp_path / "t.npz")
  # The 2D written back is in MPI order: MPI joint H36M_TO_MPI[j] = H36M j.
  np.testing.assert_allclose(res["kp2d"][:, list(skeleton.H36M_TO_MPI)], kp)
  np.testing.assert_allclose(res["pose3d"][:, 14], 0, atol=1e-6)  # pelvis


def test_bad_input_gets_a_clear_error(tmp_path):
  config = tiny_config()
  model = model_lib.build_model(config.model)
  (tmp_path / "x.txt").write_text("hello")
  with pytest.raises(Exception, match="x.txt"):
    infer.infer_file(model, config, str(tmp_path / "x.txt"), str(tmp_path))
  np.save(tmp_path / "nan.npy", np.full((10, 17, 2), np.nan, np.float32))
  with pytest.raises(Exception, match="nan.npy"):
    infer.infer_file(model, config, str(tmp_path / "nan.npy"), str(tmp_path),
                     infer.Options(image_size=(100, 100), render="none"))


def test_cli_restores_a_trained_checkpoint(tmp_path):
  import conftest
  from opformer_jax import train
  data = tmp_path / "data"
  conftest.write_toy_split(data / "train.npz", num_seqs=2, length=30)
  conftest.write_toy_split(data / "test.npz", num_seqs=1, length=30, seed=1)
  cfg_file = tmp_path / "cfg.py"
  cfg_file.write_text(f"""
from opformer_jax import config_lib
def get_config(arg=None):
  c = config_lib.base_config()
  c.data.name = "toy"
  c.data.train_path = {str(data / 'train.npz')!r}
  c.data.test_path = {str(data / 'test.npz')!r}
  config_lib.set_frames(c, 9)
  c.model.update(depth=1, dim=32, num_heads=2)
  c.train.update(batch_size=4, accum_steps=1, max_updates=2,
                 eval_every_epochs=-1, final_eval=False, compilation_cache="")
  return c
""")
  sys.path.insert(0, str(tmp_path))
  try:
    import cfg  # pylint: disable=import-outside-toplevel
    train.train_and_evaluate(cfg.get_config(), str(tmp_path / "run"))
  finally:
    sys.path.remove(str(tmp_path))
  kp = np.random.default_rng(0).uniform(0, 1000, (20, 17, 3)).astype("f4")
  kp[..., 2] = 0.9
  np.save(tmp_path / "kp.npy", kp)
  # No --config: the checkpoint's stored config rebuilds the model.
  run = _cli([f"--workdir={tmp_path / 'run'}", f"--input={tmp_path / 'kp.npy'}",
              f"--output={tmp_path / 'out'}", "--image_size=1000,1000",
              "--render=none", "--step=latest"])
  assert run.returncode == 0, run.stderr[-3000:]
  assert (f"Lifted 20 frames in 1 track(s) with step 2 of "
          f"{tmp_path / 'run'}") in run.stdout
  got = np.load(tmp_path / "out" / "kp.npz")["pose3d"]
  # The same as restoring with the config file.
  model, config, _ = infer.load_model(cfg.get_config(), str(tmp_path / "run"),
                                      step="latest")
  assert config.model.dim == 32
  infer.infer_file(model, config, str(tmp_path / "kp.npy"),
                   str(tmp_path / "out_cfg"),
                   infer.Options(image_size=(1000, 1000), render="none"))
  np.testing.assert_allclose(
      np.load(tmp_path / "out_cfg" / "kp.npz")["pose3d"], got, atol=1e-6)
  other = cfg.get_config()
  other.model.dim = 64
  with pytest.raises(errors.ConfigError, match=r"model.dim: checkpoint 32 vs "
                     r"given 64"):
    infer.load_model(other, str(tmp_path / "run"))


def _cli(args):
  return subprocess.run(
      [sys.executable, "-m", "opformer_jax.infer"] + args,
      capture_output=True, text=True, timeout=300,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
  """A tiny model saved as `pretrained.save` writes the bundled one."""
  config = tiny_config()
  model = model_lib.build_model(config.model, seed=1)
  out = tmp_path_factory.mktemp("saved") / "model"
  pretrained.save(model, config, str(out))
  return model, config, out


def test_default_model_is_the_bundled_one(saved_model, monkeypatch,
                                          tmp_path):
  model, _, out = saved_model
  monkeypatch.setattr(pretrained, "DEFAULT_DIR", str(out))
  loaded, config, name = infer.load_model()
  assert name == "the bundled default model"
  assert config.data.num_frames == 27
  x = np.random.default_rng(0).normal(size=(1, 27, 17, 3)).astype("f4")
  np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
  # Not installed: one line saying what is missing and what would work.
  monkeypatch.setattr(pretrained, "DEFAULT_DIR", str(tmp_path / "none"))
  with pytest.raises(errors.UserError, match=r"the bundled default model is "
                     r"not installed .*; expected .*--workdir"):
    infer.load_model()
  with pytest.raises(errors.UserError, match="expected --workdir with it"):
    infer.load_model(config=tiny_config())
  with pytest.raises(errors.UserError, match="holds no checkpoints/"):
    infer.load_model(workdir=str(tmp_path))
  (tmp_path / "checkpoints").mkdir()
  with pytest.raises(errors.UserError, match="no checkpoint in"):
    infer.load_model(workdir=str(tmp_path))


def test_cli_with_a_saved_model_no_config_no_workdir(saved_model, tmp_path):
  _, _, out = saved_model
  kp = np.random.default_rng(3).uniform(200, 800, (30, 17, 2)).astype("f4")
  np.save(tmp_path / "walk.npy", kp)
  run = _cli([f"--model={out}", f"--input={tmp_path / 'walk.npy'}",
              f"--output={tmp_path}", "--image_size=1000,1000",
              "--render=gif", "--render_max_frames=3", "--bvh"])
  assert run.returncode == 0, run.stderr[-3000:]
  assert f"Lifted 30 frames in 1 track(s) with the model in {out}" in (
      run.stdout)
  res = np.load(tmp_path / "walk.npz")
  assert res["root_cam_mm"].shape == (30, 3)
  assert (res["root_cam_mm"][:, 2] > 0).all()
  assert json.loads(str(res["meta"]))["model"] == f"the model in {out}"
  assert bvh.parse_bvh(str(tmp_path / "walk.bvh")).motion.shape[0] == 30
  with Image.open(tmp_path / "walk.gif") as gif:
    assert gif.n_frames == 3
  # Flags that cannot work: one line, exit status 2.
  run = _cli([f"--config={REPO / 'configs' / 'quickstart.py'}",
              f"--input={tmp_path / 'walk.npy'}", f"--output={tmp_path}",
              "--image_size=1000,1000"])
  assert run.returncode == 2
  assert run.stderr.strip().splitlines()[-1].startswith(
      "error: --config describes a training run's checkpoint")
