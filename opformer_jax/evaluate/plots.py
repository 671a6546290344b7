"""The paper's evaluation figures as PNG: Fig. 4 (per-frame MPJPE histogram),
Fig. 5 (error per joint, grouped by OPFormer part), Fig. 6 (attention maps of
the part and spatial blocks per layer).

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so
importing this module never changes the process's matplotlib backend, and
written atomically (temp file + rename). Every function returns the
`matplotlib.figure.Figure` it saved, for inspection.
"""

from __future__ import annotations


from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np

from opformer_jax import fileio
from opformer_jax import skeleton

DPI = 100
_SPATIAL_WIDTH = 1.8
# One colour per group: origin, then skeleton.PART_NAMES order.
_GROUP_COLOURS = ("#4d4d4d", "#d62728", "#1f77b4", "#2ca02c", "#9467bd",
                  "#ff7f0e", "#8c564b")


def _save(fig: Figure, path: str) -> Figure:
  FigureCanvasAgg(fig)
  with fileio.atomic_path(path) as tmp:
    fig.savefig(tmp, format="png", dpi=DPI)
  return fig


def _pretty(name: str) -> str:
  return name.replace("_", " ")


def mpjpe_histogram(per_frame_mpjpe, path: str, *,
                    title: str = "Distribution of per-frame MPJPE",
                    bin_mm: float = 2.0, figsize=(8.0, 4.5)) -> Figure:
  """Fig. 4: histogram of per-frame MPJPE with the mean and median marked.

  Args:
    per_frame_mpjpe: (F,) mm, e.g. `result()['per_frame']['mpjpe']`.
    path: output .png.
    title: figure title (the frame count is appended).
    bin_mm: bin width; bins span 0 to the 99.5th percentile, and frames
      beyond it are gathered in the last bin so the tail stays visible.
    figsize: inches; the PNG is figsize * DPI pixels.
  """
  err = np.asarray(per_frame_mpjpe, np.float64).ravel()
  if err.size == 0 or not np.isfinite(err).all():
    raise ValueError(f"per_frame_mpjpe must be a non-empty (F,) array of "
                     f"finite errors; got shape {err.shape}")
  top = max(np.percentile(err, 99.5), bin_mm)
  bins = np.arange(0.0, top + bin_mm, bin_mm)
  fig = Figure(figsize=figsize, layout="constrained")
  ax = fig.add_subplot()
  ax.hist(np.minimum(err, bins[-1] - 1e-9), bins=bins, color="#6a8fbf",
          edgecolor="white", linewidth=0.4)
  tail = int((err >= bins[-1]).sum())
  if tail:
    ax.annotate(f"{tail} frames >= {bins[-1]:.0f} mm\nin the last bin",
                (0.98, 0.72), xycoords="axes fraction", ha="right",
                fontsize=8, color="#555555")
  mean, median = err.mean(), np.median(err)
  ax.axvline(mean, color="#d62728", linestyle="--",
             label=f"mean {mean:.1f} mm")
  ax.axvline(median, color="#2ca02c", linestyle=":", linewidth=2,
             label=f"median {median:.1f} mm")
  ax.set_title(f"{title} ({err.size} frames)")
  ax.set_xlabel("MPJPE (mm)")
  ax.set_ylabel("frames")
  ax.legend(frameon=False)
  ax.grid(axis="y", alpha=0.3)
  return _save(fig, path)


def part_groups(layout: str = "h36m17",
                origin: str = "hip") -> list[tuple[str, tuple[int, ...]]]:
  """[(group, joints)]: 'origin' then the five parts of skeleton.PART_NAMES
  (each without the origin), every joint exactly once."""
  origin_joint, parts = skeleton.get_layout(layout).parts[origin]
  return [("origin", (origin_joint,))] + list(zip(skeleton.PART_NAMES, parts))


def part_error_bars(per_joint_mpjpe, layout: str, path: str, *,
                    origin: str = "hip",
                    title: str = "Mean error per joint, by OPFormer part",
                    figsize=(10.0, 4.8)) -> Figure:
  """Fig. 5: one bar per joint, grouped and coloured by part, with the
  part's mean error drawn across its group and printed above it.

  Args:
    per_joint_mpjpe: (J,) mm, e.g. `result()['per_joint_mpjpe']`.
    layout: joint order, 'h36m17' or 'mpi17'.
    path: output .png.
    origin: origin choice of the part table (paper Table 6).
    title: figure title.
    figsize: inches; the PNG is figsize * DPI pixels.
  """
  err = np.asarray(per_joint_mpjpe, np.float64)
  names = skeleton.get_layout(layout).joints
  if err.shape != (len(names),):
    raise ValueError(f"per_joint_mpjpe must be ({len(names)},) for layout "
                     f"{layout}; got {err.shape}")
  fig = Figure(figsize=figsize, layout="constrained")
  ax = fig.add_subplot()
  x, ticks, labels = 0.0, [], []
  for (group, joints), colour in zip(part_groups(layout, origin),
                                     _GROUP_COLOURS):
    xs = x + np.arange(len(joints))
    ax.bar(xs, err[list(joints)], color=colour, width=0.8,
           label=_pretty(group))
    mean = err[list(joints)].mean()
    ax.hlines(mean, xs[0] - 0.45, xs[-1] + 0.45, colors="black",
              linewidth=1.2)
    ax.annotate(f"{mean:.1f}", (xs.mean(), mean), textcoords="offset points",
                xytext=(0, 3), ha="center", fontsize=8,
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none",
                          alpha=0.8))
    ticks += xs.tolist()
    labels += [_pretty(names[j]) for j in joints]
    x = xs[-1] + 1.8
  ax.set_xticks(ticks, labels, rotation=45, ha="right", fontsize=8)
  ax.set_ylabel("MPJPE (mm)")
  ax.set_xlabel("joint (grouped by part; line = part mean)")
  ax.set_title(title)
  ax.set_ylim(0, err.max() * 1.25 + 1e-9)
  ax.legend(frameon=False, fontsize=8, ncol=6, loc="upper left")
  ax.grid(axis="y", alpha=0.3)
  return _save(fig, path)


def part_token_labels(layout: str = "h36m17", origin: str = "hip",
                      with_origin: bool = True) -> list[list[str]]:
  """Joint names of the real tokens of each part (padding excluded), in
  the order of `skeleton.part_table(layout, origin, with_origin).parts`."""
  names = skeleton.get_layout(layout).joints
  table = skeleton.part_table(layout, origin, with_origin)
  return [[names[j] for j in part] for part in table.parts]


def _head_mean(a, ndim, what):
  a = np.asarray(a, np.float64)
  if a.ndim == ndim + 1:       # heads not yet averaged
    a = a.mean(axis=-3)
  if a.ndim != ndim:
    raise ValueError(f"{what} has shape {a.shape}")
  return a


def attention_maps(part_attn, spatial_attn, layout: str, path: str, *,
                   origin: str = "hip", with_origin: bool = True,
                   panel_in: float = 2.4) -> Figure:
  """Fig. 6: attention maps of the part and spatial blocks, a row per layer.

  Each row holds one panel per OPart (its real tokens only; padding rows and
  columns are cropped) and one for the spatial block, rows = queries,
  columns = keys, each panel on its own colour scale.

  Args:
    part_attn: (L, P, Lp, Lp) part-block attention averaged over batch,
      frames and heads, or (L, P, H, Lp, Lp) (heads averaged here); None
      when the variant has no part block.
    spatial_attn: (L, J, J) or (L, H, J, J); None when there is no spatial
      block.
    layout: joint order, 'h36m17' or 'mpi17'.
    path: output .png.
    origin, with_origin: the part table the model used.
    panel_in: width of a part panel in inches (the spatial panel is
      1.8 times wider); the figure is sum(panel widths) inches wide.
  """
  labels = part_token_labels(layout, origin, with_origin)
  names = skeleton.get_layout(layout).joints
  panels = []   # per layer: [(title, map, labels)]
  if part_attn is not None:
    part_attn = _head_mean(part_attn, 4, "part_attn (L, P, Lp, Lp)")
    lp = max(len(t) for t in labels)
    if part_attn.shape[1:] != (len(labels), lp, lp):
      raise ValueError(f"part_attn must be (L, {len(labels)}, {lp}, {lp}) "
                       f"for the {layout} part table; got {part_attn.shape}")
  if spatial_attn is not None:
    spatial_attn = _head_mean(spatial_attn, 3, "spatial_attn (L, J, J)")
    if spatial_attn.shape[1:] != (len(names), len(names)):
      raise ValueError(f"spatial_attn must be (L, {len(names)}, "
                       f"{len(names)}); got {spatial_attn.shape}")
  maps = [m for m in (part_attn, spatial_attn) if m is not None]
  if not maps:
    raise ValueError("attention_maps needs part_attn or spatial_attn")
  depth = maps[0].shape[0]
  if any(m.shape[0] != depth for m in maps):
    raise ValueError(f"part_attn and spatial_attn disagree on L: "
                     f"{[m.shape[0] for m in maps]}")
  part_names = list(skeleton.PART_NAMES) + ["origin"]
  for l in range(depth):
    row = []
    if part_attn is not None:
      for p, toks in enumerate(labels):
        n = len(toks)
        row.append((part_names[p], part_attn[l, p, :n, :n], toks))
    if spatial_attn is not None:
      row.append(("spatial", spatial_attn[l], list(names)))
    panels.append(row)
  # The spatial panel has J tokens against at most 5 per part: widen it so
  # its joint names stay readable.
  widths = [_SPATIAL_WIDTH if name == "spatial" else 1.0
            for name, _, _ in panels[0]]
  fig = Figure(figsize=(sum(widths) * panel_in,
                        depth * max(widths) * panel_in * 0.8 + 0.5),
               layout="constrained")
  axes = fig.subplots(depth, len(widths), squeeze=False,
                      gridspec_kw={"width_ratios": widths})
  for l, row in enumerate(panels):
    for c, (name, attn, toks) in enumerate(row):
      ax = axes[l, c]
      im = ax.imshow(attn, cmap="viridis", vmin=0.0)
      fig.colorbar(im, ax=ax, shrink=0.8).ax.tick_params(labelsize=6)
      ticks = np.arange(len(toks))
      ax.set_xticks(ticks, [_pretty(t) for t in toks], rotation=90,
                    fontsize=7)
      ax.set_yticks(ticks, [_pretty(t) for t in toks], fontsize=7)
      ax.set_title(f"layer {l + 1}: {_pretty(name)}", fontsize=8)
      ax.set_xlabel("key", fontsize=7, labelpad=1)
      ax.set_ylabel("query", fontsize=7, labelpad=1)
  fig.suptitle("Attention maps (mean over clips, frames and heads; "
               "rows = layers)", fontsize=10)
  return _save(fig, path)
