"""Metric logs: one JSON object per line plus TensorBoard event files.

`workdir/metrics.jsonl` is easy to read back (pandas, jq); the TensorBoard
events in `workdir/tb/` are for `tensorboard --logdir workdir`. Only process
0 writes; the other processes get a writer that does nothing.

A resumed run trains again the steps after the checkpoint it restored; the
rows the stopped run wrote for them are dropped first (`drop_after`), so
the log holds each step once.
"""

import json
import math
import os
import time

import jax

from opformer_jax import fileio

JSONL = "metrics.jsonl"


def drop_after(path: str, step: int) -> int:
  """Rewrites the JSONL log `path` (atomically) without the rows of steps
  after `step`, and without a line a killed run left unfinished; returns
  how many lines were dropped (0, and nothing rewritten, when none)."""
  if not os.path.exists(path):
    return 0
  with open(path, encoding="utf-8") as f:
    lines = f.read().splitlines()
  kept = []
  for line in lines:
    try:
      if int(json.loads(line)["step"]) <= step:
        kept.append(line)
    except (ValueError, KeyError, TypeError):
      pass   # a torn last line: the row is logged again
  if len(kept) < len(lines):
    fileio.write_text(path, "".join(l + "\n" for l in kept))
  return len(lines) - len(kept)


class MetricWriter:
  """Appends scalar metrics to JSONL and TensorBoard.

  Args:
    workdir: where `metrics.jsonl` and `tb/` go.
    enabled: write (default: on process 0 only).
    resume_step: the step a run resumes at (0 for a fresh start); rows and
      TensorBoard events of later steps, from the run that stopped, are
      dropped. None keeps whatever is there.
  """

  def __init__(self, workdir: str, enabled: bool | None = None,
               resume_step: int | None = None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self._tb = None
    self._jsonl = None
    if self.enabled:
      os.makedirs(workdir, exist_ok=True)
      path = os.path.join(workdir, JSONL)
      if resume_step is not None:
        drop_after(path, resume_step)
      self._jsonl = open(path, "a", encoding="utf-8")
      from tensorboardX import SummaryWriter  # heavy import, process 0 only
      self._tb = SummaryWriter(
          os.path.join(workdir, "tb"),
          purge_step=None if resume_step is None else resume_step + 1)

  def write(self, step: int, metrics: dict) -> None:
    """Writes `{name: number}` at `step` (non-finite values kept as str)."""
    if not self.enabled:
      return
    row = {"step": int(step), "time": time.time()}
    for k, v in metrics.items():
      v = float(v)
      row[k] = v if math.isfinite(v) else str(v)
      self._tb.add_scalar(k, v, int(step))
    self._jsonl.write(json.dumps(row) + "\n")
    self._jsonl.flush()
    self._tb.flush()

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tb.close()
