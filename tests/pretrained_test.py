"""Save / load of trained models and the bundled default model."""

import json
import os
import shutil

import numpy as np
import pytest

from opformer_jax import config_lib
from opformer_jax import errors
from opformer_jax import model as model_lib
from opformer_jax import pretrained


def _tiny_config():
  config = config_lib.base_config()
  config_lib.set_frames(config, 9)
  m = config.model
  m.depth, m.dim, m.num_heads = 1, 16, 2
  config.data.label_space = "camera"
  return config


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  return np.concatenate([rng.normal(size=(2, 9, 17, 2)) * 0.3,
                         rng.uniform(0, 1, (2, 9, 17, 1))], -1).astype("f4")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  config = _tiny_config()
  model = model_lib.build_model(config.model, seed=3)
  out = str(tmp_path_factory.mktemp("pretrained") / "m")
  pretrained.save(model, config, out, card="# tiny\n")
  return model, config, out


def test_round_trip_same_outputs_and_config(saved):
  model, config, out = saved
  loaded, loaded_cfg = pretrained.load(out)
  x = _inputs()
  np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
  assert loaded_cfg.to_dict() == config.to_dict()
  assert pretrained.card(out) == "# tiny\n"
  assert sorted(os.listdir(out)) == ["MODEL_CARD.md", "config.json",
                                     "weights.npz"]


def test_float16_storage_is_half_size_and_close(saved, tmp_path):
  model, config, out = saved
  pretrained.save(model, config, str(tmp_path), dtype="float16")
  loaded, _ = pretrained.load(str(tmp_path))
  with np.load(os.path.join(tmp_path, "weights.npz")) as npz:
    assert {npz[k].dtype for k in npz.files} == {np.dtype("float16")}
  x = _inputs(1)
  ref = np.asarray(model(x))
  got = np.asarray(loaded(x))
  assert got.dtype == np.float32
  # float16 keeps ~3 decimal digits: outputs of O(1) move by ~1e-3.
  assert 0 < np.abs(got - ref).max() < 2e-2


def test_weights_are_keyed_by_parameter_path(saved):
  model, _, out = saved
  with np.load(os.path.join(out, "weights.npz")) as npz:
    keys = set(npz.files)
    np.testing.assert_array_equal(npz["head/kernel"],
                                  np.asarray(model.head.kernel[...]))
  assert "embed/kernel" in keys and "loops/temporal/attn/qkv/kernel" in keys
  assert len(keys) == len(pretrained.flat_params(model))


def _copy(saved, tmp_path):
  dst = tmp_path / "copy"
  shutil.copytree(saved[2], dst)
  return dst


def _one_line_error(path, match):
  with pytest.raises(errors.UserError, match=match) as e:
    pretrained.load(str(path))
  assert "\n" not in str(e.value)
  return str(e.value)


def test_truncated_weights_file_one_line_error(saved, tmp_path):
  dst = _copy(saved, tmp_path)
  data = (dst / "weights.npz").read_bytes()
  (dst / "weights.npz").write_bytes(data[:len(data) // 2])
  msg = _one_line_error(dst, "weights.npz: cannot be read")
  assert "expected the weights.npz written by" in msg


def test_wrong_shape_and_missing_parameter(saved, tmp_path):
  dst = _copy(saved, tmp_path)
  with np.load(dst / "weights.npz") as npz:
    params = {k: npz[k] for k in npz.files}
  params["head/kernel"] = params["head/kernel"][:, :2]
  np.savez(dst / "weights.npz", **params)
  _one_line_error(dst, r"'head/kernel' has shape \(16, 2\); expected shape "
                  r"\(16, 3\)")
  del params["head/kernel"]
  np.savez(dst / "weights.npz", **params)
  _one_line_error(dst, "'head/kernel' is missing")


def test_nan_weights_rejected(saved, tmp_path):
  dst = _copy(saved, tmp_path)
  with np.load(dst / "weights.npz") as npz:
    params = {k: npz[k] for k in npz.files}
  params["embed/bias"][0] = np.nan
  np.savez(dst / "weights.npz", **params)
  _one_line_error(dst, "'embed/bias' .* non-finite")


def test_damaged_config(saved, tmp_path):
  dst = _copy(saved, tmp_path)
  (dst / "config.json").write_text('{"model": {"depth": 1,')
  _one_line_error(dst, "config.json: not valid JSON")
  with open(os.path.join(saved[2], "config.json")) as f:
    cfg = json.load(f)
  cfg["model"]["dim"] = 24
  (dst / "config.json").write_text(json.dumps(cfg))
  _one_line_error(dst, "weights.npz: parameter .* has shape")


def test_absent_folder(tmp_path):
  msg = _one_line_error(tmp_path / "nothing", "no saved model here")
  assert "missing config.json, weights.npz" in msg


def test_bundled_default_model_lifts_a_filmed_walk():
  """The packaged weights are the trained ones and `infer` uses them right:
  a procedural walk (part of the training motion, not of these views)
  filmed by a random handheld camera, exact COCO-17 2D with the hips where
  COCO-17 detectors put them (what users' files hold), through `infer`'s
  own path (COCO-17 -> H36M-17, windows, flip TTA, mm at the true stature).
  An untrained model of the same size is several times worse."""
  from opformer_jax.data import synthetic
  from opformer_jax.data import wild_views
  from opformer_jax.evaluate import metrics
  from opformer_jax.formats import keypoint_formats
  from opformer_jax.infer import lift
  from opformer_jax.infer import trajectory
  rng = np.random.default_rng(7)
  world = synthetic.motion("Walking", synthetic.random_bones(rng), 150, rng,
                           fps=30.0)
  cam = wild_views.random_video_camera(rng, world, handheld=True)
  seq = wild_views.film(rng, world, "walk", cam, 30.0, None, clean=True,
                        all_in_view=True,
                        convention=wild_views.CONVENTIONS["coco17"])[0]
  track = keypoint_formats.make_track("walk", seq["kp2d"], seq["conf"],
                                      "h36m17", seq["image_size"], 30.0)
  kp3d = seq["kp3d"].astype(np.float64)
  stature = trajectory.body_height(kp3d) / trajectory.HEAD_ANKLE_PER_STATURE
  opts = lift.Options(render="none", subject_height_mm=stature,
                      focal_px=float(cam.f.mean()))
  gt = kp3d - kp3d[:, :1]
  model, config = pretrained.load()
  errs = {}
  for name, m in (("default", model),
                  ("untrained", model_lib.build_model(config.model, 5))):
    res, _ = lift.lift_track(lift.make_apply_fn(m), track, config, opts)
    pred = res["pose3d_mm"].astype(np.float64)
    errs[name] = (metrics.mpjpe(pred, gt).mean(),
                  metrics.p_mpjpe(pred, gt).mean())
  # Measured: 33 mm MPJPE, 27 mm P-MPJPE (at the joint centres, which no
  # detector writes: 48, 34); untrained 414 mm, 374 mm.
  assert errs["default"][0] < 45.0 and errs["default"][1] < 40.0, errs
  assert errs["untrained"][1] > 3 * errs["default"][1], errs
