"""PokeBNN (Zhang et al., CVPR 2022), following the official Flax code
(google/aqt: aqt/jax_legacy/jax/imagenet/pokebnn.py; paper-notes §10).

PokeInit stem: 'init_conv' 4×4/4 VALID → `init_group` (32) channels → norm → DPReLU;
  'init_conv_group' 3×3/1 SAME, 64 channels, feature_group_count=init_group → norm → DPReLU.
16 bottleneck blocks resblock0..resblock15 (ResNet-50 layout, features int(c·width)), each three
PokeConv units unit1 (1×1), unit2 (3×3, block stride), unit3 (1×1, 4× features, long shortcut).
PokeConv, input x (r = x), in this order: conv (binary) → norm (scale init 0 in unit3) →
  + reshape(r, 'zeropad') → + reshape(r1, 'tile') (unit3 only) → DPReLU →
  × SE(r) (gate from the unit INPUT: GAP → 1×1 to C_in//8, int4 input → ReLU → 1×1 to C_out,
  uint4 input → hard sigmoid) → second norm 'bn_split'.
reshape: more channels than needed → average consecutive groups; fewer → zero-pad ('zeropad') or
  tile ('tile'); spatial mismatch → avg-pool 3×3 stride 2 SAME.
Head: global mean → dense (8-bit in the paper).
Module paths for bit rules: 'init_conv', 'init_conv_group', 'resblock{i}/unit{j}' (the binary
conv), 'resblock{i}/unit{j}/se/se_reduce', '.../se/se_expand', 'head'.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax.numpy as jnp

from pikelpn_jax._jax_internals import cost_category
from pikelpn_jax.config_base import check_int
from pikelpn_jax.layers import DPReLU, QConv, QDense, QuantNorm, SqueezeExcite
from pikelpn_jax.models.common import ConvNorm, Head, apply_norm, avg_pool, check_width, module_path
from pikelpn_jax.models.quant_plan import QuantPlan
from pikelpn_jax.models.registry import register

# (stride, features at width 1) of the 16 bottleneck blocks (the official list).
BLOCKS = (
  (1, 64),
  (1, 64),
  (1, 64),
  (2, 128),
  (1, 128),
  (1, 128),
  (1, 128),
  (2, 256),
  (1, 256),
  (1, 256),
  (1, 256),
  (1, 256),
  (1, 256),
  (2, 512),
  (1, 512),
  (1, 512),
)


def reshape_shortcut(r, out_shape, method: str):
  """Matches r to out_shape without parameters (the official reshape_add, minus the add).

  Our extension: when the channel ratio is not an integer, 'tile' repeats then slices (the
  official code asserts divisibility implicitly by failing on the add).
  """
  out_f, in_f = out_shape[-1], r.shape[-1]
  if in_f > out_f:
    n = in_f // out_f
    r = r[..., : out_f * n]
    r = jnp.mean(jnp.reshape(r, r.shape[:3] + (out_f, n)), axis=4)
  elif in_f < out_f:
    if method == "tile":
      r = jnp.tile(r, (1, 1, 1, -(-out_f // in_f)))[..., :out_f]
    else:
      r = jnp.pad(r, ((0, 0), (0, 0), (0, 0), (0, out_f - in_f)))
  if r.shape[1:3] != tuple(out_shape[1:3]):
    r = avg_pool(r, 3, 2, "SAME")
  return r


class PokeConv(nn.Module):
  plan: QuantPlan
  features: int
  kernel_size: int = 1
  strides: int = 1
  zero_init_norm: bool = False
  se_ratio: float = 0.125

  @nn.compact
  def __call__(self, x, r1=None, train: bool = False):
    plan = self.plan
    path = module_path(self)
    r = x
    conv = QConv(
      self.features,
      w_quant=plan.weight(path),
      x_quant=plan.act(path, True),
      kernel_size=self.kernel_size,
      strides=self.strides,
      impl=plan.pw_impl,
      name="conv",
    )
    scale_init = nn.initializers.zeros if self.zero_init_norm else nn.initializers.ones
    y = apply_norm(plan, conv, x, train, scale_init=scale_init, name="bn")
    with cost_category("residual_pool"):
      y = y + reshape_shortcut(r, y.shape, "zeropad")
      if r1 is not None:
        y = y + reshape_shortcut(r1, y.shape, "tile")
    y = DPReLU(name="dprelu")(y)
    se_path = f"{path}/se"
    dense1 = functools.partial(
      QDense,
      w_quant=plan.weight(f"{se_path}/se_reduce"),
      x_quant=plan.act(f"{se_path}/se_reduce", True),
    )
    dense2 = functools.partial(
      QDense,
      w_quant=plan.weight(f"{se_path}/se_expand"),
      x_quant=plan.act(f"{se_path}/se_expand", False),
    )
    y = SqueezeExcite(self.features, self.se_ratio, dense1, dense2, name="se")(r, y, train)
    return QuantNorm(
      bits=plan.norm_bits,
      bias_bits=plan.norm_bias_bits,
      scale_format=plan.scale_format,
      name="bn_split",
    )(y, train)


class Bottleneck(nn.Module):
  plan: QuantPlan
  features: int
  strides: int = 1
  se_ratio: float = 0.125

  @nn.compact
  def __call__(self, x, train: bool = False):
    r1 = x
    x = PokeConv(self.plan, self.features, 1, 1, False, self.se_ratio, name="unit1")(x, None, train)
    x = PokeConv(self.plan, self.features, 3, self.strides, False, self.se_ratio, name="unit2")(
      x, None, train
    )
    return PokeConv(self.plan, 4 * self.features, 1, 1, True, self.se_ratio, name="unit3")(
      x, r1, train
    )


class PokeBNN(nn.Module):
  plan: QuantPlan
  num_classes: int = 1000
  width: float = 1.0
  init_group: int = 32
  se_ratio: float = 0.125

  @nn.compact
  def __call__(self, x, train: bool = False):
    # PokeInit: no input pixel is used twice; its widths are not scaled by `width` (official).
    x = ConvNorm(
      self.plan,
      self.init_group,
      4,
      4,
      padding="VALID",
      act="dprelu",
      signed_input=True,
      name="init_conv",
    )(x, train)
    x = ConvNorm(
      self.plan,
      64,
      3,
      1,
      feature_group_count=self.init_group,
      act="dprelu",
      signed_input=True,
      name="init_conv_group",
    )(x, train)
    for i, (s, c) in enumerate(BLOCKS):
      x = Bottleneck(self.plan, max(1, int(c * self.width)), s, self.se_ratio, name=f"resblock{i}")(
        x, train
      )
    return Head(self.plan, self.num_classes, signed_input=True, name="head")(x, train)


@register("pokebnn")
def build_pokebnn(model_cfg, num_classes, plan, dw_impl):
  del dw_impl  # no depthwise convs
  init_group = check_int(
    "config.model.init_group",
    model_cfg["init_group"],
    1,
    allowed="a positive divisor of 64",
  )
  if 64 % init_group:
    raise ValueError(
      f"config.model.init_group={init_group!r} is not allowed; use a positive divisor of 64"
    )
  se_ratio = model_cfg["se_ratio"]
  if isinstance(se_ratio, bool) or not isinstance(se_ratio, (int, float)) or not 0 < se_ratio <= 1:
    raise ValueError(f"config.model.se_ratio={se_ratio!r} is not allowed; use a number in (0, 1]")
  return PokeBNN(
    plan=plan,
    num_classes=num_classes,
    width=check_width(model_cfg["width"]),
    init_group=init_group,
    se_ratio=float(se_ratio),
  )
