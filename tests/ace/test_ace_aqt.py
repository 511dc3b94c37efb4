"""Programs quantized by AQT v2 (aqtp 0.9.0, pinned): `fully_quantized(fwd_bits=b)` clips the
scaled float operands to ±(2^(b−1)−1), rounds them and carries the codes in int8. The analyzer
reads the value range, not the int8 container: b×b-bit MACs, ACE = MACs × b²."""

import jax
import jax.numpy as jnp
import pytest

from pikelpn_jax.ace import analyze

aqt_config = pytest.importorskip("aqt.jax.v2.config")
aqt_conv = pytest.importorskip("aqt.jax.v2.aqt_conv_general")

BITS = (2, 3, 4, 8)


@pytest.mark.parametrize("bits", BITS)
def test_aqt_dot_general_is_priced_at_its_bits(bits):
  dg = aqt_config.fully_quantized(fwd_bits=bits, bwd_bits=8)
  x, w = jax.ShapeDtypeStruct((2, 16), jnp.float32), jax.ShapeDtypeStruct((16, 4), jnp.float32)
  r = analyze(lambda x, w: dg(x, w, (((1,), (0,)), ((), ()))), x, w)
  macs = 2 * 4 * 16  # output elements × contracted size
  assert r.unaccounted == ()
  assert r.macs == macs and r.ace == macs * bits * bits
  assert {k for k in r.by_bits if k.startswith("mac")} == {f"mac {bits}x{bits}"}


@pytest.mark.parametrize("bits", BITS)
def test_aqt_conv_general_dilated_is_priced_at_its_bits(bits):
  conv = aqt_conv.make_conv_general_dilated(aqt_conv.conv_general_dilated_make(2, bits, bits))
  x, w = jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.float32), jnp.ones((3, 3, 3, 4))
  dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
  r = analyze(lambda w, x: conv(x, w, (1, 1), "SAME", dimension_numbers=dn), w, x, const_argnums=0)
  macs = 8 * 8 * 4 * 3 * 3 * 3  # output elements × 3×3 taps × 3 input channels
  assert r.unaccounted == ()
  assert r.macs == macs and r.ace == macs * bits * bits
  assert {k for k in r.by_bits if k.startswith("mac")} == {f"mac {bits}x{bits}"}
