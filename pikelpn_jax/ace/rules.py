"""Per-primitive pricing rules (roofline style) and their table, RULES (at the end): each rule gets
the equation's typed view (pikelpn_jax._jax_internals.Eqn), its operands' abstract values and the
settings, and returns (the outputs' values, a Cost): a frozen, addable record of
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

import math

from pikelpn_jax.ace import ranges, rules_accumulate
from pikelpn_jax.ace.pricing import (  # noqa: F401  (Cost, Rule and unit_cost: the rules' API)
  FREE,
  Cost,
  Rule,
  cost,
  fout,
  narrowed,
  out_size,
  unit_cost,
)

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

# Free: they move or reinterpret data, no arithmetic; the type of operand 0 is kept.
LAYOUT_PRIMITIVES = layout_names("free")
# Free; the output type comes from the new dtype (an integer dtype is a bit-width source).
CONVERSION_PRIMITIVES = ("convert_element_type", "bitcast_convert_type")


# ---------------------------------------------------------------------------------- layout


def _layout(e, vals, settings):
  c = FREE
  if e.prim == "optimization_barrier":  # n operands -> n results
    return [as_data(v) for v in vals], c
  v = as_data(vals[0])
  return [v] * len(e.outputs), c


def _concat(e, vals, settings):
  c = FREE
  operands = vals[:2] if e.prim == "dynamic_update_slice" else vals
  out = as_data(operands[0])
  for v in operands[1:]:
    if not same_type(out, v):
      out = as_data(join(out, v, settings))
  return [out], c


def _select(e, vals, settings):
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
  return [as_data(out)], cost("cmp", width(w, settings), 0, out_size(e), cx=w.cls)


def _convert(e, vals, settings):
  """To an integer dtype: int(bits of the dtype), or the operand's own narrower integer type;
  to a float dtype: the operand's type (integer codes in a float container stay integers)."""
  x = vals[0]
  dtype = e.out_dtype(0)
  signed = integer_dtype(dtype)
  kind = (
    "b" if getattr(dtype, "kind", "f") == "b" else "f" if signed is None else "i" if signed else "u"
  )
  if e.prim == "bitcast_convert_type":  # reinterpreted bits: only the dtype
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
    return [fout(e, settings, rng(x))._replace(fmt=x.fmt)], FREE
  return [as_data(x)], FREE


def _iota(e, vals, settings):
  return [input_val(e.out_dtype(0), settings, False, 0)], FREE


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


def _pad(e, vals, settings):
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
    out = fout(e, settings)
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


def _multiply(e, vals, settings):
  c = FREE
  s = settings
  a, b = vals
  if (a.const and not b.const) or (not b.const and a.fmt == POW2 and b.fmt != POW2):
    a, b = b, a  # a: the data operand; b: the multiplier (a constant, or a pow2 data scale)
  n = out_size(e)
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
  return [fout(e, s, ranges.mul(rng(a), rng(b)))], c


def _divide(e, vals, settings):
  c = FREE
  s = settings
  a, b = vals
  n = out_size(e)
  if b.fmt == POW2 and e.prim == "div":
    c += cost("shift", width(a, s), 0, n, cx=a.cls)
    return [as_data(a)._replace(lo=None, hi=None) if a.cls == FLOAT else as_data(a)], c
  # Dividing by a constant multiplies by its precomputed reciprocal, which is a float.
  out = fout(e, s)
  bb, cb = (out.bits, FLOAT) if b.const else (_mul_width(b, s), _mul_class(b))
  c += cost("mul", _mul_width(a, s), bb, n, cx=_mul_class(a), cy=cb)
  return [out], c


def _add(e, vals, settings):
  c = FREE
  s = settings
  a, b = vals
  c += cost("add", width(a, s), width(b, s), out_size(e), cx=a.cls, cy=b.cls)
  op = "sub" if e.prim == "sub" else "add"
  if a.cls == FLOAT or b.cls == FLOAT:
    return [fout(e, s, (ranges.sub if op == "sub" else ranges.add)(rng(a), rng(b)))], c
  return [grown(a, b, s, op)], c


def _mask_range(a: Val, b: Val):
  """x & m with m a known constant ≥ 0 (either side): within [0, m]; else None."""
  for x, m in ((a, b), (b, a)):
    if m.value is not None and m.value >= 0 and m.value == int(m.value):
      return ranges.mask(rng(x), int(m.value))
  return None


def _compare_keep(e, vals, settings):
  """max/min narrow to their bounds (the exact range: a clip to [0, 15] is 4 bits); and with a
  constant mask ≥ 0 to [0, mask]; or/xor keep the join."""
  c = FREE
  s = settings
  a, b = vals
  c += cost("cmp", width(a, s), width(b, s), out_size(e), cx=a.cls, cy=b.cls)
  name = e.prim
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


def _compare(e, vals, settings):
  c = FREE
  s = settings
  a, b = vals
  c += cost("cmp", width(a, s), width(b, s), out_size(e), cx=a.cls, cy=b.cls)
  return [BOOL_VAL], c


def _clamp(e, vals, settings):
  c = FREE
  s = settings
  lo, x, hi = vals
  w = _widest((x, lo, hi), s)
  c += cost("cmp", width(w, s), 0, 2 * out_size(e), cx=w.cls)
  r = ranges.minimum(ranges.maximum(rng(x), rng(lo)), rng(hi))
  return [narrowed(as_data(join(join(x, lo, s), hi, s)), r, s)], c


def _unary_compare(e, vals, settings):
  c = FREE
  x = vals[0]
  c += cost("cmp", width(x, settings), 0, out_size(e), cx=x.cls)
  name = e.prim
  if name == "is_finite":
    return [BOOL_VAL], c
  if name == "sign" and x.cls != FLOAT:
    return [Val(INT, 2, lo=-1, hi=1)], c
  if name == "sign":
    return [as_data(x)._replace(lo=-1, hi=1)], c
  return [as_data(x)], c


def _unary_add(e, vals, settings):
  c = FREE
  x = vals[0]
  c += cost("add", width(x, settings), 0, out_size(e), cx=x.cls)
  name = e.prim
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


def _shift(e, vals, settings):
  c = FREE
  x, k = vals
  c += cost("shift", width(x, settings), 0, out_size(e), cx=x.cls)
  name = e.prim
  known = k.value is not None and 0 <= k.value < 64
  if name == "shift_left" and x.cls in (INT, ACC):
    by = int(k.value) if k.value is not None else settings.acc_bits  # unknown: up to acc_bits
    out = Val(x.cls, min(x.bits + max(0, by), settings.acc_bits), signed=x.signed)
    return [narrowed(out, ranges.shift_left(rng(x), by) if known else rng(out), settings)], c
  if x.cls in (INT, ACC) and known and (name == "shift_right_arithmetic" or not x.signed):
    return [narrowed(as_data(x), ranges.shift_right(rng(x), int(k.value)), settings)], c
  return [as_data(x)], c


def _transcendental(e, vals, settings):
  c = FREE
  s = settings
  x = vals[0]
  y = vals[1] if len(vals) > 1 else x  # a unary transcendental: priced as x·x
  c += cost("transc", width(x, s), width(y, s), out_size(e), cx=x.cls, cy=y.cls)
  return [fout(e, s)], c


def _integer_pow(e, vals, settings):
  c = FREE
  s = settings
  x = vals[0]
  y = e.integer_pow_exponent if e.prim == "integer_pow" else 2
  k = abs(y)
  mults = max(0, k.bit_length() - 1 + bin(k).count("1") - 1)  # square-and-multiply
  n = out_size(e)
  if mults:
    c += cost("mul", width(x, s), width(x, s), mults * n, cx=x.cls, cy=x.cls)
  if y < 0:
    out = fout(e, s)
    c += cost("mul", out.bits, width(x, s), n, cx=FLOAT, cy=x.cls)  # the reciprocal
    return [out], c
  if k <= 1:
    return [as_data(x)], c
  if is_integer(x):
    r = rng(x)
    p = r
    for _ in range(k - 1):
      p = ranges.mul(p, r)
    if k % 2 == 0 and p[0] is not None:
      p = (max(0, p[0]), p[1])
    return [
      narrowed(
        Val(
          ACC if x.cls == ACC else INT,
          min(width(x, s) * k, s.acc_bits),
          signed=x.signed and k % 2 == 1,
        ),
        p,
        s,
      )
    ], c
  return [fout(e, s)], c


# ---------------------------------------------------------------------------------- the table

# Every priced primitive and its rule, in one place: the walker looks a primitive up here and
# raises an AceError naming it (and its module path) when it is absent. The walker prices the
# quantizer pair, qtag and the higher-order primitives itself (walker.py); the rest of lax is
# refused (primitive_tables.REFUSED_PRIMITIVES). To price another primitive, add a row (or, in a
# script, an item of this dict) before the analysis runs.
RULES: dict[str, Rule] = {
  # data movement (free): the type of operand 0, or the join of the joined operands
  **dict.fromkeys(LAYOUT_PRIMITIVES, _layout),
  "concatenate": _concat,
  "stack": _concat,
  "dynamic_update_slice": _concat,
  "pad": _pad,
  "select_n": _select,
  # new dtypes (free)
  "convert_element_type": _convert,
  "bitcast_convert_type": _convert,
  "iota": _iota,
  # elementwise arithmetic
  "mul": _multiply,
  "div": _divide,
  "rem": _divide,
  "add": _add,
  "sub": _add,
  "add_any": _add,
  "neg": _unary_add,
  "abs": _unary_add,
  "floor": _unary_add,
  "ceil": _unary_add,
  "round": _unary_add,
  "integer_pow": _integer_pow,
  "square": _integer_pow,
  **dict.fromkeys(TRANSCENDENTALS, _transcendental),
  # compares, bitwise logic and shifts
  "max": _compare_keep,
  "min": _compare_keep,
  "and": _compare_keep,
  "or": _compare_keep,
  "xor": _compare_keep,
  "eq": _compare,
  "ne": _compare,
  "lt": _compare,
  "le": _compare,
  "gt": _compare,
  "ge": _compare,
  "clamp": _clamp,
  "not": _unary_compare,
  "sign": _unary_compare,
  "is_finite": _unary_compare,
  "shift_left": _shift,
  "shift_right_logical": _shift,
  "shift_right_arithmetic": _shift,
  # accumulating primitives (rules_accumulate.py)
  "conv_general_dilated": rules_accumulate.conv,
  "dot_general": rules_accumulate.dot,
  **dict.fromkeys(rules_accumulate.REDUCE_OPS, rules_accumulate.reduce),
  **dict.fromkeys(rules_accumulate.CUMULATIVE_OPS, rules_accumulate.cumulative),
  **dict.fromkeys(rules_accumulate.WINDOW_OPS, rules_accumulate.reduce_window),
}
