"""End-to-end inference on real detections and on a trained checkpoint."""

import json

import numpy as np
import pytest
from PIL import Image

from opformer_jax import config_lib
from opformer_jax.infer import lift as infer
from opformer_jax import model as model_lib
from opformer_jax import skeleton


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


def test_mm_outputs_from_a_subject_height(tmp_path):
  config = tiny_config()
  model = model_lib.build_model(config.model)
  rng = np.random.default_rng(0)
  kp = rng.uniform(100, 900, (40, 17, 2)).astype(np.float32)
  np.save(tmp_path / "track.npy", kp)
  opts = infer.Options(render="none", image_size=(1000, 1000),
                       subject_height_mm=1700.0)
  infer.infer_file(model, config, str(tmp_path / "track.npy"),
                   str(tmp_path / "out"), opts)
  res = np.load(tmp_path / "out" / "track.npz")
  height = infer.skeleton_height(res["pose3d_mm"], "h36m17")
  assert height == pytest.approx(1700.0, rel=1e-4)


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
  import os
  import subprocess
  import sys
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
  run = subprocess.run(
      [sys.executable, "-m", "opformer_jax.infer", f"--config={cfg_file}",
       f"--workdir={tmp_path / 'run'}", f"--input={tmp_path / 'kp.npy'}",
       f"--output={tmp_path / 'out'}", "--image_size=1000,1000",
       "--render=none", "--step=latest"], capture_output=True, text=True,
      timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert run.returncode == 0, run.stderr[-3000:]
  assert "Lifted 20 frames in 1 track(s) with step 2" in run.stdout
  assert np.load(tmp_path / "out" / "kp.npz")["pose3d"].shape == (20, 17, 3)
