"""What the lowering knows about each jaxpr variable of the fake-quant forward.

Const  a value that depends only on the variables (weights, statistics, scales): computed once.
       `codes` is the bit-width tag when the value holds integer codes (a quantized weight, a
       QuantNorm multiplier or bias), which makes it an integer operand rather than a scale.
Input  the float model input, before its first quantizer.
Sym    an integer value of the integer program: id `vid`, grid `scale` (real value = T·scale),
       integer bounds [lo, hi] and the fake-quant model's value on the probe batch (`ref`):
       after lowering, the integer program is run on the probe batch and every value is
       compared with its `ref`. `err` bounds |T·scale - exact| where a float constant had to be rounded onto the
       grid (only allowed on the way to the output).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np


class ExportError(ValueError):
  """The model (or one of its layers) has no exact integer-only form."""


@dataclasses.dataclass
class Const:
  value: Any
  codes: Optional[dict] = None


@dataclasses.dataclass
class Input:
  ref: Any


@dataclasses.dataclass
class Sym:
  vid: str
  scale: np.ndarray
  lo: np.ndarray
  hi: np.ndarray
  ref: Any
  err: float = 0.0
  pred: bool = False
  codes: Optional[dict] = None

  @property
  def shape(self):
    return tuple(np.shape(self.ref))

  @property
  def ndim(self):
    return len(self.shape)
