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
from typing import Dict, List, Tuple

from pikelpn_jax import _jax_internals as jint
from pikelpn_jax.ace import fold, rules
from pikelpn_jax.ace.values import (FIXED, FLOAT, INT, POW2, SCALE_NONE, AceSettings, Val,
                                    as_data, const_product, float_val, input_val,
                                    integer_dtype, join,
                                    literal_val, same_type, width)


class AceError(ValueError):
  """The analyzer cannot price something (unknown primitive, untagged quantizer, while loop)."""


class Tally:
  """Priced operations of one (sub-)jaxpr, keyed by name stack relative to that jaxpr."""
  __slots__ = ("costs", "traffic", "notes", "unaccounted", "param_bits")

  def __init__(self):
    self.costs: Dict[tuple, int] = defaultdict(int)       # (stack, forced_cat, op, bx, by) -> n
    self.traffic: Dict[str, List[int]] = {}              # stack -> [weight, read, write] bits
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
    for (stack, cat, op, bx, by), n in other.costs.items():
      self.costs[(join_stacks(prefix, stack), cat, op, bx, by)] += n * times
    for stack, (w, r, wr) in other.traffic.items():
      self.add_traffic(join_stacks(prefix, stack), w * times, r * times, wr * times)
    self.notes.extend((join_stacks(prefix, s), t) for s, t in other.notes)
    self.unaccounted.extend((join_stacks(prefix, s), t) for s, t in other.unaccounted)
    self.param_bits.update(other.param_bits)

  def acev2(self, settings: AceSettings) -> int:
    return sum(n * rules.unit_cost(op, bx, by, settings)
               for (_, _, op, bx, by), n in self.costs.items())


def _size(v) -> int:
  return math.prod(jint.var_shape(v))


class Walker:
  def __init__(self, settings: AceSettings, strict: bool = True):
    self.settings = settings
    self.strict = strict
    self._cache: Dict[tuple, tuple] = {}
    self._tag_maps: Dict[int, tuple] = {}
    self._where: List[str] = []          # absolute name stack of the jaxprs being walked
    self._folds: List[fold.FoldState] = []   # fold='affine': chains of the jaxprs being walked

  # ------------------------------------------------------------------------------ jaxprs
  def run(self, jaxpr, in_vals) -> Tuple[Tally, List[Val]]:
    key = (id(jaxpr), tuple(in_vals))
    hit = self._cache.get(key)
    if hit is not None:
      return hit[1], hit[2]
    tally = Tally()
    outs = self._eval(jaxpr, list(in_vals), tally)
    self._cache[key] = (jaxpr, tally, outs)      # keeps jaxpr alive so its id stays unique
    return tally, outs

  def _read(self, env, v) -> Val:
    if jint.is_literal(v):
      val = jint.literal_value(v)
      return literal_val(val, getattr(jint.var_dtype(v), "kind", "f") == "b", self.settings)
    return env[v]

  def _eval(self, jaxpr, in_vals, tally: Tally) -> List[Val]:
    invars, constvars, outvars, eqns, consts = jint.jaxpr_parts(jaxpr)
    env = dict(zip(invars, in_vals))
    for v in constvars:
      env[v] = float_val(self.settings, const=True, stored=_size(v))
    tags = self._tag_map(jaxpr, eqns)
    read = self._read
    affine = self.settings.fold == "affine"
    if affine:
      self._folds.append(fold.FoldState(eqns, outvars))
    try:
      for eqn in eqns:
        ins = [read(env, v) for v in jint.eqn_inputs(eqn)]
        outs = self._eqn(eqn, ins, tally, tags)
        for v, o in zip(jint.eqn_outputs(eqn), outs):
          env[v] = o
    finally:
      if affine:
        self._folds.pop()
    return [read(env, v) for v in outvars]

  def _tag_map(self, jaxpr, eqns) -> dict:
    """{var: qtag params} for every var that feeds a qtag in this jaxpr."""
    hit = self._tag_maps.get(id(jaxpr))
    if hit is not None:
      return hit[1]
    tags = {}
    for eqn in eqns:
      if jint.is_tag(eqn):
        v = jint.eqn_inputs(eqn)[0]
        if not jint.is_literal(v):
          tags[v] = jint.tag_params(eqn)
    self._tag_maps[id(jaxpr)] = (jaxpr, tags)
    return tags

  # ------------------------------------------------------------------------------- eqns
  def _eqn(self, eqn, ins: List[Val], tally: Tally, tags: dict) -> List[Val]:
    prim = jint.primitive_name(eqn)
    stack = jint.name_stack(eqn)
    if prim == "qtag":
      return [self._tagged(ins[0], jint.tag_params(eqn))]
    if jint.is_quantizer_call(eqn):
      return self._quantizer(eqn, ins, tally, tags, stack)
    body = jint.call_body(eqn)
    if body is not None:
      return self._call(body, ins, tally, stack, 1)
    if prim == "scan":
      return self._scan(eqn, ins, tally, stack)
    if prim == "cond":
      return self._cond(eqn, ins, tally, stack)
    if all(v.const for v in ins):
      return self._const_outputs(eqn, prim, ins)
    if prim == "while":
      raise AceError(f"'while' on data at {self._path(stack)}: a data-dependent loop has no "
                     "static cost; use lax.scan or a Python loop")
    rule = rules.RULES.get(prim)
    if rule is None:
      return self._unknown(eqn, prim, tally, stack)
    outs, cost = rule(eqn, ins, self.settings)
    if cost.ops:
      costs = tally.costs
      keyed = [((stack, category, op, bx, by), count) for op, bx, by, count, category in cost.ops]
      i = fold.affine_operand(eqn, prim, ins) if self._folds else None
      if i is not None:
        charged = self._folds[-1].price(costs, jint.eqn_outputs(eqn)[0],
                                        jint.eqn_inputs(eqn)[i], keyed)
      else:
        charged = True
        for key, count in keyed:
          costs[key] += count
      if charged:
        self._traffic(eqn, ins, outs, tally, stack)
    for text in cost.notes:
      tally.notes.append((stack, text))
    return outs

  def _path(self, stack: str) -> str:
    full = stack
    for outer in reversed(self._where):
      full = jint.join_name_stacks(outer, full)
    return full or "<top level>"

  def _unknown(self, eqn, prim, tally, stack) -> List[Val]:
    msg = (f"no ACEv2 rule for primitive '{prim}' (module path {self._path(stack)}); add one in "
           "pikelpn_jax/ace/rules.py")
    if self.strict:
      raise AceError(msg)
    tally.unaccounted.append((stack, f"{prim}"))
    return [float_val(self.settings)] * len(jint.eqn_outputs(eqn))

  def _traffic(self, eqn, ins, outs, tally, stack):
    s = self.settings
    w = r = 0
    for v, val in zip(jint.eqn_inputs(eqn), ins):
      if val.const:
        w += val.stored * width(val, s)
      else:
        r += _size(v) * width(val, s)
    wr = sum(_size(v) * width(val, s) for v, val in zip(jint.eqn_outputs(eqn), outs))
    tally.add_traffic(stack, w, r, wr)

  def _tagged(self, v: Val, p: dict) -> Val:
    if p["kind"] == "scale":
      fmt = p["scale"]
      bits = p["scale_bits"] if fmt == FIXED else self.settings.float_bits
      return Val(FLOAT, bits, True, v.const, fmt, v.stored, v.origin)
    # No integer of an integer pipeline is wider than its accumulator: a bias tagged 32 bits
    # ("on the accumulator grid") is acc_bits wide when acc_bits is smaller.
    return Val(INT, min(p["bits"], self.settings.acc_bits), p["signed"], v.const, SCALE_NONE,
               v.stored, v.origin)

  def _const_outputs(self, eqn, prim, ins) -> List[Val]:
    """Constant folding: free; the output keeps the type a later data op will see."""
    outvars = jint.eqn_outputs(eqn)
    s = self.settings
    if prim == "optimization_barrier":
      return list(ins)
    if prim in rules.LAYOUT_PRIMITIVES:
      return [ins[0]] * len(outvars)
    if prim == "convert_element_type" and integer_dtype(jint.var_dtype(outvars[0])) is None \
        and getattr(jint.var_dtype(outvars[0]), "kind", "f") != "b":
      return [ins[0]]                      # a view of the same values in a float container
    if prim in ("mul", "div"):
      outs = [const_product(ins[0], ins[1], prim == "div", s)]
    else:
      rule = rules.RULES.get(prim)
      if rule is not None:                 # the type the rule gives data, computed offline: free
        outs = rule(eqn, ins, s)[0]
      else:                                # no rule needed to fold it: its type is its dtype
        outs = [input_val(jint.var_dtype(o), s, True, 0) for o in outvars]
    value = ins[0].value if prim == "convert_element_type" else None
    return [v._replace(const=True, stored=_size(o), origin=-1, value=value)
            for v, o in zip(outs, outvars)]

  # --------------------------------------------------------------------- quantizer pair
  def _quantizer(self, eqn, ins, tally, tags, stack) -> List[Val]:
    """Requantization: x·(1/s) (a b_in·b_scale multiply; a shift for a pow2 scale; nothing when
    folded), round (one add) and clip (two compares), all at the input width b_in. A binary
    (±1) quantizer is sign(x): one compare, no scale, no rounding. Output: int(bits)."""
    out = jint.eqn_outputs(eqn)[0]
    p = tags.get(out)
    if p is None:
      raise AceError(f"quantize_ste at {self._path(stack)} has no qtag on its output: the "
                     "analyzer cannot know its bit width (use quant.quantizer.codes)")
    x = ins[0]
    if x.const and x.origin >= 0:
      tally.param_bits[x.origin] = p["bits"]
    bits = min(p["bits"], self.settings.acc_bits)
    if all(v.const for v in ins):
      return [Val(INT, bits, p["signed"], True, stored=x.stored or _size(out))]
    s = self.settings
    b = width(x, s)
    n = _size(out)
    costs = tally.costs
    if p["bits"] == 1 and p["signed"]:
      costs[(stack, "scaling", "cmp", b, 0)] += n
    else:
      if not p["folded"]:
        if p["scale"] == POW2:
          key = (stack, "scaling", "shift", b, 0)
        elif p["scale"] == FIXED:
          key = (stack, "scaling", "mul", b, p["scale_bits"])
        else:
          key = (stack, "scaling", "mul", b, s.float_bits)
        if self._folds and self._folds[-1].chain_of(jint.eqn_inputs(eqn)[0]) is not None:
          # ·(1/s) merges into the affine chain that computed x (fold='affine')
          self._folds[-1].price(costs, out, jint.eqn_inputs(eqn)[0], [(key, n)])
        else:
          costs[key] += n
      costs[(stack, "scaling", "add", b, 0)] += n
      costs[(stack, "scaling", "cmp", b, 0)] += 2 * n
    scale = ins[1] if len(ins) > 1 else None
    w = scale.stored * width(scale, s) if scale is not None and scale.const else 0
    tally.add_traffic(stack, w, n * b, n * bits)
    return [Val(INT, bits, p["signed"])]

  # ------------------------------------------------------------------------ higher order
  def _call(self, body, ins, tally, stack, times) -> List[Val]:
    self._where.append(stack)
    try:
      sub, outs = self.run(body, ins)
    finally:
      self._where.pop()
    tally.merge(sub, stack, times)
    return outs

  def _scan(self, eqn, ins, tally, stack) -> List[Val]:
    body, length, n_consts, n_carry = jint.scan_info(eqn)
    carry = ins[n_consts:n_consts + n_carry]
    self._where.append(stack)
    try:
      sub, outs = self.run(body, ins)
      # Integer widths grow (c·c doubles them each step) up to acc_bits: iterate to the fixed
      # point of the carry types, which then bounds every step. Joins only widen, and widths
      # are capped, so this ends.
      for _ in range(2 * self.settings.acc_bits + 4):
        new_carry = [join(a, b, self.settings) if not same_type(a, b) else a
                     for a, b in zip(carry, outs[:n_carry])]
        if all(same_type(a, b) for a, b in zip(carry, new_carry)):
          break
        carry = new_carry
        ins = ins[:n_consts] + new_carry + ins[n_consts + n_carry:]
        sub, outs = self.run(body, ins)
    finally:
      self._where.pop()
    tally.merge(sub, stack, length)
    return outs

  def _cond(self, eqn, ins, tally, stack) -> List[Val]:
    self._where.append(stack)
    try:
      results = [self.run(b, ins[1:]) for b in jint.cond_branches(eqn)]
    finally:
      self._where.pop()
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
      tally.notes.append((stack, "cond branches disagree in cost or type: took the costliest "
                                 "branch and the join of the output types"))
    tally.merge(results[pick][0], stack, 1)
    return [as_data(v) if not all(i.const for i in ins) else v for v in outs]
