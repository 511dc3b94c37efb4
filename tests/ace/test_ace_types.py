"""Exact integer types: integer constants and data keep an integer type with
the exact width of their value range through every integrality-preserving primitive, add and
multiply grow widths (capped at acc_bits), float stays float, and every lax primitive of the
pinned JAX is priced, walked or refused by name."""

import jax
import jax.numpy as jnp
import pytest

from pikelpn_jax import _jax_internals as jint
from pikelpn_jax._jax_internals import tag
from pikelpn_jax.ace import AceError, AceSettings, analyze, rules

X = jnp.ones((2, 8))
W = jnp.ones((8, 3))


def i4(v):
  return tag(v, bits=4, signed=True, kind="act")


def w4(v):
  return tag(v, bits=4, signed=True, kind="weight")


def mac_key(fn, *args, settings=None, **kw):
  """The single 'mac BxxBw' key of fn's report."""
  r = analyze(fn, *args, settings=settings, **kw)
  keys = [k for k in r.by_bits if k.startswith("mac ")]
  assert len(keys) == 1, r.by_bits
  return keys[0]


def test_audit_cases_of_the_issue():
  dot = lambda x, w: x @ w
  # an int4 weight plus 1 grows one bit; clip keeps int4 (both were `mac 4x32`)
  assert mac_key(lambda w, x: dot(i4(x), w4(w) + 1.0), W, X, const_argnums=0) == "mac 4x5"
  assert (
    mac_key(lambda w, x: dot(i4(x), jnp.clip(w4(w), -7, 7)), W, X, const_argnums=0) == "mac 4x4"
  )
  # stack on data and on constants keeps the type
  assert mac_key(lambda w, x: jnp.stack([i4(x), i4(x)]) @ w4(w), W, X, const_argnums=0) == "mac 4x4"
  assert (
    mac_key(lambda w, x: i4(x) @ jnp.stack([w4(w), w4(w)])[1], W, X, const_argnums=0) == "mac 4x4"
  )
  # an int4+int4 residual add is 5 bits; times an int4 it is a 5x4 multiply (not a 32x4 one)
  r = analyze(lambda x: (i4(x) + i4(x)) * i4(x), X)
  assert set(r.by_bits) == {"add 4x4", "mul 5x4"}


@pytest.mark.parametrize(
  "name,fn,expected",
  [
    ("add", lambda a, b: a + b, 5),
    ("sub", lambda a, b: a - b, 5),
    ("mul", lambda a, b: a * b, 8),
    ("max", jnp.maximum, 4),
    ("min", jnp.minimum, 4),
    ("abs", lambda a, b: jnp.abs(a), 4),
    ("neg", lambda a, b: -a, 5),  # −(−8) = 8 needs 5 bits
    ("clip", lambda a, b: jnp.clip(a, -3, 3), 3),  # narrowed to [−3, 3]
    ("where", lambda a, b: jnp.where(a > 0, a, b), 4),
    ("square", lambda a, b: a * a, 8),
    ("sum8", lambda a, b: jnp.sum(a, axis=-1, keepdims=True), 7),
    ("shift_left", lambda a, b: jax.lax.shift_left(a.astype(jnp.int32), 2), 6),
  ],
)
def test_integer_rules(name, fn, expected):
  """The width reaching the next multiply: (fn(int4, int4)) · int4 priced `mul {w}x4`."""
  r = analyze(lambda x: fn(i4(x), i4(x)) * i4(x), X)
  assert f"mul {expected}x4" in r.by_bits, (name, dict(r.by_bits))


def test_growth_is_capped_at_acc_bits_and_float_stays_float():
  r = analyze(lambda x: (i4(x) * i4(x) * i4(x)) * i4(x), X, settings=AceSettings(acc_bits=10))
  assert set(r.by_bits) == {"mul 4x4", "mul 8x4", "mul 10x4"}
  r = analyze(lambda x: (i4(x) + x) * i4(x), X)
  assert "mul 32x4" in r.by_bits  # int + float is float
  r = analyze(lambda x: (i4(x) + 0.5) * i4(x), X)
  assert "mul 32x4" in r.by_bits


def test_integer_dtypes_are_bit_width_sources():
  x8 = jnp.ones((2, 8), jnp.int8)
  assert (
    mac_key(
      lambda w, x: jax.lax.dot(x, w, preferred_element_type=jnp.int32),
      jnp.ones((8, 3), jnp.int8),
      x8,
      const_argnums=0,
    )
    == "mac 8x8"
  )
  # float data rounded into uint8 is an 8-bit unsigned value; int4 dtype weights are 4 bits
  f = lambda w, x: jnp.round(x).astype(jnp.uint8).astype(jnp.int32) @ w.astype(jnp.int32)
  assert mac_key(f, jnp.ones((8, 3), jnp.int4), X, const_argnums=0) == "mac 8x4"
  # a narrower integer type survives a wider container
  assert (
    mac_key(lambda w, x: i4(x).astype(jnp.int8) @ w, jnp.ones((8, 3), jnp.int8), X, const_argnums=0)
    == "mac 4x8"
  )


# Every layout primitive of jax 0.10.2's lax, each on int4 data and on an int4 constant: the
# dot after it must still see 4 bits.
LAYOUT_CASES = {
  "reshape": lambda a: a.reshape(-1).reshape(a.shape),
  "transpose": lambda a: a.T.T,
  "broadcast_in_dim": lambda a: jnp.broadcast_to(a, (1,) + a.shape)[0],
  "squeeze": lambda a: a[None].squeeze(0),
  "expand_dims": lambda a: jnp.expand_dims(a, 0)[0],
  "slice": lambda a: jnp.concatenate([a[:, :4], a[:, 4:]], axis=1),
  "dynamic_slice": lambda a: jax.lax.dynamic_slice(a, (0, 0), (2, 8)),
  "gather": lambda a: a[jnp.array([1, 0])],
  "rev": lambda a: jnp.flip(a, 1),
  "copy": lambda a: jnp.array(a, copy=True),
  "convert_element_type": lambda a: a.astype(jnp.bfloat16).astype(jnp.float32),
  "stop_gradient": jax.lax.stop_gradient,
  "optimization_barrier": lambda a: jax.lax.optimization_barrier(a),
  "split": lambda a: jnp.concatenate(jnp.split(a, 2, axis=1), axis=1),
  "tile": lambda a: jnp.tile(a, (1, 2))[:, :8],
  "stack": lambda a: jnp.stack([a, a])[0],
  "unstack": lambda a: jnp.unstack(jnp.stack([a, a]))[1],
  "concatenate": lambda a: jnp.concatenate([a, a], axis=0)[:2],
  "pad": lambda a: jnp.pad(a, ((1, 0), (0, 0)))[1:],
  "select_n": lambda a: jnp.where(True, a, a),
  "dynamic_update_slice": lambda a: jax.lax.dynamic_update_slice(a, a[:1], (0, 0)),
  "reduce_precision": lambda a: jax.lax.reduce_precision(a, 8, 7),
  "materialize": jint.materialize,
}


@pytest.mark.parametrize("name", sorted(LAYOUT_CASES))
def test_layout_primitives_keep_integer_types(name):
  op = LAYOUT_CASES[name]
  assert mac_key(lambda w, x: op(i4(x)) @ w4(w), W, X, const_argnums=0) == "mac 4x4"
  assert mac_key(lambda w, x: i4(x) @ op(w4(w).T).T, W, X, const_argnums=0) == "mac 4x4"


# Free when the operands' types agree; otherwise their join (concatenate, stack, pad) or a compare
# (select_n): rules.py has one rule each.
JOINING_PRIMITIVES = ("concatenate", "stack", "dynamic_update_slice", "select_n", "pad")


def test_every_lax_layout_primitive_has_a_case():
  assert set(JOINING_PRIMITIVES) <= set(rules.RULES)
  layout = set(rules.LAYOUT_PRIMITIVES) | set(JOINING_PRIMITIVES) | set(rules.CONVERSION_PRIMITIVES)
  lax_layout = layout & jint.lax_primitive_names()
  assert lax_layout - set(LAYOUT_CASES) <= {
    "copy_p",
    "sharding_constraint",
    "device_put",
    "bitcast_convert_type",
  }


def test_every_lax_primitive_is_priced_walked_or_refused():
  names = jint.lax_primitive_names()
  priced, walked, refused = (
    set(rules.RULES),
    set(rules.WALKED_PRIMITIVES),
    set(rules.REFUSED_PRIMITIVES),
  )
  assert not (priced & refused) and not (walked & (priced | refused))
  assert names - priced - walked - refused == set(), "a new lax primitive: price or refuse it"
  assert refused <= names  # the list names only primitives that exist
  with pytest.raises(AceError, match="'sort'"):
    analyze(lambda x: jnp.sort(x), X)
