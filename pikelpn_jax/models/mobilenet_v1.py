"""MobileNetV1 (Howard et al. 2017, Table 1) and PikeLPN on the same geometry.

Layout (width m scales every channel count as int(c·m)):
  stem: conv 3×3/2 → norm → act;  block0..block12: dw 3×3 (stride 1 or 2) → norm → act →
  pw 1×1 → norm → act;  head: global average pool → dense (bias).
PikeLPN differs only in how it is quantized (QuantNorm, Double Quantization, DHQ: config.model.*),
see docs/models.md. Module paths for bit rules: 'stem', 'block{i}/dw', 'block{i}/pw', 'head'.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn

from pikelpn_jax.layers import ACTIVATIONS
from pikelpn_jax.models.common import SIGN_PRESERVING_ACTS, ConvNorm, Head, check_width
from pikelpn_jax.models.quant_plan import QuantPlan
from pikelpn_jax.models.registry import register
from pikelpn_jax.quant.config import check_bits

# (pointwise output channels, depthwise stride) of the 13 separable blocks at width 1.
BLOCKS = (
  (64, 1),
  (128, 2),
  (128, 1),
  (256, 2),
  (256, 1),
  (512, 2),
  (512, 1),
  (512, 1),
  (512, 1),
  (512, 1),
  (512, 1),
  (1024, 2),
  (1024, 1),
)
STEM_FEATURES = 32


def check_act(act, field="config.model.act"):
  if act not in ACTIVATIONS or act == "identity":
    raise ValueError(
      f"{field}={act!r} is not allowed; use one of "
      f"{tuple(a for a in ACTIVATIONS if a != 'identity')}"
    )
  return act


def check_stride(s, field):
  if isinstance(s, bool) or s not in (1, 2):
    raise ValueError(f"{field}={s!r} is not allowed; use 1 or 2")
  return s


class SeparableBlock(nn.Module):
  plan: QuantPlan
  features: int
  strides: int = 1
  act: str = "relu"
  act_param_bits: Optional[int] = None
  signed_input: bool = False
  dw_impl: str = "auto"

  @nn.compact
  def __call__(self, x, train: bool = False):
    block = "/".join(str(p) for p in self.path)
    signed_out = self.act not in SIGN_PRESERVING_ACTS
    # DHQ off: the depthwise weights get the pointwise layer's quantizer (bits and granularity).
    dw_weight_path = None if self.plan.dhq else f"{block}/pw"
    x = ConvNorm(
      self.plan,
      x.shape[-1],
      3,
      self.strides,
      depthwise=True,
      act=self.act,
      act_param_bits=self.act_param_bits,
      signed_input=self.signed_input,
      follows_norm=True,
      weight_path=dw_weight_path,
      dw_impl=self.dw_impl,
      name="dw",
    )(x, train)
    return ConvNorm(
      self.plan,
      self.features,
      1,
      1,
      act=self.act,
      act_param_bits=self.act_param_bits,
      signed_input=signed_out,
      follows_norm=True,
      name="pw",
    )(x, train)


class MobileNetV1(nn.Module):
  plan: QuantPlan
  num_classes: int = 1000
  width: float = 1.0
  act: str = "relu"
  act_param_bits: Optional[int] = None
  stem_stride: int = 2
  dw_impl: str = "auto"

  @nn.compact
  def __call__(self, x, train: bool = False):
    m = self.width
    signed_out = self.act not in SIGN_PRESERVING_ACTS
    x = ConvNorm(
      self.plan,
      max(1, int(STEM_FEATURES * m)),
      3,
      self.stem_stride,
      act=self.act,
      act_param_bits=self.act_param_bits,
      signed_input=True,
      name="stem",
    )(x, train)
    for i, (c, s) in enumerate(BLOCKS):
      x = SeparableBlock(
        self.plan,
        max(1, int(c * m)),
        s,
        self.act,
        self.act_param_bits,
        signed_out,
        self.dw_impl,
        name=f"block{i}",
      )(x, train)
    return Head(self.plan, self.num_classes, signed_out, name="head")(x, train)


class PikeLPN(MobileNetV1):
  """MobileNetV1 geometry quantized the PikeLPN way (a separate class so traces say 'PikeLPN')."""


def _build(cls, model_cfg, num_classes, plan, dw_impl):
  return cls(
    plan=plan,
    num_classes=num_classes,
    width=check_width(model_cfg["width"]),
    act=check_act(model_cfg["act"]),
    act_param_bits=check_bits(model_cfg["act_param_bits"], "config.model.act_param_bits"),
    stem_stride=check_stride(model_cfg["stem_stride"], "config.model.stem_stride"),
    dw_impl=dw_impl,
  )


@register("mobilenet_v1")
def build_mobilenet_v1(model_cfg, num_classes, plan, dw_impl):
  return _build(MobileNetV1, model_cfg, num_classes, plan, dw_impl)


@register("pikelpn")
def build_pikelpn(model_cfg, num_classes, plan, dw_impl):
  return _build(PikeLPN, model_cfg, num_classes, plan, dw_impl)
