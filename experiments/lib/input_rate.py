"""The input pipeline's steady-state rate and CPU cost: what bench_input and device_check measure.

Steady state: the first batches (process start-up, imports, grain's worker start) are not timed.
CPU time is read from /proc (Linux), for this process and its child processes (grain's workers).
"""

from __future__ import annotations

import os
import time

from pikelpn_jax.config_base import base_config
from pikelpn_jax.data import InputPipeline


def _proc_cpu_s(pid: int) -> float:
  """utime + stime of one process, from /proc (Linux); 0 when it is gone."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
  except (OSError, IndexError, ValueError):
    return 0.0


def _children(pid: int) -> list:
  out = []
  for d in os.listdir("/proc"):
    if d.isdigit():
      try:
        with open(f"/proc/{d}/stat") as f:
          if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(d))
      except (OSError, IndexError, ValueError):
        pass
  return out


def cpu_seconds():
  """(this process, its child processes: grain's workers) CPU seconds so far."""
  me = os.getpid()
  return _proc_cpu_s(me), sum(_proc_cpu_s(c) for c in _children(me))


def steady_rate(batches, warmup: int, timed: int, batch: int):
  """(img/s, main-process CPU ms per image, worker CPU ms per image) over the timed batches."""
  it = iter(batches)
  for _ in range(warmup):
    next(it)
  c0, t = cpu_seconds(), time.perf_counter()
  for _ in range(timed):
    next(it)
  wall, c1 = time.perf_counter() - t, cpu_seconds()
  close = getattr(it, "close", None)
  if close:
    close()
  n = timed * batch
  return n / wall, 1e3 * (c1[0] - c0[0]) / n, 1e3 * (c1[1] - c0[1]) / n


def new_pipeline(data_dir, workers, batch, size, train_n):
  c = base_config("bench_input", "imagenet2012")
  c.dataset.data_dir, c.dataset.image_size = data_dir, size
  c.dataset.worker_count = workers
  c.dataset.train_examples = train_n
  c.batch_size = c.eval_batch_size = batch
  return InputPipeline(c)
