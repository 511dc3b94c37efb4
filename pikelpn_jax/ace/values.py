"""The numeric types the ACEv2 walker gives every value, the settings, and the type algebra.

A value is one of
  int(b, signed)  integers of exactly b bits: codes out of a quantizer tag, an integer dtype
                  (input, convert_element_type), an integer literal, and what integer-preserving
                  primitives make of them; b is the width of the value's range (ranges.py);
  acc(b)          an integer accumulator: out of a quantized MAC (b = acc_bits), and integer
                  arithmetic involving one (widths grow as for int, capped at acc_bits);
  float(b)        untagged real values (b: the dtype's width, or settings.float_bits if set);
  bool            a predicate (compare output), priced as 1 bit where it is an operand;
Every value carries a range [lo, hi] (None: unbounded), so clipping narrows an integer and a
float clipped to constant bounds, rounded and converted to an integer type is an integer of the
bounds' width; and may be `const`: it depends only on parameters and literals, so it is computed offline and
every op on consts alone is free. A const still carries the type it has as an operand (a weight
tagged int4 is priced at 4 bits in its MAC) and a scale format: pow2 (multiplying by it is a
shift) or fixed(b) (a b-bit mantissa times a power of two: a b_x·b multiply).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple, Optional

from pikelpn_jax.ace import ranges

CATEGORIES = ("mac", "norm", "activation", "scaling", "residual_pool", "other")
INT, ACC, FLOAT, BOOL = "int", "acc", "float", "bool"
SCALE_NONE, POW2, FIXED = "none", "pow2", "fixed"
FOLDS = ("none", "affine")


@dataclasses.dataclass(frozen=True)
class AceSettings:
  """Every pricing convention that has a knob (docs/acev2.md gives the reasons).

  float_bits: width of every untagged (float) operand, overriding the dtypes; None (default):
    each float's dtype gives it (f32 32, bf16/f16 16, f8 8).
  acc_bits: width of an integer accumulator (MAC output, integer sums and products).
  count_padded_taps: MACs count kernel taps that land on padding, as PokeBNN's official ACE does
    (False: only taps on real input pixels, as XLA's cost_analysis does).
  transcendental_mults: a transcendental on data (exp, tanh, rsqrt, ...) costs this many b_x·b_x
    multiplies (a short polynomial or Newton evaluation).
  fold: 'none' prices the graph as written; 'affine' first merges every chain of multiplies and
    adds by per-channel or scalar constants on one tensor into one multiply and one add, as an
    inference compiler would (docs/acev2.md, "Deployment folding").
  """

  float_bits: Optional[int] = None
  acc_bits: int = 32
  count_padded_taps: bool = True
  transcendental_mults: int = 4
  fold: str = "none"

  def __post_init__(self):
    for name in ("float_bits", "acc_bits"):
      v = getattr(self, name)
      if name == "float_bits" and v is None:
        continue
      if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 64:
        raise ValueError(f"{name}={v!r} is not allowed; use an integer 1..64")
    if not isinstance(self.count_padded_taps, bool):
      raise ValueError(
        f"count_padded_taps={self.count_padded_taps!r} is not allowed; use True or False"
      )
    t = self.transcendental_mults
    if isinstance(t, bool) or not isinstance(t, int) or t < 1:
      raise ValueError(f"transcendental_mults={t!r} is not allowed; use a positive integer")
    if self.fold not in FOLDS:
      raise ValueError(f"fold={self.fold!r} is not allowed; use one of {list(FOLDS)}")

  def as_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d["float_widths"] = "dtype" if self.float_bits is None else "float_bits"
    return d

  @property
  def default_float_bits(self) -> int:
    """The width of a float whose dtype is not known (a fixed-point scale as an add operand)."""
    return self.float_bits or 32


class _ValFields(NamedTuple):
  cls: str  # int | acc | float | bool
  bits: int  # operand width (mantissa bits for a fixed-format scale)
  signed: bool = True
  const: bool = False
  fmt: str = SCALE_NONE  # none | pow2 | fixed: multiplying by this value is a mult / shift
  stored: int = 0  # const: elements of the stored tensor it views (0: an immediate)
  origin: int = -1  # const: index of the parameter leaf it is a layout view of (-1: none)
  value: Optional[float] = None  # scalar const whose value is known (literals)
  lo: Optional[float] = None  # value range [lo, hi] (None: unbounded on that side; see rng)
  hi: Optional[float] = None


class Val(_ValFields):
  """The abstract value of one jaxpr variable: Val(cls, bits, signed=..., const=..., ...).
  Everything after the width is keyword-only (no booleans by position); `_replace` works."""

  __slots__ = ()

  def __new__(
    cls,
    kind: str,
    bits: int,
    *,
    signed: bool = True,
    const: bool = False,
    fmt: str = SCALE_NONE,
    stored: int = 0,
    origin: int = -1,
    value: Optional[float] = None,
    lo: Optional[float] = None,
    hi: Optional[float] = None,
  ):
    return tuple.__new__(cls, (kind, bits, signed, const, fmt, stored, origin, value, lo, hi))

  def __reduce__(self):  # pickle through the positional _make
    return type(self)._make, (tuple(self),)

  def describe(self) -> str:
    base = {
      INT: f"{'i' if self.signed else 'u'}{self.bits}",
      ACC: f"acc{self.bits}",
      FLOAT: f"f{self.bits}",
      BOOL: "bool",
    }[self.cls]
    if self.cls == INT and self.lo is not None and self.hi is not None:
      lo, hi = ranges.full_range(self.bits, self.signed)
      if (self.lo, self.hi) != (lo, hi) and self.value is None:
        base += f"[{_num(self.lo)},{_num(self.hi)}]"
    if self.fmt == POW2:
      base += "(pow2)"
    elif self.fmt == FIXED:
      base = f"fixed{self.bits}"
    return f"const[{base}]" if self.const else base


def _num(x) -> str:
  return str(int(x)) if x == int(x) else repr(x)


class CostKey(NamedTuple):
  """What a tally counts: `op` at operand widths (bx, by) at name stack `stack`; `category`
  forces the cost category (e.g. 'scaling' for a requantization; '' takes the stack's); cx, cy:
  the operands' classes as priced (int, acc, float, bool, or fixed: a fixed-point scale at its
  mantissa width), so that a float operand is told from an integer of the same width."""

  stack: str
  category: str
  op: str
  bx: int
  by: int
  cx: str = ""
  cy: str = ""


def is_integer(v: Val) -> bool:
  return v.cls in (INT, ACC, BOOL)


def width(v: Val, s: AceSettings) -> int:
  """The width of v as an add/compare operand (a fixed-point float scale is a float there)."""
  if v.cls == FLOAT:
    return s.default_float_bits if v.fmt == FIXED else v.bits
  if v.cls == BOOL:
    return 1
  return v.bits


def float_bits_of(dtype, s: AceSettings) -> int:
  """The width of a float of this dtype: settings.float_bits when set, else the dtype's."""
  if s.float_bits is not None:
    return s.float_bits
  if dtype is None:
    return 32
  return _dtype_float_bits(dtype)


@functools.lru_cache(maxsize=None)
def _dtype_float_bits(dtype) -> int:
  import ml_dtypes

  try:
    return int(ml_dtypes.finfo(dtype).bits)
  except (TypeError, ValueError):
    return 32  # an integer or bool container of a value priced as a float


def float_val(
  s: AceSettings,
  const: bool = False,
  stored: int = 0,
  dtype=None,
  rng: ranges.Range = ranges.UNBOUNDED,
  bits: Optional[int] = None,
) -> Val:
  b = bits if bits is not None and s.float_bits is None else float_bits_of(dtype, s)
  return Val(FLOAT, b, const=const, stored=stored, lo=rng[0], hi=rng[1])


def rng(v: Val) -> ranges.Range:
  """v's value range: its own, else its type's (the full range of an integer, [0, 1] a bool)."""
  if v.cls == INT:
    if v.lo is not None and v.hi is not None:
      return v.lo, v.hi
    lo, hi = ranges.full_range(v.bits, v.signed)
    return (lo if v.lo is None else v.lo), (hi if v.hi is None else v.hi)
  if v.cls == BOOL:
    return (0, 1)
  return v.lo, v.hi


def from_range(
  r: ranges.Range,
  s: AceSettings,
  cls: str = INT,
  bits: Optional[int] = None,
  signed: Optional[bool] = None,
) -> Val:
  """An integer (or acc) value of range r: its width is the range's, or `bits` (the width the
  op's structure gives, e.g. ±1 binary codes are 1 bit) when that is narrower; capped at
  acc_bits (a capped range is the acc_bits range: the register wraps)."""
  rb = ranges.range_bits(*r)
  if rb is None or (bits is not None and bits < rb):
    b = bits if bits is not None else s.acc_bits
    sg = signed if signed is not None else (r[0] is None or r[0] < 0)
  else:
    b, sg = rb, r[0] < 0
  if b > s.acc_bits:
    b = s.acc_bits
    r = ranges.UNBOUNDED if cls == ACC else ranges.full_range(b, sg)
  return Val(cls, max(1, b), signed=sg, lo=r[0], hi=r[1])


def acc_val(s: AceSettings) -> Val:
  return Val(ACC, s.acc_bits)


BOOL_VAL = Val(BOOL, 1, signed=False)


def _is_pow2(a: float) -> bool:
  if a <= 0 or not math.isfinite(a):
    return False
  m, _ = math.frexp(a)
  return m == 0.5


def literal_val(value: float, is_bool: bool, s: AceSettings, dtype=None) -> Val:
  """An immediate: integer values are int(the bits of [v, v]: 6 is 3 bits, -8 is 4); powers of
  two are shifts."""
  if is_bool:
    return Val(BOOL, 1, signed=False, const=True, value=float(value), lo=0, hi=1)
  v = float(value)
  fmt = POW2 if _is_pow2(abs(v)) else SCALE_NONE
  if math.isfinite(v) and v == int(v) and abs(v) < 2**62:
    iv = int(v)
    bits = ranges.range_bits(iv, iv)
    return Val(INT, bits, signed=iv < 0, const=True, fmt=fmt, value=v, lo=iv, hi=iv)
  r = (v, v) if math.isfinite(v) else ranges.UNBOUNDED
  return Val(FLOAT, float_bits_of(dtype, s), const=True, fmt=fmt, value=v, lo=r[0], hi=r[1])


@functools.lru_cache(maxsize=None)
def dtype_bits(dtype) -> int:
  """Bits of an integer dtype (int4 is 4, not its 8-bit container); 0 if it is not one."""
  import ml_dtypes

  try:
    return int(ml_dtypes.iinfo(dtype).bits)
  except (TypeError, ValueError):
    return 0


@functools.lru_cache(maxsize=None)
def integer_dtype(dtype) -> Optional[bool]:
  """True/False: a signed/unsigned integer dtype (ml_dtypes' int2/int4 included); None: not one."""
  import ml_dtypes

  try:
    return int(ml_dtypes.iinfo(dtype).min) < 0
  except (TypeError, ValueError):
    return None


def input_val(dtype, s: AceSettings, const: bool, stored: int, origin: int = -1) -> Val:
  """The type of a function argument from its dtype: an integer dtype's full range (capped at
  acc_bits), a float of the dtype's width."""
  kind = getattr(dtype, "kind", "f")
  if kind == "b":
    return Val(BOOL, 1, signed=False, const=const, stored=stored, origin=origin)
  signed = integer_dtype(dtype)
  if signed is not None:
    bits = min(dtype_bits(dtype), s.acc_bits)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return Val(INT, bits, signed=signed, const=const, stored=stored, origin=origin, lo=lo, hi=hi)
  return Val(FLOAT, float_bits_of(dtype, s), const=const, stored=stored, origin=origin)


def join(a: Val, b: Val, s: AceSettings) -> Val:
  """The least type holding both (data); const only if both are."""
  const = a.const and b.const
  r = ranges.union(rng(a), rng(b))
  if a.cls == FLOAT or b.cls == FLOAT:
    fb = max(
      (v.bits for v in (a, b) if v.cls == FLOAT and v.fmt != FIXED), default=s.default_float_bits
    )
    return float_val(s, const, rng=r, bits=fb)
  if a.cls == ACC or b.cls == ACC:
    return Val(ACC, max(width(a, s), width(b, s)), const=const, lo=r[0], hi=r[1])
  if a.cls == BOOL and b.cls == BOOL:
    return Val(BOOL, 1, signed=False, const=const)
  signed = a.signed or b.signed
  wa = width(a, s) + (1 if signed and not a.signed and a.cls != BOOL else 0)
  wb = width(b, s) + (1 if signed and not b.signed and b.cls != BOOL else 0)
  return from_range(r, s, INT, max(wa, wb), signed)._replace(const=const)


def same_type(a: Val, b: Val) -> bool:
  return (a.cls, a.bits, a.signed) == (b.cls, b.bits, b.signed)


def as_data(v: Val) -> Val:
  """v without its const-only fields (a data value); its range is kept."""
  return Val(v.cls, v.bits, signed=v.signed, fmt=v.fmt, lo=v.lo, hi=v.hi)


def const_product(a: Val, b: Val, divide: bool, s: AceSettings) -> Val:
  """Scale-format algebra on consts: pow2·pow2 = pow2, pow2·fixed(b) = fixed(b),
  fixed(a)·fixed(b) = fixed(a+b), int(a)·pow2 = fixed(a), int(a)·int(b) = int(a+b);
  dividing by a pow2 keeps the format; anything else is a float const (as wide as the wider
  float operand)."""
  fa, fb = a.fmt, b.fmt
  fw = max(
    (v.bits for v in (a, b) if v.cls == FLOAT and v.fmt != FIXED), default=s.default_float_bits
  )
  if fb == POW2:
    if fa == POW2:
      return Val(FLOAT, fw, const=True, fmt=POW2)
    if fa == FIXED:
      return Val(FLOAT, a.bits, const=True, fmt=FIXED)
    if a.cls in (INT, BOOL):
      return Val(FLOAT, a.bits, const=True, fmt=FIXED)
    return float_val(s, True, bits=fw)
  if divide:
    return float_val(s, True, bits=fw)
  if fa == POW2:
    return const_product(b, a, False, s)
  if fa == FIXED and fb == FIXED:
    return Val(FLOAT, min(a.bits + b.bits, s.acc_bits), const=True, fmt=FIXED)
  if FIXED in (fa, fb):
    other = b if fa == FIXED else a
    fixed = a if fa == FIXED else b
    if other.cls in (INT, BOOL):
      return Val(FLOAT, min(fixed.bits + other.bits, s.acc_bits), const=True, fmt=FIXED)
    return float_val(s, True, bits=fw)
  if a.cls in (INT, BOOL) and b.cls in (INT, BOOL):
    return Val(INT, min(a.bits + b.bits, s.acc_bits), signed=a.signed or b.signed, const=True)
  return float_val(s, True, bits=fw)


def _signed_width(v: Val, s: AceSettings, signed: bool) -> int:
  """Width of v as an operand of a signed (or unsigned) result: an unsigned value needs one more
  bit to be held signed; a bool is one bit."""
  if v.cls == BOOL:
    return 1 + (1 if signed else 0)
  return width(v, s) + (1 if signed and not v.signed else 0)


def grown(a: Val, b: Val, s: AceSettings, op: str) -> Val:
  """The exact integer type of a+b, a-b ("add", "sub") or a·b ("mul"), capped at acc_bits.

  The width of the result's range, or the operands' structure when that is narrower (an adder of
  two b-bit numbers needs at most b+1 bits, a b1×b2 multiplier b1+b2; ±1 binary codes are 1 bit);
  nothing in an integer pipeline is wider than its accumulator. acc if either operand is one,
  else int."""
  signed = a.signed or b.signed or op == "sub"
  wa, wb = _signed_width(a, s, signed), _signed_width(b, s, signed)
  if op == "mul":
    if a.cls == BOOL or b.cls == BOOL:  # a·{0,1} is a or 0: no growth
      bits = wb if a.cls == BOOL else wa
    else:
      bits = width(a, s) + width(b, s)
      signed = a.signed or b.signed
  else:
    bits = max(wa, wb) + 1
  cls = ACC if ACC in (a.cls, b.cls) else INT
  fn = {"add": ranges.add, "sub": ranges.sub, "mul": ranges.mul}[op]
  return from_range(fn(rng(a), rng(b)), s, cls, max(1, min(bits, s.acc_bits)), signed)


def summed(x: Val, n: int, s: AceSettings) -> Val:
  """The exact type of a sum of n integers of x's type: ceil(log2 n) more bits, capped."""
  extra = max(0, (int(n) - 1).bit_length()) if n > 1 else 0
  base = Val(INT, 1, signed=False) if x.cls == BOOL else x
  return from_range(
    ranges.times(rng(x), max(1, int(n))),
    s,
    ACC if x.cls == ACC else INT,
    min(width(base, s) + extra, s.acc_bits),
    base.signed,
  )
