"""Tests of the OPFormer network: part locality, padding, origin merge."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from opformer_jax import config_lib
from opformer_jax import layers
from opformer_jax import model as model_lib
from opformer_jax import skeleton


def tiny_cfg(**kw):
  cfg = config_lib.base_config().model
  cfg.update(depth=2, dim=32, num_heads=4, max_frames=27)
  cfg.update(kw)
  return cfg


def rand(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape),
                     jnp.float32)


# A non-constant perturbation: LayerNorm would cancel a constant shift.
KICK = 3.0 * rand((32,), seed=9)


def make_branch(**kw):
  cfg = tiny_cfg(**kw)
  block_fn = lambda r: layers.Block(cfg.dim, cfg.num_heads, cfg.mlp_ratio,
                                    rngs=r)
  return model_lib.PartBranch(cfg, block_fn, rngs=nnx.Rngs(params=1)), cfg


@pytest.mark.parametrize("part_weights", ["shared", "per_part"])
@pytest.mark.parametrize("origin", ["hip", "thorax"])
def test_padded_vmapped_part_attention_equals_unpadded_loop(part_weights,
                                                            origin):
  branch, cfg = make_branch(part_weights=part_weights, origin=origin,
                            origin_merge_init="normal")
  x = rand((2, 3, 17, cfg.dim))
  got = branch(x)

  tab = branch.table
  state = nnx.state(branch.block)
  graphdef = nnx.graphdef(branch.block)
  want = np.zeros_like(np.asarray(got))
  origin_copies = []
  for p, joints in enumerate(tab.parts):
    st = state if part_weights == "shared" else jax.tree.map(
        lambda a, p=p: a[p], state)
    block = nnx.merge(graphdef, st)
    tokens = x[:, :, list(joints)].reshape(6, len(joints), cfg.dim)
    out = np.asarray(block(tokens)).reshape(2, 3, len(joints), cfg.dim)
    for i, j in enumerate(joints):
      if j == tab.origin:
        origin_copies.append(out[:, :, i])
      else:
        want[:, :, j] = out[:, :, i]
  merged = branch.origin_merge(jnp.concatenate(origin_copies, axis=-1))
  want[:, :, tab.origin] = np.asarray(merged)
  np.testing.assert_allclose(np.asarray(got), want, atol=2e-5)


@pytest.mark.parametrize("kw", [{"part_attention": "masked_dense"},
                                {"loop_impl": "unrolled"},
                                {"scan_unroll": 2}])
def test_speed_options_compute_the_same_function(kw):
  """Off-default speed options: same parameters, same outputs, gradients
  and attention maps as the default implementation (up to rounding)."""
  x, y = rand((2, 5, 17, 3)), rand((2, 5, 17, 3), seed=1)
  ref = model_lib.build_model(tiny_cfg(origin_merge_init="normal"))
  alt = model_lib.build_model(tiny_cfg(origin_merge_init="normal", **kw))
  loss = lambda m: jnp.mean((m(x) - y) ** 2)
  for a, b in zip(jax.tree.leaves(nnx.grad(loss)(ref)),
                  jax.tree.leaves(nnx.grad(loss)(alt))):
    np.testing.assert_allclose(a, b, atol=1e-6)
  (out_a, maps_a), (out_b, maps_b) = (
      m(x, return_attention=True) for m in (ref, alt))
  np.testing.assert_allclose(out_a, out_b, atol=1e-5)
  for k in maps_a:
    np.testing.assert_allclose(maps_a[k], maps_b[k], atol=1e-6)


def test_unrolled_loops_draw_the_scanned_loops_dropout():
  """loop_impl 'unrolled' and 'scan' (the default) share the parameter tree
  (one checkpoint restores into both) and, in training mode, the per-loop
  dropout and drop-path keys: same outputs and gradients."""
  kw = dict(drop_rate=0.2, attn_drop_rate=0.2, drop_path_rate=0.3)
  scan = model_lib.build_model(tiny_cfg(loop_impl="scan", **kw))
  unrolled = model_lib.build_model(tiny_cfg(loop_impl="unrolled", **kw))
  assert (jax.tree.structure(nnx.state(scan)) ==
          jax.tree.structure(nnx.state(unrolled)))
  x, key = rand((2, 5, 17, 3)), jax.random.key(7)
  loss = lambda m: jnp.mean(m(x, key=key) ** 2)
  assert loss(scan) != jnp.mean(scan(x) ** 2)  # the key draws dropout
  np.testing.assert_allclose(loss(scan), loss(unrolled), rtol=1e-6)
  for a, b in zip(jax.tree.leaves(nnx.grad(loss)(scan)),
                  jax.tree.leaves(nnx.grad(loss)(unrolled))):
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_unknown_loop_impl_is_one_clear_error():
  with pytest.raises(ValueError, match="model.loop_impl='while'"):
    model_lib.build_model(tiny_cfg(loop_impl="while"))


def test_unknown_attention_impl_is_one_clear_error():
  # Before: any other name silently ran the einsum path.
  with pytest.raises(ValueError, match="model.attention_impl='flash'"):
    model_lib.build_model(tiny_cfg(attention_impl="flash"))


def test_group_mask_is_block_diagonal_over_the_oparts():
  tab = skeleton.part_table("h36m17", "hip")
  mask = layers.group_mask(tab)
  assert mask.shape == (21, 21) and (mask == mask.T).all()
  # Origin copy p (token p) sees only its own part: itself + the part's
  # joints; the OPart sizes are 4, 4, 5, 4, 4.
  assert mask.sum(axis=1)[:5].tolist() == [4, 4, 5, 4, 4]
  assert not mask[0, 1:5].any()
  joint_of = tab.token_joints
  for i, j in zip(*np.nonzero(mask)):
    p = next(p for p in range(5) if i in tab.group_tokens[p, :tab.part_len[p]])
    assert j in tab.group_tokens[p, :tab.part_len[p]], (i, j)
    assert joint_of[i] in tab.parts[p] and joint_of[j] in tab.parts[p]


def test_part_branch_is_local_except_through_the_origin():
  branch, cfg = make_branch()
  tab = branch.table
  x = rand((1, 2, 17, cfg.dim))
  base = np.asarray(branch(x))
  for p, joints in enumerate(tab.parts):
    for q, other in enumerate(tab.parts):
      if p == q:
        continue
      # Perturb a non-origin joint of part q: part p's own joints unchanged.
      moved = x.at[:, :, other[-1]].add(KICK)
      out = np.asarray(branch(moved))
      for j in joints[1:]:
        np.testing.assert_allclose(out[:, :, j], base[:, :, j], atol=1e-6)
  # Perturbing the origin changes every joint.
  out = np.asarray(branch(x.at[:, :, tab.origin].add(KICK)))
  assert (np.abs(out - base).max(axis=(0, 1, 3)) > 1e-4).all()


def test_origin_merge_sees_all_five_origin_copies():
  branch, cfg = make_branch()
  tab = branch.table
  assert branch.origin_merge.kernel.shape == (5 * cfg.dim, cfg.dim)
  x = rand((1, 2, 17, cfg.dim))
  base = np.asarray(branch(x))[:, :, tab.origin]
  for joints in tab.parts:
    out = np.asarray(branch(x.at[:, :, joints[-1]].add(KICK)))
    assert np.abs(out[:, :, tab.origin] - base).max() > 1e-4


def test_origin_merge_starts_as_mean_of_copies():
  branch, cfg = make_branch(origin_merge_init="mean")
  copies = rand((4, 5 * cfg.dim))
  want = np.asarray(copies).reshape(4, 5, cfg.dim).mean(1)
  np.testing.assert_allclose(np.asarray(branch.origin_merge(copies)), want,
                             atol=1e-5)


def test_full_model_output_depends_on_all_joints():
  model = model_lib.build_model(tiny_cfg())
  x = rand((1, 9, 17, 3))
  base = np.asarray(model(x))
  for j in range(17):
    out = np.asarray(model(x.at[:, 4, j, :2].add(0.5)))
    # Every joint of every frame reacts (spatial + temporal mixing).
    assert (np.abs(out - base).max(axis=-1) > 0).all(), j


@pytest.mark.parametrize("variant", ["independent_parts", "temporal_part"])
def test_part_ablations_have_no_cross_part_path(variant):
  cfg = tiny_cfg(variant=variant)
  tab = model_lib.part_table(cfg)
  assert tab.origin is None and tab.num_parts == 6
  assert sorted(j for p in tab.parts for j in p) == list(range(17))
  branch, _ = make_branch(variant=variant)
  assert not hasattr(branch, "origin_merge")
  x = rand((1, 2, 17, cfg.dim))
  base = np.asarray(branch(x))
  out = np.asarray(branch(x.at[:, :, 0].add(KICK)))  # hip: its own part
  changed = np.abs(out - base).max(axis=(0, 1, 3)) > 1e-6
  assert changed.tolist() == [True] + [False] * 16


def test_temporal_part_is_the_table4_baseline_without_origin():
  """Temporal encoder + plain part block: a joint's output depends on its own
  part only (all frames), while the full model mixes every joint."""
  cfg = tiny_cfg(variant="temporal_part", depth=2)
  model = model_lib.build_model(cfg)
  loop = model.loops
  assert loop.spatial is None and loop.fusion is None
  assert not hasattr(loop.part, "origin_merge")
  tab = model_lib.part_table(cfg)
  x = rand((1, 5, 17, 3))
  base = np.asarray(model(x))
  for part in tab.parts:
    out = np.asarray(model(x.at[:, 2, part[-1], :2].add(0.5)))
    changed = np.abs(out - base).max(axis=(0, 1, 3)) > 1e-6
    assert sorted(np.flatnonzero(changed).tolist()) == sorted(part), part
  # Parameters by hand: per loop a temporal block and one shared part block,
  # nothing else (no spatial block, fusion or W_O).
  c, hid = cfg.dim, int(cfg.dim * cfg.mlp_ratio)
  block = 4 * c + (3 * c * c + 3 * c) + (c * c + c) + (c * hid + hid) + (
      hid * c + c)
  rest = 4 * c + 17 * c + cfg.max_frames * c + 2 * c + 3 * c + 3
  assert model_lib.count_params(model) == rest + cfg.depth * 2 * block


@pytest.mark.parametrize("layout", ["h36m17", "mpi17"])
def test_flip_maps_parts_to_mirrored_parts(layout):
  lay = skeleton.get_layout(layout)
  perm = np.asarray(lay.flip_perm)
  np.testing.assert_array_equal(perm[perm], np.arange(lay.num_joints))
  for j, name in enumerate(lay.joints):
    mirrored = lay.joints[perm[j]]
    swap = {"l_": "r_", "r_": "l_"}
    want = swap[name[:2]] + name[2:] if name[:2] in swap else name
    assert mirrored == want
  bones = {tuple(sorted(b)) for b in lay.bones}
  assert {tuple(sorted(perm[list(b)])) for b in bones} == bones
  for origin in skeleton.ORIGINS:
    tab = skeleton.part_table(layout, origin)
    sets = [frozenset(p) for p in tab.parts]
    mirror = {"right_leg": "left_leg", "left_leg": "right_leg",
              "trunk": "trunk", "left_arm": "right_arm",
              "right_arm": "left_arm"}
    for name, part in zip(skeleton.PART_NAMES, sets):
      want = sets[skeleton.PART_NAMES.index(mirror[name])]
      assert frozenset(perm[list(part)]) == want


def test_flip_pose_negates_x_and_swaps_channels_with_joints():
  pose = rand((4, 17, 3))
  flipped = np.asarray(skeleton.flip_pose(pose))
  np.testing.assert_allclose(flipped[:, 1, 0], -np.asarray(pose)[:, 4, 0])
  np.testing.assert_allclose(flipped[:, 1, 2], np.asarray(pose)[:, 4, 2])
  np.testing.assert_allclose(skeleton.flip_pose(flipped), pose)


@pytest.mark.parametrize("origin", skeleton.ORIGINS)
@pytest.mark.parametrize("layout", ["h36m17", "mpi17"])
def test_part_tables_cover_every_joint_once(layout, origin):
  tab = skeleton.part_table(layout, origin)
  lay = skeleton.get_layout(layout)
  assert tab.origin == lay.parts[origin][0]
  assert all(p[0] == tab.origin for p in tab.parts)
  rest = sorted(j for p in tab.parts for j in p[1:])
  assert rest == sorted(set(range(17)) - {tab.origin})
  assert tab.part_len.tolist() == [4, 4, 5, 4, 4]


@pytest.mark.parametrize("variant", model_lib.VARIANTS)
@pytest.mark.parametrize("part_weights", ["shared", "per_part"])
def test_variants_build_and_run(variant, part_weights):
  model = model_lib.build_model(tiny_cfg(variant=variant,
                                         part_weights=part_weights, depth=1))
  y = model(rand((2, 5, 17, 3)))
  assert y.shape == (2, 5, 17, 3) and y.dtype == jnp.float32
  assert np.isfinite(np.asarray(y)).all()
  if part_weights == "per_part" and variant != "temporal_spatial":
    qkv = model.loops.part.block.attn.qkv.kernel
    num_parts = 5 if variant == "full" else 6
    assert qkv.shape == (1, num_parts, 32, 96)  # (depth, parts, C, 3C)


def test_mpi_layout_and_origins_run():
  for origin in skeleton.ORIGINS:
    model = model_lib.build_model(tiny_cfg(layout="mpi17", origin=origin,
                                           depth=1))
    assert model(rand((1, 3, 17, 3))).shape == (1, 3, 17, 3)


def test_any_length_up_to_max_frames_and_clear_errors():
  model = model_lib.build_model(tiny_cfg(depth=1))
  for t in (1, 2, 27):
    assert model(rand((1, t, 17, 3))).shape == (1, t, 17, 3)
  with pytest.raises(ValueError, match="max_frames=27"):
    model(rand((1, 28, 17, 3)))
  with pytest.raises(ValueError, match=r"expected \(B, T, 17, 3\)"):
    model(rand((1, 9, 16, 3)))


def test_temporal_embedding_modes_differ_and_both_run():
  x = rand((1, 9, 17, 3))
  a = model_lib.build_model(tiny_cfg(temporal_embed="every_loop"))(x)
  b = model_lib.build_model(tiny_cfg(temporal_embed="once"))(x)
  assert np.abs(np.asarray(a) - np.asarray(b)).max() > 1e-6


def test_dropout_is_a_function_of_the_key():
  model = model_lib.build_model(tiny_cfg(drop_rate=0.2, attn_drop_rate=0.1,
                                         drop_path_rate=0.2))
  x = rand((2, 9, 17, 3))
  k = jax.random.key(3)
  np.testing.assert_array_equal(model(x, key=k), model(x, key=k))
  assert np.abs(np.asarray(model(x, key=k)) -
                np.asarray(model(x, key=jax.random.key(4)))).max() > 1e-6
  np.testing.assert_array_equal(model(x), model(x))  # key None: eval


def test_remat_and_bf16_options():
  x = rand((2, 9, 17, 3))
  y = rand((2, 9, 17, 3), seed=1)

  def grads(cfg):
    model = model_lib.build_model(cfg)
    loss = lambda m: jnp.mean((m(x) - y) ** 2)
    return nnx.grad(loss)(model)
  g0 = grads(tiny_cfg())
  for policy in ("full", "dots"):
    g1 = grads(tiny_cfg(remat=policy))
    for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
      np.testing.assert_allclose(a, b, atol=1e-6)
  model = model_lib.build_model(tiny_cfg(dtype="bfloat16"))
  out = model(x)
  assert out.dtype == jnp.float32
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(
      nnx.state(model, nnx.Param)))
  ref = model_lib.build_model(tiny_cfg())(x)
  assert np.abs(np.asarray(out) - np.asarray(ref)).max() < 0.1


def test_no_retrace_across_calls_with_same_shapes():
  model = model_lib.build_model(tiny_cfg(depth=1))
  graphdef, state = nnx.split(model)
  traces = []

  @jax.jit
  def apply(state, x):
    traces.append(1)
    return nnx.merge(graphdef, state)(x)
  for seed in range(3):
    apply(state, rand((2, 9, 17, 3), seed))
  assert len(traces) == 1
  apply(state, rand((2, 5, 17, 3)))
  assert len(traces) == 2


def test_attention_implementations_agree():
  q, k, v = (rand((6, 5, 2, 8), s) for s in range(3))
  kv_len = jnp.array([5, 4, 4, 3, 5, 1])
  ref = layers.attention_core(q, k, v, kv_len=kv_len, impl="einsum")
  xla = layers.attention_core(q, k, v, kv_len=kv_len, impl="xla")
  np.testing.assert_allclose(ref, xla, atol=1e-5)
  # A masked key gets zero weight.
  _, w = layers.attention_core(q, k, v, kv_len=kv_len, return_weights=True)
  assert float(jnp.abs(w[5, :, :, 1:]).max()) == 0.0


def test_gelu_is_the_exact_erf_gelu():
  x = jnp.linspace(-10.0, 10.0, 2001)
  # Independent reference: the Gaussian CDF in float64.
  from scipy.special import ndtr
  ref = np.asarray(x, np.float64) * ndtr(np.asarray(x, np.float64))
  np.testing.assert_allclose(layers.gelu(x), ref, atol=2e-6)
  g = jax.vmap(jax.grad(layers.gelu))(x)
  g_ref = jax.vmap(jax.grad(lambda t: jax.nn.gelu(t, approximate=False)))(x)
  np.testing.assert_allclose(g, g_ref, atol=2e-6)


def test_flops_count_matches_xla_cost_analysis_roughly():
  cfg = tiny_cfg(dim=64, depth=1)
  model = model_lib.build_model(cfg)
  graphdef, state = nnx.split(model)
  x = jnp.zeros((1, 27, 17, 3))
  fn = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
  xla = fn.lower(state, x).compile().cost_analysis()["flops"]
  ours = model_lib.flops_per_clip(cfg, 27)["total"]
  # XLA also counts elementwise ops and the padded part tokens.
  assert 0.9 * ours < xla < 1.6 * ours, (ours, xla)
