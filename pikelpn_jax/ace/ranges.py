"""Value ranges: the exact interval [lo, hi] every value of the ACEv2 walker carries.

An integer's width is the fewest bits that hold its interval (signed when lo < 0): [0, 15] is 4
bits unsigned, [-8, 7] 4 bits signed, [-128, 127] 8, [-3, 3] 3. A bound of None is unbounded on
that side (an accumulator out of a MAC, a float nothing has clipped). Sources: integer dtypes and
our tags (their full range), literals ([v, v]), and float values clipped to constant bounds, then
rounded and converted to an integer type — how AQT, Qwix and hand-written int8 code quantize, so
int2 codes carried in an int8 container are priced at 2 bits. Everything here is plain interval
arithmetic on Python numbers; the rules (rules.py) decide which function an op is.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

Bound = Optional[float]
Range = Tuple[Bound, Bound]
UNBOUNDED: Range = (None, None)


def full_range(bits: int, signed: bool) -> Range:
  """The interval of a b-bit integer; a signed 1-bit value is the ±1 binary grid."""
  if signed:
    if bits == 1:
      return (-1, 1)
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
  return (0, (1 << bits) - 1)


def range_bits(lo: Bound, hi: Bound) -> Optional[int]:
  """Fewest bits holding every integer of [lo, hi] (signed when lo < 0); None when unbounded."""
  if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
    return None
  lo, hi = math.floor(lo), math.ceil(hi)
  if lo >= 0:
    return max(1, hi.bit_length())
  return max((-lo - 1).bit_length(), max(hi, 0).bit_length()) + 1


def _lo(b: Bound) -> float:
  return -math.inf if b is None else b


def _hi(b: Bound) -> float:
  return math.inf if b is None else b


def _out(lo: float, hi: float) -> Range:
  """Back from ±inf to None; integral floats of an integer interval stay what they are."""
  return (None if lo == -math.inf or lo != lo else lo, None if hi == math.inf or hi != hi else hi)


def _mul(x: float, y: float) -> float:
  return 0 if x == 0 or y == 0 else x * y  # 0·inf is 0 here: a zero bound stays zero


def add(a: Range, b: Range) -> Range:
  return _out(_lo(a[0]) + _lo(b[0]), _hi(a[1]) + _hi(b[1]))


def neg(a: Range) -> Range:
  return _out(-_hi(a[1]), -_lo(a[0]))


def sub(a: Range, b: Range) -> Range:
  return add(a, neg(b))


def mul(a: Range, b: Range) -> Range:
  ps = [_mul(x, y) for x in (_lo(a[0]), _hi(a[1])) for y in (_lo(b[0]), _hi(b[1]))]
  return _out(min(ps), max(ps))


def absolute(a: Range) -> Range:
  lo, hi = _lo(a[0]), _hi(a[1])
  if lo >= 0:
    return a
  if hi <= 0:
    return neg(a)
  return _out(0, max(-lo, hi))


def maximum(a: Range, b: Range) -> Range:
  return _out(max(_lo(a[0]), _lo(b[0])), max(_hi(a[1]), _hi(b[1])))


def minimum(a: Range, b: Range) -> Range:
  return _out(min(_lo(a[0]), _lo(b[0])), min(_hi(a[1]), _hi(b[1])))


def union(a: Range, b: Range) -> Range:
  return _out(min(_lo(a[0]), _lo(b[0])), max(_hi(a[1]), _hi(b[1])))


def times(a: Range, n: int) -> Range:
  """The range of a sum of n terms each in a (reductions, pooling windows, cumsum)."""
  return mul(a, (n, n))


def monotone(a: Range, fn) -> Range:
  """The range of fn(x) for a non-decreasing fn (round, floor, ceil, truncation)."""
  lo, hi = a
  return (None if lo is None else fn(lo), None if hi is None else fn(hi))


def round_away(x: float):
  """Round half away from zero: bounds every rounding method's result (half-even included)."""
  return int(math.copysign(math.floor(abs(x) + 0.5), x)) if math.isfinite(x) else x


def trunc(x: float):
  return int(x) if math.isfinite(x) else x


def shift_right(a: Range, k: int) -> Range:
  return monotone(a, lambda x: math.floor(x) >> k)


def shift_left(a: Range, k: int) -> Range:
  return monotone(a, lambda x: math.floor(x) << k)


def mask(a: Range, m: int) -> Range:
  """x & m for a constant mask m ≥ 0: within [0, m], and ≤ x when x ≥ 0."""
  lo, hi = a
  if lo is not None and lo >= 0 and hi is not None:
    return (0, min(hi, m))
  return (0, m)


def within(a: Range, b: Range) -> bool:
  """Is interval a inside b (both bounded)?"""
  return None not in a and None not in b and b[0] <= a[0] and a[1] <= b[1]
