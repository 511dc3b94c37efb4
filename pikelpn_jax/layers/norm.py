"""QuantNorm: batch norm whose folded multiplier and bias are quantized (see docs/quantnorm.md).

Inference form, per channel c:   y = M_q[c] · acc + C_q[c]
  M = γ·s_in / sqrt(σ² + ε)       (s_in: the preceding layer's dequantization scale, when given)
  C = β − γ·μ / sqrt(σ² + ε)
M is quantized per channel on one per-tensor grid (signed, `bits`, default 8) whose scale s_M may
itself be quantized (Double Quantization: pow2 makes it a shift); C is put on the output grid of
M_q·acc, i.e. C_int = round(C / s_M), a `bias_bits` (default 32: accumulator) integer. So
    y = (M_int · acc + C_int) · s_M
which is exactly the integer pipeline `(A_int·acc + C_int) >> shift` when s_M is a power of two.
Training uses batch statistics (of the dequantized input acc·s_in) and STE; evaluation uses the
running statistics. With bits=None it is the folded float batch norm (equal to flax BatchNorm).
"""

from __future__ import annotations

import functools
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from pikelpn_jax._jax_internals import cost_category, materialize, tag
from pikelpn_jax.quant import ste
from pikelpn_jax.quant.config import (
  Calibration,
  Granularity,
  Numerics,
  QuantConfig,
  ScaleQuant,
  check_bits,
)
from pikelpn_jax.quant.quantizer import quantize_with_bound


class QuantNorm(nn.Module):
  bits: Optional[int] = 8
  bias_bits: Optional[int] = 32
  scale_format: str = "none"  # Double Quantization of s_M: none | pow2 | fixed
  scale_bits: int = 8
  momentum: float = 0.9
  epsilon: float = 1e-5
  scale_init: nn.initializers.Initializer = nn.initializers.ones
  bias_init: nn.initializers.Initializer = nn.initializers.zeros

  def _m_config(self) -> QuantConfig:
    return QuantConfig(
      numerics=Numerics(bits=self.bits, signed=True),
      calibration=Calibration("absmax"),
      granularity=Granularity(None),
      scale_quant=ScaleQuant(self.scale_format, self.scale_bits),
      kind="norm",
    )

  @nn.compact
  def __call__(self, x, train: bool = False, in_scale=None):
    check_bits(self.bits, "QuantNorm.bits")
    if self.bias_bits is not None and not (
      isinstance(self.bias_bits, int) and 2 <= self.bias_bits <= 32
    ):
      raise ValueError(
        f"QuantNorm.bias_bits={self.bias_bits!r} is not allowed; use an int 2..32 or None"
      )
    c = x.shape[-1]
    gamma = self.param("scale", self.scale_init, (c,), jnp.float32)
    beta = self.param("bias", self.bias_init, (c,), jnp.float32)
    ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
    s_in = None if in_scale is None else jnp.broadcast_to(jnp.asarray(in_scale), (c,))

    if train:
      # Statistics of the dequantized input (acc·s_in), so running stats have real units; they
      # carry gradient, as in BatchNorm.
      red = tuple(range(x.ndim - 1))
      xs = x.astype(jnp.float32)  # statistics in float32 under bfloat16 compute too
      mean = jnp.mean(xs, axis=red)
      var = jnp.maximum(jnp.mean(jnp.square(xs), axis=red) - jnp.square(mean), 0.0)
      if s_in is not None:
        mean, var = mean * s_in, var * jnp.square(s_in)
      if not self.is_initializing():
        m = self.momentum
        ra_mean.value = m * ra_mean.value + (1 - m) * jax.lax.stop_gradient(mean)
        ra_var.value = m * ra_var.value + (1 - m) * jax.lax.stop_gradient(var)
    else:
      mean, var = ra_mean.value, ra_var.value

    inv = jax.lax.rsqrt(var + self.epsilon)
    m = gamma * inv if s_in is None else gamma * inv * s_in
    cbias = beta - gamma * inv * mean

    # The per-channel terms are materialized (computed once), not recomputed per element inside
    # the activation-sized fusions that read them (see _jax_internals.materialize).
    if self.bits is None:
      with cost_category("norm"):
        return (x * materialize(m) + materialize(cbias)).astype(x.dtype)

    cfg = self._m_config()
    bound = jnp.maximum(jnp.max(jnp.abs(jax.lax.stop_gradient(m))), 1e-8)
    m_int, s_m = quantize_with_bound(m, bound, cfg)
    m_int = materialize(m_int)
    c_int = materialize(self._bias_codes(cbias, s_m))
    return scaled_affine(x, m_int, c_int, s_m, self.scale_format == "pow2").astype(x.dtype)

  def _bias_codes(self, cbias, s_m):
    """C on the grid of M_q·acc: C_int = round(C / s_M), clipped to bias_bits (STE)."""
    bb = self.bias_bits
    if bb is None:
      return cbias / s_m
    hi = float(2 ** (bb - 1) - 1)
    q = ste.quantize_ste(cbias, s_m, -hi, hi, False)
    return tag(q, bits=bb, signed=True, kind="norm")


def _scaled_affine(x, m, c, s):
  with cost_category("norm"):
    y = x * m + c
  with cost_category("scaling"):
    return y * s


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def scaled_affine(x, m, c, s, pow2_scale: bool):
  """(x·M_int + C_int)·s_M, QuantNorm's inference form, with a hand-written VJP.

  x: (..., C); m, c: (C,); s: a scalar. The forward is what the analyzer prices (norm multiply
  and add, then the scaling). The VJP exists for speed: autodiff's backward multiplies the
  incoming gradient by s per element and XLA:CPU then recomputes the forward chain (norm, ReLU
  mask) in two activation-sized fusions instead of one; with pow2_scale (s = 2^e, Double
  Quantization's power-of-two scale) s is folded into the per-channel multiplier and applied to
  the reduced sums instead, which is exact for a power of two, and the backward has the shape of
  float batch norm's. Otherwise the VJP keeps autodiff's order of operations. For the layer on
  its own both are bit-identical to autodiff (tests/layers/test_norm_vjp.py); inside a whole
  train step XLA fuses the reductions differently, so trained weights differ from autodiff's in
  the last bits, as after any change of summation order. It exists for speed: the quantized/float
  train-step ratio with and without it is in docs/benchmarks.md. Like the shift-and-add depthwise conv, it supports
  reverse mode (grad) but not forward mode (jvp).
  """
  return _scaled_affine(x, m, c, s)


def _scaled_affine_fwd(x, m, c, s, pow2_scale):
  return _scaled_affine(x, m, c, s), (x, m, c, s)


def _scaled_affine_bwd(pow2_scale, res, g):
  x, m, c, s = res
  red = tuple(range(x.ndim - 1))
  if pow2_scale:
    dx = g * materialize(m * s)  # computed once, not per element (materialize)
    dm = jnp.sum(g * x, axis=red) * s
    dc = jnp.sum(g, axis=red) * s
  else:
    gy = g * s
    dx = gy * m
    dm = jnp.sum(gy * x, axis=red)
    dc = jnp.sum(gy, axis=red)
  # Dead code where s has no gradient (QuantNorm's s_M comes from a stop_gradient bound).
  ds = jnp.sum(g * (x * m + c))
  return (
    dx.astype(x.dtype),
    dm.astype(m.dtype),
    dc.astype(c.dtype),
    ds.astype(jnp.result_type(s)).reshape(jnp.shape(s)),
  )


scaled_affine.defvjp(_scaled_affine_fwd, _scaled_affine_bwd)
