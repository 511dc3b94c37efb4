"""Straight-through estimators, written as `jax.custom_jvp`.

quantize_ste(x, s): the integer code of x on a grid of step s.
  forward: clip(floor(x/s + 0.5), lo, hi)   (round half up, which integer hardware reproduces);
           binary grids: sign(x/s) with sign(0) = +1.
  JVP:     (dx/s - x·ds/s²) · 1[lo <= x/s <= hi]   (binary: 1[|x/s| <= clip]).
  So the gradient w.r.t. x is identity inside the clip range and zero outside, and, once the code
  is multiplied back by s downstream, the gradient w.r.t. s is LSQ's: round(x/s) - x/s inside,
  the clip level outside.

round_pow2_ste(s, ceil): 2^round(log2 s) (2^ceil for abs-max calibrated scales, so that the
  rounding never clips the range), identity gradient (Double Quantization, 'pow2').
round_fixed_ste(s, bits): m·2^e with m a `bits`-bit integer mantissa, identity gradient ('fixed').
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _codes(v, lo, hi, binary):
  if binary:
    return jnp.where(v >= 0, 1.0, -1.0).astype(v.dtype)
  return jnp.clip(jnp.floor(v + 0.5), lo, hi)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def quantize_ste(x, s, lo: float, hi: float, binary: bool):
  return _codes(x / s, lo, hi, binary)


def _quantize_ste_jvp(lo, hi, binary, primals, tangents):
  # Symbolic zeros: a scale without gradient (EMA, abs-max under stop_gradient) adds no
  # tangent work over the whole activation tensor.
  x, s = primals
  tx, ts = tangents
  v = x / s
  out = _codes(v, lo, hi, binary)
  zero = jax.custom_derivatives.SymbolicZero
  inv_s = 1.0 / s
  dv = jnp.zeros_like(v) if isinstance(tx, zero) else tx * inv_s
  if not isinstance(ts, zero):
    dv = dv - v * ts * inv_s
  return out, jnp.where((v >= lo) & (v <= hi), dv, 0.0)


quantize_ste.defjvp(_quantize_ste_jvp, symbolic_zeros=True)


def exp2_exact(e):
  """2^e for integer-valued float e, exactly (jnp.exp2 on XLA:CPU is off by ulps for most e,
  which would make 'power-of-two' scales non-powers of two and break the integer export)."""
  return jnp.ldexp(jnp.ones_like(e), e.astype(jnp.int32))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def round_pow2_ste(s, ceil: bool = False):
  # ceil: never shrink the scale, so an abs-max calibrated range is not clipped by the rounding.
  e = jnp.log2(s)
  return exp2_exact(jnp.ceil(e) if ceil else jnp.round(e))


@round_pow2_ste.defjvp
def _round_pow2_jvp(ceil, primals, tangents):
  return round_pow2_ste(primals[0], ceil), tangents[0]


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def round_fixed_ste(s, bits: int):
  # Choose e so that the mantissa m = s / 2^e lies in [2^(bits-1), 2^bits - 1].
  e = jnp.ceil(jnp.log2(s / (2.0**bits - 1.0)))
  m = jnp.clip(jnp.round(s / exp2_exact(e)), 1.0, 2.0**bits - 1.0)
  return m * exp2_exact(e)


@round_fixed_ste.defjvp
def _round_fixed_jvp(bits, primals, tangents):
  return round_fixed_ste(primals[0], bits), tangents[0]


def fixed_mantissa_exponent(s, bits: int):
  """(m, e) with round_fixed_ste(s, bits) == m · 2^e; used by integer export."""
  e = jnp.ceil(jnp.log2(s / (2.0**bits - 1.0)))
  m = jnp.clip(jnp.round(s / exp2_exact(e)), 1.0, 2.0**bits - 1.0)
  return m, e
