"""Every convention the report states in settings['conventions'] has a micro-case here that
checks it against the rules: a new convention without a case fails."""

import jax.numpy as jnp

from pikelpn_jax._jax_internals import tag
from pikelpn_jax.ace import AceSettings, analyze
from pikelpn_jax.ace.api import CONVENTIONS
from pikelpn_jax.quant import act_quant, quantize

X = jnp.ones((4, 8))
N = X.size


def i(bits, signed=True):
  return lambda v: tag(v, bits=bits, signed=signed, kind="act")


def acev2(fn, *args, **kw):
  return analyze(fn, *args, **kw).acev2


def case_mac():
  w = jnp.ones((8, 3))
  assert (
    acev2(lambda w, x: i(4)(x) @ tag(w, bits=2, signed=True, kind="weight"), w, X, const_argnums=0)
    == 4 * 3 * 8 * 4 * 2
  )
  assert (
    acev2(lambda w, x: x @ w, w, X, const_argnums=0, settings=AceSettings(float_bits=16))
    == 4 * 3 * 8 * 256
  )
  # two integer operands give an accumulator of acc_bits: the next multiply sees acc_bits
  r = analyze(
    lambda w, x: (i(4)(x) @ tag(w, bits=4, signed=True, kind="weight")) * i(4)(x[:, :3]),
    w,
    X,
    const_argnums=0,
    settings=AceSettings(acc_bits=20),
  )
  assert "mul 20x4" in r.by_bits


def case_requantization():
  q = act_quant(4, calibration="fixed")
  assert acev2(lambda x: quantize(x, q)[0], X) == N * (32 * 32 + 32 + 2 * 32)
  qb = act_quant(1, signed=True, calibration="fixed")
  assert acev2(lambda x: quantize(x, qb)[0], X) == N * 32


def case_mul():
  assert acev2(lambda x: i(4)(x) * i(8)(x), X) == N * 4 * 8
  assert acev2(lambda x: i(4)(x) * 0.25, X) == N * 4  # a shift


def case_div():
  assert acev2(lambda x: i(4)(x) / i(8)(x), X) == N * 4 * 8
  assert acev2(lambda x: i(4)(x) / 3.0, X) == N * 4 * 32  # 1/3 is a float
  assert acev2(lambda x: i(4)(x) / 4.0, X) == N * 4  # a shift


def case_add():
  assert acev2(lambda x: i(4)(x) + i(8)(x), X) == N * 8
  assert acev2(lambda x: -i(6)(x), X) == N * 6
  assert acev2(lambda x: jnp.abs(i(6)(x)), X) == N * 6
  assert acev2(lambda x: jnp.round(x), X) == N * 32


def case_compare():
  assert acev2(lambda x: jnp.maximum(i(4)(x), i(6)(x)), X) == N * 6
  assert acev2(lambda x: i(4)(x) < i(6)(x), X) == N * 6
  assert acev2(lambda x: jnp.clip(i(6)(x), -3, 3), X) == 2 * N * 6


def case_select():
  p = lambda x: x > 0  # priced: a compare
  assert acev2(lambda x: jnp.where(p(x), i(4)(x), i(4)(x)), X) == N * 32
  assert acev2(lambda x: jnp.where(p(x), i(4)(x), i(6)(x)), X) == N * 32 + N * 6


def case_transcendental():
  assert acev2(lambda x: jnp.exp(x), X) == N * 4 * 32 * 32
  assert (
    acev2(lambda x: jnp.exp(x), X, settings=AceSettings(transcendental_mults=2)) == N * 2 * 32 * 32
  )


def case_reductions():
  assert acev2(lambda x: jnp.sum(i(4)(x), axis=1), X) == 4 * 7 * 4
  assert acev2(lambda x: jnp.max(x, axis=1), X) == 4 * 7 * 32


def case_constants():
  w = jnp.ones((8,))
  assert acev2(lambda w, x: x * (jnp.exp(w) * 3.0 + 1.0), w, X, const_argnums=0) == N * 1024


def case_integer_widths():
  r = analyze(lambda x: (i(4)(x) + i(4)(x)) * i(3)(x), X)
  assert "mul 5x3" in r.by_bits  # max(4,4)+1
  r = analyze(lambda x: (i(4)(x) * i(4)(x)) * i(3)(x), X)
  assert "mul 8x3" in r.by_bits  # 4+4
  r = analyze(lambda x: jnp.sum(i(4)(x), axis=1, keepdims=True) * i(3)(x), X)
  assert "mul 7x3" in r.by_bits  # 4 + ceil(log2 8)
  r = analyze(
    lambda x: (tag(x, bits=32, signed=True, kind="param") + i(4)(x)) * i(3)(x),
    X,
    settings=AceSettings(acc_bits=16),
  )
  assert set(r.by_bits) == {"add 16x4", "mul 16x3"}  # capped: tags too


def case_integer_dtypes():
  r = analyze(lambda x: x.astype(jnp.int8) * i(3)(x), X)
  assert "mul 8x3" in r.by_bits
  # a float clipped to constant bounds, rounded and converted: the bounds' width, not int8's
  r = analyze(lambda x: jnp.round(jnp.clip(x, -3, 3)).astype(jnp.int8) * i(3)(x), X)
  assert "mul 3x3" in r.by_bits
  r = analyze(lambda x: x * i(3)(x), jnp.ones((4, 8), jnp.uint8))
  assert "mul 8x3" in r.by_bits


def case_transposed_convs():
  import jax

  x, w = jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 5))

  def tconv(w, x):  # stride-2 transposed conv: input dilation 2
    return jax.lax.conv_transpose(x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

  assert analyze(tconv, w, x, const_argnums=0).macs == 4 * 4 * 2 * 9 * 5  # input × k² × C_out
  real = analyze(tconv, w, x, const_argnums=0, settings=AceSettings(count_padded_taps=False))
  assert real.macs < 4 * 4 * 2 * 9 * 5  # border taps of the edge pixels fall outside


def case_traffic():
  r = analyze(lambda m, x: x * m, jnp.ones((8,)), X, const_argnums=0)
  (row,) = r.layers
  assert (row.weight_bits, row.act_read_bits, row.act_write_bits) == (8 * 32, N * 32, N * 32)


CASES = {name[len("case_") :]: fn for name, fn in globals().items() if name.startswith("case_")}


def test_every_stated_convention_has_a_case():
  assert set(CASES) == set(CONVENTIONS)


def test_conventions_hold():
  for name in sorted(CASES):
    CASES[name]()


def test_settings_state_the_conventions_and_every_knob():
  s = analyze(lambda x: x + 1.0, X).settings
  assert s["conventions"] == CONVENTIONS
  assert {"float_bits", "acc_bits", "count_padded_taps", "transcendental_mults", "fold"} <= set(s)
