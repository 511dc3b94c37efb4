"""Integer lowering rules, one per primitive that touches an integer value (see lower.py).

Each rule gets (lowerer, the equation's typed view (pikelpn_jax._jax_internals.Eqn), inputs,
fake-quant probe outputs, name stack) and returns the equation's output values; RULES (at the end)
is the table of every lowered primitive. Rules never emit a float operation: a float constant either changes a
value's grid (multiply/divide by a positive constant), is put on the grid exactly (add, max, min,
compare thresholds), or the rule refuses with the layer's path.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pikelpn_jax.export import grid, rules_mac
from pikelpn_jax.export.forward import quantize_codes
from pikelpn_jax.export.helpers import (
  LAYOUT_PARAMS,
  align,
  const_attr_or_tensor,
  fail,
  module_path,
  on_grid,
  require_exact,
  shift_left,
)
from pikelpn_jax.export.values import Const, Input, Sym
from pikelpn_jax.quant.config import Numerics


# ---------------------------------------------------------------- quantizers and tags
def quantize(lw, tag: dict, ins, ref, stack):
  """A quantizer (quantize_ste + its bit-width tag): the input quantizer at the boundary, or a
  requantization: a rounding shift when the grid ratio is a power of two, a sign when binary."""
  x, s = ins[-2], ins[-1]
  if not isinstance(s, Const):
    fail(
      stack,
      "the quantizer step depends on the input (dynamic calibration); export needs "
      "fixed steps (EMA/fixed/LSQ activations, abs-max weights)",
    )
  num = Numerics(bits=tag["bits"], signed=tag["signed"])
  lo, hi, binary = int(num.qmin), int(num.qmax), num.is_binary
  bits, signed = tag["bits"], tag["signed"]
  step = grid.compact(s.value, np.ndim(ref))
  mode = "sign" if binary else "round"
  if isinstance(x, Input):
    st = grid.uniform(step)
    if lw.input_spec is not None or st is None:
      fail(stack, "the model input must feed exactly one quantizer with a per-tensor step")
    e = grid.pow2_exponent(st)
    lw.input_spec = {
      "name": "x",
      "shape": [None] + list(np.shape(x.ref))[1:],
      "step": st,
      "step_exp": None if e is None else int(e),
      "lo": lo,
      "hi": hi,
      "bits": bits,
      "signed": signed,
      "mode": mode,
      "path": module_path(stack),
    }
    # The boundary step must reproduce the model's own input quantizer exactly.
    if not np.array_equal(quantize_codes(lw.input_spec, x.ref), np.asarray(ref)):
      fail(
        stack,
        "the input quantizer does not round half up on the grid [lo, hi] "
        "(floor(x/s + 0.5)); the boundary step cannot reproduce it",
      )
    return lw.sym("x", 1.0, lo, hi, ref, stack, codes=tag)
  require_exact(stack, x)
  attrs = {"mode": mode, "lo": lo, "hi": hi, "out_bits": bits, "out_signed": signed}
  tensors = {}
  if not binary:
    e = grid.pow2_exponent(x.scale / step)
    if e is None:
      ratio = np.unique(np.asarray(x.scale / step).reshape(-1))[:3]
      fail(
        stack,
        f"requantization ratio (value grid / quantizer step) {ratio.tolist()} is not a "
        "power of two, so it needs a float or fixed-point multiply; export needs "
        "power-of-two scales (Double Quantization: config.model.double_quant=True, "
        "dq_format='pow2')",
      )
    k = -grid.compact(e, x.ndim)
    u = grid.uniform(k)
    if u is not None:
      attrs["shift"] = int(u)
    else:
      b, sg = grid.bits_for(float(k.min()), float(k.max()))
      tensors["shift"] = lw.add_tensor(stack, "shift", k, b, sg)
    head = float(max(np.max(np.abs(x.lo)), np.max(np.abs(x.hi))))
    if head + 2.0 ** max(int(k.max()) - 1, 0) > 2**31 - 1:
      fail(stack, "the rounding add before the shift could overflow int32")
  vid = lw.emit("requant", [x], attrs, stack, tensors, category="scaling")
  return lw.sym(vid, 1.0, lo, hi, ref, stack, codes=tag)


def qtag(lw, e, ins, refs, stack):
  s, p = ins[0], e.tag
  if p["kind"] == "scale":
    fail(
      stack,
      "a quantization scale computed from the input (dynamic calibration) cannot be "
      "exported; use fixed, EMA or learned steps",
    )
  return [dataclasses.replace(s, codes={k: p[k] for k in ("bits", "signed", "kind")})]


def passthrough(lw, e, ins, refs, stack):
  return [ins[0]]


# ---------------------------------------------------------------- arithmetic
def mul(lw, e, ins, refs, stack):
  a, b = ins
  if isinstance(a, Const):
    a, b = b, a
  if isinstance(b, Sym):
    require_exact(stack, a, b)
    vid = lw.emit("mul", [a, b], {}, stack)
    prods = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
    return [
      lw.sym(
        vid, a.scale * b.scale, np.minimum.reduce(prods), np.maximum.reduce(prods), refs[0], stack
      )
    ]
  c = grid.compact(b.value, a.ndim)
  if b.codes:
    enc = "sign" if b.codes["bits"] == 1 else "twos"
    name = lw.add_tensor(stack, "m", c, b.codes["bits"], b.codes["signed"], enc)
    vid = lw.emit("mul", [a], {}, stack, {"c": name})
    prods = [a.lo * c, a.hi * c]
    return [
      lw.sym(
        vid,
        a.scale,
        np.minimum(*prods),
        np.maximum(*prods),
        refs[0],
        stack,
        err=a.err * float(np.max(np.abs(c))),
      )
    ]
  if np.all(c > 0):
    return [lw.sym(a.vid, a.scale * c, a.lo, a.hi, refs[0], stack, err=a.err * float(np.max(c)))]
  if np.all(c < 0):
    vid = lw.emit("neg", [a], {}, stack)
    return [lw.sym(vid, a.scale * -c, -a.hi, -a.lo, refs[0], stack, err=a.err * float(np.max(-c)))]
  fail(
    stack,
    "multiply by a float constant that is not integer codes and changes sign (or is "
    "zero); quantize that parameter",
  )


def div(lw, e, ins, refs, stack):
  a, b = ins
  if not (isinstance(a, Sym) and isinstance(b, Const)) or not np.all(np.asarray(b.value) > 0):
    fail(stack, "only division of an integer value by a positive constant (a grid change) lowers")
  c = grid.compact(b.value, a.ndim)
  return [lw.sym(a.vid, a.scale / c, a.lo, a.hi, refs[0], stack, err=a.err / float(np.min(c)))]


def _add_rounded(lw, a: Sym, c: Const, stack, ref):
  """a + c for a float c off a's grid: move a to a finer grid, round c onto it (output only)."""
  cv = np.asarray(c.value, np.float64)
  e = grid.pow2_exponent(a.scale)
  if e is not None:
    e_min = int(e.min())
    bound = float(max(np.max(np.abs(a.lo)), np.max(np.abs(a.hi))))
    for g in range(16, -1, -1):
      fine = 2.0 ** (e_min - g)
      if bound * float(np.max(a.scale)) / fine + float(np.max(np.abs(cv))) / fine < 2**30:
        break
    a = shift_left(lw, a, e - e_min + g, stack)
  ci = grid.compact(np.floor(cv / a.scale + 0.5), a.ndim)
  err = float(np.max(np.abs(ci * a.scale - cv)))
  lw.rounded.append(
    {"name": module_path(stack), "max_abs_err": err, "grid": float(np.max(a.scale))}
  )
  bits, signed = grid.bits_for(float(ci.min()), float(ci.max()))
  name = lw.add_tensor(stack, "bias", ci, bits, signed)
  vid = lw.emit("add", [a], {}, stack, {"c": name})
  return lw.sym(vid, a.scale, a.lo + ci, a.hi + ci, ref, stack, err=a.err + err)


def add_sub(lw, e, ins, refs, stack):
  kind = e.prim
  a, b = ins
  if isinstance(a, Sym) and isinstance(b, Sym):
    a, b = align(lw, [a, b], stack)
    vid = lw.emit(kind, [a, b], {}, stack)
    lo, hi = (a.lo + b.lo, a.hi + b.hi) if kind == "add" else (a.lo - b.hi, a.hi - b.lo)
    return [lw.sym(vid, a.scale, lo, hi, refs[0], stack, err=a.err + b.err)]
  if isinstance(a, Const):  # c + s or c - s
    if kind == "sub":
      vid = lw.emit("neg", [b], {}, stack)
      b = lw.sym(vid, b.scale, -b.hi, -b.lo, -np.asarray(b.ref), stack, err=b.err)
    a, b, kind = b, a, "add"
  c = Const(-np.asarray(b.value) if kind == "sub" else b.value, b.codes)
  ci = grid.compact(np.asarray(c.value, np.float64) / a.scale, a.ndim)
  if not grid.is_integer_valued(ci):
    return [_add_rounded(lw, a, c, stack, refs[0])]
  if b.codes and np.all(a.scale == 1):
    attrs, tensors = {}, {"c": lw.add_tensor(stack, "c", ci, b.codes["bits"], b.codes["signed"])}
  else:
    attrs, tensors = const_attr_or_tensor(lw, stack, "c", ci)
  vid = lw.emit("add", [a], attrs, stack, tensors)
  return [lw.sym(vid, a.scale, a.lo + ci, a.hi + ci, refs[0], stack, err=a.err)]


def neg(lw, e, ins, refs, stack):
  a = ins[0]
  vid = lw.emit("neg", [a], {}, stack)
  return [lw.sym(vid, a.scale, -a.hi, -a.lo, refs[0], stack, err=a.err)]


def max_min(lw, e, ins, refs, stack):
  kind = e.prim
  fn = np.maximum if kind == "max" else np.minimum
  a, b = ins
  if isinstance(a, Const):
    a, b = b, a
  if isinstance(b, Sym):
    require_exact(stack, a, b)
    a, b = align(lw, [a, b], stack)
    vid = lw.emit(kind, [a, b], {}, stack)
    return [lw.sym(vid, a.scale, fn(a.lo, b.lo), fn(a.hi, b.hi), refs[0], stack)]
  require_exact(stack, a)
  ci = on_grid(stack, b, a, kind)
  attrs, tensors = const_attr_or_tensor(lw, stack, "c", ci)
  vid = lw.emit(kind, [a], attrs, stack, tensors)
  return [lw.sym(vid, a.scale, fn(a.lo, ci), fn(a.hi, ci), refs[0], stack)]


# Every primitive the lowering handles on an integer value, and its rule: lower.py looks a
# primitive up here and refuses one that is absent, naming it and the layer's path.
RULES = {
  "qtag": qtag,
  "stop_gradient": passthrough,
  "copy": passthrough,
  "materialize": passthrough,
  "convert_element_type": passthrough,
  "mul": mul,
  "div": div,
  "add": add_sub,
  "sub": add_sub,
  "neg": neg,
  "max": max_min,
  "min": max_min,
  "ge": rules_mac.compare,
  "gt": rules_mac.compare,
  "le": rules_mac.compare,
  "lt": rules_mac.compare,
  "eq": rules_mac.compare,
  "ne": rules_mac.compare,
  "select_n": rules_mac.select_n,
  "reduce_sum": rules_mac.reduce_sum,
  "reduce_max": rules_mac.reduce_max,
  "reduce_window_max": rules_mac.reduce_max,
  "conv_general_dilated": rules_mac.conv,
  "dot_general": rules_mac.dot,
  **dict.fromkeys(LAYOUT_PARAMS, rules_mac.layout),
}
