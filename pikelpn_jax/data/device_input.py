"""Host batches to sharded device arrays, a few batches ahead of the step that uses them.

`DeviceFeeder.feed` places batch n+depth (jax.make_array_from_process_local_data: each host gives
its own rows) before it hands out batch n, so the transfer, and the normalisation of uint8 images
on the device, overlap with the running step (flax's prefetch_to_device pattern, without a
thread: JAX dispatch is asynchronous). It also counts the seconds spent blocked on the host
iterator: the training loop logs their share of the step time as `input_wait_fraction`.
"""

from __future__ import annotations

import collections
import time
from typing import Iterable, Iterator, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np


def _normalizer(mean_std, sharding):
  mean, std = (np.atleast_1d(np.asarray(v, np.float32)) for v in mean_std)

  def normalize(x):
    m, s = mean, std
    if (
      m.size != x.shape[-1]
    ):  # grey images with RGB statistics: their average (as images.normalize)
      m, s = m.mean(keepdims=True), s.mean(keepdims=True)
    return (x.astype(jnp.float32) - m) / s

  return jax.jit(normalize, out_shardings=sharding)


class DeviceFeeder:
  """Places tuples of host arrays (ints pass through) on `sharding`, `depth` tuples ahead."""

  def __init__(self, sharding, mean_std: Optional[Tuple[tuple, tuple]] = None, depth: int = 2):
    self.sharding, self.depth = sharding, max(1, int(depth))
    self._normalize = _normalizer(mean_std, sharding) if mean_std is not None else None
    self.wait_s = 0.0

  def put(self, x):
    if not isinstance(x, np.ndarray):
      return x
    arr = jax.make_array_from_process_local_data(self.sharding, x)
    if x.dtype == np.uint8 and self._normalize is not None:
      arr = self._normalize(arr)
    return arr

  def feed(self, batches: Iterable[tuple]) -> Iterator[tuple]:
    it = iter(batches)
    ahead: collections.deque = collections.deque()

    def pull() -> None:
      t = time.perf_counter()
      item = next(it, None)
      self.wait_s += time.perf_counter() - t
      if item is not None:
        ahead.append(tuple(self.put(x) for x in item))

    for _ in range(self.depth):
      pull()
    try:
      while ahead:
        item = ahead.popleft()
        pull()
        yield item
    finally:
      close = getattr(it, "close", None)
      if close is not None:  # stops grain's worker processes when the consumer stops early
        close()

  def pop_wait(self) -> float:
    """Seconds blocked on the host iterator since the last call."""
    w, self.wait_s = self.wait_s, 0.0
    return w
