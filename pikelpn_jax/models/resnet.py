"""ResNet-18 / ResNet-50 (He et al. 2016; torchvision layout, the v1.5 bottleneck with the stride on
the 3×3 conv), norm after every conv, projection shortcut (1×1 conv + norm) where shapes change.

stem: conv 7×7/2 (pad 3) → norm → ReLU → max-pool 3×3/2 (pad 1); stages of basic (18) or
bottleneck (50) blocks; head: global average pool → dense.
Module paths for bit rules: 'stem', 'stage{s}_block{b}/conv1|conv2|conv3|proj', 'head'.
config.model.depth: 18 | 50; config.model.zero_init_residual: the last norm of each block starts
at scale 0 (torchvision option; off by default as in torchvision).
"""

from __future__ import annotations

import flax.linen as nn

from pikelpn_jax.layers import relu
from pikelpn_jax.models.common import ConvNorm, Head, check_width, max_pool, residual_add
from pikelpn_jax.models.quant_plan import QuantPlan
from pikelpn_jax.models.registry import register

DEPTHS = {18: ("basic", (2, 2, 2, 2)), 50: ("bottleneck", (3, 4, 6, 3))}
STAGE_FEATURES = (64, 128, 256, 512)


class BasicBlock(nn.Module):
  plan: QuantPlan
  features: int
  strides: int = 1
  zero_init_residual: bool = False
  expansion = 1

  @nn.compact
  def __call__(self, x, train: bool = False):
    last_init = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
    y = ConvNorm(self.plan, self.features, 3, self.strides, act="relu", name="conv1")(x, train)
    y = ConvNorm(
      self.plan,
      self.features,
      3,
      1,
      act=None,
      follows_norm=True,
      norm_scale_init=last_init,
      name="conv2",
    )(y, train)
    if self.strides != 1 or x.shape[-1] != self.features:
      x = ConvNorm(self.plan, self.features, 1, self.strides, act=None, name="proj")(x, train)
    return relu(residual_add(x, y))


class Bottleneck(nn.Module):
  plan: QuantPlan
  features: int
  strides: int = 1
  zero_init_residual: bool = False
  expansion = 4

  @nn.compact
  def __call__(self, x, train: bool = False):
    last_init = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
    out = self.features * self.expansion
    y = ConvNorm(self.plan, self.features, 1, 1, act="relu", name="conv1")(x, train)
    y = ConvNorm(
      self.plan, self.features, 3, self.strides, act="relu", follows_norm=True, name="conv2"
    )(y, train)
    y = ConvNorm(
      self.plan, out, 1, 1, act=None, follows_norm=True, norm_scale_init=last_init, name="conv3"
    )(y, train)
    if self.strides != 1 or x.shape[-1] != out:
      x = ConvNorm(self.plan, out, 1, self.strides, act=None, name="proj")(x, train)
    return relu(residual_add(x, y))


class ResNet(nn.Module):
  plan: QuantPlan
  depth: int = 50
  num_classes: int = 1000
  width: float = 1.0
  zero_init_residual: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    kind, repeats = DEPTHS[self.depth]
    block_cls = BasicBlock if kind == "basic" else Bottleneck
    x = ConvNorm(
      self.plan,
      max(1, int(64 * self.width)),
      7,
      2,
      padding=((3, 3), (3, 3)),
      act="relu",
      signed_input=True,
      name="stem",
    )(x, train)
    x = max_pool(x, 3, 2, padding=((1, 1), (1, 1)))
    for s, (c, n) in enumerate(zip(STAGE_FEATURES, repeats)):
      for b in range(n):
        strides = 2 if s > 0 and b == 0 else 1
        x = block_cls(
          self.plan,
          max(1, int(c * self.width)),
          strides,
          self.zero_init_residual,
          name=f"stage{s}_block{b}",
        )(x, train)
    return Head(self.plan, self.num_classes, name="head")(x, train)


@register("resnet")
def build_resnet(model_cfg, num_classes, plan, dw_impl):
  del dw_impl  # no depthwise convs
  depth = model_cfg["depth"]
  if depth not in DEPTHS or isinstance(depth, bool):
    raise ValueError(f"config.model.depth={depth!r} is not allowed; use one of {sorted(DEPTHS)}")
  return ResNet(
    plan=plan,
    depth=depth,
    num_classes=num_classes,
    width=check_width(model_cfg["width"]),
    zero_init_residual=bool(model_cfg["zero_init_residual"]),
  )
