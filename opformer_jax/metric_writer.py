"""Metric logs: one JSON object per line plus TensorBoard event files.

`workdir/metrics.jsonl` is easy to read back (pandas, jq); the TensorBoard
events in `workdir/tb/` are for `tensorboard --logdir workdir`. Only process
0 writes; the other processes get a writer that does nothing.
"""

import json
import math
import os
import time

import jax


class MetricWriter:
  """Appends scalar metrics to JSONL and TensorBoard."""

  def __init__(self, workdir: str, enabled: bool | None = None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self._tb = None
    self._jsonl = None
    if self.enabled:
      os.makedirs(workdir, exist_ok=True)
      self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
      from tensorboardX import SummaryWriter  # heavy import, process 0 only
      self._tb = SummaryWriter(os.path.join(workdir, "tb"))

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
