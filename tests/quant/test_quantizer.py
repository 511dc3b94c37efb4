"""Quantizer numerics: grids, STE masks, calibrations, Double Quantization, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pikelpn_jax import quant
from pikelpn_jax.quant import (
  Calibration,
  Numerics,
  QuantConfig,
  Quantizer,
  ScaleQuant,
  act_quant,
  weight_quant,
)

X = jax.random.normal(jax.random.PRNGKey(0), (4, 5, 6)) * 3.0


@pytest.mark.parametrize(
  "bits,signed", [(2, True), (4, True), (8, True), (3, False), (8, False), (16, True)]
)
def test_codes_lie_on_the_grid(bits, signed):
  cfg = QuantConfig(numerics=Numerics(bits, signed), calibration=Calibration("absmax"))
  q, s = quant.quantize(X, cfg)
  q = np.asarray(q)
  np.testing.assert_array_equal(q, np.round(q))
  lo, hi = cfg.numerics.qmin, cfg.numerics.qmax
  assert q.min() >= lo and q.max() <= hi
  assert hi == (2 ** (bits - 1) - 1 if signed else 2**bits - 1)
  # abs-max maps the largest magnitude exactly onto the top level.
  assert np.abs(q).max() == hi
  # Dequantized error is at most half a step inside the range.
  sv = float(np.asarray(s).reshape(()))
  deq = q * sv
  inside = (np.asarray(X) >= lo * sv) & (np.asarray(X) <= hi * sv)
  assert np.all(np.abs(deq - np.asarray(X))[inside] <= sv / 2 + 1e-6)


def test_binary_and_half_shift_grids():
  cfg = QuantConfig(numerics=Numerics(1, True), calibration=Calibration("fixed", bound=3.0))
  q, s = quant.quantize(X, cfg)
  assert set(np.unique(np.asarray(q))) <= {-1.0, 1.0}
  assert float(s) == 3.0
  half = QuantConfig(
    numerics=Numerics(1, True, half_shift=True), calibration=Calibration("fixed", bound=3.0)
  )
  q2, s2 = quant.quantize(X, half)
  np.testing.assert_array_equal(q, q2)
  assert float(s2) == 1.5  # PokeBNN: ±0.5 · bound
  assert float(quant.quantize(jnp.zeros(()), cfg)[0]) == 1.0  # sign(0) = +1


def test_per_channel_any_axis():
  for axis in (0, 1, -1):
    cfg = weight_quant(4, channel_axis=axis)
    q, s = quant.quantize(X, cfg)
    ax = axis % X.ndim
    assert s.shape[ax] == X.shape[ax] and s.size == X.shape[ax]
    red = tuple(a for a in range(X.ndim) if a != ax)
    np.testing.assert_array_equal(np.abs(np.asarray(q)).max(axis=red), 7.0)


def test_ste_gradient_masks_outside_clip_range():
  cfg = act_quant(4, signed=False, calibration="fixed", bound=2.0)
  x = jnp.linspace(-1.0, 3.0, 41)
  g = jax.grad(lambda v: jnp.sum(quant.quantize(v, cfg)[0]))(x)
  s = 2.0 / 15.0
  v = np.asarray(x) / s
  expected = np.where((v >= 0) & (v <= 15), 1.0 / s, 0.0)
  np.testing.assert_allclose(np.asarray(g), expected, rtol=1e-5)


def test_binary_ste_is_clipped_identity():
  cfg = QuantConfig(numerics=Numerics(1), calibration=Calibration("fixed", bound=1.0))
  x = jnp.array([-2.0, -0.5, 0.3, 0.9, 1.5])
  g = jax.grad(lambda v: jnp.sum(quant.quantize(v, cfg)[0]))(x)
  np.testing.assert_array_equal(np.asarray(g), [0.0, 1.0, 1.0, 1.0, 0.0])


def test_lsq_step_gradient_is_lsq():
  cfg = act_quant(3, signed=False, calibration="lsq", bound=1.4).replace(
    calibration=Calibration("lsq", bound=1.4, lsq_grad_scale=False)
  )
  x = jnp.array([[0.05, 0.31, 0.77, 1.5, 9.0]])
  mod = Quantizer(cfg)
  v = mod.init(jax.random.PRNGKey(0), x)
  s0 = float(v["params"]["step"].reshape(()))

  def f(p):
    q, s = mod.apply({"params": p}, x)
    return jnp.sum(q * s)

  g = float(jax.grad(f)(v["params"])["step"].reshape(()))
  vv = np.asarray(x)[0] / s0
  expected = sum((np.floor(t + 0.5) - t) if t <= 7 else 7.0 for t in vv)
  assert abs(g - expected) < 1e-4


def test_ema_bound_tracks_batch_max():
  cfg = act_quant(8, calibration="ema", bound=6.0).replace(
    calibration=Calibration("ema", bound=6.0, momentum=0.5)
  )
  mod = Quantizer(cfg)
  v = mod.init(jax.random.PRNGKey(0), X)
  assert float(v["batch_stats"]["bound"].reshape(())) == 6.0
  _, upd = mod.apply(v, X, train=True, mutable=["batch_stats"])
  first = float(upd["batch_stats"]["bound"].reshape(()))
  assert abs(first - float(jnp.abs(X).max())) < 1e-6  # first batch initialises
  _, upd2 = mod.apply(upd, X * 0.5, train=True, mutable=["batch_stats"])
  assert abs(float(upd2["batch_stats"]["bound"].reshape(())) - 0.75 * first) < 1e-5


def test_double_quant_pow2_scales_are_exact_powers_of_two():
  cfg = weight_quant(4, scale="pow2")
  _, s = quant.quantize(X, cfg)
  e = np.log2(np.asarray(s))
  np.testing.assert_array_equal(e, np.round(e))
  # STE: the pow2 rounding passes gradient (identity) to the raw scale.
  g = jax.grad(lambda t: quant.round_pow2_ste(t))(0.3)
  assert float(g) == 1.0


@pytest.mark.parametrize("rounding", ["auto", "ceil", "nearest"])
def test_pow2_scale_rounding_modes(rounding):
  # Per-channel abs-max 4-bit weights: raw scales max|w|/7 with log2 fractions all over [0, 1).
  w = jnp.linspace(0.3, 2.9, 16).reshape(1, 16) * jnp.ones((5, 1))
  cfg = weight_quant(4, scale="pow2", scale_round=rounding)
  q, s = quant.quantize(w, cfg)
  raw = np.log2(np.asarray(w).max(axis=0) / 7)
  want = np.round(raw) if rounding == "nearest" else np.ceil(raw)  # auto = ceil for absmax
  np.testing.assert_array_equal(np.log2(np.asarray(s)).reshape(-1), want)
  if rounding == "nearest":
    assert np.asarray(q).max() == 7 and np.any(np.abs(np.asarray(w)) > 7 * np.asarray(s))  # clips
  else:
    assert np.all(np.abs(np.asarray(w)) <= 7 * np.asarray(s))  # never clips
  with pytest.raises(ValueError, match="scale_quant.rounding='floor'"):
    ScaleQuant("pow2", rounding="floor")


def test_double_quant_fixed_mantissa():
  for bits in (4, 8):
    s = jnp.array([0.0123, 0.7, 3.3, 100.0])
    sq = np.asarray(quant.round_fixed_ste(s, bits))
    m, e = quant.ste.fixed_mantissa_exponent(s, bits)
    np.testing.assert_allclose(sq, np.asarray(m) * 2.0 ** np.asarray(e))
    assert np.all(np.asarray(m) == np.round(np.asarray(m)))
    assert np.all((np.asarray(m) >= 2 ** (bits - 1) - 1) & (np.asarray(m) <= 2**bits - 1))
    assert np.all(np.abs(sq / np.asarray(s) - 1) <= 2.0 ** -(bits - 1))


def test_float_is_pass_through():
  q, s = quant.quantize(X, quant.FLOAT)
  assert s is None and q is X
  mod = Quantizer(act_quant(None))
  out, s = mod.apply(mod.init(jax.random.PRNGKey(0), X), X)
  assert s is None and out is X


@pytest.mark.parametrize("bad", [0, 17, -1, 2.5, "8", True])
def test_bad_bits_fail_with_clear_error(bad):
  with pytest.raises(ValueError, match=r"bits=.*allowed.*1\.\.16"):
    Numerics(bits=bad)


def test_bad_fields_name_the_field():
  with pytest.raises(ValueError, match="channel_axis=3 is out of range"):
    quant.quantize(X, weight_quant(4, channel_axis=3))
  with pytest.raises(ValueError, match="calibration.method='minmax'"):
    Calibration("minmax")
  with pytest.raises(ValueError, match="scale_quant.format='log'"):
    ScaleQuant("log")
  with pytest.raises(ValueError, match="unknown quantizer field"):
    quant.from_dict({"bitz": 4})
  with pytest.raises(ValueError, match="bits=1 with signed=False"):
    Numerics(1, signed=False)
