"""ReActNet-A (Liu et al., ECCV 2020), our reading of the paper and its official PyTorch code
(liuzechun/ReActNet, mobilenet variant; recalled, not re-read here — see docs/models.md).

stem: real-valued conv 3×3/2 → 32 channels → norm (no activation);
13 blocks block0..block12 on the MobileNetV1 channel/stride plan, each:
  RSign (learnable threshold, the sign is the conv's binary input quantizer) → binary 3×3 conv
  (full, not depthwise; stride 1 or 2) → norm → + shortcut (x, or avg-pool 2×2/2 of x when
  strided) → RPReLU → RSign → binary 1×1 conv → norm → + shortcut → RPReLU.
  Where the channels double, the 1×1 is two C→C binary convs whose outputs (each plus the
  shortcut) are concatenated: the shortcut is duplicated, no real-valued projection conv.
head: global average pool → real-valued dense.
Binary weights: sign(w)·mean|w| per output channel; binary activations: sign(x) = ±1.
Module paths for bit rules: 'stem', 'block{i}/conv3x3', 'block{i}/pw' (or '/pw_down1',
'/pw_down2'), 'head'.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from pikelpn_jax._jax_internals import cost_category
from pikelpn_jax.layers import QConv, RPReLU, RSign
from pikelpn_jax.models.common import ConvNorm, Head, apply_norm, avg_pool, check_width, module_path
from pikelpn_jax.models.mobilenet_v1 import BLOCKS, STEM_FEATURES
from pikelpn_jax.models.quant_plan import QuantPlan
from pikelpn_jax.models.registry import register


class BinaryConvNorm(nn.Module):
  """RSign → binary conv → norm (no activation); quantizers from the plan by this module's path."""

  plan: QuantPlan
  features: int
  kernel_size: int = 1
  strides: int = 1

  @nn.compact
  def __call__(self, x, train: bool = False):
    path = module_path(self)
    x = RSign(name="rsign")(x)
    conv = QConv(
      self.features,
      w_quant=self.plan.weight(path),
      x_quant=self.plan.act(path, True),
      kernel_size=self.kernel_size,
      strides=self.strides,
      impl=self.plan.pw_impl,
      name="conv",
    )
    return apply_norm(self.plan, conv, x, train)


class ReActBlock(nn.Module):
  plan: QuantPlan
  features: int
  strides: int = 1

  @nn.compact
  def __call__(self, x, train: bool = False):
    cin = x.shape[-1]
    y = BinaryConvNorm(self.plan, cin, 3, self.strides, name="conv3x3")(x, train)
    shortcut = avg_pool(x, 2, 2, "SAME", count_include_pad=False) if self.strides != 1 else x
    with cost_category("residual_pool"):
      y = y + shortcut
    y = RPReLU(name="rprelu1")(y)
    if self.features == cin:
      z = BinaryConvNorm(self.plan, cin, 1, 1, name="pw")(y, train)
      with cost_category("residual_pool"):
        z = z + y
    elif self.features == 2 * cin:
      z1 = BinaryConvNorm(self.plan, cin, 1, 1, name="pw_down1")(y, train)
      z2 = BinaryConvNorm(self.plan, cin, 1, 1, name="pw_down2")(y, train)
      with cost_category("residual_pool"):
        z = jnp.concatenate([z1 + y, z2 + y], axis=-1)
    else:
      raise ValueError(
        f"ReActNet block: features={self.features} must equal or double the input channels ({cin})"
      )
    return RPReLU(name="rprelu2")(z)


class ReActNet(nn.Module):
  plan: QuantPlan
  num_classes: int = 1000
  width: float = 1.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    m = self.width
    x = ConvNorm(
      self.plan, max(1, int(STEM_FEATURES * m)), 3, 2, act=None, signed_input=True, name="stem"
    )(x, train)
    for i, (c, s) in enumerate(BLOCKS):
      x = ReActBlock(self.plan, max(1, int(c * m)), s, name=f"block{i}")(x, train)
    return Head(self.plan, self.num_classes, signed_input=True, name="head")(x, train)


@register("reactnet")
def build_reactnet(model_cfg, num_classes, plan, dw_impl):
  del dw_impl  # no depthwise convs
  return ReActNet(plan=plan, num_classes=num_classes, width=check_width(model_cfg["width"]))
