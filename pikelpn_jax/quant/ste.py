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


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def quantize_ste(x, s, lo: float, hi: float, binary: bool):
  v = x / s
  if binary:
    return jnp.where(v >= 0, 1.0, -1.0).astype(x.dtype)
  return jnp.clip(jnp.floor(v + 0.5), lo, hi)


@quantize_ste.defjvp
def _quantize_ste_jvp(lo, hi, binary, primals, tangents):
  x, s = primals
  tx, ts = tangents
  out = quantize_ste(x, s, lo, hi, binary)
  v = x / s
  inside = (v >= lo) & (v <= hi)
  dv = tx / s - x * ts / (s * s)
  return out, jnp.where(inside, dv, jnp.zeros_like(dv))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def round_pow2_ste(s, ceil: bool = False):
  # ceil: never shrink the scale, so an abs-max calibrated range is not clipped by the rounding.
  e = jnp.log2(s)
  return jnp.exp2(jnp.ceil(e) if ceil else jnp.round(e))


@round_pow2_ste.defjvp
def _round_pow2_jvp(ceil, primals, tangents):
  return round_pow2_ste(primals[0], ceil), tangents[0]


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def round_fixed_ste(s, bits: int):
  # Choose e so that the mantissa m = s / 2^e lies in [2^(bits-1), 2^bits - 1].
  e = jnp.ceil(jnp.log2(s / (2.0 ** bits - 1.0)))
  m = jnp.clip(jnp.round(s / jnp.exp2(e)), 1.0, 2.0 ** bits - 1.0)
  return m * jnp.exp2(e)


@round_fixed_ste.defjvp
def _round_fixed_jvp(bits, primals, tangents):
  return round_fixed_ste(primals[0], bits), tangents[0]


def fixed_mantissa_exponent(s, bits: int):
  """(m, e) with round_fixed_ste(s, bits) == m · 2^e; used by integer export."""
  e = jnp.ceil(jnp.log2(s / (2.0 ** bits - 1.0)))
  m = jnp.clip(jnp.round(s / jnp.exp2(e)), 1.0, 2.0 ** bits - 1.0)
  return m, e
