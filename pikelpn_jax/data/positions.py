"""Which example, with which augmentation seed, sits at each global sample position.

Global sample position p = step·B + i (i < B, B the global batch) reads example perm_e[p mod N] of
epoch e = p div N, where perm_e is a permutation seeded by (seed, e), and augments it with a
Generator seeded by (seed, p). Shared by the in-memory path (pipeline.py) and the grain workers
(grain_input.py), so both see the same examples in the same order.
"""

from __future__ import annotations

import functools
from typing import Tuple

import numpy as np

# Stream tags mixed into the user's seed so the data order and the per-example augmentation draw
# from independent random streams (and from none that model initialisation uses). Changing either
# changes every run's data, so they are fixed constants.
DATA_ORDER_STREAM = 0xDA7A
AUGMENT_STREAM = 0xA06


@functools.lru_cache(maxsize=3)  # the current epoch and the next, per process
def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  return np.random.default_rng([seed, DATA_ORDER_STREAM, epoch]).permutation(n)


def train_seed(seed: int, position: int) -> Tuple[int, int, int]:
  return (seed, AUGMENT_STREAM, int(position))
