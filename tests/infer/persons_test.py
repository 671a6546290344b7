"""Every person of a video lifted on its own; input errors through the CLI."""

import json
import os
import subprocess
import sys

from flax import nnx
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from opformer_jax import config_lib
from opformer_jax.formats import keypoint_formats
from opformer_jax.infer import lift
from opformer_jax import model as model_lib

# A standing person facing the camera: COCO-17 joints, px from the mid-hip.
_BODY = np.array([
    (0, -170), (7, -178), (-7, -178), (15, -173), (-15, -173), (40, -130),
    (-40, -130), (50, -70), (-50, -70), (55, -15), (-55, -15), (25, 0),
    (-25, 0), (27, 90), (-27, 90), (28, 180), (-28, 180)], np.float64)


def _walker(num_frames, start, velocity, scale=1.0, seed=0):
  rng = np.random.default_rng(seed)
  t = np.arange(num_frames)[:, None, None]
  kp = (_BODY * scale)[None] + np.asarray(start) + np.asarray(velocity) * t
  return (kp + rng.normal(0, 1.0, kp.shape)).astype(np.float32)


def _mmpose_json(path, people):
  """MMPose demo predictions of `people` [(kp (F, 17, 2), score)], no ids."""
  frames = []
  for f in range(len(people[0][0])):
    insts = [{"keypoints": kp[f].tolist(),
              "keypoint_scores": [score] * 17} for kp, score in people]
    frames.append({"frame_id": f, "instances": insts[::(-1) ** f]})
  path.write_text(json.dumps({"meta_info": {}, "instance_info": frames}))
  return path


class _FlatLifter(nnx.Module):
  """A stand-in model with a known output: (x, y, conf) -> (x, y, 0).

  Flip-equivariant, so flip TTA and window blending leave it unchanged and
  each person's 3D pose is their own normalised 2D pose, root-relative.
  """

  def __call__(self, x):
    return x * jnp.array([1.0, 1.0, 0.0])


def _config():
  c = config_lib.base_config()
  config_lib.set_frames(c, 9)
  return c


def test_every_person_is_lifted_on_its_own(tmp_path):
  config, model = _config(), _FlatLifter()
  a = _walker(30, (200, 500), (10, 0), seed=1)
  b = _walker(30, (560, 520), (-10, 0), 0.8, seed=2)   # They cross.
  both = _mmpose_json(tmp_path / "two.json", [(a, 0.9), (b, 0.6)])
  opts = lift.Options(persons="all", image_size=(800, 600), render="gif",
                      render_max_frames=2, batch_size=4)
  out = lift.infer_file(model, config, str(both), str(tmp_path / "all"),
                        opts)
  assert sorted(out["tracks"]) == ["two_person0", "two_person1"]
  assert out["frames"] == 60
  for i, person in enumerate((a, b)):
    res = np.load(tmp_path / "all" / f"two_person{i}.npz")
    meta = json.loads(str(res["meta"]))
    assert meta["track"] == f"two_person{i}"
    h36m = keypoint_formats.to_h36m(keypoint_formats.make_track(
        "p", person, np.full((30, 17), 0.9), "coco17")).kp2d
    np.testing.assert_allclose(res["kp2d"], h36m, rtol=1e-6)
    # Independently: normalised xy (x / w * 2 - 1, y / w * 2 - h / w) minus
    # the root, depth 0.
    expected = np.zeros((30, 17, 3))
    expected[..., :2] = (h36m - h36m[:, :1]) / 800 * 2
    np.testing.assert_allclose(res["pose3d"], expected, atol=1e-5)
    assert os.path.getsize(tmp_path / "all" / f"two_person{i}.gif") > 0
  # persons='main' (the default): only a, the more confident, named after
  # the file.
  lift.infer_file(model, config, str(both), str(tmp_path / "main"),
                  lift.Options(image_size=(800, 600), render="none",
                               batch_size=4))
  assert {os.path.splitext(n)[0] for n in os.listdir(tmp_path / "main")} == {
      "two"}
  np.testing.assert_array_equal(
      np.load(tmp_path / "main" / "two.npz")["kp2d"],
      np.load(tmp_path / "all" / "two_person0.npz")["kp2d"])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A tiny untrained OPFormer saved as a model folder (`--model`)."""
  from opformer_jax import pretrained  # pylint: disable=import-outside-toplevel
  config = _config()
  config.model.update(depth=1, dim=32, num_heads=2)
  path = tmp_path_factory.mktemp("model") / "tiny"
  pretrained.save(model_lib.build_model(config.model), config, str(path))
  return path


def _infer_cli(model_dir, *args):
  return subprocess.run(
      [sys.executable, "-m", "opformer_jax.infer", f"--model={model_dir}",
       "--render=none", *args], capture_output=True, text=True, timeout=300,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))


def test_cli_png_input_is_one_error_line(model_dir, tmp_path):
  png = tmp_path / "frame_0001.png"
  Image.new("RGB", (16, 16), (0, 90, 200)).save(png)
  run = _infer_cli(model_dir, f"--input={png}", f"--output={tmp_path / 'o'}")
  assert run.returncode == 2, run.stderr[-3000:]
  assert "Traceback" not in run.stderr
  assert run.stderr.strip().splitlines() == [
      f"error: {png}: unknown keypoint file type '.png' (a PNG image); "
      "expected " + keypoint_formats._EXPECTED_FILE]  # pylint: disable=protected-access


def test_cli_persons_all_reaches_the_reader(model_dir, tmp_path):
  # The MHFormer demo's file: (persons, F, 17, 2) px, H36M-17, no image
  # size. With --persons=all the first person's track is named in the
  # error about the missing image size: the flag reached the reader.
  rec = np.stack([keypoint_formats.to_h36m(keypoint_formats.make_track(
      "p", p, None, "coco17")).kp2d
                  for p in (_walker(20, (200, 500), (5, 0)),
                            _walker(20, (600, 500), (-5, 0), seed=1))])
  folder = tmp_path / "output" / "street" / "input_2D"
  folder.mkdir(parents=True)
  np.savez_compressed(folder / "keypoints.npz", reconstruction=rec)
  run = _infer_cli(model_dir, f"--input={folder / 'keypoints.npz'}",
                   f"--output={tmp_path / 'o'}", "--persons=all")
  assert run.returncode == 2, run.stderr[-3000:]
  assert "Traceback" not in run.stderr
  lines = run.stderr.strip().splitlines()   # The progress bar, then:
  assert [l for l in lines if l.startswith("error:")] == lines[-1:] == [
      f"error: {folder / 'keypoints.npz'}: track 'street_person0': the file "
      "stores no image size; expected the video's size as "
      "--image_size=WIDTH,HEIGHT"]
