"""The input pipeline: deterministic, sharded per host, prefetched in a thread.

Batch contents are a pure function of (seed, step): global sample position p = step·B + i
(i < B) reads example perm_e[p mod N] of epoch e = p div N, where perm_e is a permutation seeded
by (seed, e), and augments it with a Generator seeded by (seed, p). A resumed run therefore sees
exactly the batches an uninterrupted one would, for any number of hosts; host h takes positions
[h·B/H, (h+1)·B/H) of each global batch.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterator, Tuple

import numpy as np

from pikelpn_jax.config_base import DATASETS
from pikelpn_jax.data import image_sources, sources


def check_dataset_name(name) -> None:
  if name not in DATASETS:
    raise ValueError(f"dataset.name={name!r} is not allowed; use one of {list(DATASETS)}")


def make_source(dcfg, split: str, seed: int):
  """split: 'train' or 'eval'."""
  check_dataset_name(dcfg.name)
  if dcfg.name == "fashion_mnist":
    return sources.fashion_mnist(dcfg, "train" if split == "train" else "test")
  if dcfg.name == "synthetic":
    return sources.synthetic(dcfg, split, seed)
  if dcfg.name == "imagenet2012":
    return image_sources.tfds_source("imagenet2012", dcfg, split,
                                     "train" if split == "train" else "validation")
  return image_sources.image_folder_source(dcfg, split)


class InputPipeline:
  """Train batches by step and a fixed sequence of eval batches, for one host."""

  def __init__(self, config, process_index: int = 0, process_count: int = 1):
    dcfg = config.dataset
    self.seed = int(config.seed)
    self.batch_size, self.eval_batch_size = int(config.batch_size), int(config.eval_batch_size)
    for field, b in (("batch_size", self.batch_size), ("eval_batch_size", self.eval_batch_size)):
      if b % process_count:
        raise ValueError(f"{field}={b} must be divisible by the number of hosts ({process_count})")
    self.process_index, self.process_count = process_index, process_count
    self.train = make_source(dcfg, "train", self.seed)
    self.eval = make_source(dcfg, "eval", self.seed)
    if len(self.train) == 0 or len(self.eval) == 0:
      raise ValueError(f"dataset {dcfg.name!r} has no examples (train {len(self.train)}, eval "
                       f"{len(self.eval)}); check train_examples/eval_examples")
    if self.train.num_classes != dcfg.num_classes:
      raise ValueError(f"dataset {dcfg.name!r} has {self.train.num_classes} classes but "
                       f"dataset.num_classes={dcfg.num_classes}")
    self._perms = {}

  # -- training ---------------------------------------------------------------------------
  def _permutation(self, epoch: int) -> np.ndarray:
    if epoch not in self._perms:
      if len(self._perms) > 2:
        self._perms.pop(min(self._perms))
      rng = np.random.default_rng([self.seed, 0xDA7A, epoch])
      self._perms[epoch] = rng.permutation(len(self.train))
    return self._perms[epoch]

  def _local_positions(self, step: int, batch: int) -> np.ndarray:
    per_host = batch // self.process_count
    start = step * batch + self.process_index * per_host
    return np.arange(start, start + per_host, dtype=np.int64)

  def train_indices(self, step: int) -> np.ndarray:
    pos = self._local_positions(step, self.batch_size)
    n = len(self.train)
    epochs, offsets = pos // n, pos % n
    out = np.empty_like(pos)
    for e in np.unique(epochs):
      sel = epochs == e
      out[sel] = self._permutation(int(e))[offsets[sel]]
    return out

  def train_batch(self, step: int) -> Tuple[np.ndarray, np.ndarray]:
    """This host's share of global batch `step`: (float32 NHWC images, int32 labels)."""
    pos = self._local_positions(step, self.batch_size)
    seeds = [(self.seed, 0xA06, int(p)) for p in pos]
    return self.train.get_batch(self.train_indices(step), seeds)

  def train_batches(self, start: int, stop: int, prefetch: int = 2
                    ) -> Iterator[Tuple[int, np.ndarray, np.ndarray]]:
    """(step, images, labels) for steps start..stop-1, computed `prefetch` batches ahead."""
    if prefetch <= 0:
      for step in range(start, stop):
        yield (step, *self.train_batch(step))
      return
    q: "queue.Queue" = queue.Queue(maxsize=prefetch)
    stop_event = threading.Event()

    def produce():
      try:
        for step in range(start, stop):
          item = (step, *self.train_batch(step))
          while not stop_event.is_set():
            try:
              q.put(item, timeout=0.1)
              break
            except queue.Full:
              continue
          if stop_event.is_set():
            return
      except BaseException as e:  # surfaced in the consumer
        q.put(e)

    thread = threading.Thread(target=produce, daemon=True, name="input-prefetch")
    thread.start()
    try:
      for _ in range(start, stop):
        item = q.get()
        if isinstance(item, BaseException):
          raise item
        yield item
    finally:
      stop_event.set()
      thread.join(timeout=5)

  # -- evaluation -------------------------------------------------------------------------
  @property
  def num_eval_steps(self) -> int:
    return -(-len(self.eval) // self.eval_batch_size)

  def eval_batches(self) -> Iterator[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """This host's share of each eval batch, in order; padding rows have mask 0."""
    n = len(self.eval)
    for k in range(self.num_eval_steps):
      pos = self._local_positions(k, self.eval_batch_size)
      mask = (pos < n).astype(np.float32)
      images, labels = self.eval.get_batch(np.where(pos < n, pos, 0))
      yield images, labels, mask
