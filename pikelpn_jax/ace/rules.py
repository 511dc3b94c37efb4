"""Per-primitive pricing rules (roofline style): each rule gets the eqn, its operands' abstract
values and the settings, and returns (the outputs' values, a Cost): a frozen, addable record of
the operations it priced and of any note (e.g. a type widened by pad).

Operations and their unit cost in bit-operations (docs/acev2.md has the reasons):
  mac    b_x·b_w     (ACE v1 and ACEv2 alike)
  mul    b_x·b_y     (elementwise multiply or divide)
  shift  b_x         (multiply/divide by a power of two)
  add    max(b_x,b_y)  (add, sub, neg, abs, round)
  cmp    max(b_x,b_y)  (compare, max, min, select of unequal types, clamp)
Output types are exact for integers: every value carries its range (ranges.py) and an integer's
width is its range's: clip/clamp/min/max narrow to their bounds, add/sub/mul/neg/abs/shifts/a
mask/select/reductions follow interval arithmetic, no wider than the operands' structure allows
(add b+1, mul b1+b2, a sum of n +ceil(log2 n)), all capped at acc_bits (values.grown /
values.summed). An integer dtype is a bit-width source (convert_element_type), and so is a float
clipped to constant bounds, rounded and converted to an integer type (its bounds' width).
  transc T·b_x·b_x   (exp, tanh, rsqrt, ...; T = settings.transcendental_mults)
Rules run only when some operand is data: anything computed from constants alone is free.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Dict, List, Tuple

from pikelpn_jax import _jax_internals as jint
from pikelpn_jax.ace import ranges

# Primitives refused by design, walked by the walker itself, and priced as transcendentals
# (rules.REFUSED_PRIMITIVES and rules.WALKED_PRIMITIVES are read by the tests and the docs).
from pikelpn_jax.ace.primitive_tables import (  # noqa: F401
  REFUSED_PRIMITIVES,
  TRANSCENDENTALS,
  WALKED_PRIMITIVES,
)
from pikelpn_jax.ace.values import (
  ACC,
  BOOL,
  BOOL_VAL,
  FIXED,
  FLOAT,
  INT,
  POW2,
  Val,
  acc_val,
  as_data,
  dtype_bits,
  float_val,
  from_range,
  grown,
  input_val,
  integer_dtype,
  is_integer,
  join,
  rng,
  same_type,
  width,
)
from pikelpn_jax.jaxpr_interpreter import layout_names


@dataclasses.dataclass(frozen=True)
class Cost:
  """Priced operations (op, b_x, b_y, count, forced category or '', class_x, class_y) and
  notes; addable."""

  ops: Tuple[Tuple[str, int, int, int, str, str, str], ...] = ()
  notes: Tuple[str, ...] = ()

  def __add__(self, other: "Cost") -> "Cost":
    return Cost(self.ops + other.ops, self.notes + other.notes)


FREE = Cost()


def cost(
  op: str, bx: int, by: int, count: int, category: str = "", *, cx: str, cy: str = ""
) -> Cost:
  """`count` ops `op` on operands of widths bx, by (by=0: unary, cy='') and classes cx, cy."""
  return Cost(((op, bx, by, count, category, cx, cy),)) if count else FREE


Rule = Callable[..., Tuple[List[Val], Cost]]
RULES: Dict[str, Rule] = {}

# Free: they move or reinterpret data, no arithmetic; the type of operand 0 is kept.
LAYOUT_PRIMITIVES = layout_names("free")
# Free; the output type comes from the new dtype (an integer dtype is a bit-width source).
CONVERSION_PRIMITIVES = ("convert_element_type", "bitcast_convert_type")


def register(*names: str):
  def deco(fn: Rule) -> Rule:
    for n in names:
      RULES[n] = fn
    return fn

  return deco


def size_of(v) -> int:
  return math.prod(jint.var_shape(v))


def out_size(eqn) -> int:
  return size_of(jint.eqn_outputs(eqn)[0])


def fout(eqn, s, r: ranges.Range = ranges.UNBOUNDED) -> Val:
  """A float result of eqn: its output dtype's width (or float_bits), range r."""
  return float_val(s, dtype=jint.var_dtype(jint.eqn_outputs(eqn)[0]), rng=r)


def narrowed(old: Val, r: ranges.Range, s) -> Val:
  """old (the type an op's structure gives) with range r: an integer no wider than r needs."""
  if old.cls == FLOAT:
    return old._replace(lo=r[0], hi=r[1])
  if old.cls == BOOL:
    return old
  return from_range(r, s, old.cls, old.bits, old.signed)._replace(fmt=old.fmt)


# ---------------------------------------------------------------------------------- layout


@register(*LAYOUT_PRIMITIVES)
def _layout(eqn, vals, settings):
  c = FREE
  if jint.primitive_name(eqn) == "optimization_barrier":  # n operands -> n results
    return [as_data(v) for v in vals], c
  v = as_data(vals[0])
  return [v] * len(jint.eqn_outputs(eqn)), c


@register("concatenate", "stack", "dynamic_update_slice")
def _concat(eqn, vals, settings):
  c = FREE
  operands = vals[:2] if jint.primitive_name(eqn) == "dynamic_update_slice" else vals
  out = as_data(operands[0])
  for v in operands[1:]:
    if not same_type(out, v):
      out = as_data(join(out, v, settings))
  return [out], c


@register("select_n")
def _select(eqn, vals, settings):
  cases = vals[1:]
  r = rng(cases[0])
  for v in cases[1:]:
    r = ranges.union(r, rng(v))
  if all(same_type(cases[0], v) for v in cases[1:]):
    # a multiplexer; the compare making its predicate is priced
    return [as_data(cases[0])._replace(lo=r[0], hi=r[1])], FREE
  out = cases[0]
  for v in cases[1:]:
    out = join(out, v, settings)
  w = _widest(cases, settings)
  return [as_data(out)], cost("cmp", width(w, settings), 0, out_size(eqn), cx=w.cls)


@register(*CONVERSION_PRIMITIVES)
def _convert(eqn, vals, settings):
  """To an integer dtype: int(bits of the dtype), or the operand's own narrower integer type;
  to a float dtype: the operand's type (integer codes in a float container stay integers)."""
  x = vals[0]
  dtype = jint.var_dtype(jint.eqn_outputs(eqn)[0])
  signed = integer_dtype(dtype)
  kind = (
    "b" if getattr(dtype, "kind", "f") == "b" else "f" if signed is None else "i" if signed else "u"
  )
  if jint.primitive_name(eqn) == "bitcast_convert_type":  # reinterpreted bits: only the dtype
    return [input_val(dtype, settings, False, 0)], FREE
  if kind == "b":
    return [BOOL_VAL], FREE
  if kind in "iu":
    bits = min(dtype_bits(dtype), settings.acc_bits)
    unsigned_in_signed = 1 if kind == "i" and not x.signed else 0
    if (
      x.cls != FLOAT
      and width(x, settings) + unsigned_in_signed <= bits
      and (kind == "i" or not x.signed)
    ):  # the values fit: the type is unchanged
      return [as_data(x)._replace(fmt="none")], FREE
    full = ranges.full_range(bits, kind == "i") if bits > 1 or kind != "i" else (-1, 0)
    r = rng(x)
    if x.cls == FLOAT:  # float to integer truncates toward zero
      r = ranges.monotone(r, ranges.trunc)
    if ranges.within(r, full):  # a float clipped to constant bounds, or a narrower integer
      return [from_range(r, settings)], FREE
    return [Val(INT, bits, signed=kind == "i", lo=full[0], hi=full[1])], FREE
  if x.cls == FLOAT:  # float to float: the new dtype's width, the same values
    return [fout(eqn, settings, rng(x))._replace(fmt=x.fmt)], FREE
  return [as_data(x)], FREE


@register("iota")
def _iota(eqn, vals, settings):
  return [input_val(jint.var_dtype(jint.eqn_outputs(eqn)[0]), settings, False, 0)], FREE


def on_grid(value, v: Val) -> bool:
  """Is `value` a level of v's integer grid? (0 is not a level of the ±1 binary grid)."""
  if value is None or value != int(value):
    return False
  if v.cls == BOOL:
    return value in (0, 1)
  if v.bits == 1 and v.signed:
    return value in (-1, 1)
  if v.signed:
    hi = 2 ** (v.bits - 1) - 1
    return -hi <= value <= hi
  return 0 <= value <= 2**v.bits - 1


@register("pad")
def _pad(eqn, vals, settings):
  """Free; the type is kept only when the pad value is a level of the operand's grid."""
  c = FREE
  x, pv = vals[0], vals[1]
  r = ranges.union(rng(x), rng(pv))
  if x.cls == FLOAT or on_grid(pv.value, x):
    return [
      narrowed(as_data(x), r, settings) if x.cls != FLOAT else as_data(x)._replace(lo=r[0], hi=r[1])
    ], c
  value = pv.value
  if value is not None and value == int(value):
    iv = int(value)
    signed = x.signed or iv < 0
    bits = max(
      x.bits + (1 if signed and not x.signed else 0),
      max(1, abs(iv).bit_length()) + (1 if signed else 0),
    )
    if x.bits == 1 and x.signed:
      bits = max(bits, 2)  # {-1, 0, +1}: ternary
    out = narrowed(Val(ACC if x.cls == ACC else INT, bits, signed=signed), r, settings)
  else:
    out = fout(eqn, settings)
  c += Cost(
    notes=(f"pad of {x.describe()} with {value!r} (not on its grid): widened to {out.describe()}",)
  )
  return [out], c


# ------------------------------------------------------------------------------ elementwise


def _mul_width(v: Val, s) -> int:
  return v.bits if v.fmt == FIXED else width(v, s)


def _mul_class(v: Val) -> str:
  """The class of v priced at _mul_width (a fixed-point scale at its mantissa bits)."""
  return FIXED if v.fmt == FIXED else v.cls


def _widest(vals, s) -> Val:
  """The operand a multi-operand compare is priced at (the widest; a float among equals)."""
  return max(vals, key=lambda v: (width(v, s), v.cls == FLOAT))


def _integer_like(v: Val) -> bool:
  return is_integer(v) or v.fmt == FIXED


@register("mul")
def _multiply(eqn, vals, settings):
  c = FREE
  s = settings
  a, b = vals
  if (a.const and not b.const) or (not b.const and a.fmt == POW2 and b.fmt != POW2):
    a, b = b, a  # a: the data operand; b: the multiplier (a constant, or a pow2 data scale)
  n = out_size(eqn)
  if b.fmt == POW2:
    c += cost("shift", width(a, s), 0, n, cx=a.cls)
    if a.cls == FLOAT:  # a float's value scales; an integer's shift moves its binary point
      r = ranges.mul(rng(a), rng(b))
      return [as_data(a)._replace(lo=r[0], hi=r[1])], c
    return [as_data(a)], c
  c += cost("mul", _mul_width(a, s), _mul_width(b, s), n, cx=_mul_class(a), cy=_mul_class(b))
  if is_integer(a) and is_integer(b):
    return [grown(a, b, s, "mul")], c
  if _integer_like(a) and _integer_like(b):  # a fixed-point multiplier: on the accumulator
    return [acc_val(s)], c
  return [fout(eqn, s, ranges.mul(rng(a), rng(b)))], c


@register("div", "rem")
def _divide(eqn, vals, settings):
  c = FREE
  s = settings
  a, b = vals
  n = out_size(eqn)
  if b.fmt == POW2 and jint.primitive_name(eqn) == "div":
    c += cost("shift", width(a, s), 0, n, cx=a.cls)
    return [as_data(a)._replace(lo=None, hi=None) if a.cls == FLOAT else as_data(a)], c
  # Dividing by a constant multiplies by its precomputed reciprocal, which is a float.
  out = fout(eqn, s)
  bb, cb = (out.bits, FLOAT) if b.const else (_mul_width(b, s), _mul_class(b))
  c += cost("mul", _mul_width(a, s), bb, n, cx=_mul_class(a), cy=cb)
  return [out], c


@register("add", "sub", "add_any")
def _add(eqn, vals, settings):
  c = FREE
  s = settings
  a, b = vals
  c += cost("add", width(a, s), width(b, s), out_size(eqn), cx=a.cls, cy=b.cls)
  op = "sub" if jint.primitive_name(eqn) == "sub" else "add"
  if a.cls == FLOAT or b.cls == FLOAT:
    return [fout(eqn, s, (ranges.sub if op == "sub" else ranges.add)(rng(a), rng(b)))], c
  return [grown(a, b, s, op)], c


def _mask_range(a: Val, b: Val):
  """x & m with m a known constant ≥ 0 (either side): within [0, m]; else None."""
  for x, m in ((a, b), (b, a)):
    if m.value is not None and m.value >= 0 and m.value == int(m.value):
      return ranges.mask(rng(x), int(m.value))
  return None


@register("max", "min", "and", "or", "xor")
def _compare_keep(eqn, vals, settings):
  """max/min narrow to their bounds (the exact range: a clip to [0, 15] is 4 bits); and with a
  constant mask ≥ 0 to [0, mask]; or/xor keep the join."""
  c = FREE
  s = settings
  a, b = vals
  c += cost("cmp", width(a, s), width(b, s), out_size(eqn), cx=a.cls, cy=b.cls)
  name = jint.primitive_name(eqn)
  out = as_data(join(a, b, s))
  if name == "max":
    return [narrowed(out, ranges.maximum(rng(a), rng(b)), s)], c
  if name == "min":
    return [narrowed(out, ranges.minimum(rng(a), rng(b)), s)], c
  if name == "and" and out.cls in (INT, ACC):
    r = _mask_range(a, b)
    if r is not None:
      return [narrowed(out, r, s)], c
  return [out], c


@register("eq", "ne", "lt", "le", "gt", "ge")
def _compare(eqn, vals, settings):
  c = FREE
  s = settings
  a, b = vals
  c += cost("cmp", width(a, s), width(b, s), out_size(eqn), cx=a.cls, cy=b.cls)
  return [BOOL_VAL], c


@register("clamp")
def _clamp(eqn, vals, settings):
  c = FREE
  s = settings
  lo, x, hi = vals
  w = _widest((x, lo, hi), s)
  c += cost("cmp", width(w, s), 0, 2 * out_size(eqn), cx=w.cls)
  r = ranges.minimum(ranges.maximum(rng(x), rng(lo)), rng(hi))
  return [narrowed(as_data(join(join(x, lo, s), hi, s)), r, s)], c


@register("not", "sign", "is_finite")
def _unary_compare(eqn, vals, settings):
  c = FREE
  x = vals[0]
  c += cost("cmp", width(x, settings), 0, out_size(eqn), cx=x.cls)
  name = jint.primitive_name(eqn)
  if name == "is_finite":
    return [BOOL_VAL], c
  if name == "sign" and x.cls != FLOAT:
    return [Val(INT, 2, lo=-1, hi=1)], c
  if name == "sign":
    return [as_data(x)._replace(lo=-1, hi=1)], c
  return [as_data(x)], c


@register("neg", "abs", "floor", "ceil", "round")
def _unary_add(eqn, vals, settings):
  c = FREE
  x = vals[0]
  c += cost("add", width(x, settings), 0, out_size(eqn), cx=x.cls)
  name = jint.primitive_name(eqn)
  r = rng(x)
  if name == "neg":
    r = ranges.neg(r)
  elif name == "abs":
    r = ranges.absolute(r)
  elif x.cls == FLOAT:  # rounding maps the bounds (a clipped float rounds to integer bounds)
    fn = {"floor": math.floor, "ceil": math.ceil, "round": ranges.round_away}[name]
    r = ranges.monotone(r, lambda v: fn(v) if math.isfinite(v) else v)
  if name == "neg" and x.cls == INT and not (x.bits == 1 and x.signed):  # −(−2^k) is 2^k
    return [from_range(r, settings)], c
  return [narrowed(as_data(x), r, settings)], c


@register("shift_left", "shift_right_logical", "shift_right_arithmetic")
def _shift(eqn, vals, settings):
  c = FREE
  x, k = vals
  c += cost("shift", width(x, settings), 0, out_size(eqn), cx=x.cls)
  name = jint.primitive_name(eqn)
  known = k.value is not None and 0 <= k.value < 64
  if name == "shift_left" and x.cls in (INT, ACC):
    by = int(k.value) if k.value is not None else settings.acc_bits  # unknown: up to acc_bits
    out = Val(x.cls, min(x.bits + max(0, by), settings.acc_bits), signed=x.signed)
    return [narrowed(out, ranges.shift_left(rng(x), by) if known else rng(out), settings)], c
  if x.cls in (INT, ACC) and known and (name == "shift_right_arithmetic" or not x.signed):
    return [narrowed(as_data(x), ranges.shift_right(rng(x), int(k.value)), settings)], c
  return [as_data(x)], c


@register(*TRANSCENDENTALS)
def _transcendental(eqn, vals, settings):
  c = FREE
  s = settings
  x = vals[0]
  y = vals[1] if len(vals) > 1 else x  # a unary transcendental: priced as x·x
  c += cost("transc", width(x, s), width(y, s), out_size(eqn), cx=x.cls, cy=y.cls)
  return [fout(eqn, s)], c


@register("integer_pow", "square")
def _integer_pow(eqn, vals, settings):
  c = FREE
  s = settings
  x = vals[0]
  y = jint.integer_pow_exponent(eqn) if jint.primitive_name(eqn) == "integer_pow" else 2
  e = abs(y)
  mults = max(0, e.bit_length() - 1 + bin(e).count("1") - 1)  # square-and-multiply
  n = out_size(eqn)
  if mults:
    c += cost("mul", width(x, s), width(x, s), mults * n, cx=x.cls, cy=x.cls)
  if y < 0:
    out = fout(eqn, s)
    c += cost("mul", out.bits, width(x, s), n, cx=FLOAT, cy=x.cls)  # the reciprocal
    return [out], c
  if e <= 1:
    return [as_data(x)], c
  if is_integer(x):
    r = rng(x)
    p = r
    for _ in range(e - 1):
      p = ranges.mul(p, r)
    if e % 2 == 0 and p[0] is not None:
      p = (max(0, p[0]), p[1])
    return [
      narrowed(
        Val(
          ACC if x.cls == ACC else INT,
          min(width(x, s) * e, s.acc_bits),
          signed=x.signed and e % 2 == 1,
        ),
        p,
        s,
      )
    ], c
  return [fout(eqn, s)], c


# ------------------------------------------------------------------------------- unit costs


def unit_cost(op: str, bx: int, by: int, settings) -> int:
  if op in ("mac", "mul"):
    return bx * by
  if op == "shift":
    return bx
  if op in ("add", "cmp"):
    return max(bx, by)
  if op == "transc":
    return settings.transcendental_mults * bx * by
  raise ValueError(f"unknown op class {op!r}")
