"""What main.py runs: optional multi-host start-up, training, and one-line errors for bad input."""
from __future__ import annotations

import sys
from typing import Optional

import jax
from absl import logging

from pikelpn_jax.train.loop import NonFiniteLossError, train_and_evaluate


def run(config, workdir: str, config_source: str = "", *, distributed: bool = False,
        coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
        process_id: Optional[int] = None) -> int:
  """Returns the exit code: 0, or 1 with `error: <what is wrong>` on stderr."""
  logging.set_verbosity(logging.WARNING)   # orbax logs every save at INFO
  if distributed or coordinator_address or num_processes or process_id is not None:
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  try:
    train_and_evaluate(config, workdir, config_source)
  except (ValueError, FileNotFoundError, NonFiniteLossError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  return 0
