"""Quantizers: integer codes plus a scale, with the bit-width tag on both.

A quantizer returns `(q, s)`: integer codes `q` (in a float dtype) tagged with their bit width, and
the step `s` (broadcastable to q) so that q·s approximates x. Layers multiply by `s` only where a
real integer pipeline would (after the accumulator, or folded into QuantNorm), which is what the
ACEv2 analyzer then sees and prices. `bits=None` returns `(x, None)`: float pass-through.
"""

from __future__ import annotations

from typing import Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from pikelpn_jax._jax_internals import materialize, tag
from pikelpn_jax.quant import ste
from pikelpn_jax.quant.config import QuantConfig

_EPS = 1e-8


def reduce_axes(ndim: int, channel_axis: Optional[int]) -> Tuple[int, ...]:
  return tuple(a for a in range(ndim) if a != channel_axis)


def quantize_scale(s, cfg: QuantConfig):
  """Double Quantization of a scale (identity for format 'none'); tags the result.

  The scale is materialized: it is broadcast over whole activations, where XLA would otherwise
  recompute it (log2, rounding, exp2) per element."""
  fmt = cfg.scale_quant.format
  if fmt == "none":
    return materialize(s)
  if fmt == "pow2":
    # 'auto': data-calibrated scales round up (no clipping of max|x|); learned ones to nearest.
    rounding = cfg.scale_quant.rounding
    ceil = rounding == "ceil" or (rounding == "auto" and cfg.calibration.spec.measured)
    s = ste.round_pow2_ste(s, ceil)
  else:
    s = ste.round_fixed_ste(s, cfg.scale_quant.bits)
  return materialize(
    tag(
      s,
      bits=cfg.scale_quant.bits,
      signed=False,
      kind="scale",
      scale=fmt,
      scale_bits=cfg.scale_quant.bits,
    )
  )


def codes(x, s, cfg: QuantConfig):
  """Tagged integer codes of x on the grid of step s (STE gradient)."""
  num = cfg.numerics
  if num.is_binary:
    lo, hi = -num.levels_per_bound, num.levels_per_bound
  else:
    lo, hi = num.qmin, num.qmax
  q = ste.quantize_ste(x, s, lo, hi, num.is_binary)
  return tag(
    q,
    bits=num.bits,
    signed=num.signed,
    kind=cfg.kind,
    scale=cfg.scale_quant.format,
    scale_bits=cfg.scale_quant.bits,
    folded=cfg.folded,
  )


def static_bound(x, cfg: QuantConfig):
  """Bound from the tensor itself (absmax / absmean), per tensor or per channel, no gradient."""
  axis = cfg.granularity.resolve(x.ndim)
  red = reduce_axes(x.ndim, axis)
  ax = jnp.abs(jax.lax.stop_gradient(x))
  b = (
    jnp.mean(ax, axis=red, keepdims=True)
    if cfg.calibration.spec.statistic == "mean"
    else jnp.max(ax, axis=red, keepdims=True)
  )
  return jnp.maximum(b, _EPS)


def quantize_with_bound(x, bound, cfg: QuantConfig):
  """(q, s) for a given calibration bound (the stateless path: weights, norms, slopes)."""
  s = quantize_scale(bound / cfg.numerics.levels_per_bound, cfg)
  return codes(x, s, cfg), s


def quantize(x, cfg: QuantConfig):
  """Stateless quantization: absmax/absmean/fixed calibration. Returns (q, s) or (x, None)."""
  if cfg.is_float:
    return x, None
  cal = cfg.calibration
  if cal.spec.state:
    raise ValueError(f"calibration.method={cal.method!r} needs state; use the Quantizer module")
  bound = static_bound(x, cfg) if cal.spec.measured else jnp.asarray(cal.bound, x.dtype)
  return quantize_with_bound(x, bound, cfg)


def fake_quant(x, cfg: QuantConfig):
  """q·s: the dequantized value (for parameters used in float arithmetic by training)."""
  q, s = quantize(x, cfg)
  return q if s is None else q * s


class Quantizer(nn.Module):
  """A quantizer with state where calibration needs it (LSQ step, EMA bound).

  LSQ keeps a learned 'step' param (the scale, per tensor or per channel); EMA keeps the running
  max|x| in the 'batch_stats' collection and uses it in both training and evaluation.
  """

  config: QuantConfig

  @nn.compact
  def __call__(self, x, train: bool = False):
    cfg = self.config
    if cfg.is_float:
      return x, None
    state = cfg.calibration.spec.state
    if not state:
      return quantize(x, cfg)
    axis = cfg.granularity.resolve(x.ndim)
    shape = [1] * x.ndim
    if axis is not None:
      shape[axis] = x.shape[axis]
    levels = cfg.numerics.levels_per_bound
    if state == "param":  # LSQ's learned step
      step = self.param(
        "step",
        lambda _k, sh: jnp.full(sh, cfg.calibration.bound / levels, jnp.float32),
        tuple(shape),
      )
      s = jnp.abs(step) + _EPS
      if cfg.calibration.lsq_grad_scale:
        g = 1.0 / jnp.sqrt(x.size / max(1, s.size) * cfg.numerics.qmax)
        s = s * g + jax.lax.stop_gradient(s - s * g)
      s = quantize_scale(s, cfg)
      return codes(x, s, cfg), s
    # EMA of max|x|.
    bound = self.variable(
      "batch_stats", "bound", lambda: jnp.full(shape, cfg.calibration.bound, jnp.float32)
    )
    seen = self.variable("batch_stats", "seen", lambda: jnp.zeros((), jnp.float32))
    if train and not self.is_initializing():
      batch = static_bound(x, cfg)
      m = cfg.calibration.momentum
      new = jnp.where(seen.value > 0, m * bound.value + (1.0 - m) * batch, batch)
      bound.value = new
      seen.value = seen.value + 1.0
    return quantize_with_bound(x, bound.value, cfg)
