"""The integer operations of an exported model and their jnp implementations.

Every op reads and writes integer arrays only (int8/int16 codes, int32 accumulators, bool
predicates); the set is what integer hardware implements: MAC (conv, dot), multiply, add/sub,
arithmetic shift, compare/select (max, min, clamp), sum, and data movement (layout ops).
An op is a JSON object:
  {"op": kind, "name": module path, "category": ACEv2 category or null,
   "in": [value ids], "out": value id, "attrs": {...}, "tensors": {role: tensor name}}
`requant` is the one rounding step: q = clamp((v + 2^(k-1)) >> k, lo, hi) for a right shift
k > 0 (round half up, exactly floor(v/2^k + 0.5)), q = clamp(v << -k, lo, hi) for k <= 0, or the
sign (v >= 0 ? +1 : -1) for binary grids.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, List

import jax
import jax.numpy as jnp
from jax import lax

from pikelpn_jax._jax_internals import cost_category, tag
from pikelpn_jax.jaxpr_interpreter import layout_names

LAYOUT_PRIMS = layout_names("runtime")
I32 = jnp.int32


def codes_dtype(bits: int, signed: bool = True):
  """The narrowest container of `bits`-bit codes: int8, int16 or int32 (unsigned needs a bit more)."""
  need = bits if signed else bits + 1
  return jnp.int8 if need <= 8 else jnp.int16 if need <= 16 else I32


def _operand(op, inputs, tensors, i=1):
  """The second operand: a second input, a stored tensor 'c', or an attrs scalar 'value'."""
  if len(inputs) > i:
    return inputs[i]
  if "c" in op.get("tensors", {}):
    return tensors[op["tensors"]["c"]]
  return jnp.asarray(op["attrs"]["value"], I32)


def _wide(x):
  return x.astype(I32) if x.dtype != jnp.bool_ else x


def _conv(op, inputs, tensors):
  a = op["attrs"]
  x = inputs[0]
  w = tensors[op["tensors"]["w"]]
  dtype = jnp.promote_types(x.dtype, w.dtype)
  return lax.conv_general_dilated(
    x.astype(dtype),
    w.astype(dtype),
    tuple(a["window_strides"]),
    tuple(tuple(p) for p in a["padding"]),
    tuple(a["lhs_dilation"]),
    tuple(a["rhs_dilation"]),
    dimension_numbers=lax.ConvDimensionNumbers(*(tuple(s) for s in a["dimension_numbers"])),
    feature_group_count=a["feature_group_count"],
    batch_group_count=a["batch_group_count"],
    preferred_element_type=I32,
  )


def _dot(op, inputs, tensors):
  a = op["attrs"]
  x = inputs[0]
  w = tensors[op["tensors"]["w"]]
  dtype = jnp.promote_types(x.dtype, w.dtype)
  (lc, rc), (lb, rb) = a["dimension_numbers"]
  lhs, rhs = (x, w) if a.get("const_side", "rhs") == "rhs" else (w, x)
  return lax.dot_general(
    lhs.astype(dtype),
    rhs.astype(dtype),
    ((tuple(lc), tuple(rc)), (tuple(lb), tuple(rb))),
    preferred_element_type=I32,
  )


def _binary(fn):
  def run(op, inputs, tensors):
    return fn(_wide(inputs[0]), _wide(_operand(op, inputs, tensors)))

  return run


def _shift_amount(op, tensors):
  if "shift" in op.get("tensors", {}):
    return tensors[op["tensors"]["shift"]].astype(I32)
  return jnp.asarray(op["attrs"]["shift"], I32)


def _shift_left(op, inputs, tensors):
  return lax.shift_left(
    _wide(inputs[0]), jnp.broadcast_to(_shift_amount(op, tensors), inputs[0].shape)
  )


def _round_shift_right(v, k):
  """floor(v / 2^k + 0.5) for k >= 1: add half an output step, then a flooring shift."""
  half = lax.shift_left(jnp.ones_like(v), k - 1)
  return lax.shift_right_arithmetic(v + half, k)


def _shift_left_clamped(v, k, lo, hi):
  """clamp(v << k, lo, hi) for k >= 0, clamping first (on the input grid) so it cannot overflow."""
  lo_in = lax.shift_right_arithmetic(jnp.full_like(v, lo), k) - 1
  hi_in = lax.shift_right_arithmetic(jnp.full_like(v, hi), k) + 1
  return lax.shift_left(jnp.clip(v, lo_in, hi_in), k)


def _requant(op, inputs, tensors):
  a = op["attrs"]
  v = _wide(inputs[0])
  if a["mode"] == "sign":
    q = jnp.where(v >= 0, jnp.asarray(1, I32), jnp.asarray(-1, I32))
    return tag(q.astype(codes_dtype(1)), bits=1, signed=True, kind="act")
  if "shift" in a:
    k = int(a["shift"])
    if k > 0:
      q = _round_shift_right(v, jnp.asarray(k, I32))
    else:
      q = _shift_left_clamped(v, jnp.asarray(-k, I32), a["lo"], a["hi"])
  else:
    # Per-channel shifts (both directions possible): compute both, pick per element.
    k = jnp.broadcast_to(_shift_amount(op, tensors), v.shape)
    down = _round_shift_right(v, jnp.maximum(k, 1))
    up = _shift_left_clamped(v, jnp.maximum(-k, 0), a["lo"], a["hi"])
    q = jnp.where(k > 0, down, up)
  q = jnp.clip(q, a["lo"], a["hi"]).astype(codes_dtype(a["out_bits"], a["out_signed"]))
  return tag(q, bits=a["out_bits"], signed=a["out_signed"], kind="act")


def _sum(op, inputs, tensors):
  return jnp.sum(_wide(inputs[0]), axis=tuple(op["attrs"]["axes"]), dtype=I32)


def _reduce_max(op, inputs, tensors):
  return jnp.max(_wide(inputs[0]), axis=tuple(op["attrs"]["axes"]))


def _reduce_window_max(op, inputs, tensors):
  a = op["attrs"]
  x = _wide(inputs[0])
  return lax.reduce_window(
    x,
    jnp.iinfo(I32).min,
    lax.max,
    tuple(a["window_dimensions"]),
    tuple(a["window_strides"]),
    tuple(tuple(p) for p in a["padding"]),
    tuple(a["base_dilation"]),
    tuple(a["window_dilation"]),
  )


def _compare(op, inputs, tensors):
  fn = {"ge": lax.ge, "gt": lax.gt, "le": lax.le, "lt": lax.lt, "eq": lax.eq, "ne": lax.ne}
  return fn[op["attrs"]["cmp"]](_wide(inputs[0]), _wide(_operand(op, inputs, tensors)))


def _select(op, inputs, tensors):
  pred, cases = inputs[0], [_wide(c) for c in inputs[1:]]
  return lax.select_n(pred, *cases)


def _layout(op, inputs, tensors):
  a = op["attrs"]
  p, prm = a["prim"], a["params"]
  x = inputs[0]
  if p in ("copy", "convert_element_type"):
    return x
  if p == "reshape":
    return lax.reshape(x, tuple(prm["new_sizes"]))
  if p == "broadcast_in_dim":
    return lax.broadcast_in_dim(x, tuple(prm["shape"]), tuple(prm["broadcast_dimensions"]))
  if p == "squeeze":
    return lax.squeeze(x, tuple(prm["dimensions"]))
  if p == "expand_dims":
    return lax.expand_dims(x, tuple(prm["dimensions"]))
  if p == "transpose":
    return lax.transpose(x, tuple(prm["permutation"]))
  if p == "slice":
    strides = prm.get("strides")
    return lax.slice(
      x,
      tuple(prm["start_indices"]),
      tuple(prm["limit_indices"]),
      None if strides is None else tuple(strides),
    )
  if p == "pad":
    return lax.pad(
      x, jnp.asarray(prm["padding_value"], x.dtype), tuple(tuple(c) for c in prm["padding_config"])
    )
  if p == "rev":
    return lax.rev(x, tuple(prm["dimensions"]))
  if p == "concatenate":
    dtype = jnp.result_type(*inputs)
    return lax.concatenate([i.astype(dtype) for i in inputs], prm["dimension"])
  raise ValueError(f"layout prim={p!r} is not allowed; use one of {LAYOUT_PRIMS}")


OPS: Dict[str, Callable[[dict, List[Any], Dict[str, Any]], Any]] = {
  "conv": _conv,
  "dot": _dot,
  "mul": _binary(lambda a, b: a * b),
  "add": _binary(lambda a, b: a + b),
  "sub": _binary(lambda a, b: a - b),
  "max": _binary(jnp.maximum),
  "min": _binary(jnp.minimum),
  "neg": lambda op, inputs, tensors: -_wide(inputs[0]),
  "shift_left": _shift_left,
  "requant": _requant,
  "sum": _sum,
  "reduce_max": _reduce_max,
  "reduce_window_max": _reduce_window_max,
  "compare": _compare,
  "select": _select,
  "layout": _layout,
}


def tensor_kind(ops: List[dict]) -> Dict[str, str]:
  """The bit-width tag kind of every stored tensor: MAC weights, norm constants, or params."""
  kinds = {}
  for op in ops:
    for role, name in op.get("tensors", {}).items():
      if role == "w":
        kinds[name] = "weight"
      elif op.get("category") == "norm":
        kinds.setdefault(name, "norm")
      else:
        kinds.setdefault(name, "param")
  return kinds


def tag_tensors(ops: List[dict], specs: Dict[str, dict], tensors: Dict[str, Any]):
  """Every stored tensor tagged with its stored bit width (free at runtime), so a bit-width
  analysis of the integer body sees what the file holds."""
  kinds = tensor_kind(ops)
  return {
    n: tag(t, bits=specs[n]["bits"], signed=specs[n]["signed"], kind=kinds.get(n, "param"))
    for n, t in tensors.items()
  }


def run_op(op: dict, inputs: List[Any], tensors: Dict[str, Any]):
  """Runs one op under its layer's name and ACEv2 cost category, so a bit-width analysis of the
  integer body attributes it like the fake-quant layer it came from."""
  fn = OPS.get(op["op"])
  if fn is None:
    raise ValueError(
      f"op {op['op']!r} (at {op.get('name')!r}) is not allowed; use one of {sorted(OPS)}"
    )
  with contextlib.ExitStack() as scopes:
    if op.get("name"):
      scopes.enter_context(jax.named_scope(op["name"]))
    if op.get("category"):
      scopes.enter_context(cost_category(op["category"]))
    return fn(op, inputs, tensors)
