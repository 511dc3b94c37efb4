"""ONNX lowerings of the integer program's ops (ops.py), one function per op kind.

Every value of the program is an int32 tensor in the graph (compares give bool), in the layout
the integer program uses (NHWC). Each lowering emits standard ONNX integer operators:
  conv, dot       ConvInteger / MatMulInteger on uint8 × uint8 with zero points (see _mac_input)
  mul/add/...     int32 Mul, Add, Sub, Max, Min, Neg
  shift_left      int32 Mul by 2^k (ONNX BitShift is unsigned-only)
  requant         floor((v + 2^(k-1)) / 2^k) as (t - Mod(t, 2^k)) / 2^k: Mod with fmod=0 takes the
                  divisor's sign, so t - Mod(t, 2^k) is an exact multiple and the truncating Div
                  is exact for negative t too (Div alone where v's bounds are >= 0); then Clip
  sum, reduce_max ReduceSum, ReduceMax
  reduce_window_max  the element-wise Max of the window's strided Slices of the Pad'ed input
  compare, select Greater/Less/Equal/..., Where
  layout          Reshape, Expand, Squeeze, Unsqueeze, Transpose, Slice, Pad, Concat
Why uint8 × uint8: onnxruntime's u8×s8 kernels on AVX2 CPUs without VNNI add pairs of products
in 16 bits with saturation (255·127·2 > 32767); its u8×u8 kernels widen to 16 bits first and add
pairs in 32 bits, which cannot overflow (255·255·2 < 2^31). An op or parameter with no lowering
raises ExportError naming it.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Sequence

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from pikelpn_jax.export.values import ExportError

I32_MIN, I64_MAX = -(2**31), 2**63 - 1
# Sum of u8·u8 products over K terms stays in int32 for K <= this (255·255·K < 2^31).
MAX_MAC_TERMS = (2**31 - 1) // (255 * 255)


class Graph:
  """The ONNX graph being built: nodes, initializers, and each value's element type."""

  def __init__(self):
    self.nodes: List = []
    self.inits: List = []
    self.dtypes: Dict[str, int] = {}
    self.scope = ""  # the layer path of the op being lowered: node names start with it
    self._n = 0

  def fresh(self, hint: str) -> str:
    self._n += 1
    return f"{hint}_{self._n}"

  def const(self, value, dtype, hint: str = "c") -> str:
    name = self.fresh(hint)
    self.inits.append(numpy_helper.from_array(np.asarray(value).astype(dtype), name))
    self.dtypes[name] = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    return name

  def i32(self, value, hint: str = "c") -> str:
    v = np.asarray(value, np.int64)
    if v.size and (v.min() < I32_MIN or v.max() > 2**31 - 1):
      raise ExportError(f"constant {hint} in [{v.min()}, {v.max()}] does not fit int32")
    return self.const(v, np.int32, hint)

  def i64(self, value, hint: str = "axes") -> str:
    return self.const(value, np.int64, hint)

  def node(self, op_type: str, inputs: Sequence[str], dtype=None, hint=None, **attrs) -> str:
    """Appends one node; its output's element type is `dtype`, else its first input's."""
    out = self.fresh(hint or op_type.lower())
    name = f"{self.scope}/{out}" if self.scope else out
    self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=name, **attrs))
    self.dtypes[out] = self.dtypes[inputs[0]] if dtype is None else dtype
    return out


def _refuse(op: dict, why: str):
  raise ExportError(f"op {op['op']!r} at {op.get('name')!r}: {why}; it has no ONNX lowering")


def _operand(g: Graph, op: dict, ins: List[str], tensors: Dict[str, np.ndarray]) -> str:
  """The second operand as ops._operand reads it: an input, a stored tensor 'c' or attrs 'value'."""
  if len(ins) > 1:
    return ins[1]
  if "c" in op.get("tensors", {}):
    return g.i32(tensors[op["tensors"]["c"]], "c")
  return g.i32(op["attrs"]["value"], "value")


def _pow2(k) -> np.ndarray:
  return np.left_shift(np.int64(1), np.asarray(k, np.int64))


# ------------------------------------------------------------------ MACs
def _mac_input(g: Graph, op: dict, x: str, bounds) -> tuple:
  """(uint8 tensor, zero point) holding the int32 codes x exactly: unsigned codes as they are,
  signed codes + 128."""
  lo, hi = bounds
  if lo >= 0 and hi <= 255:
    return g.node("Cast", [x], TensorProto.UINT8, to=TensorProto.UINT8), g.const(0, np.uint8, "zx")
  if lo >= -128 and hi <= 127:
    shifted = g.node("Add", [x, g.i32(128, "offset")])
    return g.node("Cast", [shifted], TensorProto.UINT8, to=TensorProto.UINT8), g.const(
      128, np.uint8, "zx"
    )
  _refuse(op, f"its input codes span [{lo}, {hi}], more than 8 bits")


def _mac_weights(g: Graph, op: dict, w: np.ndarray) -> tuple:
  w = np.asarray(w, np.int64)
  if w.size and (w.min() < -128 or w.max() > 127):
    _refuse(op, f"its weights span [{w.min()}, {w.max()}], more than 8 bits")
  return g.const(w + 128, np.uint8, "w"), g.const(128, np.uint8, "zw")


def _transpose(g: Graph, x: str, perm) -> str:
  perm = [int(p) for p in perm]
  return x if perm == sorted(perm) else g.node("Transpose", [x], perm=perm)


def _check_terms(op: dict, k: int):
  if k > MAX_MAC_TERMS:
    _refuse(
      op, f"{k} products per output may overflow the int32 sum of u8·u8 (max {MAX_MAC_TERMS})"
    )


def conv(g, op, ins, tensors, bounds):
  a = op["attrs"]
  lhs, rhs, out = (list(s) for s in a["dimension_numbers"])
  if any(d != 1 for d in a["lhs_dilation"]) or a["batch_group_count"] != 1:
    _refuse(op, "lhs_dilation != 1 or batch_group_count != 1")
  w = np.transpose(np.asarray(tensors[op["tensors"]["w"]]), rhs)  # O, I/groups, spatial...
  _check_terms(op, int(np.prod(w.shape[1:])))
  x = _transpose(g, ins[0], lhs)  # N, C, spatial...
  pads = [p[0] for p in a["padding"]] + [p[1] for p in a["padding"]]
  offset = bounds[0][0] < 0  # signed codes travel as code + 128 (_mac_input)
  if any(pads) and offset:  # pad code 0 before the offset: a padded pixel is code 0 exactly
    x = g.node(
      "Pad",
      [
        x,
        g.i64([0, 0] + pads[: len(pads) // 2] + [0, 0] + pads[len(pads) // 2 :]),
        g.i32(0, "pad_value"),
      ],
    )
  xu, zx = _mac_input(g, op, x, bounds[0])
  wu, zw = _mac_weights(g, op, w)
  y = g.node(
    "ConvInteger",
    [xu, wu, zx, zw],
    TensorProto.INT32,
    strides=list(a["window_strides"]),
    dilations=list(a["rhs_dilation"]),
    group=int(a["feature_group_count"]),
    # Unsigned codes: uint8 0 is code 0, so ConvInteger's own zero padding is exact.
    pads=[0] * len(pads) if offset else pads,
  )
  return _transpose(g, y, [int(i) for i in np.argsort(out)])


def dot(g, op, ins, tensors, bounds, shapes):
  a = op["attrs"]
  (lc, rc), (lb, rb) = a["dimension_numbers"]
  if lb or rb:
    _refuse(op, "dot_general with batch dimensions")
  const_lhs = a.get("const_side", "rhs") == "lhs"
  xc, wc = (rc, lc) if const_lhs else (lc, rc)
  w = np.asarray(tensors[op["tensors"]["w"]])
  x_shape = shapes[0]
  x_free = [d for d in range(len(x_shape)) if d not in xc]
  w_free = [d for d in range(w.ndim) if d not in wc]
  if not x_free or x_free[0] != 0:
    _refuse(op, "a dot that contracts the batch dimension")
  k = int(np.prod([w.shape[d] for d in wc]))
  _check_terms(op, k)
  w2 = np.transpose(w, list(wc) + w_free).reshape(k, -1)
  x2 = _transpose(g, ins[0], x_free + list(xc))
  x2 = g.node("Reshape", [x2, g.i64([-1, k], "shape")])
  xu, zx = _mac_input(g, op, x2, bounds[0])
  wu, zw = _mac_weights(g, op, w2)
  y = g.node("MatMulInteger", [xu, wu, zx, zw], TensorProto.INT32)
  free_shape = [x_shape[d] for d in x_free[1:]] + [w.shape[d] for d in w_free]
  y = g.node("Reshape", [y, g.i64([-1] + free_shape, "shape")])
  if const_lhs:  # dot_general puts the lhs (weight) free dims first
    nx, nw = len(x_free), len(w_free)
    y = g.node("Transpose", [y], perm=list(range(nx, nx + nw)) + list(range(nx)))
  return y


# ------------------------------------------------------------------ elementwise and rounding
def _binary(onnx_op: str):
  def run(g, op, ins, tensors, bounds):
    return g.node(onnx_op, [ins[0], _operand(g, op, ins, tensors)])

  return run


def _shift_amount(op, tensors) -> np.ndarray:
  if "shift" in op.get("tensors", {}):
    return np.asarray(tensors[op["tensors"]["shift"]], np.int64)
  return np.asarray(op["attrs"]["shift"], np.int64)


def shift_left(g, op, ins, tensors, bounds):
  return g.node("Mul", [ins[0], g.i32(_pow2(_shift_amount(op, tensors)), "pow2")])


def round_shift_right(g: Graph, v: str, k: np.ndarray, lo: float = -1) -> str:
  """floor(v / 2^k + 0.5) for k >= 1 (scalar or per channel), exact for negative v; `lo` is a
  lower bound of v: for v >= 0 the truncating Div alone is the floor."""
  div = _pow2(k)
  t = g.node("Add", [v, g.i32(div // 2, "half")])
  d = g.i32(div, "pow2")
  if lo >= 0:
    return g.node("Div", [t, d])
  rem = g.node("Mod", [t, d], fmod=0)  # in [0, 2^k): Mod takes the divisor's sign
  return g.node("Div", [g.node("Sub", [t, rem]), d])


def _clip(g: Graph, v: str, lo, hi) -> str:
  return g.node("Clip", [v, g.i32(lo, "lo"), g.i32(hi, "hi")])


def _shift_left_clamped(g: Graph, v: str, k: np.ndarray, lo: int, hi: int) -> str:
  """clamp(v << k) as ops._shift_left_clamped: clamp on the input grid first, then multiply."""
  lo_in = np.right_shift(np.int64(lo), k) - 1
  hi_in = np.right_shift(np.int64(hi), k) + 1
  clamped = g.node("Min", [g.node("Max", [v, g.i32(lo_in, "lo_in")]), g.i32(hi_in, "hi_in")])
  return g.node("Mul", [clamped, g.i32(_pow2(k), "pow2")])


def requant(g, op, ins, tensors, bounds):
  a = op["attrs"]
  v = ins[0]
  if a["mode"] == "sign":
    nonneg = g.node("GreaterOrEqual", [v, g.i32(0, "zero")], TensorProto.BOOL)
    return g.node("Where", [nonneg, g.i32(1, "one"), g.i32(-1, "minus_one")], TensorProto.INT32)
  if a["mode"] != "round":
    _refuse(op, f"mode={a['mode']!r}")
  k = _shift_amount(op, tensors)
  if k.ndim == 0 and k > 0:
    q = round_shift_right(g, v, k, bounds[0][0])
  elif k.ndim == 0:
    q = _shift_left_clamped(g, v, -k, a["lo"], a["hi"])
  else:  # per-channel shifts, both directions possible: both, picked per element
    down = round_shift_right(g, v, np.maximum(k, 1), bounds[0][0])
    up = _shift_left_clamped(g, v, np.maximum(-k, 0), a["lo"], a["hi"])
    q = g.node("Where", [g.const(k > 0, np.bool_, "down"), down, up], TensorProto.INT32)
  return _clip(g, q, a["lo"], a["hi"])


# ------------------------------------------------------------------ reductions, compare, select
def _reduce(onnx_op: str):
  def run(g, op, ins, tensors, bounds):
    return g.node(onnx_op, [ins[0], g.i64(op["attrs"]["axes"])], keepdims=0)

  return run


def reduce_window_max(g, op, ins, tensors, bounds, shapes):
  a = op["attrs"]
  if any(d != 1 for d in a["base_dilation"]):
    _refuse(op, "base_dilation != 1")
  win, strides, wdil = a["window_dimensions"], a["window_strides"], a["window_dilation"]
  if win[0] != 1 or strides[0] != 1:
    _refuse(op, "a window across the batch dimension")
  pads = [p[0] for p in a["padding"]] + [p[1] for p in a["padding"]]
  x = (
    g.node("Pad", [ins[0], g.i64(pads, "pads"), g.i32(I32_MIN, "pad_value")])
    if any(pads)
    else ins[0]
  )
  padded = [None] + [s + p0 + p1 for s, (p0, p1) in zip(shapes[0][1:], a["padding"][1:])]
  out = [None] + [
    (padded[d] - (win[d] - 1) * wdil[d] - 1) // strides[d] + 1 for d in range(1, len(win))
  ]
  slices = []
  for offset in np.ndindex(*win):
    starts = [o * dl for o, dl in zip(offset, wdil)]
    ends = [I64_MAX] + [starts[d] + (out[d] - 1) * strides[d] + 1 for d in range(1, len(win))]
    slices.append(
      g.node(
        "Slice",
        [x, g.i64(starts, "starts"), g.i64(ends, "ends"), g.i64(range(len(win))), g.i64(strides)],
      )
    )
  return g.node("Max", slices) if len(slices) > 1 else slices[0]


COMPARES = {
  "ge": "GreaterOrEqual",
  "gt": "Greater",
  "le": "LessOrEqual",
  "lt": "Less",
  "eq": "Equal",
  "ne": "Equal",
}


def compare(g, op, ins, tensors, bounds):
  cmp = op["attrs"]["cmp"]
  y = g.node(COMPARES[cmp], [ins[0], _operand(g, op, ins, tensors)], TensorProto.BOOL)
  return g.node("Not", [y]) if cmp == "ne" else y


def select(g, op, ins, tensors, bounds):
  pred, cases = ins[0], ins[1:]
  if g.dtypes[pred] == TensorProto.BOOL:
    if len(cases) != 2:
      _refuse(op, f"a bool predicate with {len(cases)} cases")
    return g.node("Where", [pred, cases[1], cases[0]], g.dtypes[cases[1]])
  out = cases[0]
  for i, c in enumerate(cases[1:], 1):
    hit = g.node("Equal", [pred, g.const(i, np.int32, "case")], TensorProto.BOOL)
    out = g.node("Where", [hit, c, out], g.dtypes[c])
  return out


# ------------------------------------------------------------------ layout
def layout(g, op, ins, tensors, bounds, shapes):
  """Batch-size free: the batch (leading) dimension is -1 / kept wherever a shape is given."""
  p, prm = op["attrs"]["prim"], op["attrs"]["params"]
  x = ins[0]
  if p in ("copy", "convert_element_type"):
    return g.node("Identity", [x])
  if p == "reshape":
    return g.node("Reshape", [x, g.i64([-1] + list(prm["new_sizes"])[1:], "shape")])
  if p == "broadcast_in_dim":
    shape, dims = list(prm["shape"]), list(prm["broadcast_dimensions"])
    if dims != sorted(dims) or 0 not in dims:
      _refuse(op, f"broadcast_in_dim with broadcast_dimensions {dims}")
    new = [d for d in range(len(shape)) if d not in dims]
    y = g.node("Unsqueeze", [x, g.i64(new)]) if new else x
    return g.node("Expand", [y, g.i64([1] + shape[1:], "shape")])
  if p == "squeeze":
    return g.node("Squeeze", [x, g.i64(prm["dimensions"])])
  if p == "expand_dims":
    return g.node("Unsqueeze", [x, g.i64(prm["dimensions"])])
  if p == "transpose":
    return g.node("Transpose", [x], perm=list(prm["permutation"]))
  if p == "slice":
    n = len(prm["start_indices"])
    starts, ends = list(prm["start_indices"]), list(prm["limit_indices"])
    if starts[0] != 0:
      _refuse(op, "a slice of the batch dimension")
    ends[0] = I64_MAX
    steps = prm.get("strides") or [1] * n
    return g.node(
      "Slice", [x, g.i64(starts, "starts"), g.i64(ends, "ends"), g.i64(range(n)), g.i64(steps)]
    )
  if p == "pad":
    cfg = prm["padding_config"]
    if any(c[2] != 0 for c in cfg):
      _refuse(op, "interior padding")
    pads = [c[0] for c in cfg] + [c[1] for c in cfg]
    return g.node("Pad", [x, g.i64(pads, "pads"), g.i32(prm["padding_value"], "pad_value")])
  if p == "rev":
    dims = list(prm["dimensions"])
    n = len(dims)
    return g.node(
      "Slice",
      [x, g.i64([-1] * n, "starts"), g.i64([-I64_MAX] * n, "ends"), g.i64(dims), g.i64([-1] * n)],
    )
  if p == "concatenate":
    return g.node("Concat", list(ins), axis=int(prm["dimension"]))
  _refuse(op, f"layout prim {p!r}")


LOWERINGS: Dict[str, Callable] = {
  "conv": conv,
  "mul": _binary("Mul"),
  "add": _binary("Add"),
  "sub": _binary("Sub"),
  "max": _binary("Max"),
  "min": _binary("Min"),
  "neg": lambda g, op, ins, tensors, bounds: g.node("Neg", [ins[0]]),
  "shift_left": shift_left,
  "requant": requant,
  "sum": _reduce("ReduceSum"),
  "reduce_max": _reduce("ReduceMax"),
  "compare": compare,
  "select": select,
}
NEED_SHAPES = {"dot": dot, "reduce_window_max": reduce_window_max, "layout": layout}


def lower_op(g: Graph, op: dict, ins: List[str], tensors, bounds, shapes) -> str:
  """The ONNX value computing `op` (bounds: [(lo, hi)] and shapes of its inputs)."""
  g.scope = op.get("name") or ""
  if op["op"] in NEED_SHAPES:
    return NEED_SHAPES[op["op"]](g, op, ins, tensors, bounds, shapes)
  fn = LOWERINGS.get(op["op"])
  if fn is None:
    _refuse(op, f"unknown op kind; lowered kinds: {sorted(set(LOWERINGS) | set(NEED_SHAPES))}")
  return fn(g, op, ins, tensors, bounds)
