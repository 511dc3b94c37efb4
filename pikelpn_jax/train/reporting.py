"""What a run leaves behind: metrics.jsonl, TensorBoard events, results.json, the params hash."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, Optional

import jax
import numpy as np
from absl import logging
from flax import traverse_util


def params_sha256(params) -> str:
  """SHA-256 over (path, dtype, shape, bytes) of every leaf, in sorted path order."""
  h = hashlib.sha256()
  flat = traverse_util.flatten_dict(params, sep="/") if params else {}
  for path in sorted(flat):
    leaf = flat[path]
    if isinstance(leaf, jax.Array):
      leaf = leaf.addressable_data(0)
    arr = np.ascontiguousarray(np.asarray(leaf))
    h.update(path.encode())
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(arr.tobytes())
  return h.hexdigest()


class MetricsLog:
  """Appends JSON lines to <workdir>/metrics.jsonl and scalars to TensorBoard (<workdir>/tb).

  On resume from step s, records after s (written by a run killed before its next checkpoint)
  are dropped, and TensorBoard events from step s on are purged, so the logs read as one run.
  """

  def __init__(self, workdir: str, resume_step: int, enabled: bool = True):
    self.enabled = enabled
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if not enabled:
      return
    if resume_step > 0 and os.path.exists(self.path):
      with open(self.path) as f:
        keep = [ln for ln in f if ln.strip() and json.loads(ln).get("step", 0) <= resume_step]
      with open(self.path, "w") as f:
        f.writelines(keep)
    elif resume_step == 0 and os.path.exists(self.path):
      os.remove(self.path)
    from tensorboardX import SummaryWriter  # imported here: only the writing host needs it

    self._tb = SummaryWriter(os.path.join(workdir, "tb"), purge_step=resume_step)

  def write(self, step: int, record: Dict[str, Any]) -> None:
    if not self.enabled:
      return
    rec = {"step": int(step), **{k: _plain(v) for k, v in record.items()}}
    with open(self.path, "a") as f:
      f.write(json.dumps(rec) + "\n")
    for k, v in rec.items():
      if k != "step" and isinstance(v, (int, float)):
        self._tb.add_scalar(k, v, step)
    self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def _plain(v):
  if isinstance(v, (np.generic, np.ndarray)):
    return v.item()
  return v


def write_json(path: str, obj: Dict[str, Any]) -> None:
  """Atomic write (temporary file + rename), so a kill never leaves half a file."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
    f.write("\n")
  os.replace(tmp, path)


def allocator() -> str:
  """The malloc this process runs with (tcmalloc makes XLA:CPU ~1.5x faster; pikelpn_jax/allocator.py)."""
  from pikelpn_jax.allocator import allocator_in_use

  return allocator_in_use()


def results_table(results: Dict[str, Any]) -> str:
  keys = [
    "model",
    "variant",
    "step",
    "eval_top1",
    "eval_top5",
    "params_sha256",
    "macs",
    "ace",
    "acev2",
    "train_wall_s",
    "train_images_per_sec",
    "allocator",
  ]
  rows = [(k, results[k]) for k in keys if k in results and results[k] is not None]
  width = max(len(k) for k, _ in rows)
  fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)
  return "\n".join(f"{k:<{width}}  {fmt(v)}" for k, v in rows)


def ace_summary(config, variables) -> Optional[Dict[str, Any]]:
  """The ACEv2 report of the trained model (None when pikelpn_jax.ace is not available)."""
  try:
    from pikelpn_jax.ace import acev2_report
  except ImportError as e:
    logging.warning("ACEv2 report skipped: pikelpn_jax.ace is not importable (%s)", e)
    return None
  return acev2_report(config, variables).to_json()
