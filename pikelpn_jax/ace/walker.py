"""The abstract interpreter: walks a jaxpr giving every variable a numeric type (values.Val) and
tallying priced operations per (module path, category, op, bit widths).

Higher-order primitives map types into and out of their sub-jaxprs: jit / closed_call / remat /
custom_jvp_call / custom_vjp_call (once), scan (× length; re-walked until the carries' types
are a fixed point), cond (the costliest branch; a note when branches disagree). `while` on data is an error.
A quantizer is a custom_jvp_call of quantize_ste whose output feeds a qtag: the pair is priced as a
requantization (see _quantizer) and its internals are not walked. Sub-jaxpr results are cached by
(jaxpr, operand types), so a helper like jnp.clip is walked once per distinct typing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Dict, List, NamedTuple, Optional, Tuple

from pikelpn_jax import _jax_internals as jint
from pikelpn_jax.ace import fold
from pikelpn_jax.ace.pricing import unit_cost
from pikelpn_jax.ace.rules import LAYOUT_PRIMITIVES, RULES
from pikelpn_jax.ace.values import (
  FIXED,
  FLOAT,
  INT,
  POW2,
  AceSettings,
  CostKey,
  Val,
  as_data,
  const_product,
  float_bits_of,
  float_val,
  input_val,
  integer_dtype,
  join,
  literal_val,
  same_type,
  width,
)
from pikelpn_jax.jaxpr_interpreter import Eqn, Frame, Interpreter, Visitor


class AceError(ValueError):
  """The analyzer cannot price something (unknown primitive, untagged quantizer, while loop)."""


class Tally:
  """Priced operations of one (sub-)jaxpr, keyed by name stack relative to that jaxpr."""

  __slots__ = ("costs", "traffic", "notes", "unaccounted", "param_bits")

  def __init__(self):
    self.costs: Dict[CostKey, int] = defaultdict(int)  # CostKey -> number of ops
    self.traffic: Dict[str, List[int]] = {}  # stack -> [weight, read, write] bits
    self.notes: List[Tuple[str, str]] = []
    self.unaccounted: List[Tuple[str, str]] = []
    self.param_bits: Dict[int, int] = {}

  def add_traffic(self, stack: str, w: int, r: int, wr: int):
    t = self.traffic.get(stack)
    if t is None:
      self.traffic[stack] = [w, r, wr]
    else:
      t[0] += w
      t[1] += r
      t[2] += wr

  def merge(self, other: "Tally", prefix: str, times: int = 1):
    join_stacks = jint.join_name_stacks
    for key, n in other.costs.items():
      self.costs[key._replace(stack=join_stacks(prefix, key.stack))] += n * times
    for stack, (w, r, wr) in other.traffic.items():
      self.add_traffic(join_stacks(prefix, stack), w * times, r * times, wr * times)
    self.notes.extend((join_stacks(prefix, s), t) for s, t in other.notes)
    self.unaccounted.extend((join_stacks(prefix, s), t) for s, t in other.unaccounted)
    self.param_bits.update(other.param_bits)

  def acev2(self, settings: AceSettings) -> int:
    return sum(n * unit_cost(k.op, k.bx, k.by, settings) for k, n in self.costs.items())


def _size(v) -> int:
  return math.prod(jint.var_shape(v))


class _Frame(NamedTuple):
  """The walker's state for one jaxpr: its tally, its qtag map, its fold chains (or None)."""

  tally: Tally
  tags: dict
  folds: Optional[fold.FoldState]


class Walker(Visitor):
  """A visitor of the jaxpr interpreter whose values are numeric types (values.Val); it prices a
  primitive by its row of `rules` (rules.RULES unless given)."""

  def __init__(self, settings: AceSettings, strict: bool = True, rules=None):
    self.settings = settings
    self.strict = strict
    self.rules = RULES if rules is None else rules
    self._interp = Interpreter(self)
    self._cache: Dict[tuple, tuple] = {}
    self._folds: List[fold.FoldState] = []  # fold='affine': chains of the jaxprs being walked

  # ------------------------------------------------------------------------------ jaxprs
  def run(self, jaxpr, in_vals, parent: Optional[Eqn] = None) -> Tuple[Tally, List[Val]]:
    key = (id(jaxpr), tuple(in_vals))
    hit = self._cache.get(key)
    if hit is not None:
      return hit[1], hit[2]
    tally = Tally()
    outs = self._interp.run(jaxpr, list(in_vals), parent=parent, state=tally)
    self._cache[key] = (jaxpr, tally, outs)  # keeps jaxpr alive so its id stays unique
    return tally, outs

  def literal(self, value, dtype) -> Val:
    return literal_val(value, getattr(dtype, "kind", "f") == "b", self.settings, dtype)

  def constant(self, var, value) -> Val:
    return float_val(self.settings, const=True, stored=_size(var), dtype=jint.var_dtype(var))

  def enter(self, frame: Frame) -> None:
    tags = self._interp.qtag_inputs(frame)
    folds = fold.FoldState(frame.eqns, frame.outvars) if self.settings.fold == "affine" else None
    if folds is not None:
      self._folds.append(folds)
    frame.state = _Frame(frame.state, tags, folds)

  def leave(self, frame: Frame) -> None:
    if frame.state.folds is not None:
      self._folds.pop()

  # ------------------------------------------------------------------------------- eqns
  def eqn(self, e: Eqn, ins: List[Val]) -> List[Val]:
    prim = e.prim
    stack = e.name_stack
    tally, tags = e.frame.state.tally, e.frame.state.tags
    if prim == "qtag":
      return [self._tagged(ins[0], e.tag)]
    if e.is_quantizer:
      return self._quantizer(e, ins, tally, tags, stack)
    body = e.body
    if body is not None:
      return self._call(e, body, ins, tally, stack, 1)
    if prim == "scan":
      return self._scan(e, ins, tally, stack)
    if prim == "cond":
      return self._cond(e, ins, tally, stack)
    if all(v.const for v in ins):
      return self._const_outputs(e, prim, ins)
    if prim == "while":
      raise AceError(
        f"'while' on data at {self._path(e)}: a data-dependent loop has no "
        "static cost; use lax.scan or a Python loop"
      )
    rule = self.rules.get(prim)
    if rule is None:
      return self._unknown(e, prim, tally, stack)
    outs, cost = rule(e, ins, self.settings)
    if cost.ops:
      costs = tally.costs
      keyed = [
        (CostKey(stack, category, op, bx, by, cx, cy), count)
        for op, bx, by, count, category, cx, cy in cost.ops
      ]
      i = fold.affine_operand(e, prim, ins) if self._folds else None
      if i is not None:
        charged = self._folds[-1].price(costs, e.outputs[0], e.inputs[i], keyed)
      else:
        charged = True
        for key, count in keyed:
          costs[key] += count
      if charged:
        self._traffic(e, ins, outs, tally, stack)
    for text in cost.notes:
      tally.notes.append((stack, text))
    return outs

  @staticmethod
  def _path(e: Eqn) -> str:
    return e.stack or "<top level>"

  def _unknown(self, e: Eqn, prim, tally, stack) -> List[Val]:
    msg = (
      f"no ACEv2 rule for primitive '{prim}' (module path {self._path(e)}); add one to the "
      "RULES table in pikelpn_jax/ace/rules.py"
    )
    if self.strict:
      raise AceError(msg)
    tally.unaccounted.append((stack, f"{prim}"))
    return [float_val(self.settings, dtype=jint.var_dtype(o)) for o in e.outputs]

  def _traffic(self, e: Eqn, ins, outs, tally, stack):
    s = self.settings
    w = r = 0
    for v, val in zip(e.inputs, ins):
      if val.const:
        w += val.stored * width(val, s)
      else:
        r += _size(v) * width(val, s)
    wr = sum(_size(v) * width(val, s) for v, val in zip(e.outputs, outs))
    tally.add_traffic(stack, w, r, wr)

  def _tagged(self, v: Val, p: dict) -> Val:
    if p["kind"] == "scale":
      fmt = p["scale"]
      bits = (
        p["scale_bits"]
        if fmt == FIXED
        else v.bits
        if v.cls == FLOAT and v.fmt != FIXED
        else self.settings.default_float_bits
      )
      return Val(FLOAT, bits, const=v.const, fmt=fmt, stored=v.stored, origin=v.origin)
    # No integer of an integer pipeline is wider than its accumulator: a bias tagged 32 bits
    # ("on the accumulator grid") is acc_bits wide when acc_bits is smaller.
    return Val(
      INT,
      min(p["bits"], self.settings.acc_bits),
      signed=p["signed"],
      const=v.const,
      stored=v.stored,
      origin=v.origin,
    )

  def _const_outputs(self, e: Eqn, prim, ins) -> List[Val]:
    """Constant folding: free; the output keeps the type a later data op will see."""
    outvars = e.outputs
    s = self.settings
    if prim == "optimization_barrier":
      return list(ins)
    if prim in LAYOUT_PRIMITIVES:
      return [ins[0]] * len(outvars)
    if (
      prim == "convert_element_type"
      and integer_dtype(jint.var_dtype(outvars[0])) is None
      and getattr(jint.var_dtype(outvars[0]), "kind", "f") != "b"
    ):
      x = ins[0]
      if x.cls == FLOAT and x.fmt != FIXED:  # the same values at the new float width
        return [x._replace(bits=float_bits_of(jint.var_dtype(outvars[0]), s))]
      return [x]  # integer codes in a float container stay integers
    if prim in ("mul", "div"):
      outs = [const_product(ins[0], ins[1], prim == "div", s)]
    else:
      rule = self.rules.get(prim)
      if rule is not None:  # the type the rule gives data, computed offline: free
        outs = rule(e, ins, s)[0]
      else:  # no rule needed to fold it: its type is its dtype
        outs = [input_val(jint.var_dtype(o), s, True, 0) for o in outvars]
    value = ins[0].value if prim == "convert_element_type" else None
    # v as a const (Val's positional layout: cls, bits, signed, const, fmt, stored, origin, value,
    # lo, hi); built directly, since this runs for every op on parameters
    make = tuple.__new__
    return [
      make(Val, (v[0], v[1], v[2], True, v[4], _size(o), -1, value, v[8], v[9]))
      for v, o in zip(outs, outvars)
    ]

  # --------------------------------------------------------------------- quantizer pair
  def _quantizer(self, e: Eqn, ins, tally, tags, stack) -> List[Val]:
    """Requantization: x·(1/s) (a b_in·b_scale multiply; a shift for a pow2 scale; nothing when
    folded), round (one add) and clip (two compares), all at the input width b_in. A binary
    (±1) quantizer is sign(x): one compare, no scale, no rounding. Output: int(bits)."""
    out = e.outputs[0]
    p = tags.get(out)
    if p is None:
      raise AceError(
        f"quantize_ste at {self._path(e)} has no qtag on its output: the "
        "analyzer cannot know its bit width (use quant.quantizer.codes)"
      )
    x = ins[0]
    if x.const and x.origin >= 0:
      tally.param_bits[x.origin] = p["bits"]
    bits = min(p["bits"], self.settings.acc_bits)
    if all(v.const for v in ins):
      return [Val(INT, bits, signed=p["signed"], const=True, stored=x.stored or _size(out))]
    s = self.settings
    b = width(x, s)
    n = _size(out)
    costs = tally.costs
    if p["bits"] == 1 and p["signed"]:
      costs[CostKey(stack, "scaling", "cmp", b, 0, x.cls)] += n
    else:
      if not p["folded"]:
        if p["scale"] == POW2:
          key = CostKey(stack, "scaling", "shift", b, 0, x.cls)
        elif p["scale"] == FIXED:
          key = CostKey(stack, "scaling", "mul", b, p["scale_bits"], x.cls, FIXED)
        else:
          scale = ins[1] if len(ins) > 1 and ins[1].cls == FLOAT else x
          fb = scale.bits if scale.cls == FLOAT and scale.fmt != FIXED else s.default_float_bits
          key = CostKey(stack, "scaling", "mul", b, fb, x.cls, FLOAT)
        if self._folds and self._folds[-1].chain_of(e.inputs[0]) is not None:
          # ·(1/s) merges into the affine chain that computed x (fold='affine')
          self._folds[-1].price(costs, out, e.inputs[0], [(key, n)])
        else:
          costs[key] += n
      costs[CostKey(stack, "scaling", "add", b, 0, x.cls)] += n
      costs[CostKey(stack, "scaling", "cmp", b, 0, x.cls)] += 2 * n
    scale = ins[1] if len(ins) > 1 else None
    w = scale.stored * width(scale, s) if scale is not None and scale.const else 0
    tally.add_traffic(stack, w, n * b, n * bits)
    return [Val(INT, bits, signed=p["signed"])]

  # ------------------------------------------------------------------------ higher order
  def _call(self, e: Eqn, body, ins, tally, stack, times) -> List[Val]:
    sub, outs = self.run(body, ins, e)
    tally.merge(sub, stack, times)
    return outs

  def _scan(self, e: Eqn, ins, tally, stack) -> List[Val]:
    body, length, n_consts, n_carry = e.scan
    carry = ins[n_consts : n_consts + n_carry]
    sub, outs = self.run(body, ins, e)
    # Integer widths grow (c·c doubles them each step) up to acc_bits: iterate to the fixed
    # point of the carry types, which then bounds every step. Joins only widen, and widths
    # are capped, so this ends.
    for _ in range(2 * self.settings.acc_bits + 4):
      new_carry = [
        join(a, b, self.settings) if not same_type(a, b) else a
        for a, b in zip(carry, outs[:n_carry])
      ]
      if all(same_type(a, b) for a, b in zip(carry, new_carry)):
        break
      carry = new_carry
      ins = ins[:n_consts] + new_carry + ins[n_consts + n_carry :]
      sub, outs = self.run(body, ins, e)
    tally.merge(sub, stack, length)
    return outs

  def _cond(self, e: Eqn, ins, tally, stack) -> List[Val]:
    results = [self.run(b, ins[1:], e) for b in e.branches]
    costs = [sub.acev2(self.settings) for sub, _ in results]
    pick = max(range(len(results)), key=lambda i: costs[i])
    outs = list(results[0][1])
    agree = len(set(costs)) == 1
    for _, branch_outs in results[1:]:
      for i, v in enumerate(branch_outs):
        if not same_type(outs[i], v):
          outs[i] = join(outs[i], v, self.settings)
          agree = False
    if not agree:
      tally.notes.append(
        (
          stack,
          "cond branches disagree in cost or type: took the costliest "
          "branch and the join of the output types",
        )
      )
    tally.merge(results[pick][0], stack, 1)
    return [as_data(v) if not all(i.const for i in ins) else v for v in outs]
