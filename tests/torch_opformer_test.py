"""The PyTorch reference (benchmarks/torch_opformer.py) computes our function."""

import sys

import jax.numpy as jnp
import numpy as np
import pytest

import conftest
from opformer_jax import config_lib
from opformer_jax import model as model_lib

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed (pip install -e \".[bench]\")")
sys.path.insert(0, str(conftest.REPO))
from benchmarks import torch_opformer  # noqa: E402
from torch.utils import flop_counter  # noqa: E402


def tiny_cfg(**kw):
  cfg = config_lib.base_config().model
  cfg.update(depth=2, dim=32, num_heads=4, max_frames=27,
             origin_merge_init="normal")
  cfg.update(kw)
  return cfg


def ported(cfg):
  model = model_lib.build_model(cfg, seed=3)
  ref = torch_opformer.load_jax_weights(torch_opformer.TorchOPFormer(cfg),
                                        model)
  return model, ref


X = np.random.default_rng(0).normal(size=(2, 9, 17, 3)).astype(np.float32)


@pytest.mark.parametrize("kw", [
    {}, {"variant": "temporal_part"}, {"variant": "temporal_spatial"},
    {"variant": "independent_parts"}, {"origin": "thorax"},
    {"layout": "mpi17", "temporal_embed": "once", "pre_logits_dim": 16},
    {"scan_layers": False}])
def test_reference_with_our_weights_gives_our_outputs(kw):
  cfg = tiny_cfg(**kw)
  model, ref = ported(cfg)
  assert sum(p.numel() for p in ref.parameters()) == \
      model_lib.count_params(model)
  want = np.asarray(model(jnp.asarray(X)))
  with torch.no_grad():
    got = ref(torch.from_numpy(X)).numpy()
  np.testing.assert_allclose(got, want, atol=1e-4)
  # Not a vacuous match: different weights give a different function.
  other = torch_opformer.TorchOPFormer(cfg)
  with torch.no_grad():
    assert np.abs(other(torch.from_numpy(X)).numpy() - want).max() > 1e-3


def test_reference_gradient_matches_ours():
  from flax import nnx
  cfg = tiny_cfg(depth=1)
  model, ref = ported(cfg)
  y = np.random.default_rng(1).normal(size=X.shape).astype(np.float32)
  loss_cfg = config_lib.base_config().loss
  from opformer_jax import losses
  grads = nnx.grad(lambda m: losses.total_loss(
      m(jnp.asarray(X)), jnp.asarray(y), loss_cfg)[0])(model)
  torch_opformer.total_loss(ref(torch.from_numpy(X)), torch.from_numpy(y),
                            loss_cfg).backward()
  # W_O of the loop and the head: (in, out) kernels vs (out, in) weights.
  np.testing.assert_allclose(
      ref.head.weight.grad.numpy().T, np.asarray(grads.head.kernel[...]),
      atol=1e-5)
  np.testing.assert_allclose(
      ref.loops[0].part.origin_merge.weight.grad.numpy().T,
      np.asarray(grads.loops.part.origin_merge.kernel[...])[0], atol=1e-5)


@pytest.mark.parametrize("variant", model_lib.VARIANTS)
@pytest.mark.parametrize("frames", [1, 27])
def test_reference_flops_equal_our_count(variant, frames):
  cfg = tiny_cfg(variant=variant)
  ref = torch_opformer.TorchOPFormer(cfg, impl="matmul")
  with flop_counter.FlopCounterMode(display=False) as counter:
    ref(torch.zeros(1, frames, 17, 3))
  assert counter.get_total_flops() == \
      model_lib.flops_per_clip(cfg, frames)["total"]
