"""Stop requests: on SIGTERM, SIGINT or jax's preemption notice, every process of a run stops after
the same step, saves it and exits 0; the same command then resumes from that checkpoint.

Two ways, chosen once per run:
* jax's preemption sync service (after jax.distributed.initialize, i.e. every multi-process run):
  jax's own handler owns SIGTERM and posts the notice to the coordination service; every process
  then learns the same step from `reached_preemption_sync_point` (the largest step any process had
  reported, plus one), so a signal to any one process stops all of them at one step. SIGINT is
  handed to that handler by raising SIGTERM in this process.
* otherwise (one process): our handlers of SIGTERM and SIGINT set a flag that the loop reads after
  each step.
A repeated SIGTERM is ignored (a scheduler may signal twice; the save in progress finishes). A
second SIGINT kills the process at once, as SIGKILL would: orbax writes a step to a temporary
directory and renames it when complete, so the checkpoints before it stay restorable.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Dict, Optional

from absl import logging
from jax.experimental import multihost_utils

from pikelpn_jax import _jax_internals as jint


class Preempted(Exception):
  """The run stopped early on request, after saving checkpoint `step` (not an error: exit 0)."""

  def __init__(self, step: int, path: str, reason: str):
    super().__init__(
      f"stopped by {reason} at step {step}: saved checkpoint {path}; run the same command to resume"
    )
    self.step, self.path, self.reason = step, path, reason


class StopRequests:
  """Installs the handlers (main thread only) and answers `reached(step)` once per step."""

  def __init__(self):
    self.synced = jint.preemption_service_running()
    self.signal_name: Optional[str] = None
    self._previous: Dict[int, object] = {}

  @property
  def reason(self) -> str:
    return self.signal_name or "a preemption notice"

  def install(self) -> "StopRequests":
    if threading.current_thread() is not threading.main_thread():
      return self  # Python runs signal handlers in the main thread only: keep the defaults
    signals = [signal.SIGINT] if self.synced else [signal.SIGTERM, signal.SIGINT]
    for s in signals:
      self._previous[s] = signal.signal(s, self._on_signal)
    return self

  def uninstall(self) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
    self._previous = {}

  def _on_signal(self, signum, frame) -> None:
    del frame
    name = signal.Signals(signum).name
    if self.signal_name is None:
      self.signal_name = name
      logging.warning(
        "%s received: stopping after the current step with a checkpoint "
        "(a second SIGINT stops at once, without it)",
        name,
      )
      if self.synced:
        os.kill(os.getpid(), signal.SIGTERM)  # jax's handler tells every process
    elif signum == signal.SIGINT:
      signal.signal(signal.SIGINT, signal.SIG_DFL)
      os.kill(os.getpid(), signal.SIGINT)
    else:
      logging.warning("%s received again: still saving the checkpoint", name)

  def reached(self, step: int) -> bool:
    """Whether to stop after `step` (steps done); every process calls it at every step."""
    if self.synced:
      return multihost_utils.reached_preemption_sync_point(int(step))
    return self.signal_name is not None
