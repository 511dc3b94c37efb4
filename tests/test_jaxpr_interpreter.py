"""The one jaxpr interpreter: environment, literals/constants, sub-jaxprs with absolute stacks
and positions; the layout table; split_stack."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pikelpn_jax import _jax_internals as jint
from pikelpn_jax.jaxpr_interpreter import (
  LAYOUT_TABLE,
  Interpreter,
  Visitor,
  all_eqns,
  layout_names,
  split_stack,
)

X = jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)


def _f(x):
  with jax.named_scope("outer"):
    y = jax.jit(lambda a: jnp.tanh(a) * 3.0)(x)
  return jax.lax.cond(y.sum() > 0, jnp.sin, jnp.cos, y) + 1.0


class _Eval(Visitor):
  """Concrete evaluation entering call bodies; records (position, absolute stack, prim)."""

  def __init__(self):
    self.interp = Interpreter(self)
    self.seen = []
    self.frames = []

  def enter(self, frame):
    self.frames.append(frame.path)

  def eqn(self, e, ins):
    self.seen.append((e.path, e.stack, e.prim))
    if e.body is not None:
      return self.interp.run(e.body, ins, parent=e)
    return e.bind(ins)


def test_interpreter_evaluates_and_enters_call_bodies():
  closed = jax.make_jaxpr(_f)(X)
  v = _Eval()
  (out,) = v.interp.run(closed, [X])
  np.testing.assert_allclose(out, _f(X), rtol=1e-6)
  jit_pos = [p for p, _, prim in v.seen if prim == "jit"][0]
  inner = [(p, s, prim) for p, s, prim in v.seen if p[:-1] == jit_pos]
  assert {prim for _, _, prim in inner} >= {"tanh", "mul"}
  # Inside the body: positions extend the caller's, stacks carry the caller's scope.
  assert all(s.startswith("outer") for _, s, _ in inner)
  assert v.frames[0] == () and jit_pos in v.frames


def test_all_eqns_lists_every_sub_jaxpr_depth_first():
  closed = jax.make_jaxpr(_f)(X)
  eqns = all_eqns(closed)
  names = [jint.primitive_name(e) for e in eqns]
  assert names.index("jit") < names.index("tanh") < names.index("cond")
  assert {"sin", "cos"} <= set(names)  # both cond branches
  scan = jax.make_jaxpr(
    lambda x: jax.lax.scan(lambda c, _: (jnp.exp(c), None), x, None, length=2)[0]
  )(X)
  assert [jint.primitive_name(e) for e in all_eqns(scan)] == ["scan", "exp"]


def test_qtag_inputs_maps_tagged_vars():
  closed = jax.make_jaxpr(lambda x: jint.tag(x * 2.0, bits=4, signed=True, kind="act"))(X)
  interp = Interpreter(Visitor())
  frames = []
  interp.visitor.enter = frames.append
  interp.visitor.eqn = lambda e, ins: [None] * len(e.outputs)
  interp.run(closed, None)
  tags = interp.qtag_inputs(frames[0])
  assert [p["bits"] for p in tags.values()] == [4]


def test_layout_table_columns():
  assert set(layout_names("free")) >= {"reshape", "transpose", "materialize", "gather"}
  assert "pad" not in layout_names("free") and "pad" in layout_names("keeps_codes")
  assert all(LAYOUT_TABLE[n].runtime for n in layout_names("params"))
  assert LAYOUT_TABLE["slice"].params == ("start_indices", "limit_indices", "strides")


@pytest.mark.parametrize(
  "stack,expected",
  [
    ("", ("", "")),
    ("PikeLPN/block0/dw/acev2:norm", ("PikeLPN/block0/dw", "norm")),
    ("M/acev2:mac/conv/conv._finish/acev2:scaling", ("M/conv", "scaling")),
  ],
)
def test_split_stack(stack, expected):
  assert split_stack(stack) == expected


def test_split_stack_rejects_unknown_category():
  with pytest.raises(ValueError, match="'bogus'"):
    split_stack("M/acev2:bogus", ("mac", "norm"))
