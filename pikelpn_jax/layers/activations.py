"""Activations: ReLU, ReLU6, PReLU, DPReLU (PokeBNN), RSign and RPReLU (ReActNet), and the
hard-sigmoid squeeze-excite. Learnable multiplicative parameters (slopes) can be quantized
(`param_bits`): the slope becomes tagged integer codes and its scale a separate multiply, which is
what an integer pipeline computes. Additive parameters (biases, thresholds) stay float: they are
one add each and are priced at the float width.
"""

from __future__ import annotations

from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from pikelpn_jax._jax_internals import cost_category
from pikelpn_jax.quant.config import (
  Calibration,
  Granularity,
  Numerics,
  QuantConfig,
  ScaleQuant,
  check_bits,
)
from pikelpn_jax.quant.quantizer import quantize

ACTIVATIONS = ("relu", "relu6", "prelu", "dprelu", "rprelu", "identity")


def _param_config(bits, scale_format: str) -> QuantConfig:
  return QuantConfig(
    numerics=Numerics(bits=check_bits(bits, "param_bits"), signed=True),
    calibration=Calibration("absmax"),
    granularity=Granularity(None),
    scale_quant=ScaleQuant(scale_format),
    kind="param",
  )


def scaled_mul(x, p, bits, scale_format: str):
  """x · p with p quantized to `bits` (float when None): (x · p_int) · s_p."""
  q, s = quantize(p, _param_config(bits, scale_format))
  y = x * q
  if s is None:
    return y
  with cost_category("scaling"):
    return y * s


def relu(x):
  with cost_category("activation"):
    return jax.nn.relu(x)


def relu6(x):
  with cost_category("activation"):
    return jnp.minimum(jnp.maximum(x, 0.0), 6.0)


def identity(x):
  return x


class PReLU(nn.Module):
  """max(x,0) + a·min(x,0) with a learnable per-channel slope a (init 0.25)."""

  param_bits: Optional[int] = None
  scale_format: str = "none"
  init_slope: float = 0.25

  @nn.compact
  def __call__(self, x):
    a = self.param("slope", nn.initializers.constant(self.init_slope), (x.shape[-1],), jnp.float32)
    with cost_category("activation"):
      neg = scaled_mul(x, a, self.param_bits, self.scale_format)
      return jnp.where(x >= 0, x, neg)


class DPReLU(nn.Module):
  """PokeBNN's DPReLU: slope·(x − bias_x) − bias_y, slope = pos_slope if x−bias_x ≥ 0 else
  neg_slope; four per-channel parameters (inits 0, 0, 1.0, 0.25)."""

  param_bits: Optional[int] = None
  scale_format: str = "none"

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    bias_x = self.param("bias_x", nn.initializers.zeros, (c,), jnp.float32)
    bias_y = self.param("bias_y", nn.initializers.zeros, (c,), jnp.float32)
    pos = self.param("pos_slope", nn.initializers.ones, (c,), jnp.float32)
    neg = self.param("neg_slope", nn.initializers.constant(0.25), (c,), jnp.float32)
    # Both slopes share one grid, so the slope is selected first and multiplied once per element
    # (what hardware does: one compare, one select, one multiply).
    q, s = quantize(jnp.stack([pos, neg]), _param_config(self.param_bits, self.scale_format))
    with cost_category("activation"):
      xs = x - bias_x
      y = xs * jnp.where(xs >= 0, q[0], q[1])
      if s is not None:
        with cost_category("scaling"):
          y = y * s
      return y - bias_y


def _like(param, x):
  """A float32 parameter in the activations' compute dtype (bfloat16 under config.dtype), so a
  per-channel term does not promote the activations back to float32; unchanged in float32."""
  return param if param.dtype == x.dtype else param.astype(x.dtype)


class RSign(nn.Module):
  """ReActNet's RSign threshold: x − α (learnable per channel). The sign itself is the binary
  input quantizer of the following convolution (so it is priced as that quantizer)."""

  @nn.compact
  def __call__(self, x):
    alpha = _like(self.param("alpha", nn.initializers.zeros, (x.shape[-1],), jnp.float32), x)
    with cost_category("activation"):
      return x - alpha


class RPReLU(nn.Module):
  """ReActNet's RPReLU: x − γ + ζ if x > γ, else β·(x − γ) + ζ (per channel; β init 0.25)."""

  param_bits: Optional[int] = None
  scale_format: str = "none"

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    gamma = _like(self.param("gamma", nn.initializers.zeros, (c,), jnp.float32), x)
    zeta = _like(self.param("zeta", nn.initializers.zeros, (c,), jnp.float32), x)
    beta = _like(self.param("beta", nn.initializers.constant(0.25), (c,), jnp.float32), x)
    with cost_category("activation"):
      xs = x - gamma
      y = jnp.where(xs > 0, xs, scaled_mul(xs, beta, self.param_bits, self.scale_format))
      return y + zeta


def hard_sigmoid(x):
  """relu6(x + 3) / 6, as PokeBNN's SE gate."""
  return jnp.minimum(jnp.maximum(x + 3.0, 0.0), 6.0) * (1.0 / 6.0)


class SqueezeExcite(nn.Module):
  """Hard-sigmoid squeeze-excite: gate = hsig(W2·relu(W1·GAP(x_in) + b1) + b2); y · gate.

  `dense` builds the two 1×1 layers (quantized as the caller injects, e.g. 4-bit in PokeBNN);
  the gate is computed from `x_in` and applied to `y` (PokeBNN computes SE from the unit's input).
  """

  features: int
  ratio: float = 0.125
  dense1: Callable[..., nn.Module] = None
  dense2: Callable[..., nn.Module] = None

  @nn.compact
  def __call__(self, x_in, y=None, train: bool = False):
    y = x_in if y is None else y
    hidden = max(1, int(x_in.shape[-1] * self.ratio))
    with cost_category("residual_pool"):
      s = jnp.mean(x_in, axis=(1, 2))
    s = self.dense1(features=hidden, use_bias=True, name="se_reduce")(s, train)
    s = relu(s)
    s = self.dense2(features=self.features, use_bias=True, name="se_expand")(s, train)
    with cost_category("activation"):
      s = hard_sigmoid(s)
      return y * s[:, None, None, :]


def make_activation(
  name: str,
  param_bits: Optional[int] = None,
  scale_format: str = "none",
  module_name: Optional[str] = None,
):
  """An activation by name: a function for parameter-free ones, a module otherwise."""
  if name == "relu":
    return relu
  if name == "relu6":
    return relu6
  if name == "identity":
    return identity
  if name == "prelu":
    return PReLU(param_bits=param_bits, scale_format=scale_format, name=module_name)
  if name == "dprelu":
    return DPReLU(param_bits=param_bits, scale_format=scale_format, name=module_name)
  if name == "rprelu":
    return RPReLU(param_bits=param_bits, scale_format=scale_format, name=module_name)
  raise ValueError(f"activation={name!r} is not allowed; use one of {ACTIVATIONS}")
