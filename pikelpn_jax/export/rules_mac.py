"""Integer lowering rules for MACs, reductions, compares/selects and layout ops (rules.RULES lists them)."""

from __future__ import annotations

import numpy as np

from pikelpn_jax.export import grid
from pikelpn_jax.export.helpers import FLIPPED, LAYOUT_PARAMS, align, fail, require_exact
from pikelpn_jax.export.values import Const, Sym


def _weights(lw, stack, w: Const, what: str):
  """The stored tensor of a MAC layer's quantized weights; refuses float weights."""
  if not isinstance(w, Const):
    fail(stack, f"the {what}'s second operand depends on the input; only constant weights lower")
  if w.codes is None or w.codes["kind"] not in ("weight", "param", "act", "norm"):
    fail(stack, f"the {what} has float weights (no weight quantizer): a float layer")
  bits, signed = w.codes["bits"], w.codes["signed"]
  enc = "sign" if bits == 1 else "twos"
  name = lw.add_tensor(stack, "w", w.value, bits, signed, enc)
  return name, [bits, signed]


def _x_bits(x: Sym):
  if x.codes:
    return [x.codes["bits"], x.codes["signed"]]
  return list(grid.bits_for(float(np.min(x.lo)), float(np.max(x.hi))))


def _input_scale(stack, x: Sym, what: str) -> float:
  s = grid.uniform(x.scale)
  if s is None:
    fail(stack, f"the {what}'s input has a per-element grid; requantize it before the MAC")
  require_exact(stack, x)
  return s


def _mac_bounds(x: Sym, w, contract_axes, out_shape_mask):
  """Per-output-channel bounds of sum(w·x) for x in [lo, hi]."""
  w = np.asarray(w, np.float64)
  pos = np.sum(np.maximum(w, 0), axis=contract_axes)
  negs = np.sum(np.maximum(-w, 0), axis=contract_axes)
  xlo, xhi = float(np.min(x.lo)), float(np.max(x.hi))
  lo, hi = xlo * pos - xhi * negs, xhi * pos - xlo * negs
  return lo.reshape(out_shape_mask), hi.reshape(out_shape_mask)


def conv(lw, e, ins, refs, stack):
  x, w = ins
  if not isinstance(x, Sym):
    fail(stack, "the convolution's input must be the integer value, the kernel a constant")
  name, wtag = _weights(lw, stack, w, "convolution")
  s = _input_scale(stack, x, "convolution")
  attrs = {**e.conv_attrs, "w_bits": wtag, "x_bits": _x_bits(x)}
  vid = lw.emit("conv", [x], attrs, stack, {"w": name})
  _, rhs_spec, out_spec = attrs["dimension_numbers"]
  out_c = rhs_spec[0]
  mask = [1] * np.ndim(refs[0])
  mask[out_spec[1]] = np.shape(w.value)[out_c]
  lo, hi = _mac_bounds(
    x, np.moveaxis(np.asarray(w.value), out_c, -1), tuple(range(np.ndim(w.value) - 1)), mask
  )
  return [lw.sym(vid, s, lo, hi, refs[0], stack)]


def dot(lw, e, ins, refs, stack):
  a, b = ins
  (lc, rc), (lb, rb) = e.dot_dimension_numbers
  if lb or rb:
    fail(stack, "batched dot_general is not supported by the integer export")
  if isinstance(a, Sym) and isinstance(b, Const):
    x, w, wc, side = a, b, rc, "rhs"
  elif isinstance(b, Sym) and isinstance(a, Const):
    x, w, wc, side = b, a, lc, "lhs"
  else:
    fail(stack, "a dot of two integer values (or of two constants) is not supported")
  name, wtag = _weights(lw, stack, w, "dense layer")
  s = _input_scale(stack, x, "dense layer")
  attrs = {
    "dimension_numbers": [[list(lc), list(rc)], [list(lb), list(rb)]],
    "const_side": side,
    "w_bits": wtag,
    "x_bits": _x_bits(x),
  }
  vid = lw.emit("dot", [x], attrs, stack, {"w": name})
  wv = np.asarray(w.value)
  free = [d for d in range(wv.ndim) if d not in wc]
  wt = np.transpose(wv, list(wc) + free).reshape(-1, *[wv.shape[d] for d in free])
  nfree_x = x.ndim - len(lc if side == "rhs" else rc)
  mask = (
    ([1] * nfree_x + [wv.shape[d] for d in free])
    if side == "rhs"
    else ([wv.shape[d] for d in free] + [1] * nfree_x)
  )
  lo, hi = _mac_bounds(x, wt, (0,), mask)
  return [lw.sym(vid, s, lo, hi, refs[0], stack)]


def reduce_sum(lw, e, ins, refs, stack):
  x = ins[0]
  axes = e.reduce_axes
  if any(x.scale.shape[a] > 1 for a in axes):
    fail(stack, "a sum over elements on different grids is not exact; requantize first")
  vid = lw.emit("sum", [x], {"axes": list(axes)}, stack)
  n = int(np.prod([x.shape[a] for a in axes]))
  total = lambda b: np.sum(
    np.broadcast_to(b, [x.shape[a] if a in axes else b.shape[a] for a in range(x.ndim)]), axis=axes
  )
  lo, hi = total(x.lo), total(x.hi)
  return [lw.sym(vid, np.squeeze(x.scale, axis=axes), lo, hi, refs[0], stack, err=x.err * n)]


def reduce_max(lw, e, ins, refs, stack):
  """Max over axes (global max pool) or over windows (max pool): the max of the integers, when
  the grid does not vary inside the reduced region; padding never wins (init is the int minimum)."""
  x, prim = ins[0], e.prim
  if prim == "reduce_max":
    axes = e.reduce_axes
    attrs = {"axes": list(axes)}
    out_grid = lambda a: np.max(a, axis=axes)
  else:
    attrs = e.window_attrs
    axes = tuple(d for d, w in enumerate(attrs["window_dimensions"]) if w > 1)
    out_grid = lambda a: a
  if any(x.scale.shape[a] > 1 for a in axes):
    fail(stack, "a max over elements on different grids is not exact; requantize first")
  require_exact(stack, x)
  vid = lw.emit(prim, [x], attrs, stack)
  return [lw.sym(vid, out_grid(x.scale), out_grid(x.lo), out_grid(x.hi), refs[0], stack)]


def compare(lw, e, ins, refs, stack):
  cmp = e.prim
  a, b = ins
  if isinstance(a, Const):
    a, b, cmp = b, a, FLIPPED[cmp]
  require_exact(stack, a)
  if isinstance(b, Sym):
    require_exact(stack, b)
    a, b = align(lw, [a, b], stack)
    vid = lw.emit("compare", [a, b], {"cmp": cmp}, stack)
  else:
    # x >= c  <=>  T >= ceil(c/S) for integer T: thresholds off the grid are still exact.
    t = grid.compact(np.asarray(b.value, np.float64) / a.scale, a.ndim)
    if cmp in ("eq", "ne") and not grid.is_integer_valued(t):
      fail(stack, "an equality test against a constant off the integer grid")
    t = np.ceil(t) if cmp in ("ge", "lt") else np.floor(t)
    u = grid.uniform(t)
    attrs = {"cmp": cmp}
    tensors = {}
    if u is not None:
      attrs["value"] = int(u)
    else:
      bits, signed = grid.bits_for(float(t.min()), float(t.max()))
      tensors["c"] = lw.add_tensor(stack, "threshold", t, bits, signed)
    vid = lw.emit("compare", [a], attrs, stack, tensors)
  return [lw.sym(vid, 1.0, 0, 1, refs[0], stack, pred=True)]


def select_n(lw, e, ins, refs, stack):
  pred, cases = ins[0], ins[1:]
  if not (isinstance(pred, Sym) and pred.pred) or not all(isinstance(c, Sym) for c in cases):
    fail(
      stack,
      "select needs an integer predicate and integer cases (constant cases: put "
      "them through an integer op first)",
    )
  require_exact(stack, *cases)
  cases = align(lw, list(cases), stack)
  vid = lw.emit("select", [pred] + cases, {}, stack)
  lo = np.minimum.reduce([c.lo for c in cases])
  hi = np.maximum.reduce([c.hi for c in cases])
  return [lw.sym(vid, cases[0].scale, lo, hi, refs[0], stack)]


def layout(lw, e, ins, refs, stack):
  prim = e.prim
  params = e.layout_params(LAYOUT_PARAMS[prim])
  if prim == "reshape" and e.layout_params(("dimensions",))["dimensions"] is not None:
    fail(stack, "reshape with a dimension order is not supported")
  syms = [i for i in ins if isinstance(i, Sym)]
  out_shape = np.shape(refs[0])
  if prim == "concatenate":
    if len(syms) != len(ins):
      fail(stack, "concatenating an integer value with a constant is not supported")
    syms = align(lw, syms, stack)
    vid = lw.emit("layout", syms, {"prim": prim, "params": params}, stack)
    d = params["dimension"]
    cat = lambda arrs: np.concatenate([grid.full(a, s.shape) for a, s in zip(arrs, syms)], d)
    return [
      lw.sym(
        vid,
        cat([s.scale for s in syms]),
        cat([s.lo for s in syms]),
        cat([s.hi for s in syms]),
        refs[0],
        stack,
        err=max(s.err for s in syms),
      )
    ]
  x = ins[0]
  lo_extra = hi_extra = None
  if prim == "pad":
    if not isinstance(ins[1], Const):
      fail(stack, "pad value must be a constant")
    pv = float(np.asarray(ins[1].value))
    if pv != 0.0:
      s = grid.uniform(x.scale)
      if s is None or not grid.is_integer_valued(pv / s):
        fail(stack, f"pad value {pv} is not on the integer grid of the padded value")
      pv = pv / s
    params["padding_value"] = int(pv)
    lo_extra = hi_extra = pv
  vid = lw.emit("layout", [x], {"prim": prim, "params": params}, stack)
  move = lambda a: grid.layout(prim, params, a, x.shape, out_shape)
  lo, hi = move(x.lo), move(x.hi)
  if lo_extra is not None:
    lo, hi = np.minimum(lo, lo_extra), np.maximum(hi, hi_extra)
  return [lw.sym(vid, move(x.scale), lo, hi, refs[0], stack, err=x.err, pred=x.pred)]
