"""Benchmark helpers: alternation, paired ratios, epoch estimates."""

import pytest

from opformer_jax import benchmark


def test_alternate_interleaves_and_reverses_the_order():
  calls = []
  fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
  times = benchmark.alternate(fns, repeats=3, warmup=1)
  assert "".join(calls) == "ab" + "ab" + "ba" + "ab"
  assert len(times["a"].times) == len(times["b"].times) == 3


def test_h36m_epoch_estimate():
  # MotionBERT's loader logs 17,748 training clips at T = 243, stride 81.
  assert abs(benchmark.h36m_train_clips(243, 81) - 17748) < 20
  # Hand count with the same rule: (1,559,752 - 600 * 27) / 9 + 600 * 10/18.
  assert benchmark.h36m_train_clips(27, 9) == round(
      (1559752 - 16200) / 9 + 6000 / 18)


def test_paired_ratio_divides_round_by_round():
  # Round 2 runs 4x slower for both sides (machine load), round 3 only for
  # `num` (a one-off): the rounds' median keeps the true 0.5, the medians'
  # ratio (4 / 2) does not.
  num = benchmark.Timing([1.0, 4.0, 4.0])
  den = benchmark.Timing([2.0, 8.0, 2.0])
  res = benchmark.paired_ratio(num, den)
  assert res["ratios"] == [0.5, 0.5, 2.0]
  assert (res["median"], res["min"], res["max"]) == (0.5, 0.5, 2.0)
  assert num.median / den.median == 2.0
  with pytest.raises(ValueError, match="2 vs 3 rounds"):
    benchmark.paired_ratio(benchmark.Timing([1.0, 2.0]), den)
