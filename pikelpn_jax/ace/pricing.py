"""What a pricing rule returns, and the helpers every rule uses (rules.py, rules_accumulate.py).

A rule is `rule(e, vals, settings) -> (outputs' values, Cost)`: e is the equation's typed view
(pikelpn_jax._jax_internals.Eqn), vals its operands' abstract values (values.Val), settings the
AceSettings. rules.RULES maps every priced primitive to its rule.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, List, Tuple

from pikelpn_jax.ace import ranges
from pikelpn_jax.ace.values import BOOL, FLOAT, Val, float_val, from_range


@dataclasses.dataclass(frozen=True)
class Cost:
  """Priced operations (op, b_x, b_y, count, forced category or '', class_x, class_y) and
  notes; addable."""

  ops: Tuple[Tuple[str, int, int, int, str, str, str], ...] = ()
  notes: Tuple[str, ...] = ()

  def __add__(self, other: "Cost") -> "Cost":
    return Cost(self.ops + other.ops, self.notes + other.notes)


FREE = Cost()

Rule = Callable[..., Tuple[List[Val], Cost]]


def cost(
  op: str, bx: int, by: int, count: int, category: str = "", *, cx: str, cy: str = ""
) -> Cost:
  """`count` ops `op` on operands of widths bx, by (by=0: unary, cy='') and classes cx, cy."""
  return Cost(((op, bx, by, count, category, cx, cy),)) if count else FREE


def unit_cost(op: str, bx: int, by: int, settings) -> int:
  """Bit-operations of one `op` on operands of widths bx, by (docs/acev2.md has the reasons)."""
  if op in ("mac", "mul"):
    return bx * by
  if op == "shift":
    return bx
  if op in ("add", "cmp"):
    return max(bx, by)
  if op == "transc":
    return settings.transcendental_mults * bx * by
  raise ValueError(f"unknown op class {op!r}")


def in_size(e, i: int = 0) -> int:
  """Elements of the equation's operand i."""
  return math.prod(e.in_shape(i))


def out_size(e) -> int:
  """Elements of the equation's first output."""
  return math.prod(e.out_shape(0))


def fout(e, s, r: ranges.Range = ranges.UNBOUNDED) -> Val:
  """A float result of the equation: its output dtype's width (or float_bits), range r."""
  return float_val(s, dtype=e.out_dtype(0), rng=r)


def narrowed(old: Val, r: ranges.Range, s) -> Val:
  """old (the type an op's structure gives) with range r: an integer no wider than r needs."""
  if old.cls == FLOAT:
    return old._replace(lo=r[0], hi=r[1])
  if old.cls == BOOL:
    return old
  return from_range(r, s, old.cls, old.bits, old.signed)._replace(fmt=old.fmt)
