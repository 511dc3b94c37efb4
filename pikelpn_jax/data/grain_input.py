"""grain datasets over the encoded-image sources: worker processes, per-host shards, prefetch.

Each is a random-access `grain.MapDataset` over this host's *local sample counter* k: sample i of
this host's share of global batch `step` (k = step·B/H + i) is global position
p = step·B + h·B/H + i, which reads example perm_e[p mod N] of epoch e = p div N (positions.py) and
augments it with a Generator seeded by (seed, p). Element k is therefore a pure function of
(seed, k) whichever worker computes it, and a resumed run starts the dataset at its step with no
iterator state to save. grain batches inside the workers and hands back uint8 arrays through shared
memory; normalisation happens on the device (device_input.py).
"""

from __future__ import annotations

import os
import signal
from typing import Iterator, Tuple

import numpy as np

from pikelpn_jax.data.positions import epoch_permutation, train_seed


def auto_worker_count() -> int:
  """dataset.worker_count=-1: all cores but one for the trainer; none on a 2-core machine, where
  worker processes would only compete with XLA for the same cores."""
  cpus = os.cpu_count() or 1
  return 0 if cpus <= 2 else min(cpus - 1, 32)


def resolve_worker_count(value) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < -1:
    raise ValueError(
      f"dataset.worker_count={value!r} is not allowed; use -1 (automatic: "
      f"{auto_worker_count()} here), 0 (decode in the training process) or a "
      "positive number of worker processes"
    )
  return auto_worker_count() if value == -1 else value


def _ensure_absl_flags_parsed() -> None:
  # grain's worker processes read absl flags; outside an absl app (tests, notebooks, benchmarks)
  # nothing has parsed them yet.
  from absl import flags

  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


class TrainExample:
  """k (this host's sample counter) -> (uint8 image, int32 label). Picklable for the workers."""

  def __init__(self, source, seed: int, batch: int, process_index: int, process_count: int):
    self.source, self.seed, self.batch = source, seed, batch
    self.per_host = batch // process_count
    self.offset = process_index * self.per_host

  def position(self, k: int) -> int:
    step, i = divmod(int(k), self.per_host)
    return step * self.batch + self.offset + i

  def __call__(self, k) -> Tuple[np.ndarray, np.int32]:
    p = self.position(k)
    epoch, off = divmod(p, len(self.source))
    index = epoch_permutation(self.seed, epoch, len(self.source))[off]
    image, label = self.source.example(index, train_seed(self.seed, p))
    return image, np.int32(label)


class EvalExample:
  """k -> (uint8 image, int32 label, float32 mask); positions past the split are padding (mask 0)."""

  def __init__(self, source, batch: int, process_index: int, process_count: int):
    self.source, self.batch = source, batch
    self.per_host = batch // process_count
    self.offset = process_index * self.per_host

  def __call__(self, k) -> Tuple[np.ndarray, np.int32, np.float32]:
    step, i = divmod(int(k), self.per_host)
    p = step * self.batch + self.offset + i
    valid = p < len(self.source)
    image, label = self.source.example(p if valid else 0, None)
    return image, np.int32(label), np.float32(valid)


def batch_dataset(example, begin: int, end: int, per_host: int, worker_count: int):
  """The grain IterDataset of this host's batches begin..end-1 (a fresh one starts at any step)."""
  import grain  # only the decoded-image data sets need it

  ds = grain.MapDataset.range(begin * per_host, end * per_host).map(example)
  ds = ds.batch(per_host, drop_remainder=True)
  if worker_count <= 0:
    # In this process: grain's reader threads decode ahead (OpenCV and file reads release the GIL).
    threads = max(1, min(4, os.cpu_count() or 1))
    return ds.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2))
  # One reader thread per worker: the worker processes are the parallelism.
  it = ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=1))
  _ensure_absl_flags_parsed()
  return it.mp_prefetch(
    grain.MultiprocessingOptions(num_workers=worker_count, per_worker_buffer_size=2),
    worker_init_fn=ignore_stop_signals,
  )


def ignore_stop_signals(worker_index: int, worker_count: int) -> None:
  """In each grain worker: SIGINT and SIGTERM are the training process's to handle (it stops after
  its step, saves, and shuts the workers down). A terminal's Ctrl-C and Slurm signal every process
  of the job, and a worker they killed would fail the batches the last step still needs; grain
  stops its workers with its own event (SIGKILL as the last resort)."""
  del worker_index, worker_count
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  signal.signal(signal.SIGTERM, signal.SIG_IGN)


def iterate(dataset) -> Iterator:
  """Iterates a grain dataset and shuts its worker processes down when the consumer stops."""
  it = iter(dataset)
  try:
    yield from it
  finally:
    close = getattr(it, "close", None)
    if close is not None:
      close()
