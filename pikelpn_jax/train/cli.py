"""What main.py runs: optional multi-host start-up, training, the printed report, one-line errors."""

from __future__ import annotations

import sys
from typing import Optional

import jax

from pikelpn_jax.train import checkpoint, reporting
from pikelpn_jax.train.loop import NonFiniteLossError, train_and_evaluate


def run(
  config,
  workdir: str,
  config_source: str = "",
  *,
  distributed: bool = False,
  coordinator_address: Optional[str] = None,
  num_processes: Optional[int] = None,
  process_id: Optional[int] = None,
) -> int:
  """Returns the exit code: 0, or 1 with `error: <what is wrong>` on stderr."""
  checkpoint.quiet_logs()  # orbax logs every save at INFO
  if distributed or coordinator_address or num_processes or process_id is not None:
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  try:
    results = train_and_evaluate(config, workdir, config_source)
  except (ValueError, FileNotFoundError, NonFiniteLossError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  # Every process restores (orbax's multi-host restore waits for all of them); process 0 prints.
  ace = ace_table(config, workdir)
  if jax.process_index() == 0:
    if ace:
      print(ace)
    print(reporting.results_table(results))
  return 0


def ace_table(config, workdir: str) -> Optional[str]:
  """The ACEv2 report by category of the final checkpoint (what results.json's ACEv2 prices)."""
  try:
    from pikelpn_jax.ace import acev2_report
  except ImportError:
    return None  # the loop logged why
  return acev2_report(config, checkpoint.restore_latest(workdir, config)).render(by="category")
