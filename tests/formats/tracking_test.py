"""Tests for tracking: ids, association across frames, the main person."""

import numpy as np
import pytest

from opformer_jax.formats import tracking

# A standing person facing the camera: COCO-17 joints, px from the mid-hip.
_BODY = np.array([
    (0, -170), (7, -178), (-7, -178), (15, -173), (-15, -173), (40, -130),
    (-40, -130), (50, -70), (-50, -70), (55, -15), (-55, -15), (25, 0),
    (-25, 0), (27, 90), (-27, 90), (28, 180), (-28, 180)], np.float64)


def walker(num_frames, start, velocity, scale=1.0, seed=0, jitter=1.0):
  """(F, 17, 2) px of a person walking at constant velocity, with jitter."""
  rng = np.random.default_rng(seed)
  t = np.arange(num_frames)[:, None, None]
  kp = (_BODY * scale)[None] + np.asarray(start) + np.asarray(velocity) * t
  return (kp + rng.normal(0, jitter, kp.shape)).astype(np.float32)


def _dets(kp, frames=None, track_id=None, score=0.9):
  frames = range(len(kp)) if frames is None else frames
  return [tracking.Detection(f, kp[f], np.full(17, score, np.float32),
                             track_id) for f in frames]


def crossing(num_frames=50, hidden=range(23, 27)):
  """Two people crossing paths; the farther one (b) is hidden at `hidden`.

  a walks right from x = 200, b (smaller: farther away) walks left from
  x = 600; their roots pass within 20 px of each other at frame 25.
  """
  a = walker(num_frames, (200, 400), (8, 0), seed=1)
  b = walker(num_frames, (600, 420), (-8, 0), scale=0.8, seed=2)
  return a, b, [f for f in range(num_frames) if f not in hidden]


def test_association_follows_two_people_through_a_crossing():
  a, b, b_frames = crossing()
  dets = _dets(a) + _dets(b, b_frames)
  rng = np.random.default_rng(0)
  rng.shuffle(dets)  # Detectors list people in no particular order.
  tracks, ids = tracking.link(dets)
  assert ids == [0, 1] and len(tracks) == 2
  track_a, track_b = sorted(tracks, key=lambda t: t[0].kp[0, 0])
  assert [d.frame for d in track_a] == list(range(50))
  assert [d.frame for d in track_b] == b_frames
  np.testing.assert_array_equal(np.stack([d.kp for d in track_a]), a)
  np.testing.assert_array_equal(np.stack([d.kp for d in track_b]),
                                b[b_frames])


def test_without_velocity_the_crossing_would_swap():
  # The case above is not trivially separable: after b's 4 hidden frames,
  # b's last position is closer to a than to where b reappears, so nearest
  # root alone links b's track to a. The constant-velocity prediction is
  # what keeps them apart.
  a, b, _ = crossing()
  last_b, back_a, back_b = b[22].mean(0), a[27].mean(0), b[27].mean(0)
  assert np.linalg.norm(last_b - back_a) < np.linalg.norm(last_b - back_b)


def test_gate_and_gap_start_new_tracks():
  a = walker(10, (200, 400), (2, 0))
  far = walker(10, (900, 400), (0, 0), seed=3)
  # A person appearing far away is not the same person ...
  tracks, _ = tracking.link(_dets(a[:5]) + _dets(far, range(5, 10)))
  assert [len(t) for t in tracks] == [5, 5]
  # ... the same person back after a gap longer than max_gap is a new
  # track, after a shorter gap the same one.
  dets = _dets(a, [0, 1, 2, 9])
  assert len(tracking.link(dets, max_gap=5)[0]) == 2
  assert len(tracking.link(dets, max_gap=10)[0]) == 1


def test_cost_is_relative_to_body_size():
  # The same 40 px step is a jump for a small person, a step for a big one.
  for scale, expected in [(0.1, 2), (1.0, 1)]:
    kp = walker(2, (300, 300), (40, 0), scale=scale, jitter=0)
    assert len(tracking.link(_dets(kp))[0]) == expected


def test_file_ids_are_used_when_they_are_identities():
  a, b, b_frames = crossing()
  # The file's tracker swapped its ids at frame 30; its ids are trusted.
  dets = (_dets(a, range(30), track_id=7) + _dets(a, range(30, 50), 3) +
          _dets(b, [f for f in b_frames if f < 30], track_id=3) +
          _dets(b, [f for f in b_frames if f >= 30], track_id=7))
  tracks, ids = tracking.link(dets)
  assert ids == [3, 7]  # Both start at frame 0: by id.
  np.testing.assert_array_equal(tracks[0][10].kp, b[10])
  np.testing.assert_array_equal(tracks[0][-1].kp, a[49])
  assert [d.frame for d in tracks[1]] == list(range(50))
  # Not identities: one id twice in a frame, or an id missing.
  same = _dets(a, track_id=0) + _dets(b, b_frames, track_id=0)
  assert tracking.group_by_id(same) is None
  assert tracking.link(same)[1] == [0, 1]
  assert tracking.group_by_id(_dets(a, track_id=1) + _dets(b)) is None


def test_detections_without_a_valid_joint_are_absent():
  kp = walker(3, (300, 300), (1, 0))
  zero = tracking.Detection(1, np.zeros((17, 2), np.float32),
                            np.zeros(17, np.float32))
  tracks, _ = tracking.link(_dets(kp) + [zero])
  assert [len(t) for t in tracks] == [3]
  assert not zero.valid.any() and zero.confidence == 0


def test_detection_properties_hand_computed():
  kp = np.array([[0, 0], [30, 40], [10, 10], [20, 20]], np.float32)
  score = np.array([0.5, 1.5, 0.0, 0.7], np.float32)
  det = tracking.Detection(0, kp, score)
  # Joint 0 is (0, 0) = not found, joint 2 has score 0.
  np.testing.assert_array_equal(det.valid, [False, True, False, True])
  np.testing.assert_allclose(det.root, [25, 30])
  assert det.size == pytest.approx(np.hypot(10, 20))
  assert det.confidence == pytest.approx((1.0 + 0.7) / 4)  # 1.5 clipped


def test_main_track_is_the_most_confident_in_total():
  long_dim = _dets(walker(20, (100, 300), (1, 0)), score=0.4)   # 20 * 0.4
  short_sharp = _dets(walker(6, (600, 300), (0, 0)), score=1.0)  # 6 * 1.0
  tracks = [short_sharp, long_dim]
  assert tracking.main_track(tracks) == 1
  assert tracking.track_confidence(long_dim) == pytest.approx(8.0)
  # Equal totals: the larger person.
  big = _dets(walker(5, (100, 300), (0, 0), scale=1.2), score=0.5)
  small = _dets(walker(5, (600, 300), (0, 0), scale=0.6), score=0.5)
  assert tracking.main_track([small, big]) == 1
  with pytest.raises(ValueError):
    tracking.main_track([])


def test_a_partial_detection_does_not_break_the_track():
  # In frame 3 only the head is found (5 joints, a 36 px box), then the
  # person is seen whole again 25 px further on (the camera shook). The
  # gate stays relative to the person's usual size and the velocity to the
  # joints seen in both frames, so the track goes on.
  kp = walker(6, (300, 300), (0, 0))
  kp[4:] += [25, 0]
  dets = _dets(kp)
  score = np.zeros(17, np.float32)
  score[:5] = 0.9
  dets[3] = tracking.Detection(3, kp[3], score)
  assert dets[3].size < 40
  tracks, _ = tracking.link(dets)
  assert [len(t) for t in tracks] == [6]
