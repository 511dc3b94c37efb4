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


@functools.lru_cache(maxsize=3)   # the current epoch and the next, per process
def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  return np.random.default_rng([seed, 0xDA7A, epoch]).permutation(n)


def train_seed(seed: int, position: int) -> Tuple[int, int, int]:
  return (seed, 0xA06, int(position))
