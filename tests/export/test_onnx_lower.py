"""Every ONNX lowering (onnx_lower.py) bit-exact against the integer program's jnp op (ops.py),
on random and extreme inputs: negative values for the rounding shifts, 255 × −128 products and
long sums for the MACs, per-channel shifts both ways, windows with padding and dilation."""

import jax.numpy as jnp
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from pikelpn_jax.export import ExportError
from pikelpn_jax.export import ops as int_ops
from pikelpn_jax.export.onnx_export import OPSET, session
from pikelpn_jax.export.onnx_lower import Graph, lower_op

RNG = np.random.default_rng(0)
NHWC_HWIO = [[0, 3, 1, 2], [3, 2, 0, 1], [0, 3, 1, 2]]


def run_both(op, inputs, tensors=None, bounds=None):
  """(jnp result, onnxruntime result) of one op on int32 inputs (bools as bool)."""
  tensors = tensors or {}
  g = Graph()
  names, infos = [], []
  for i, x in enumerate(inputs):
    name = f"in{i}"
    et = TensorProto.BOOL if x.dtype == np.bool_ else TensorProto.INT32
    g.dtypes[name] = et
    names.append(name)
    infos.append(helper.make_tensor_value_info(name, et, list(x.shape)))
  bounds = bounds or [(int(x.min()), int(x.max())) for x in inputs]
  shapes = [[None] + list(x.shape[1:]) for x in inputs]
  out = lower_op(g, op, names, tensors, bounds, shapes)
  g.nodes.append(helper.make_node("Identity", [out], ["y"]))
  graph = helper.make_graph(
    g.nodes, "t", infos, [helper.make_tensor_value_info("y", g.dtypes[out], None)], g.inits
  )
  model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
  model.ir_version = 8
  got = session(model).run(["y"], dict(zip(names, inputs)))[0]
  jt = {
    n: jnp.asarray(t, int_ops.codes_dtype(16 if np.abs(t).max() > 127 else 8))
    for n, t in tensors.items()
  }
  want = int_ops.run_op(op, [jnp.asarray(x) for x in inputs], jt)
  return np.asarray(want), got


def check(op, inputs, tensors=None, bounds=None):
  want, got = run_both(op, inputs, tensors, bounds)
  assert got.shape == want.shape
  np.testing.assert_array_equal(got.astype(np.int64), want.astype(np.int64))
  return got


def conv_op(padding, strides=(1, 1), groups=1, dil=(1, 1)):
  attrs = dict(
    window_strides=list(strides),
    padding=[list(p) for p in padding],
    lhs_dilation=[1, 1],
    rhs_dilation=list(dil),
    dimension_numbers=NHWC_HWIO,
    feature_group_count=groups,
    batch_group_count=1,
  )
  return {"op": "conv", "name": "c", "in": ["x"], "attrs": attrs, "tensors": {"w": "w"}}


def i32(a):
  return np.asarray(a, np.int32)


@pytest.mark.parametrize(
  "lo,hi,wlo,whi,cin,groups,padding,strides,dil",
  [
    (-127, 127, -128, 127, 1, 1, [(0, 1), (0, 1)], (2, 2), (1, 1)),  # stem: int8 × int8
    (0, 15, -127, 127, 8, 8, [(1, 1), (1, 1)], (1, 1), (1, 1)),  # depthwise: uint4 × int8
    (0, 15, -8, 7, 16, 1, [(0, 0), (0, 0)], (1, 1), (1, 1)),  # pointwise 1×1: uint4 × int4
    (-1, 1, -1, 1, 4, 1, [(2, 2), (2, 2)], (1, 1), (2, 2)),  # ±1 codes, dilated, zero padded
    (0, 255, -128, 127, 6, 2, [(1, 0), (0, 2)], (2, 1), (1, 1)),  # grouped, asymmetric pads
  ],
)
def test_conv_random(lo, hi, wlo, whi, cin, groups, padding, strides, dil):
  x = i32(RNG.integers(lo, hi + 1, (2, 9, 9, cin)))
  cout = cin if groups == cin else 4
  w = RNG.integers(wlo, whi + 1, (3, 3, cin // groups, cout))
  if lo == -1:
    x, w = np.where(x >= 0, 1, -1).astype(np.int32), np.where(w >= 0, 1, -1)
  check(conv_op(padding, strides, groups, dil), [x], {"w": w}, [(lo, hi)])


def test_conv_extremes_and_long_sums():
  # 255 × −128 in every product of a 3×3×512 window (4608 terms): -150,405,120, exact in int32;
  # these are the products that overflow the 16-bit pair sums of u8×s8 kernels without VNNI.
  x = np.full((1, 3, 3, 512), 255, np.int32)
  w = np.full((3, 3, 512, 2), -128)
  w[..., 1] = 127
  got = check(conv_op([(0, 0), (0, 0)]), [x], {"w": w}, [(0, 255)])
  assert got[0, 0, 0].tolist() == [255 * -128 * 4608, 255 * 127 * 4608]
  # Signed codes at both ends (the signed input travels as uint8 + 128 with zero point 128).
  x = np.where(RNG.random((2, 5, 5, 64)) < 0.5, -127, 127).astype(np.int32)
  w = np.where(RNG.random((3, 3, 64, 3)) < 0.5, -128, 127)
  check(conv_op([(1, 1), (1, 1)]), [x], {"w": w}, [(-127, 127)])


def dot_op(dims, side="rhs"):
  return {
    "op": "dot",
    "name": "d",
    "in": ["x"],
    "attrs": {"dimension_numbers": dims, "const_side": side},
    "tensors": {"w": "w"},
  }


def test_dot_head_pointwise_and_lhs_constant():
  x = np.full((3, 4096), 255, np.int32)
  x[1] = RNG.integers(0, 256, 4096)
  w = np.full((4096, 5), -128)
  w[:, 1] = 127
  w[:, 2:] = RNG.integers(-128, 128, (4096, 3))
  got = check(dot_op([[[1], [0]], [[], []]]), [x], {"w": w}, [(0, 255)])
  assert got[0, 0] == 255 * -128 * 4096
  x4 = i32(RNG.integers(0, 16, (2, 4, 4, 8)))
  check(dot_op([[[3], [0]], [[], []]]), [x4], {"w": RNG.integers(-8, 8, (8, 6))}, [(0, 15)])
  x2 = i32(RNG.integers(-128, 128, (3, 7)))
  check(dot_op([[[1], [1]], [[], []]], "lhs"), [x2], {"w": RNG.integers(-128, 128, (5, 7))})


def requant_op(out_bits, signed, **attrs):
  lo, hi = (
    (-(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1) if signed else (0, (1 << out_bits) - 1)
  )
  attrs = dict(mode="round", lo=lo, hi=hi, out_bits=out_bits, out_signed=signed, **attrs)
  return {"op": "requant", "name": "q", "in": ["v"], "attrs": attrs, "tensors": {}}


@pytest.mark.parametrize("k", [1, 2, 7, 16, 0, -3])
def test_requant_rounding_shift_on_negative_values(k):
  v = i32(RNG.integers(-(2**24), 2**24, (4, 3, 3, 6)))
  halves = np.arange(-40, 40) * (1 << max(k, 0)) + (1 << max(k - 1, 0))  # exact ties, both signs
  v.reshape(-1)[: halves.size] = halves
  check(requant_op(8, True, shift=k), [v])
  check(requant_op(4, False, shift=k), [v])
  check(requant_op(4, False, shift=k), [np.maximum(v, 0)])  # bounds >= 0: Div alone


def test_requant_per_channel_shifts_and_sign():
  v = i32(RNG.integers(-(2**20), 2**20, (2, 3, 3, 5)))
  op = requant_op(8, False)
  op["tensors"] = {"shift": "k"}
  check(op, [v], {"k": np.array([[[[3, -2, 1, 0, 12]]]])})
  sign = {
    "op": "requant",
    "name": "s",
    "in": ["v"],
    "attrs": {"mode": "sign", "out_bits": 1, "out_signed": True, "lo": -1, "hi": 1},
    "tensors": {},
  }
  check(sign, [np.concatenate([v.reshape(-1), i32([0, -1, 1])])])


@pytest.mark.parametrize("kind", ["mul", "add", "sub", "max", "min"])
def test_elementwise(kind):
  a = i32(RNG.integers(-(2**15), 2**15, (2, 3, 3, 4)))
  b = i32(RNG.integers(-(2**15), 2**15, (2, 3, 3, 4)))
  c = RNG.integers(-128, 128, (1, 1, 1, 4))
  base = {"op": kind, "name": kind, "in": ["a"], "attrs": {}, "tensors": {}}
  check({**base, "in": ["a", "b"]}, [a, b])
  check({**base, "tensors": {"c": "c"}}, [a], {"c": c})
  check({**base, "attrs": {"value": -7}}, [a])


def test_neg_shift_left_sum_reduce_max():
  a = i32(RNG.integers(-(2**20), 2**20, (2, 4, 4, 3)))
  check({"op": "neg", "name": "n", "in": ["a"], "attrs": {}, "tensors": {}}, [a])
  check({"op": "shift_left", "name": "s", "in": ["a"], "attrs": {"shift": 9}, "tensors": {}}, [a])
  op = {"op": "shift_left", "name": "s", "in": ["a"], "attrs": {}, "tensors": {"shift": "k"}}
  check(op, [a], {"k": np.array([[[[0, 1, 9]]]])})
  for kind in ("sum", "reduce_max"):
    check({"op": kind, "name": kind, "in": ["a"], "attrs": {"axes": [1, 2]}, "tensors": {}}, [a])


@pytest.mark.parametrize(
  "win,strides,padding,wdil",
  [
    ((2, 2), (1, 1), [(0, 1), (0, 1)], (1, 1)),
    ((3, 3), (2, 2), [(1, 1), (1, 1)], (1, 1)),
    ((2, 3), (2, 1), [(0, 0), (2, 1)], (2, 1)),
  ],
)
def test_reduce_window_max(win, strides, padding, wdil):
  a = i32(RNG.integers(-(2**30), 2**30, (2, 7, 8, 3)))
  attrs = {
    "window_dimensions": [1, *win, 1],
    "window_strides": [1, *strides, 1],
    "padding": [[0, 0], *[list(p) for p in padding], [0, 0]],
    "base_dilation": [1, 1, 1, 1],
    "window_dilation": [1, *wdil, 1],
  }
  check({"op": "reduce_window_max", "name": "p", "in": ["a"], "attrs": attrs, "tensors": {}}, [a])


def test_compare_and_select():
  a = i32(RNG.integers(-5, 5, (3, 8)))
  b = i32(RNG.integers(-5, 5, (3, 8)))
  for cmp in ("ge", "gt", "le", "lt", "eq", "ne"):
    op = {"op": "compare", "name": "c", "in": ["a", "b"], "attrs": {"cmp": cmp}, "tensors": {}}
    pred = check(op, [a, b])
    sel = {"op": "select", "name": "s", "in": ["p", "a", "b"], "attrs": {}, "tensors": {}}
    check(sel, [pred, a, b])


@pytest.mark.parametrize(
  "prim,params",
  [
    ("reshape", {"new_sizes": [2, 12], "dimensions": None}),
    ("broadcast_in_dim", {"shape": [2, 3, 4, 5], "broadcast_dimensions": [0, 1, 2]}),
    ("expand_dims", {"dimensions": [1]}),
    ("transpose", {"permutation": [0, 2, 1]}),
    ("slice", {"start_indices": [0, 1, 0], "limit_indices": [2, 3, 4], "strides": [1, 1, 2]}),
    ("pad", {"padding_config": [[0, 0, 0], [1, 2, 0], [0, 1, 0]], "padding_value": -3}),
    ("rev", {"dimensions": [1, 2]}),
    ("concatenate", {"dimension": 2}),
    ("convert_element_type", {}),
  ],
)
def test_layout(prim, params):
  a = i32(RNG.integers(-100, 100, (2, 3, 4)))
  ins = [a, a + 1] if prim == "concatenate" else [a]
  op = {
    "op": "layout",
    "name": "l",
    "in": ["a"] * len(ins),
    "attrs": {"prim": prim, "params": params},
  }
  check({**op, "tensors": {}}, ins)
  sq = {"prim": "squeeze", "params": {"dimensions": [2]}}
  check({**op, "attrs": sq, "tensors": {}}, [a[:, :, :1]])


def test_refusals_name_the_op():
  with pytest.raises(ExportError, match="'conv'.*more than 8 bits"):
    run_both(
      conv_op([(0, 0), (0, 0)]),
      [i32(np.zeros((1, 3, 3, 1)))],
      {"w": np.ones((1, 1, 1, 1))},
      [(-300, 300)],
    )
  with pytest.raises(ExportError, match="'divide'.*no ONNX lowering"):
    run_both({"op": "divide", "name": "z", "in": ["a"], "attrs": {}, "tensors": {}}, [i32([1])])
  assert onnx.defs.has("ConvInteger") and onnx.defs.has("MatMulInteger")
