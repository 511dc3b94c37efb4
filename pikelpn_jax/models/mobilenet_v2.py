"""MobileNetV2 (Sandler et al. 2018; torchvision layout, no dropout).

stem: conv 3×3/2 → norm → act; 17 inverted residual blocks block0..block16, each
  [expand 1×1 → norm → act] (absent when the expansion is 1) → dw 3×3 → norm → act →
  project 1×1 → norm (linear bottleneck), plus the residual when stride 1 and in == out;
last_conv 1×1 → norm → act; head: global average pool → dense.
Channels are rounded with _make_divisible(c·m, 8); the last conv has max(1280, 1280·m) channels.
Module paths for bit rules: 'stem', 'block{i}/expand', 'block{i}/dw', 'block{i}/project',
'last_conv', 'head'. Block inputs are linear (signed); inputs after ReLU/ReLU6 are unsigned.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn

from pikelpn_jax.models.common import (
  SIGN_PRESERVING_ACTS,
  ConvNorm,
  Head,
  check_width,
  residual_add,
)
from pikelpn_jax.models.mobilenet_v1 import check_act
from pikelpn_jax.models.quant_plan import QuantPlan
from pikelpn_jax.models.registry import register
from pikelpn_jax.quant.config import check_bits

# (expansion t, output channels c, repeats n, first stride s) at width 1.
SETTINGS = (
  (1, 16, 1, 1),
  (6, 24, 2, 2),
  (6, 32, 3, 2),
  (6, 64, 4, 2),
  (6, 96, 3, 1),
  (6, 160, 3, 2),
  (6, 320, 1, 1),
)


def make_divisible(v: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
  """torchvision's rounding: nearest multiple of `divisor`, never more than 10 % below v."""
  min_value = min_value or divisor
  new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
  if new_v < 0.9 * v:
    new_v += divisor
  return new_v


class InvertedResidual(nn.Module):
  plan: QuantPlan
  features: int
  strides: int
  expansion: int
  act: str = "relu6"
  act_param_bits: Optional[int] = None
  signed_input: bool = True
  dw_impl: str = "auto"

  @nn.compact
  def __call__(self, x, train: bool = False):
    cin = x.shape[-1]
    signed_act = self.act not in SIGN_PRESERVING_ACTS
    y = x
    dw_signed = self.signed_input
    if self.expansion != 1:
      y = ConvNorm(
        self.plan,
        cin * self.expansion,
        1,
        1,
        act=self.act,
        act_param_bits=self.act_param_bits,
        signed_input=self.signed_input,
        name="expand",
      )(y, train)
      dw_signed = signed_act
    y = ConvNorm(
      self.plan,
      y.shape[-1],
      3,
      self.strides,
      depthwise=True,
      act=self.act,
      act_param_bits=self.act_param_bits,
      signed_input=dw_signed,
      follows_norm=self.expansion != 1,
      dw_impl=self.dw_impl,
      name="dw",
    )(y, train)
    y = ConvNorm(
      self.plan,
      self.features,
      1,
      1,
      act=None,
      signed_input=signed_act,
      follows_norm=True,
      name="project",
    )(y, train)
    if self.strides == 1 and cin == self.features:
      y = residual_add(x, y)
    return y


class MobileNetV2(nn.Module):
  plan: QuantPlan
  num_classes: int = 1000
  width: float = 1.0
  act: str = "relu6"
  act_param_bits: Optional[int] = None
  stem_stride: int = 2
  dw_impl: str = "auto"

  @nn.compact
  def __call__(self, x, train: bool = False):
    m = self.width
    signed_act = self.act not in SIGN_PRESERVING_ACTS
    x = ConvNorm(
      self.plan,
      make_divisible(32 * m),
      3,
      self.stem_stride,
      act=self.act,
      act_param_bits=self.act_param_bits,
      signed_input=True,
      name="stem",
    )(x, train)
    i = 0
    signed = signed_act  # the stem's output feeds block0
    for t, c, n, s in SETTINGS:
      for j in range(n):
        x = InvertedResidual(
          self.plan,
          make_divisible(c * m),
          s if j == 0 else 1,
          t,
          self.act,
          self.act_param_bits,
          signed,
          self.dw_impl,
          name=f"block{i}",
        )(x, train)
        signed = True  # linear bottleneck outputs
        i += 1
    x = ConvNorm(
      self.plan,
      make_divisible(1280 * max(1.0, m)),
      1,
      1,
      act=self.act,
      act_param_bits=self.act_param_bits,
      signed_input=True,
      name="last_conv",
    )(x, train)
    return Head(self.plan, self.num_classes, signed_act, name="head")(x, train)


@register("mobilenet_v2")
def build_mobilenet_v2(model_cfg, num_classes, plan, dw_impl):
  stem_stride = model_cfg["stem_stride"]
  if stem_stride not in (1, 2) or isinstance(stem_stride, bool):
    raise ValueError(f"config.model.stem_stride={stem_stride!r} is not allowed; use 1 or 2")
  return MobileNetV2(
    plan=plan,
    num_classes=num_classes,
    width=check_width(model_cfg["width"]),
    act=check_act(model_cfg["act"]),
    act_param_bits=check_bits(model_cfg["act_param_bits"], "config.model.act_param_bits"),
    stem_stride=stem_stride,
    dw_impl=dw_impl,
  )
