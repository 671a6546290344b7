"""The config files' arguments give the documented settings."""

import pytest

from configs import h36m
from configs import mocap


def size(c):
  return (c.data.num_frames, c.model.depth, c.model.dim,
          c.train.batch_size, c.train.accum_steps)


def test_h36m_defaults_are_the_paper_row():
  c = h36m.get_config()
  assert size(c) == (243, 8, 512, 4, 8)
  assert (c.data.train_stride, c.model.max_frames) == (81, 243)
  assert size(h36m.get_config("t27,dim=256")) == (27, 8, 256, 4, 8)


@pytest.mark.parametrize("module", [h36m, mocap])
def test_cpu_recipe_size_and_its_overrides(module):
  c = module.get_config("cpu")
  assert size(c) == (5, 2, 64, 16, 1)
  assert (c.train.budget, c.optim.schedule, c.model.part_attention) == (
      "2h", "cosine", "masked_dense")
  assert (c.optim.lr, c.data.train_stride, c.model.loop_impl) == (
      2e-3, 1, "unrolled")
  # The size arguments reach the recipe (they used to be ignored there).
  c = module.get_config("cpu,frames=81,depth=6,dim=96,budget=15m,lr=2e-3")
  assert size(c) == (81, 6, 96, 16, 1)
  assert (c.data.train_stride, c.model.max_frames) == (27, 81)
  assert (c.train.budget, c.optim.lr) == ("15m", 2e-3)


def test_h36m_cpu_with_an_alias():
  assert size(h36m.get_config("cpu,t81")) == (81, 2, 64, 16, 1)
