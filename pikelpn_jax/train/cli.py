"""What main.py runs: optional multi-host start-up, training, the ACEv2 report of the trained
model (the one place training calls the analyzer), the printed results, one-line errors."""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, Optional

import jax
from absl import logging

from pikelpn_jax import workdir as wd
from pikelpn_jax.train import checkpoint
from pikelpn_jax.train.loop import NonFiniteLossError, train_and_evaluate, write_json
from pikelpn_jax.train.preemption import Preempted

RESULT_ROWS = (
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
)


def run(
  config,
  workdir: str,
  config_source: str = "",
  *,
  distributed: bool = False,
  coordinator_address: Optional[str] = None,
  num_processes: Optional[int] = None,
  process_id: Optional[int] = None,
  heartbeat_timeout_s: int = 100,
  shutdown_timeout_s: int = 300,
) -> int:
  """Returns the exit code: 0 (finished, or stopped on request after saving a checkpoint), or 1
  with `error: <what is wrong>` on stderr."""
  checkpoint.quiet_logs()  # orbax logs every save at INFO
  if distributed or coordinator_address or num_processes or process_id is not None:
    for name, value in (("heartbeat", heartbeat_timeout_s), ("shutdown", shutdown_timeout_s)):
      if not isinstance(value, int) or value < 1:
        print(
          f"error: --{name}_timeout_s={value!r} is not allowed; use seconds >= 1", file=sys.stderr
        )
        return 1
    jax.distributed.initialize(
      coordinator_address,
      num_processes,
      process_id,
      heartbeat_timeout_seconds=heartbeat_timeout_s,
      shutdown_timeout_seconds=shutdown_timeout_s,
    )
  try:
    results = train_and_evaluate(config, workdir, config_source)
  except Preempted as e:
    print(f"preempted: {e}", file=sys.stderr)
    return 0
  except (ValueError, FileNotFoundError, NonFiniteLossError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  except Exception as e:  # noqa: BLE001  (gloo, barriers, orbax: whatever a dead peer causes)
    if jax.process_count() == 1:
      raise
    run_lost(workdir, f"{type(e).__name__}: {e}")
  table = add_acev2(config, workdir, results)
  if jax.process_index() == 0:
    if table:
      print(table)
    rows = [(k, results[k]) for k in RESULT_ROWS if results.get(k) is not None]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {f'{v:.4f}' if isinstance(v, float) else v}" for k, v in rows))
  return 0


def run_lost(workdir: str, reason: str) -> None:
  """A step, collective or barrier of a multi-process run failed (another process died, most often):
  one line, and exit 1 at once; a normal exit would wait for the dead process at jax's shutdown
  barrier (`--shutdown_timeout_s`)."""
  reason = " ".join(reason.split())
  reason = reason if len(reason) <= 300 else reason[:297] + "..."
  sys.stderr.write(
    f"\nerror: process {jax.process_index()} of {jax.process_count()}: {reason}; another "
    "process of the run has probably died (see its log); stopped without saving; run the same "
    f"command on every host to resume from the newest checkpoint in "
    f"{checkpoint.checkpoint_dir(workdir)}\n"
  )
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(1)


def add_acev2(config, workdir: str, results: Dict[str, Any]) -> Optional[str]:
  """Prices the final checkpoint with the analyzer: writes acev2.json, adds its totals (macs, ace,
  acev2; None when pikelpn_jax.ace is not importable) to `results` and results.json, and returns
  its table by category."""
  ace, table = None, None
  try:
    from pikelpn_jax.ace import acev2_report
  except ImportError as e:
    logging.warning("ACEv2 report skipped: pikelpn_jax.ace is not importable (%s)", e)
  else:
    # Every process restores (orbax's multi-host restore waits for all of them).
    report = acev2_report(config, checkpoint.restore_latest(workdir, config))
    ace, table = report.to_json(), report.render(by="category")
  for key in ("macs", "ace", "acev2"):
    results[key] = ace.get(key) if ace else None
  if jax.process_index() == 0:
    if ace:
      write_json(wd.join(workdir, "acev2.json"), ace)
    write_json(wd.join(workdir, "results.json"), results)
  return table
