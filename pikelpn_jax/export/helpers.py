"""Shared pieces of the integer lowering: name-stack parsing, the layout-parameter table, and the
exact grid helpers every rule uses (rules.py: elementwise and quantizers, rules_mac.py: MACs,
reductions, compares, layout). A module of its own so that the rule modules and lower.py import
it rather than each other."""

from __future__ import annotations

from typing import Optional

import numpy as np

from pikelpn_jax.export import grid
from pikelpn_jax.export.values import Const, ExportError, Sym
from pikelpn_jax.jaxpr_interpreter import LAYOUT_TABLE, layout_names, split_stack


def module_path(stack: str) -> str:
  """'PikeLPN/block0/dw/norm/acev2:norm' -> 'block0/dw/norm' (module components only: below the
  model, without cost-category and method scopes or transform names)."""
  parts = [
    p
    for p in split_stack(stack)[0].split("/")
    if p and ":" not in p and "." not in p and "(" not in p
  ]
  return "/".join(parts[1:]) or (parts[0] if parts else "model")


def stack_category(stack: str) -> Optional[str]:
  return split_stack(stack)[1] or None


LAYOUT_PARAMS = {n: LAYOUT_TABLE[n].params for n in layout_names("params")}
FLIPPED = {"ge": "le", "gt": "lt", "le": "ge", "lt": "gt", "eq": "eq", "ne": "ne"}


def jsonable(v):
  if isinstance(v, (tuple, list)):
    return [jsonable(x) for x in v]
  if isinstance(v, (np.integer,)):
    return int(v)
  return v


def fail(stack, msg):
  raise ExportError(f"{module_path(stack)}: {msg}")


def const_attr_or_tensor(lw, stack, role, ints):
  """A small integer constant: an attrs scalar when uniform, else a stored tensor."""
  u = grid.uniform(ints)
  if u is not None:
    return {"value": int(u)}, {}
  bits, signed = grid.bits_for(float(np.min(ints)), float(np.max(ints)))
  return {}, {"c": lw.add_tensor(stack, role, ints, bits, signed)}


def shift_left(lw, s: Sym, k, stack) -> Sym:
  """s on a grid 2^k times finer (k >= 0 per element): an exact left shift."""
  k = grid.compact(k, s.ndim).astype(np.int64)
  if not np.any(k):
    return s
  u = grid.uniform(k)
  if u is not None:
    attrs, tensors = {"shift": int(u)}, {}
  else:
    bits, signed = grid.bits_for(0, float(k.max()))
    attrs, tensors = {}, {"shift": lw.add_tensor(stack, "shift", k, bits, signed)}
  vid = lw.emit("shift_left", [s], attrs, stack, tensors, category="scaling")
  f = np.exp2(k)
  return lw.sym(vid, s.scale / f, s.lo * f, s.hi * f, s.ref, stack, err=s.err)


def align(lw, syms, stack):
  """The Syms on one common grid (the finest), by exact left shifts; refuses non-pow2 ratios."""
  target = syms[0].scale
  for s in syms[1:]:
    target = np.minimum(target, s.scale)
  out = []
  for s in syms:
    e = grid.pow2_exponent(s.scale / target)
    if e is None:
      fail(
        stack,
        "operands on grids whose ratio is not a power of two cannot be aligned "
        "exactly; use power-of-two scales (Double Quantization, dq_format='pow2')",
      )
    out.append(shift_left(lw, s, e, stack))
  return out


def on_grid(stack, c: Const, s: Sym, what: str):
  ci = grid.compact(np.asarray(c.value, np.float64) / s.scale, s.ndim)
  if not grid.is_integer_valued(ci):
    fail(
      stack,
      f"the float constant in this {what} is not on the integer grid of its operand "
      "(a float parameter: the layer is not fully quantized)",
    )
  return ci


def require_exact(stack, *syms):
  for s in syms:
    if s.err:
      fail(
        stack,
        "a float constant rounded onto the grid upstream feeds a rounding or compare "
        "step here, so the integer result could differ; quantize that parameter",
      )
