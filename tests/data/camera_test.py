"""Tests of pinhole projection, lens distortion, image-space labels, cameras."""

import json
import os

import numpy as np
import pytest

from opformer_jax import errors
from opformer_jax.data import camera


def _camera(**kwargs):
  args = dict(R_world_to_cam=np.eye(3), center_world_mm=np.zeros(3),
              f=(1000.0, 1100.0), c=(500.0, 400.0), width=1000, height=800)
  args.update(kwargs)
  return camera.make_camera(**args)


def test_project_pinhole_hand_computed():
  points = np.array([[100.0, -50.0, 2000.0], [0.0, 0.0, 1000.0]])
  uv = camera.project(points, f=(1000.0, 1100.0), c=(500.0, 400.0))
  # u = 1000 * 100 / 2000 + 500, v = 1100 * -50 / 2000 + 400.
  np.testing.assert_allclose(uv, [[550.0, 372.5], [500.0, 400.0]])


def test_project_distortion_hand_computed():
  point = np.array([100.0, -50.0, 2000.0])
  k = (0.1, 0.01, 0.001)
  p = (0.002, 0.003)
  # Human3.6M / 3d-pose-baseline `project_point_radial`, written out.
  x, y = 0.05, -0.025
  r2 = x * x + y * y
  radial = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
  tan = p[0] * y + p[1] * x
  xd = x * (radial + tan) + p[1] * r2
  yd = y * (radial + tan) + p[0] * r2
  uv = camera.project(point, (1000.0, 1100.0), (500.0, 400.0), k, p)
  np.testing.assert_allclose(uv, [1000 * xd + 500, 1100 * yd + 400],
                             rtol=0, atol=1e-9)
  assert abs(uv[0] - 550.0) > 0.01  # distortion does something here


def test_distortion_equals_videopose3d_with_swapped_tangential():
  rng = np.random.default_rng(0)
  points = rng.uniform([-800, -900, 3000], [800, 900, 6000], (50, 3))
  f, c = np.array([1145.0, 1143.8]), np.array([512.5, 515.5])
  k = np.array([-0.207, 0.2478, -0.0031])
  p = np.array([-0.00142, -0.00098])      # h36m_cameras.json order
  # VideoPose3D `project_to_2d` (its p is the calibration's, swapped).
  p_vp = p[::-1]
  xx = points[:, :2] / points[:, 2:]
  r2 = np.sum(xx**2, -1, keepdims=True)
  radial = 1 + np.sum(k * np.concatenate([r2, r2**2, r2**3], -1), -1,
                      keepdims=True)
  tan = np.sum(p_vp * xx, -1, keepdims=True)
  want = f * (xx * (radial + tan) + p_vp * r2) + c
  np.testing.assert_allclose(camera.project(points, f, c, k, p), want,
                             atol=1e-9)


def test_zero_distortion_is_identity():
  rng = np.random.default_rng(1)
  points = rng.uniform([-800, -900, 3000], [800, 900, 6000], (4, 17, 3))
  f, c = (1145.0, 1143.8), (512.5, 515.5)
  np.testing.assert_allclose(
      camera.project(points, f, c, np.zeros(3), np.zeros(2)),
      camera.project(points, f, c), atol=1e-12)


def _standing_pose(root=(300.0, 200.0, 5000.0)):
  """A person-sized (17, 3) camera-frame pose (mm), y down, facing the
  camera at a slight angle: depths vary by +-150 mm."""
  rng = np.random.default_rng(2)
  body = np.zeros((17, 3))
  body[:, 1] = np.linspace(900, -800, 17)        # feet (+y) to head (-y)
  body[:, 0] = rng.uniform(-400, 400, 17)
  body[:, 2] = rng.uniform(-150, 150, 17)
  body[0] = 0
  return body + np.asarray(root)


def test_image_space_label_formulae():
  f, c = np.array([1145.0, 1143.8]), np.array([512.5, 515.5])
  kp3d = np.stack([_standing_pose(), _standing_pose((-500, 100, 3500))])
  img, factor = camera.image_space_label(kp3d, f, c)
  z_root = kp3d[:, 0, 2]
  # The box: projections of root -+ 1000 mm in x at the root depth.
  tl = camera.project(kp3d[:, 0] - [1000, 0, 0], f, c)
  br = camera.project(kp3d[:, 0] + [1000, 0, 0], f, c)
  np.testing.assert_allclose(factor, 2000 / (br[:, 0] - tl[:, 0]), rtol=1e-6)
  np.testing.assert_allclose(factor, z_root / f[0], rtol=1e-6)
  np.testing.assert_allclose(img[..., :2], camera.project(kp3d, f, c),
                             atol=1e-3)
  np.testing.assert_allclose(img[..., 2] * factor[:, None],
                             kp3d[..., 2] - z_root[:, None], atol=1e-3)
  # In x: (u_j - u_root) * factor = X_j Z_root / Z_j - X_root exactly.
  x_mm = (img[..., 0] - img[:, :1, 0]) * factor[:, None]
  np.testing.assert_allclose(
      x_mm, kp3d[..., 0] * z_root[:, None] / kp3d[..., 2] - kp3d[:, :1, 0],
      atol=1e-2)


def test_image_space_label_times_factor_is_root_relative_mm():
  f, c = (1145.0, 1143.8), (512.5, 515.5)
  kp3d = _standing_pose()[None]
  img, factor = camera.image_space_label(kp3d, f, c)
  approx = (img - img[:, :1]) * factor[:, None, None]
  exact = kp3d - kp3d[:, :1]
  extent = np.ptp(exact[0], axis=0).max()        # ~1700 mm
  err = np.linalg.norm(approx - exact, axis=-1)
  assert err.mean() < 0.01 * extent
  assert err.max() < 0.02 * extent


def test_world_camera_round_trip_and_json(tmp_path):
  rot = camera.look_at((3000.0, -4000.0, 1500.0), (0.0, 0.0, 900.0))
  np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
  assert np.linalg.det(rot) == pytest.approx(1.0)
  entry = {"subject": "S1", "camera_id": "54138969", "width": 1000,
           "height": 1002, "R_world_to_cam": rot.tolist(),
           "center_world_mm": [3000.0, -4000.0, 1500.0],
           "f": [1145.0, 1143.8], "c": [512.5, 515.5],
           "k": [-0.2, 0.24, 0.0], "p": [-0.001, -0.001]}
  path = tmp_path / "cams.json"
  path.write_text(json.dumps({"convention": "test", "cameras": [entry]}))
  cams = camera.load_h36m_cameras(str(path))
  cam = cams[("S1", "54138969")]
  assert (cam.width, cam.height) == (1000, 1002)
  target = np.array([[0.0, 0.0, 900.0]])
  in_cam = camera.world_to_camera(target, cam)
  # The look-at point is on the optical axis at its distance.
  np.testing.assert_allclose(in_cam[0, :2], 0, atol=1e-9)
  assert in_cam[0, 2] == pytest.approx(np.linalg.norm(
      target[0] - entry["center_world_mm"]))
  np.testing.assert_allclose(in_cam @ rot + entry["center_world_mm"], target,
                             atol=1e-9)
  # Image x points to the right of the viewing direction, y down.
  right = camera.world_to_camera(target + rot[0] * 100, cam)
  assert right[0, 0] == pytest.approx(100.0)


@pytest.mark.parametrize("text, message", [
    (json.dumps({"cameras": [{"subject": "S1"}]}),
     r"cams\.json: cameras\[0\]: lacks key 'R_world_to_cam'; expected a "
     r"JSON object"),
    (json.dumps({"cameras": [{**{k: [0, 0] for k in "fckp"},
                              "subject": "S1", "camera_id": "1", "width": 9,
                              "height": 9, "R_world_to_cam": [[1, 0, 0]],
                              "center_world_mm": [0, 0, 0]}]}),
     r"cams\.json: cameras\[0\]: camera S1 1: 'R_world_to_cam' must be "
     r"\(3, 3\) finite numbers"),
    (json.dumps({"convention": "x"}), r"cams\.json: no 'cameras' list"),
    ('{"cameras": [', r"cams\.json: not JSON \("),
])
def test_load_h36m_cameras_rejects_bad_files(tmp_path, text, message):
  path = tmp_path / "cams.json"
  path.write_text(text)
  with pytest.raises(errors.DataError, match=message) as err:
    camera.load_h36m_cameras(str(path))
  assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_packaged_h36m_calibrations():
  """The 44 calibrations ship with the package: no ../shared needed."""
  cams = camera.load_h36m_cameras()
  assert os.path.dirname(camera.H36M_CAMERAS_JSON) == os.path.dirname(
      camera.__file__)
  assert sorted({s for s, _ in cams}, key=lambda s: int(s[1:])) == [
      f"S{i}" for i in range(1, 12)]
  sizes = {"54138969": (1000, 1002), "55011271": (1000, 1000),
           "58860488": (1000, 1000), "60457274": (1000, 1002)}
  assert {c for _, c in cams} == set(sizes) and len(cams) == 44
  # Published numbers (also in VideoPose3D's h36m_dataset.py).
  cam = cams[("S1", "54138969")]
  np.testing.assert_allclose(cam.f, [1145.049405, 1143.781096])
  np.testing.assert_allclose(cam.c, [512.541505, 515.451487])
  np.testing.assert_allclose(cam.k, [-0.2070989108, 0.2477751831,
                                     -0.0030751504])
  for (_, cam_id), cam in cams.items():
    assert (cam.width, cam.height) == sizes[cam_id]
    np.testing.assert_allclose(cam.R_world_to_cam @ cam.R_world_to_cam.T,
                               np.eye(3), atol=1e-6)
    assert np.linalg.det(cam.R_world_to_cam) == pytest.approx(1.0, abs=1e-6)


def test_real_h36m_calibrations(shared_data):
  cams = camera.load_h36m_cameras(
      str(shared_data / "cameras" / "h36m_cameras.json"))
  assert len(cams) == 44
  # The packaged copy holds the same numbers.
  packaged = camera.load_h36m_cameras()
  assert set(packaged) == set(cams)
  for key, cam in cams.items():
    for field in ("R_world_to_cam", "center_world_mm", "f", "c", "k", "p"):
      np.testing.assert_array_equal(getattr(packaged[key], field),
                                    getattr(cam, field))
  cam = cams[("S1", "54138969")]
  np.testing.assert_allclose(cam.f, [1145.049405, 1143.781096])
  assert (cam.width, cam.height) == (1000, 1002)
  for cam in cams.values():
    np.testing.assert_allclose(cam.R_world_to_cam @ cam.R_world_to_cam.T,
                               np.eye(3), atol=1e-6)
    # A subject standing at the capture centre is in front of the camera
    # and inside its image.
    body = np.array([[0.0, 300.0, 100.0], [0.0, 300.0, 1800.0]])
    uv = camera.project(camera.world_to_camera(body, cam), cam.f, cam.c,
                        cam.k, cam.p)
    assert (uv >= 0).all() and (uv[:, 0] < cam.width).all()
    assert (uv[:, 1] < cam.height).all()


def test_random_camera_sees_the_target():
  target = np.array([200.0, -100.0, 900.0])
  for seed in range(20):
    rng = np.random.default_rng(seed)
    cam = camera.random_camera(rng, target_world_mm=target)
    again = camera.random_camera(np.random.default_rng(seed),
                                 target_world_mm=target)
    np.testing.assert_array_equal(cam.R_world_to_cam, again.R_world_to_cam)
    assert np.linalg.det(cam.R_world_to_cam) == pytest.approx(1.0)
    dist = np.linalg.norm((cam.center_world_mm - target)[:2])
    assert 3500 <= dist <= 6500
    assert 800 <= cam.center_world_mm[2] <= 2200
    uv = camera.project(camera.world_to_camera(target, cam), cam.f, cam.c)
    # Aimed at the target (+- jitter): near the image centre.
    assert abs(uv[0] - cam.width / 2) < 0.2 * cam.width
    assert abs(uv[1] - cam.height / 2) < 0.2 * cam.height
    assert 1.0 <= cam.f[0] / min(cam.width, cam.height) <= 1.5
