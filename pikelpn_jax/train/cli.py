"""What main.py runs: optional multi-host start-up, training, the printed report, one-line errors."""

from __future__ import annotations

import os
import sys
from typing import Optional

import jax

from pikelpn_jax.train import checkpoint, reporting
from pikelpn_jax.train.loop import NonFiniteLossError, train_and_evaluate
from pikelpn_jax.train.preemption import Preempted


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
  # Every process restores (orbax's multi-host restore waits for all of them); process 0 prints.
  ace = ace_table(config, workdir)
  if jax.process_index() == 0:
    if ace:
      print(ace)
    print(reporting.results_table(results))
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


def ace_table(config, workdir: str) -> Optional[str]:
  """The ACEv2 report by category of the final checkpoint (what results.json's ACEv2 prices)."""
  try:
    from pikelpn_jax.ace import acev2_report
  except ImportError:
    return None  # the loop logged why
  return acev2_report(config, checkpoint.restore_latest(workdir, config)).render(by="category")
