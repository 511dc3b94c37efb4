"""Canary for pikelpn_jax/_jax_internals.py: fails first, and says where, when a JAX upgrade
changes what the tag and the ACEv2 analyzer rely on."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pikelpn_jax import _jax_internals as jint
from pikelpn_jax.layers import QConv, relu
from pikelpn_jax.quant import act_quant, weight_quant


def _tagged(x):
  return jint.tag(x * 2.0, bits=4, signed=True, kind="act")


def _plain(x):
  return x * 2.0


def _loss(f):
  return lambda x: jnp.sum(jnp.sin(f(x)) ** 2)


X = jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)


@pytest.mark.parametrize("transform", ["jit", "grad", "vmap", "scan", "remat"])
def test_tag_survives_transforms_with_equal_gradients(transform):
  def wrap(f):
    if transform == "jit":
      return jax.jit(jax.grad(_loss(f)))
    if transform == "grad":
      return jax.grad(_loss(f))
    if transform == "vmap":
      return jax.vmap(jax.grad(_loss(f)))
    if transform == "scan":

      def scanned(x):
        return jax.lax.scan(lambda c, xi: (c, jax.grad(_loss(f))(xi)), 0.0, x)[1]

      return scanned
    return jax.grad(_loss(jax.checkpoint(f)))

  np.testing.assert_allclose(wrap(_tagged)(X), wrap(_plain)(X), rtol=0, atol=0)
  assert "qtag[" in str(jax.make_jaxpr(wrap(_tagged))(X))


def test_tag_lowers_to_nothing():
  tagged = jax.jit(_tagged).lower(X).as_text()
  plain = jax.jit(_plain).lower(X).as_text()
  assert "qtag" not in tagged
  ops = lambda text: sorted(
    l.split("=")[-1].split()[0] for l in text.splitlines() if "stablehlo." in l
  )
  assert ops(tagged) == ops(plain)


def test_tag_rejects_bad_kind_and_scale():
  with pytest.raises(ValueError, match="kind"):
    jint.tag(X, bits=4, signed=True, kind="bogus")
  with pytest.raises(ValueError, match="scale"):
    jint.tag(X, bits=4, signed=True, kind="act", scale="log")


@pytest.mark.parametrize("transform", ["jit", "grad", "vmap", "scan", "remat"])
def test_materialize_is_an_identity_under_transforms(transform):
  mat = lambda x: jint.materialize(x * 2.0)
  f = {
    "jit": lambda f: jax.jit(jax.grad(_loss(f))),
    "grad": lambda f: jax.grad(_loss(f)),
    "vmap": lambda f: jax.vmap(jax.grad(_loss(f))),
    "scan": lambda f: lambda x: jax.lax.scan(lambda c, xi: (c, jax.grad(_loss(f))(xi)), 0.0, x)[1],
    "remat": lambda f: jax.grad(_loss(jax.checkpoint(f))),
  }[transform]
  np.testing.assert_allclose(f(mat)(X), f(_plain)(X), rtol=0, atol=0)
  assert "materialize" in str(jax.make_jaxpr(f(mat))(X))


def test_materialize_is_exact_and_stays_a_separate_buffer():
  # Exact, -0.0 and NaN included (subnormals follow XLA's denormal mode, as for any op).
  x = jnp.array([-0.0, 0.0, 1.5, -3.25, jnp.nan, jnp.inf, -jnp.inf, 1e-30])
  y = np.asarray(jax.jit(jint.materialize)(x))
  np.testing.assert_array_equal(y, np.asarray(x))
  assert np.array_equal(np.signbit(y), np.signbit(np.asarray(x)))

  # Its point: XLA computes the small value once, in its own (reduction) fusion, instead of
  # fusing it into the activation-sized consumer; without it there is a single fusion.
  def fused(materialized):
    f = lambda w, a: (
      a * (jint.materialize if materialized else (lambda v: v))(jnp.floor(w * 3.3 + 0.5)) + 1.0
    )
    text = jax.jit(f).lower(jnp.ones(8), jnp.ones((64, 8))).compile().as_text()
    entry = text[text.index("ENTRY") :]
    return [l for l in entry.splitlines() if " fusion(" in l]

  assert len(fused(False)) == 1
  assert len(fused(True)) == 2 and any("reduce" in l for l in fused(True))


class _Tiny(nn.Module):
  @nn.compact
  def __call__(self, x):
    y = QConv(
      4, kernel_size=3, strides=2, w_quant=weight_quant(4), x_quant=act_quant(4), name="conv"
    )(x)
    return relu(y)


def _tiny_jaxpr():
  m = _Tiny()
  x = jnp.ones((1, 5, 5, 2))
  v = m.init(jax.random.PRNGKey(0), x)
  return jax.make_jaxpr(lambda p, b, x: m.apply({"params": p, "batch_stats": b}, x))(
    v["params"], v["batch_stats"], x
  )


def _views(j):
  """The Eqn views of a jaxpr's top-level equations."""
  return [jint.Eqn(e, i) for i, e in enumerate(jint.jaxpr_parts(j)[3])]


def _eqns(closed, name):
  return [e for e in _views(closed) if e.prim == name]


def test_custom_jvp_call_params_and_function_names():
  closed = _tiny_jaxpr()
  calls = _eqns(closed, "custom_jvp_call")
  names = sorted(e.custom_call_function_name for e in calls)
  assert names == ["quantize_ste", "quantize_ste", "relu"]
  for e in calls:
    assert isinstance(e.body, jint.ClosedJaxpr)
    assert e.is_quantizer == (e.custom_call_function_name == "quantize_ste")
  # The quantizer's single output feeds a qtag with the documented params.
  tags = _eqns(closed, "qtag")
  quant_outs = {e.outputs[0] for e in calls if e.is_quantizer}
  tagged = [t for t in tags if t.inputs[0] in quant_outs]
  assert len(tagged) == 2
  assert {t.tag["kind"] for t in tagged} == {"act", "weight"}
  assert all(t.is_tag and jint.is_tag(t.raw) and jint.tag_params(t.raw) == t.tag for t in tagged)
  assert set(tagged[0].tag) == {
    "bits",
    "signed",
    "kind",
    "scale",
    "scale_bits",
    "folded",
  }


def test_name_stack_holds_module_path_and_category():
  closed = _tiny_jaxpr()
  conv = _eqns(closed, "conv_general_dilated")[0]
  assert conv.name_stack == "_Tiny/conv" == jint.name_stack(conv.raw)
  relu_call = [
    e for e in _eqns(closed, "custom_jvp_call") if e.custom_call_function_name == "relu"
  ][0]
  assert relu_call.name_stack == "_Tiny/" + jint.CATEGORY_PREFIX + "activation"
  # Inside a sub-jaxpr the stack is relative (empty here): the walker joins them.
  inner = _views(relu_call.body)
  assert all(e.name_stack == "" for e in inner)
  # A view made outside the interpreter has no caller: its absolute stack is its own.
  assert relu_call.stack == relu_call.name_stack and relu_call.path == (relu_call.index,)
  assert jint.join_name_stacks("a/b", "") == "a/b" and jint.join_name_stacks("a", "c") == "a/c"


def test_higher_order_params():
  f = lambda x: jnp.tanh(x)
  jit_eqn = _views(jax.make_jaxpr(jax.jit(f))(X))[0]
  assert jit_eqn.prim == "jit" and jint.primitive_name(jit_eqn.raw) == "jit"
  assert isinstance(jit_eqn.body, jint.ClosedJaxpr)
  remat_eqn = _views(jax.make_jaxpr(jax.checkpoint(f))(X))[0]
  assert remat_eqn.body is not None
  scan_eqn = _views(
    jax.make_jaxpr(lambda x: jax.lax.scan(lambda c, _: (c + f(x), None), x, None, length=3)[0])(X)
  )[0]
  body, length, n_consts, n_carry = scan_eqn.scan
  assert (length, n_consts, n_carry) == (3, 1, 1) and body is not None
  cond_eqn = [
    e
    for e in _views(jax.make_jaxpr(lambda x: jax.lax.cond(x.sum() > 0, f, jnp.sin, x))(X))
    if e.prim == "cond"
  ][0]
  assert len(cond_eqn.branches) == 2
  # sub_jaxprs finds every body: call, scan, both cond branches, while's cond and body.
  assert len(jit_eqn.sub_jaxprs) == 1 and len(scan_eqn.sub_jaxprs) == 1
  assert len(cond_eqn.sub_jaxprs) == 2
  while_eqn = _views(jax.make_jaxpr(lambda x: jax.lax.while_loop(lambda c: c.sum() < 9, f, x))(X))[
    0
  ]
  assert while_eqn.prim == "while" and len(while_eqn.sub_jaxprs) == 2
  assert _views(jax.make_jaxpr(f)(X))[0].sub_jaxprs == []
  # bind evaluates an equation (a call-like one runs its body whole)
  np.testing.assert_allclose(jit_eqn.bind([X])[0], f(X), rtol=1e-6)


def test_shape_accessors():
  closed = _tiny_jaxpr()
  conv = _eqns(closed, "conv_general_dilated")[0]
  g = conv.conv_geometry
  assert jint.conv_geometry(conv.raw) == g
  assert conv.in_shape(0) == (1, 5, 5, 2) and conv.out_shape(0) == (1, 3, 3, 4)
  assert conv.out_dtype(0) == jnp.float32
  assert g["lhs_spatial"] == (5, 5) and g["rhs_spatial"] == (3, 3)
  assert (g["rhs_in_features"], g["rhs_out_features"]) == (2, 4)
  assert g["strides"] == (2, 2) and g["padding"] == ((1, 1), (1, 1))
  assert g["feature_group_count"] == 1 and g["out_batch_features"] == (1, 4)
  dot = _views(jax.make_jaxpr(jnp.matmul)(jnp.ones((2, 5)), jnp.ones((5, 3))))[0]
  assert dot.dot_contracting_size == 5
  pool = _views(
    jax.make_jaxpr(lambda x: nn.max_pool(x, (3, 3), (2, 2), "SAME"))(jnp.ones((1, 5, 5, 2)))
  )[0]
  w = pool.window_geometry
  assert w["window"] == (1, 3, 3, 1) and w["padding"][1] == (1, 1)
  red = _views(jax.make_jaxpr(lambda x: x.sum(axis=1))(X))[0]
  assert red.reduce_axes == (1,)
  pow_ = _views(jax.make_jaxpr(lambda x: x**3)(X))[0]
  assert pow_.prim == "integer_pow" and pow_.integer_pow_exponent == 3
  lit = _views(jax.make_jaxpr(lambda x: x * 3.0)(X))[0].inputs[1]
  assert jint.is_literal(lit) and float(jint.literal_value(lit)) == 3.0


def test_export_attr_accessors():
  # The integer export writes these into its file header: plain JSON values, jaxpr names.
  closed = _tiny_jaxpr()
  a = _eqns(closed, "conv_general_dilated")[0].conv_attrs
  assert a["window_strides"] == [2, 2] and a["padding"] == [[1, 1], [1, 1]]
  assert a["lhs_dilation"] == [1, 1] and a["feature_group_count"] == 1
  assert a["dimension_numbers"] == [[0, 3, 1, 2], [3, 2, 0, 1], [0, 3, 1, 2]]
  dot = _views(jax.make_jaxpr(jnp.matmul)(jnp.ones((2, 5)), jnp.ones((5, 3))))[0]
  assert dot.dot_dimension_numbers == (((1,), (0,)), ((), ()))
  pool = _views(
    jax.make_jaxpr(lambda x: nn.max_pool(x, (3, 3), (2, 2), "SAME"))(jnp.ones((1, 5, 5, 2)))
  )[0]
  w = pool.window_attrs
  assert w["window_dimensions"] == [1, 3, 3, 1] and w["padding"][1] == [1, 1]
  pad = _views(jax.make_jaxpr(lambda x: jax.lax.pad(x, 0.0, ((0, 0, 0), (1, 2, 0))))(X))[-1]
  assert pad.prim == "pad"
  assert pad.layout_params(("padding_config", "nope")) == {
    "padding_config": [[0, 0, 0], [1, 2, 0]],
    "nope": None,
  }


def test_lax_primitive_names_lists_the_primitives_by_their_bound_name():
  names = jint.lax_primitive_names()
  assert {"add", "stack", "concatenate", "convert_element_type", "scan", "cond"} <= names
  assert len(names) > 100
  eqn = _views(jax.make_jaxpr(lambda a, b: jnp.stack([a, b]))(X, X))[0]
  assert eqn.prim in names


def test_preemption_service_probe():
  """preemption.py asks jax.distributed's private state whether jax's SIGTERM handler and sync
  service run (tests/train/test_preemption.py exercises the running case with 2 processes)."""
  from jax._src import distributed

  assert {"client", "preemption_sync_manager"} <= set(dir(distributed.global_state))
  assert jint.preemption_service_running() is False  # no jax.distributed.initialize here
