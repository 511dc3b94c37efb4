"""QuantPlan: everything a model needs to build its quantized layers, resolved from the config.

One plan serves float, 8-bit, 4-bit and binary models: layers ask it for their weight and input
quantizers by module path (see bit_rules.py) and for the norm that follows a MAC layer.
`weight_quant` / `act_quant` = False turn every weight / activation quantizer into float (the
training loop's quantization schedule), whatever the rules say.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional, Tuple

from pikelpn_jax.config_base import check_int, model_fields
from pikelpn_jax.layers.conv import PW_IMPLS
from pikelpn_jax.models import bit_rules
from pikelpn_jax.quant.config import (
  FLOAT,
  SCALE_FORMATS,
  SCALE_ROUNDINGS,
  QuantConfig,
  act_quant,
  check_bits,
  weight_quant,
)

MODEL_QUANT_FIELDS = (
  "quant",
  "bit_rules",
  "quantnorm",
  "quantnorm_bits",
  "quantnorm_bias_bits",
  "double_quant",
  "dq_format",
  "dq_round",
  "dhq",
)


@dataclasses.dataclass(frozen=True)
class QuantPlan:
  defaults: bit_rules.Frozen = ()
  rules: Tuple[Tuple[str, bit_rules.Frozen], ...] = ()
  weight_quant: bool = True
  act_quant: bool = True
  scale_format: str = "none"  # Double Quantization of weight/act/norm scales
  scale_round: str = "auto"  # pow2 rounding of weight/act scales (ScaleQuant.rounding)
  norm_bits: Optional[int] = None  # QuantNorm multiplier bits; None: the folded float norm
  norm_bias_bits: Optional[int] = 32
  dhq: bool = True  # False: depthwise weights use the pointwise quantizer
  pw_impl: str = "auto"  # 1×1 convs: auto | conv | dot (QConv.impl)

  @property
  def quantnorm(self) -> bool:
    return self.norm_bits is not None

  def settings(self, path: str) -> bit_rules.LayerQuant:
    return bit_rules.resolve(path, self.rules, dict(self.defaults))

  def weight(self, path: str) -> QuantConfig:
    s = self.settings(path)
    if not self.weight_quant or s.w_bits is None:
      return FLOAT
    return weight_quant(
      s.w_bits,
      per_channel=s.w_per_channel,
      channel_axis=s.w_channel_axis,
      scale=self.scale_format,
      scale_round=self.scale_round,
      calibration=s.w_calibration,
      half_shift=s.half_shift,
    )

  def act(self, path: str, signed: bool, follows_norm: bool = False) -> QuantConfig:
    """The input quantizer of the layer at `path`.

    signed: what the model knows about the input (False after ReLU); a rule's a_signed wins.
    follows_norm: the input comes straight from this plan's QuantNorm (+ a ReLU), which can emit
      it on the activation grid, so with QuantNorm on the requantization scale is folded.
    """
    s = self.settings(path)
    if not self.act_quant or s.a_bits is None:
      return FLOAT
    sign = signed if s.a_signed is None else s.a_signed
    if s.a_bits == 1:
      sign = True  # binary grids are ±1
    return act_quant(
      s.a_bits,
      signed=sign,
      calibration=s.a_calibration,
      bound=float(s.a_bound),
      scale=self.scale_format,
      scale_round=self.scale_round,
      half_shift=s.half_shift,
      folded=self.quantnorm and follows_norm,
    )


def plan_from_config(
  model_cfg: Mapping[str, Any], *, weight_quant: bool = True, act_quant: bool = True
) -> QuantPlan:
  """Builds and validates the plan from config.model (fields: see MODEL_QUANT_FIELDS)."""
  m = model_fields(model_cfg)
  defaults = dict(m["quant"] or {})
  bit_rules.check_layer_settings(defaults, "config.model.quant")
  rules = bit_rules.compile_rules(m["bit_rules"] or (), "config.model.bit_rules")
  double_quant = bool(m["double_quant"])
  dq_format = m["dq_format"]
  if dq_format not in SCALE_FORMATS or dq_format == "none":
    raise ValueError(f"config.model.dq_format={dq_format!r} is not allowed; use 'pow2' or 'fixed'")
  dq_round = m["dq_round"]
  if dq_round not in SCALE_ROUNDINGS:
    raise ValueError(
      f"config.model.dq_round={dq_round!r} is not allowed; use one of {SCALE_ROUNDINGS}"
    )
  pw_impl = m["pw_impl"]
  if pw_impl not in PW_IMPLS:
    raise ValueError(f"config.model.pw_impl={pw_impl!r} is not allowed; use one of {PW_IMPLS}")
  norm_bits = None
  if m["quantnorm"]:
    norm_bits = check_bits(m["quantnorm_bits"], "config.model.quantnorm_bits", allow_none=False)
  bias_bits = m["quantnorm_bias_bits"]
  if bias_bits is not None:
    check_int("config.model.quantnorm_bias_bits", bias_bits, 2, 32, allowed="an int 2..32 or None")
  return QuantPlan(
    defaults=bit_rules.freeze(defaults),
    rules=rules,
    weight_quant=bool(weight_quant),
    act_quant=bool(act_quant),
    scale_format=dq_format if double_quant else "none",
    scale_round=dq_round,
    norm_bits=norm_bits,
    norm_bias_bits=bias_bits,
    dhq=bool(m["dhq"]),
    pw_impl=pw_impl,
  )
