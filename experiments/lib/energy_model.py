"""A per-operation energy model (Horowitz, ISSCC 2014, 45 nm) applied to the analyzer's op counts.

M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, pp. 10-14,
Figure 1.1.9 (45 nm, 0.9 V). The table below is the subset we use, copied into every output.
"""

from __future__ import annotations

import re
from typing import Dict, List, Tuple

CITATION = (
  'M. Horowitz, "Computing\'s energy problem (and what we can do about it)", IEEE ISSCC '
  "2014, pp. 10-14 (45 nm, 0.9 V)"
)
# pJ per operation / access.
TABLE = (
  ("int add 8 bit", 0.03),
  ("int add 32 bit", 0.1),
  ("int mult 8 bit", 0.2),
  ("int mult 32 bit", 3.1),
  ("fp16 add", 0.4),
  ("fp16 mult", 1.1),
  ("fp32 add", 0.9),
  ("fp32 mult", 3.7),
  ("SRAM read 64 bit (8 KB)", 10.0),
  ("DRAM access 64 bit", "1300–2600"),
)
INT_ADD = ((8, 0.03), (32, 0.1))  # (bits, pJ)
INT_MULT = ((64, 0.2), (1024, 3.1))  # (b_x·b_y, pJ)
FP = {32: {"add": 0.9, "mult": 3.7}, 16: {"add": 0.4, "mult": 1.1}}
SRAM_PJ_PER_BIT = 10.0 / 64
DRAM_PJ_PER_BIT = (1300.0 / 64, 2600.0 / 64)
# A MAC's accumulate: the adder-tree width that sums ~2^10 products of b_x·b_y bits exactly.
ACC_GROWTH_BITS = 10
ACC_MAX_BITS = 32
TRANSCENDENTAL_MULTS = 4  # as the analyzer's default (a short polynomial)
EXPONENT_BITS = 8  # a float scaled by a power of two: an add on the exponent

INTERPOLATION = (
  "Integer add (also compare, and shift, which we price as an add of the same width: a barrel "
  "shifter is about as many gates as an adder) ∝ b: through (8 b, 0.03 pJ) and (32 b, 0.1 pJ), "
  "linear between them, proportional to b outside. Integer multiply ∝ b_x·b_y: through "
  "(8×8, 0.2 pJ) and (32×32, 3.1 pJ), linear in b_x·b_y between them, proportional outside. "
  f"An integer MAC is a b_x×b_w multiply plus an add of min({ACC_MAX_BITS}, b_x+b_w+"
  f"{ACC_GROWTH_BITS}) bits (the accumulator a 1k-term dot product needs). Any op with a float "
  "operand is an fp32 add or mult (a float MAC: one of each); a float multiplied by a power of "
  f"two is an {EXPONENT_BITS}-bit integer add on the exponent; a transcendental is "
  f"{TRANSCENDENTAL_MULTS} fp32 mults. Memory: every bit of the analyzer's unfused traffic "
  "estimate (weights, scales and activations read and written by each priced op) is an SRAM "
  "access at 10 pJ / 64 bit, and the weights (model_bits) come once per image from DRAM at "
  "1.3 nJ / 64 bit (low end; 2.6 nJ doubles that term)."
)


def _interp(points, x: float) -> float:
  (x0, y0), (x1, y1) = points
  if x <= x0:
    return y0 * x / x0
  if x >= x1:
    return y1 * x / x1
  return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def int_add(bits: int) -> float:
  return _interp(INT_ADD, bits)


def int_mult(bx: int, by: int) -> float:
  return _interp(INT_MULT, bx * by)


def parse_class_key(key: str) -> Tuple[str, List[int], List[str]]:
  """A report's by_class key: 'mul acc32xfloat32' -> ('mul', [32, 32], ['acc', 'float'])."""
  op, _, operands = key.partition(" ")
  pairs = [re.fullmatch(r"([a-z]+)(\d+)", o) for o in re.split(r"(?<=\d)x", operands)]
  if not all(pairs):
    raise ValueError(f"by_class key {key!r} is not '<op> <class><bits>[x<class><bits>]'")
  return op, [int(m[2]) for m in pairs], [m[1] for m in pairs]


def op_energy(op: str, widths: List[int], is_float: bool) -> float:
  """pJ of one op on operands of these widths (is_float: an operand is a float)."""
  fp = FP[32]
  bx, by = widths[0], widths[-1]
  if op == "mac":
    if is_float:
      return fp["mult"] + fp["add"]
    return int_mult(bx, by) + int_add(min(ACC_MAX_BITS, bx + by + ACC_GROWTH_BITS))
  if op == "mul":
    return fp["mult"] if is_float else int_mult(bx, by)
  if op in ("add", "cmp"):
    return fp["add"] if is_float else int_add(max(widths))
  if op == "shift":
    return int_add(EXPONENT_BITS) if is_float else int_add(bx)
  if op == "transc":
    return TRANSCENDENTAL_MULTS * fp["mult"]
  raise ValueError(f"op class {op!r} has no energy; known: mac, mul, add, cmp, shift, transc")


def arithmetic_energy(by_class: Dict[str, dict]) -> Dict[str, float]:
  """pJ per op class and in total, from a report's by_class (operand classes and widths)."""
  out: Dict[str, float] = {}
  for key, v in by_class.items():
    op, widths, classes = parse_class_key(key)
    is_float = "float" in classes
    cls = op + (" (float)" if is_float else "")
    out[cls] = out.get(cls, 0.0) + v["count"] * op_energy(op, widths, is_float)
  out["total"] = sum(out.values())
  return out


def memory_energy(traffic: Dict[str, int], model_bits: int) -> Dict[str, float]:
  bits = traffic["weight_bits"] + traffic["act_read_bits"] + traffic["act_write_bits"]
  return {
    "traffic_bits": bits,
    "sram": bits * SRAM_PJ_PER_BIT,
    "dram_weights_low": model_bits * DRAM_PJ_PER_BIT[0],
    "dram_weights_high": model_bits * DRAM_PJ_PER_BIT[1],
  }


def ranks(values) -> List[float]:
  """Ranks 1..n, ties averaged (for Spearman's rho)."""
  order = sorted(range(len(values)), key=lambda i: values[i])
  r = [0.0] * len(values)
  i = 0
  while i < len(order):
    j = i
    while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
      j += 1
    for k in range(i, j + 1):
      r[order[k]] = (i + j) / 2 + 1
    i = j + 1
  return r


def pearson(x, y) -> float:
  n = len(x)
  mx, my = sum(x) / n, sum(y) / n
  sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
  sxx = sum((a - mx) ** 2 for a in x)
  syy = sum((b - my) ** 2 for b in y)
  return sxy / (sxx * syy) ** 0.5 if sxx and syy else float("nan")


def spearman(x, y) -> float:
  return pearson(ranks(x), ranks(y))
