"""Wild views: COCO-17 face, video cameras, detector noise, splits."""

import numpy as np
import pytest

from opformer_jax import skeleton
from opformer_jax.data import camera as camera_lib
from opformer_jax.data import dataset
from opformer_jax.data import synthetic
from opformer_jax.data import wild_views
from opformer_jax.formats import keypoint_formats

J = {name: i for i, name in enumerate(skeleton.H36M.joints)}
C = {name: i for i, name in enumerate(keypoint_formats.COCO17_JOINTS)}


def _canonical():
  """A hand-built pose: shoulders on the x axis, head straight above."""
  p = np.zeros((1, 17, 3))
  p[0, J["l_shoulder"]] = (200.0, 0.0, 1400.0)
  p[0, J["r_shoulder"]] = (-200.0, 0.0, 1400.0)
  p[0, J["nose"]] = (0.0, 0.0, 1500.0)      # upper neck
  p[0, J["head"]] = (0.0, 0.0, 1684.0)      # 184 mm above: head scale 2
  for k in range(17):
    if not p[0, k].any():
      p[0, k] = (10.0 * k, 5.0 * k, 100.0 * k)
  return p


def test_coco_face_in_head_frame():
  p = _canonical()
  coco = wild_views.coco17_3d(p)[0]
  # up = +z, left = +x, forward = left x up = -y; scale 184 / 92 = 2.
  head = p[0, J["head"]]
  np.testing.assert_allclose(coco[C["nose"]],
                             head + 2 * np.array([0, -100, -25]), atol=1e-9)
  np.testing.assert_allclose(coco[C["l_eye"]],
                             head + 2 * np.array([32, -80, 10]), atol=1e-9)
  np.testing.assert_allclose(coco[C["r_ear"]],
                             head + 2 * np.array([-75, 5, 0]), atol=1e-9)
  for name in ("l_wrist", "r_knee", "l_hip", "r_ankle"):
    np.testing.assert_array_equal(coco[C[name]], p[0, J[name]])


def test_head_turn_rotates_the_face_about_the_head_axis():
  p = _canonical()
  coco = wild_views.coco17_3d(p, head_turn=np.array([[np.pi / 2, 0.0]]))[0]
  head = p[0, J["head"]]
  # A quarter turn about +z takes forward (-y) to +x: the nose points left.
  np.testing.assert_allclose(coco[C["nose"]],
                             head + 2 * np.array([100, 0, -25]), atol=1e-9)


def _pelvis_pose():
  """Hips on the x axis, thorax straight above the root."""
  p = _canonical()
  p[0, J["hip"]] = (0.0, 0.0, 900.0)
  p[0, J["l_hip"]] = (100.0, 0.0, 900.0)
  p[0, J["r_hip"]] = (-100.0, 0.0, 900.0)
  p[0, J["thorax"]] = (0.0, 0.0, 1400.0)
  return p


def test_convention_moves_the_hips_in_the_pelvis_frame():
  p = _pelvis_pose()
  conv = wild_views.Convention(hip_mm=(40.0, 30.0, 5.0))
  pts = wild_views.detector_points_3d(p, conv)[0]
  # up = +z, out = +x for the left hip, forward = out x up = -y.
  np.testing.assert_allclose(pts[C["l_hip"]], (130.0, -5.0, 940.0),
                             atol=1e-9)
  np.testing.assert_allclose(pts[C["r_hip"]], (-130.0, -5.0, 940.0),
                             atol=1e-9)
  plain = wild_views.coco17_3d(p)[0]
  others = [k for k in range(17) if k not in (C["l_hip"], C["r_hip"])]
  np.testing.assert_array_equal(pts[others], plain[others])
  np.testing.assert_array_equal(wild_views.detector_points_3d(
      p, wild_views.CONVENTIONS["joint_centres"])[0], plain)


def test_halpe_convention_has_head_top_neck_and_pelvis():
  p = _pelvis_pose()
  conv = wild_views.Convention("halpe26", (40.0, 0.0, 0.0), neck_up_mm=30.0)
  pts = wild_views.detector_points_3d(p, conv)
  halpe = {n: i for i, n in enumerate(keypoint_formats.HALPE26_JOINTS)}
  assert pts.shape == (1, 26, 3)
  np.testing.assert_array_equal(pts[0, halpe["head"]], p[0, J["head"]])
  np.testing.assert_allclose(pts[0, halpe["neck"]], (0.0, 0.0, 1430.0))
  np.testing.assert_allclose(pts[0, halpe["hip"]], (0.0, 0.0, 940.0))
  # Through the Halpe rules: Head = head top, Thorax = neck, Hip = pelvis
  # (x, y shifted off (0, 0), the detectors' "not found").
  shift = np.array([500.0, 700.0])
  kp, conf = wild_views.to_h36m_input(pts[..., :2] + shift, np.ones((1, 26)),
                                      (2000, 2000), layout="halpe26")
  np.testing.assert_allclose(kp[0, J["head"]], p[0, J["head"], :2] + shift)
  np.testing.assert_allclose(kp[0, J["thorax"]], shift, atol=1e-3)
  np.testing.assert_allclose(kp[0, J["hip"]], shift, atol=1e-3)
  assert conf.shape == (1, 17) and (conf == 1).all()


def test_random_convention_stays_in_the_mix_box():
  rng = np.random.default_rng(0)
  draws = [wild_views.random_convention(rng) for _ in range(400)]
  hips = np.array([d.hip_mm for d in draws])
  for axis, (lo, hi) in enumerate(wild_views.MIX_HIP_MM):
    assert lo <= hips[:, axis].min() and hips[:, axis].max() <= hi
    assert hips[:, axis].max() - hips[:, axis].min() > 0.8 * (hi - lo)
  halpe = np.mean([d.layout == "halpe26" for d in draws])
  assert abs(halpe - wild_views.MIX_HALPE) < 0.07


def test_h36m_input_is_what_inference_derives():
  """Hip, Spine, Thorax, Head from COCO-17 (keypoint_formats), a dropped
  joint interpolated over time with confidence 0, also in derived joints."""
  rng = np.random.default_rng(0)
  kp = rng.uniform(100, 500, (3, 17, 2))
  conf = np.full((3, 17), 0.9)
  kp[1, C["l_shoulder"]] = 0.0
  conf[1, C["l_shoulder"]] = 0.0
  h36m, hconf = wild_views.to_h36m_input(kp, conf, (640, 480))
  mid = lambda a, b: (kp[0, C[a]] + kp[0, C[b]]) / 2
  np.testing.assert_allclose(h36m[0, J["thorax"]],
                             mid("l_shoulder", "r_shoulder"), atol=1e-4)
  np.testing.assert_allclose(h36m[0, J["hip"]], mid("l_hip", "r_hip"),
                             atol=1e-4)
  np.testing.assert_allclose(
      h36m[0, J["head"]],
      kp[0, C["l_eye"]] + kp[0, C["r_eye"]] - kp[0, C["nose"]], atol=1e-4)
  np.testing.assert_allclose(
      h36m[1, J["l_shoulder"]],
      (kp[0, C["l_shoulder"]] + kp[2, C["l_shoulder"]]) / 2, atol=1e-4)
  assert hconf[1, J["l_shoulder"]] == 0 and hconf[1, J["thorax"]] == 0
  assert hconf[1, J["spine"]] == 0 and hconf[1, J["r_shoulder"]] > 0


def test_look_at_frames_equals_camera_look_at():
  rng = np.random.default_rng(1)
  centres = rng.normal(size=(5, 3)) * 3000
  targets = rng.normal(size=(5, 3)) * 300
  rots = wild_views.look_at_frames(centres, targets)
  for i in range(5):
    np.testing.assert_allclose(
        rots[i], camera_lib.look_at(centres[i], targets[i]), atol=1e-12)


@pytest.mark.parametrize("handheld", [False, True])
def test_camera_puts_the_subject_in_the_frame(handheld):
  world = synthetic.motion("Waving", synthetic.BONES, 60,
                           np.random.default_rng(0), 30.0)
  for seed in range(5):
    cam = wild_views.random_video_camera(np.random.default_rng(seed), world,
                                         handheld=handheld)
    assert (cam.width, cam.height) in wild_views.IMAGE_SIZES
    eye = np.einsum("fij,fkj->fik", cam.R, cam.R)
    np.testing.assert_allclose(eye, np.broadcast_to(np.eye(3), eye.shape),
                               atol=1e-9)
    root = camera_lib.project(cam.to_camera(world)[:, :1], cam.f, cam.c)
    # The subject's mean position was placed in the central part.
    u, v = root[:, 0].mean(0)
    assert 0.1 * cam.width < u < 0.9 * cam.width
    assert 0.15 * cam.height < v < 0.85 * cam.height
    assert (cam.to_camera(world)[..., 2] > 1000).all()


def test_detect_clean_drops_joints_outside_the_image():
  kp = np.array([[[10.0, 10.0]] * 16 + [[700.0, 10.0]]])
  out, conf = wild_views.detect(np.random.default_rng(0), kp, 640, 480, None)
  np.testing.assert_array_equal(out[0, :16], kp[0, :16])
  assert conf[0, 16] == 0 and (out[0, 16] == 0).all()
  assert (conf[0, :16] == 1).all()


def test_detect_noise_scales_with_the_person():
  rng = np.random.default_rng(0)
  kp = np.tile(np.linspace([0, 0], [100, 1000], 17)[None], (4000, 1, 1))
  kp = kp + [300.0, 20.0]
  noise = wild_views.NoiseModel(
      jitter_frac=(0.01, 0.01), correlated=0.0, outlier_prob=0.0,
      swap_prob=0.0, drop_prob=0.0, miss_frame_prob=0.0, no_scores_prob=0.0)
  out, conf = wild_views.detect(rng, kp, 1000, 1100, noise)
  std = (out - kp).std(axis=0).mean(-1)     # per joint, px
  # 1 % of the 1000 px box height times the per-joint scale.
  np.testing.assert_allclose(std, 10.0 * wild_views._COCO_NOISE, rtol=0.06)
  assert 0.6 < conf.mean() < 0.97


def test_detect_drops_and_swaps():
  rng = np.random.default_rng(0)
  kp = np.tile(np.linspace([0, 0], [160, 800], 17)[None], (500, 1, 1)) + 50
  noise = wild_views.NoiseModel(jitter_frac=(1e-6, 1e-6), swap_prob=0.05,
                                no_scores_prob=0.0)
  out, conf = wild_views.detect(rng, kp, 1000, 1000, noise)
  dropped = conf == 0
  assert 0.01 < dropped.mean() < 0.2
  assert (out[dropped] == 0).all()
  kept = ~dropped
  # Swapped frames hold the other side's wrist.
  swapped = kept[:, 9] & (np.abs(out[:, 9] - kp[:, 10]).max(-1) < 1e-3)
  assert swapped.any()


def _items():
  """Three small 'mocap' sequences (y-up, 120 fps): one training subject,
  one validation subject (16) and one cmu_actions/test sequence."""
  rng = np.random.default_rng(0)
  out = []
  for stem, name in (("cmu_gait", "02_01"), ("cmu_gait", "16_03"),
                     ("cmu_actions", "test/walking/walking_1")):
    zup = synthetic.motion("Walking", synthetic.BONES, 240, rng, 120.0)
    yup = np.stack([zup[..., 0], zup[..., 2], -zup[..., 1]], -1)
    out.append((stem, name, yup, 120.0, "y"))
  return out


@pytest.fixture(scope="module")
def splits():
  return wild_views.make_splits(_items(), seed=3, views=3, val_views=2,
                                synthetic_subjects=1, synthetic_takes=1,
                                synthetic_seconds=1.5)


def test_validation_split_held_out(splits):
  train = set(splits["train"]["seq_name"])
  assert train and all(n.startswith(("cmu_gait/02_01/", "synthetic/"))
                       for n in train)
  assert any(n.startswith("synthetic/") for n in train)
  for split in ("test_clean", "test_noisy"):
    names = set(splits[split]["seq_name"])
    assert names and all(n.startswith(("cmu_gait/16_03/",
                                       "cmu_actions/test/")) for n in names)
  assert set(splits["test_clean"]["seq_subject"]) >= {"CMU16"}


def test_labels_are_consistent(splits):
  for arrays in splits.values():
    kp3d, img, factor = (arrays["kp3d"], arrays["kp3d_image"],
                         arrays["factor"])
    # Depth label: (Z - Z_root) / factor, factor = Z_root / f: positive.
    rel = kp3d[..., 2] - kp3d[:, :1, 2]
    np.testing.assert_allclose(img[..., 2] * factor[:, None], rel, atol=0.05)
    assert (factor > 0).all()
    assert set(map(tuple, arrays["seq_image_size"])) <= set(
        wild_views.IMAGE_SIZES)


def test_clean_limbs_are_the_label_projection(splits):
  clean = splits["test_clean"]
  for joint in ("l_wrist", "r_knee", "l_ankle", "r_elbow"):
    np.testing.assert_allclose(clean["kp2d"][:, J[joint]],
                               clean["kp3d_image"][:, J[joint], :2],
                               atol=0.05)
  assert (clean["conf"] == 1).all()
  noisy = splits["test_noisy"]
  err = np.abs(noisy["kp2d"] - noisy["kp3d_image"][..., :2]).mean()
  assert err > 0.5


def test_convention_splits_differ_only_where_placed(splits):
  """Same cameras and noise as test_noisy: COCO-17 / BlazePose placements
  move Hip, the hips and Spine only; Halpe's Head is the head top."""
  base = splits["test_noisy"]
  moved = [J["hip"], J["r_hip"], J["l_hip"], J["spine"]]
  for conv in ("coco17", "blazepose"):
    other = splits[f"test_noisy_{conv}"]
    np.testing.assert_array_equal(other["kp3d"], base["kp3d"])
    diff = np.linalg.norm(other["kp2d"] - base["kp2d"], axis=-1).mean(0)
    assert (diff[moved] > 1.0).all(), (conv, diff)
    np.testing.assert_allclose(np.delete(diff, moved), 0.0, atol=1e-4)
  # Hip placed 40 mm up is nearer the thorax in 2D than the joint centres.
  def trunk(arrays):
    return np.linalg.norm(arrays["kp2d"][:, J["thorax"]]
                          - arrays["kp2d"][:, J["hip"]], axis=-1).mean()
  assert trunk(splits["test_noisy_blazepose"]) < trunk(
      splits["test_noisy_coco17"]) < trunk(base)
  def head_error(arrays):
    return np.linalg.norm(arrays["kp2d"][:, J["head"]]
                          - arrays["kp3d_image"][:, J["head"], :2],
                          axis=-1).mean()
  assert head_error(splits["test_noisy_halpe26"]) < 0.5 * head_error(base)


def test_mix_spreads_the_training_hips():
  def hip_offset(mix):
    train = wild_views.make_splits(_items(), seed=3, views=3, val_views=1,
                                   synthetic_subjects=0, mix=mix)["train"]
    return np.linalg.norm(train["kp2d"][:, J["hip"]]
                          - train["kp3d_image"][:, J["hip"], :2], axis=-1)
  plain, mixed = hip_offset(False), hip_offset(True)
  assert np.median(mixed) > 1.5 * np.median(plain)


def test_deterministic_and_seeded(splits):
  again = wild_views.make_splits(_items(), seed=3, views=3, val_views=2,
                                 synthetic_subjects=1, synthetic_takes=1,
                                 synthetic_seconds=1.5)
  for key in ("kp2d", "conf", "kp3d", "seq_name", "seq_image_size"):
    np.testing.assert_array_equal(again["train"][key], splits["train"][key])
  other = wild_views.make_splits(_items()[:1], seed=4, views=3,
                                 synthetic_subjects=0)
  n = min(len(other["train"]["kp2d"]), len(splits["train"]["kp2d"]))
  assert not np.allclose(other["train"]["kp2d"][:n],
                         splits["train"]["kp2d"][:n])


def test_generate_writes_the_schema(tmp_path, monkeypatch):
  from opformer_jax.data import mocap
  monkeypatch.setattr(mocap, "read_inputs", lambda inputs: _items())
  paths = wild_views.generate(["x.npz"], str(tmp_path), seed=1, views=1,
                              val_views=1, synthetic_subjects=0)
  assert sorted(paths) == sorted(("train",) + wild_views.VAL_SPLITS)
  data = dataset.load(paths["train"])
  assert data.layout == "h36m17" and data.kp3d_image is not None
  assert data.input_2d == "detected" and not data.synthetic
