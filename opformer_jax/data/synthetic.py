"""The built-in default dataset: procedural, SYNTHETIC human motion.

A fresh machine has no Human3.6M, so the quickstart trains on data this module
generates in a few seconds, from nothing but a seed. It is a stand-in to show
that the pipeline works, never a benchmark: files carry `synthetic=True` and
a 'synthetic' source string.

What it generates:
* a skeleton with Human3.6M-like bone lengths (mm), scaled per subject
  (height x0.9-1.1, each bone +-5%, left = right);
* seven actions, each its own label: Walking (on a circle, arm swing),
  Waving, Squatting, Reaching, Turning (on the spot, stepping),
  JumpingJacks and Boxing, with per-take random speed, amplitude, phase,
  heading and position; feet stay on the floor (z = 0, ankles at
  `ANKLE_HEIGHT_MM`) except during jumps;
* four fixed cameras modelled on Human3.6M's (intrinsics of its four
  cameras, placements like subject S1's, about 5 m away, 1.5 m high), pinhole
  without distortion;
* mild detector-like 2D noise with a matching confidence
  (`mocap.detector_noise`).

Labels are exact: kp3d (camera frame, mm), kp3d_image and factor
(`camera.image_space_label`); bone lengths are constant over time.
Train and test use different subjects (and so different random streams).
"""

from __future__ import annotations

import os

import numpy as np
from scipy.spatial.transform import Rotation

from opformer_jax.data import camera as camera_lib
from opformer_jax.data import convert_util
from opformer_jax.data import dataset
from opformer_jax.data import mocap

GENERATOR_VERSION = 1
ACTIONS = ("Walking", "Waving", "Squatting", "Reaching", "Turning",
           "JumpingJacks", "Boxing")
FPS = 50.0
ANKLE_HEIGHT_MM = mocap.ANKLE_HEIGHT_MM
# Human3.6M-like bone lengths (mm) of an average subject.
BONES = {"pelvis": 130.0, "thigh": 445.0, "shin": 445.0, "spine": 235.0,
         "chest": 255.0, "neck": 120.0, "head": 115.0, "clavicle": 150.0,
         "upper_arm": 280.0, "forearm": 250.0}
# (camera id, image (w, h), f, c, centre (mm)) modelled on Human3.6M.
CAMERAS = (
    ("54138969", (1000, 1002), (1145.0, 1143.8), (512.5, 515.5),
     (1840.0, 4950.0, 1560.0)),
    ("55011271", (1000, 1000), (1149.7, 1147.6), (508.8, 508.1),
     (1760.0, -5080.0, 1600.0)),
    ("58860488", (1000, 1000), (1149.1, 1148.8), (519.8, 501.4),
     (-1850.0, 5220.0, 1490.0)),
    ("60457274", (1000, 1002), (1145.5, 1144.8), (515.0, 501.9),
     (-1800.0, -3720.0, 1570.0)),
)
# Where the cameras aim (mm): the centre of the capture area, hip height.
_AIM = (0.0, 0.0, 800.0)


def builtin_cameras() -> list:
  """The four fixed cameras (`camera.Camera`, no distortion)."""
  return [camera_lib.make_camera(camera_lib.look_at(centre, _AIM), centre, f,
                                 c, width=w, height=h, camera_id=cam_id,
                                 subject="synthetic")
          for cam_id, (w, h), f, c, centre in CAMERAS]


def random_bones(rng: np.random.Generator) -> dict:
  """Per-subject bone lengths (mm): a global scale and per-bone jitter."""
  scale = rng.uniform(0.9, 1.1)
  return {k: v * scale * rng.uniform(0.95, 1.05) for k, v in BONES.items()}


# ---------------------------------------------------------------------------
# Kinematics. Body frame: x right, y forward, z up (mm); angles in radians.
# ---------------------------------------------------------------------------


def _rot(axis: str, angle) -> np.ndarray:
  """(...) angles (radians) -> (..., 3, 3) rotations about world `axis`
  ('x', 'y' or 'z') acting on column vectors."""
  angle = np.asarray(angle, np.float64)
  return Rotation.from_euler(axis, angle.reshape(-1, 1)).as_matrix().reshape(
      angle.shape + (3, 3))


def _mv(r, v):
  return np.einsum("...ij,...j->...i", r, v)


def _sph(azimuth, elevation):
  """Unit vectors: azimuth from forward (+y) towards right (+x), elevation
  above the horizontal."""
  ce = np.cos(elevation)
  return np.stack([ce * np.sin(azimuth), ce * np.cos(azimuth),
                   np.sin(elevation)], -1)


def _leg(flex, abduct, knee, side):
  """Thigh and shin unit vectors (F, 3) in the pelvis frame; side +1 right."""
  r = _rot("x", flex) @ _rot("y", -side * abduct)
  down = np.array([0.0, 0.0, -1.0])
  return _mv(r, down), _mv(r @ _rot("x", -knee), down)


def pose(bones, p) -> np.ndarray:
  """Forward kinematics of pose parameters -> (F, 17, 3) H36M-17, world mm.

  `p` holds per-frame arrays (F,): x, y (root position), heading, lean
  (trunk forward), side_lean, twist (shoulders about the vertical), jump (mm
  above the grounded height), and per side s in 'r', 'l': {s}_hip_flex,
  {s}_hip_abd, {s}_knee, and arm directions in the trunk frame
  {s}_upper (F, 3) and {s}_fore (F, 3) unit vectors.
  """
  num = len(p["heading"])
  out = np.zeros((num, 17, 3))
  body = _rot("z", -p["heading"])
  trunk = (body @ _rot("z", -p["twist"]) @ _rot("x", -p["lean"])
           @ _rot("y", p["side_lean"]))
  up = np.array([0.0, 0.0, 1.0])
  right = np.array([1.0, 0.0, 0.0])
  for side, hip, knee, ankle in ((1, 1, 2, 3), (-1, 4, 5, 6)):
    s = "r" if side > 0 else "l"
    thigh, shin = _leg(p[f"{s}_hip_flex"], p[f"{s}_hip_abd"], p[f"{s}_knee"],
                       side)
    out[:, hip] = _mv(body, side * bones["pelvis"] * right)
    out[:, knee] = out[:, hip] + bones["thigh"] * _mv(body, thigh)
    out[:, ankle] = out[:, knee] + bones["shin"] * _mv(body, shin)
  out[:, 7] = bones["spine"] * _mv(trunk, up)
  out[:, 8] = out[:, 7] + bones["chest"] * _mv(trunk, up)
  neck = np.array([0.0, 0.25, 1.0]) / np.hypot(0.25, 1.0)
  out[:, 9] = out[:, 8] + bones["neck"] * _mv(trunk, neck)
  out[:, 10] = out[:, 9] + bones["head"] * _mv(trunk, up)
  clav = np.array([1.0, 0.0, -0.15]) / np.hypot(1.0, 0.15)
  for side, sh, el, wr in ((1, 14, 15, 16), (-1, 11, 12, 13)):
    s = "r" if side > 0 else "l"
    out[:, sh] = out[:, 8] + bones["clavicle"] * _mv(
        trunk, clav * (side, 1, 1))
    out[:, el] = out[:, sh] + bones["upper_arm"] * _mv(trunk, p[f"{s}_upper"])
    out[:, wr] = out[:, el] + bones["forearm"] * _mv(trunk, p[f"{s}_fore"])
  # Feet on the floor: the lower ankle at ANKLE_HEIGHT_MM (plus any jump).
  lift = ANKLE_HEIGHT_MM - out[:, (3, 6), 2].min(1) + p["jump"]
  out[..., 2] += lift[:, None]
  out[..., 0] += p["x"][:, None]
  out[..., 1] += p["y"][:, None]
  return out


# ---------------------------------------------------------------------------
# Actions: per-frame pose parameters from time t (s) and per-take randomness.
# ---------------------------------------------------------------------------


def _rest(t, rng):
  """Standing still with a little sway: the base every action edits."""
  num = len(t)
  z = np.zeros(num)
  sway = rng.uniform(0.3, 0.6)
  ph = rng.uniform(0, 2 * np.pi)
  p = {"x": z + rng.uniform(-300, 300), "y": z + rng.uniform(-300, 300),
       "heading": z + rng.uniform(-np.pi, np.pi),
       "lean": 0.03 + 0.02 * np.sin(2 * np.pi * sway * t + ph),
       "side_lean": 0.02 * np.sin(2 * np.pi * sway * 0.7 * t + ph),
       "twist": z.copy(), "jump": z.copy()}
  for s, sign in (("r", 1), ("l", -1)):
    p[f"{s}_hip_flex"] = z + 0.02
    p[f"{s}_hip_abd"] = z + 0.05
    p[f"{s}_knee"] = z + 0.05
    swing = 0.05 * np.sin(2 * np.pi * sway * t + ph + (s == "l") * np.pi)
    p[f"{s}_upper"] = _sph(sign * 0.25 + z, -1.45 + swing)
    p[f"{s}_fore"] = _sph(sign * 0.15 + z, -1.25 + swing)
  return p


def _walking(t, rng):
  p = _rest(t, rng)
  speed = rng.uniform(900, 1500)                       # mm/s
  radius = rng.uniform(800, 1500)
  direction = rng.choice([-1.0, 1.0])
  angle0 = rng.uniform(0, 2 * np.pi)
  angle = angle0 + direction * speed * t / radius
  p["x"] = radius * np.cos(angle)
  p["y"] = radius * np.sin(angle)
  # Heading along the tangent; heading 0 faces +y, positive turns right.
  p["heading"] = np.pi / 2 - angle - direction * np.pi / 2
  cadence = speed / rng.uniform(1250, 1450)            # strides per second
  w = 2 * np.pi * cadence * t + rng.uniform(0, 2 * np.pi)
  amp = rng.uniform(0.35, 0.5)
  for s, ph in (("r", 0.0), ("l", np.pi)):
    p[f"{s}_hip_flex"] = amp * np.sin(w + ph) + 0.05
    p[f"{s}_knee"] = 0.1 + 0.55 * np.clip(np.sin(w + ph + 1.9), 0, None)
    p[f"{s}_hip_abd"] = 0.03 + 0 * t
    arm = -amp * 0.8 * np.sin(w + ph)
    sign = 1 if s == "r" else -1
    p[f"{s}_upper"] = _sph(sign * 0.15 + 0 * t, -np.pi / 2 + arm)
    p[f"{s}_fore"] = _sph(sign * 0.1 + 0 * t, -np.pi / 2 + arm + 0.35)
  p["lean"] = 0.06 + 0.02 * np.sin(2 * w)
  p["twist"] = 0.12 * amp * np.sin(w)
  return p


def _waving(t, rng):
  p = _rest(t, rng)
  s = rng.choice(["r", "l"])
  sign = 1 if s == "r" else -1
  freq = rng.uniform(1.2, 2.2)
  w = 0.45 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
  lift = rng.uniform(0.1, 0.6)
  p[f"{s}_upper"] = _sph(sign * rng.uniform(1.2, 1.6) + 0 * t, lift + 0 * t)
  # The forearm points up and swings in the frontal plane.
  fore = np.stack([sign * np.sin(w), 0.15 + 0 * t, np.cos(w)], -1)
  p[f"{s}_fore"] = fore / np.linalg.norm(fore, axis=-1, keepdims=True)
  p["side_lean"] = p["side_lean"] - sign * 0.04
  return p


def _squatting(t, rng):
  p = _rest(t, rng)
  period = rng.uniform(2.0, 3.2)
  depth = rng.uniform(0.6, 1.0)
  c = depth * 0.5 * (1 - np.cos(2 * np.pi * t / period + rng.uniform(0, 6)))
  for s, sign in (("r", 1), ("l", -1)):
    p[f"{s}_hip_flex"] = 1.5 * c
    p[f"{s}_knee"] = 0.05 + 1.9 * c
    p[f"{s}_hip_abd"] = 0.1 + 0.1 * c
    p[f"{s}_upper"] = _sph(sign * 0.2 + 0 * t, -1.45 + 1.45 * c)
    p[f"{s}_fore"] = _sph(sign * 0.1 + 0 * t, -1.3 + 1.35 * c)
  p["lean"] = 0.05 + 0.55 * c
  return p


def _reaching(t, rng):
  p = _rest(t, rng)
  period = rng.uniform(1.6, 2.6)
  n = int(np.ceil(t[-1] / period)) + 2
  targets = [(rng.uniform(-1.0, 1.0), rng.uniform(-0.4, 1.1)) for _ in range(n)]
  k = np.floor(t / period).astype(int)
  # Smooth out-and-back reach: 0 -> 1 -> 0 within each period.
  e = 0.5 * (1 - np.cos(2 * np.pi * (t / period - k)))
  for s, sign in (("r", 1), ("l", -1)):
    mine = (k % 2 == 0) if s == "r" else (k % 2 == 1)
    az = np.array([targets[i][0] for i in k]) + sign * 0.2
    el = np.array([targets[i][1] for i in k])
    rest_up, rest_fore = p[f"{s}_upper"], p[f"{s}_fore"]
    reach = _sph(az, el)
    a = (e * mine)[:, None]
    up = (1 - a) * rest_up + a * reach
    fore = (1 - a) * rest_fore + a * reach
    p[f"{s}_upper"] = up / np.linalg.norm(up, axis=-1, keepdims=True)
    p[f"{s}_fore"] = fore / np.linalg.norm(fore, axis=-1, keepdims=True)
  low = np.array([targets[i][1] < 0.3 for i in k])   # bend to low targets
  p["lean"] = p["lean"] + 0.25 * e * low
  p["twist"] = 0.3 * e * np.array([targets[i][0] for i in k])
  return p


def _turning(t, rng):
  p = _rest(t, rng)
  rate = rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 2.0)   # rad/s
  p["heading"] = p["heading"] + rate * t
  w = 2 * np.pi * rng.uniform(1.2, 1.8) * t
  for s, ph in (("r", 0.0), ("l", np.pi)):
    step = np.clip(np.sin(w + ph), 0, None)
    p[f"{s}_hip_flex"] = 0.05 + 0.35 * step
    p[f"{s}_knee"] = 0.05 + 0.6 * step
  p["twist"] = 0.1 * np.sign(rate) + 0 * t
  return p


def _jumping_jacks(t, rng):
  p = _rest(t, rng)
  freq = rng.uniform(0.9, 1.4)
  ph = rng.uniform(0, 2 * np.pi)
  c = 0.5 * (1 - np.cos(2 * np.pi * freq * t + ph))   # 0 closed, 1 open
  for s, sign in (("r", 1), ("l", -1)):
    p[f"{s}_hip_abd"] = 0.05 + 0.35 * c
    p[f"{s}_knee"] = 0.1 + 0.15 * c
    elevation = -1.45 + 2.9 * c
    p[f"{s}_upper"] = _sph(sign * 1.45 + 0 * t, elevation)
    p[f"{s}_fore"] = _sph(sign * 1.45 + 0 * t, elevation + 0.15)
  # Airborne twice per cycle while the limbs move fastest, landing at the
  # open and closed extremes.
  airborne = np.clip(np.abs(np.sin(2 * np.pi * freq * t + ph)) - 0.3, 0, None)
  p["jump"] = rng.uniform(60, 140) * airborne / 0.7
  return p


def _boxing(t, rng):
  p = _rest(t, rng)
  period = rng.uniform(0.5, 0.9)
  k = np.floor(t / period).astype(int)
  e = np.sin(np.pi * (t / period - k)) ** 2           # punch out and back
  for s, sign in (("r", 1), ("l", -1)):
    mine = ((k % 2 == 0) if s == "r" else (k % 2 == 1)) * e
    guard_up = _sph(sign * 0.5 + 0 * t, -1.0 + 0 * t)
    guard_fore = _sph(-sign * 0.3 + 0 * t, 0.9 + 0 * t)
    punch = _sph(-sign * 0.15 + 0 * t, 0.1 + 0 * t)
    a = mine[:, None]
    up = (1 - a) * guard_up + a * punch
    fore = (1 - a) * guard_fore + a * punch
    p[f"{s}_upper"] = up / np.linalg.norm(up, axis=-1, keepdims=True)
    p[f"{s}_fore"] = fore / np.linalg.norm(fore, axis=-1, keepdims=True)
    p[f"{s}_knee"] = 0.25 + 0 * t
    p[f"{s}_hip_flex"] = 0.15 + 0.1 * sign + 0 * t
  p["twist"] = 0.35 * e * np.where(k % 2 == 0, -1.0, 1.0)
  p["lean"] = p["lean"] + 0.1
  return p


_MOTIONS = {"Walking": _walking, "Waving": _waving, "Squatting": _squatting,
            "Reaching": _reaching, "Turning": _turning,
            "JumpingJacks": _jumping_jacks, "Boxing": _boxing}


def motion(action: str, bones: dict, num_frames: int,
           rng: np.random.Generator, fps: float = FPS) -> np.ndarray:
  """(F, 17, 3) world mm (z up) of one take of `action`."""
  t = np.arange(num_frames) / fps
  speed = rng.uniform(0.8, 1.25)                     # per-take tempo
  return pose(bones, _MOTIONS[action](t * speed, rng))


# ---------------------------------------------------------------------------
# Dataset generation.
# ---------------------------------------------------------------------------


def _split(subjects, first, seed, takes, frames, cameras_per_take, noise_px,
           cams):
  seqs = []
  for si in range(first, first + subjects):
    subject = f"SYN{si + 1:02d}"
    bones = random_bones(np.random.default_rng([seed, si]))
    for ai, action in enumerate(ACTIONS):
      for take in range(takes):
        rng = np.random.default_rng([seed, si, ai, take])
        world = motion(action, bones, frames, rng)
        for ci in sorted(rng.choice(len(cams), cameras_per_take,
                                    replace=False)):
          cam = cams[ci]
          kp3d = camera_lib.world_to_camera(world, cam)
          kp2d, conf = mocap.detector_noise(
              rng, camera_lib.project(kp3d, cam.f, cam.c), noise_px,
              outlier_prob=0.001)
          seqs.append(convert_util.camera_sequence(
              f"{subject}/{action}/take{take + 1}/{cam.camera_id}", subject,
              action, cam, kp3d, kp2d, FPS, conf))
  return seqs


def make_splits(seed: int = 0, train_subjects: int = 6, test_subjects: int = 2,
                takes: int = 2, frames: int = 160, cameras_per_take: int = 2,
                noise_px: float = 1.5) -> dict:
  """{'train': arrays, 'test': arrays}; sizes in frames are subjects x 7
  actions x takes x cameras_per_take x frames (defaults: 26,880 / 8,960)."""
  if not 1 <= cameras_per_take <= len(CAMERAS):
    raise ValueError(f"cameras_per_take must be 1..{len(CAMERAS)}")
  cams = builtin_cameras()
  source = _expected_source(seed, train_subjects, test_subjects, takes,
                            frames, cameras_per_take, noise_px)
  input_2d = "detected" if noise_px > 0 else "gt"
  args = (seed, takes, frames, cameras_per_take, noise_px, cams)
  return {split: convert_util.pack(_split(n, first, *args), layout="h36m17",
                                   input_2d=input_2d, source=source,
                                   synthetic=True)
          for split, n, first in (("train", train_subjects, 0),
                                  ("test", test_subjects, train_subjects))}


def generate(out_dir: str, seed: int = 0, **kwargs) -> tuple[str, str]:
  """Writes `out_dir/train.npz` and `out_dir/test.npz` (atomically);
  `kwargs` go to `make_splits`. Returns (train_path, test_path)."""
  paths = convert_util.write_splits(make_splits(seed, **kwargs), out_dir)
  return paths["train"], paths["test"]


def ensure_default(data_dir: str, seed: int = 0, **kwargs) -> tuple[str, str]:
  """The default dataset under `data_dir`, generated on first use.

  Existing files are reused when they hold this generator's output for the
  same arguments (their `source` string says so); otherwise both are
  (re)generated, each written atomically.
  """
  train = os.path.join(data_dir, "train.npz")
  test = os.path.join(data_dir, "test.npz")
  want = _expected_source(seed, **kwargs)
  try:
    if all(str(dataset.load(p).arrays["source"]) == want
           for p in (train, test)):
      return train, test
  except (FileNotFoundError, dataset.DataError):
    pass
  return generate(data_dir, seed, **kwargs)


def _expected_source(seed, train_subjects=6, test_subjects=2, takes=2,
                     frames=160, cameras_per_take=2, noise_px=1.5):
  return (f"SYNTHETIC procedural motion (opformer-jax generator "
          f"v{GENERATOR_VERSION}, seed {seed}, {train_subjects}+"
          f"{test_subjects} subjects, {takes} takes x {frames} frames, "
          f"{cameras_per_take} cameras, noise {noise_px:g} px)")
