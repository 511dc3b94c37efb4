"""Building blocks shared by the model zoo: conv → norm (→ activation), pooling, residual add, head.

Every MAC layer takes its quantizers from the model's QuantPlan by its own module path, so the
same definition serves float, 8-bit, 4-bit and binary models. With the plan's QuantNorm on, the
conv returns its integer accumulator and scale and QuantNorm folds the scale into its multiplier;
otherwise the conv dequantizes and the folded float norm (QuantNorm(bits=None)) follows.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from pikelpn_jax._jax_internals import cost_category
from pikelpn_jax.layers import QConv, QDense, QDepthwiseConv, QuantNorm, make_activation
from pikelpn_jax.models.quant_plan import QuantPlan

SIGN_PRESERVING_ACTS = ("relu", "relu6")  # outputs are >= 0: the next quantizer is unsigned


def check_width(width, field: str = "config.model.width") -> float:
  if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
    raise ValueError(f"{field}={width!r} is not allowed; use a positive number")
  return float(width)


def module_path(module: nn.Module) -> str:
  return "/".join(str(p) for p in module.path)


def apply_norm(
  plan: QuantPlan,
  conv: nn.Module,
  x,
  train: bool,
  *,
  scale_init=nn.initializers.ones,
  name: str = "norm",
):
  """conv(x) followed by the plan's norm (QuantNorm fed by the accumulator, or the float norm)."""
  if plan.quantnorm:
    acc, s = conv(x, train, return_acc=True)
    norm = QuantNorm(
      bits=plan.norm_bits,
      bias_bits=plan.norm_bias_bits,
      scale_format=plan.scale_format,
      scale_init=scale_init,
      name=name,
    )
    return norm(acc, train, in_scale=s)
  y = conv(x, train)
  return QuantNorm(bits=None, scale_init=scale_init, name=name)(y, train)


def activate(x, act: Optional[str], param_bits=None, scale_format: str = "none", name: str = "act"):
  if act is None:
    return x
  f = make_activation(act, param_bits=param_bits, scale_format=scale_format, module_name=name)
  return f(x).astype(x.dtype)  # float32 activation params must not promote bfloat16 activations


class ConvNorm(nn.Module):
  """A (depthwise) conv, its norm and an optional activation; quantizers from the plan.

  signed_input: whether the input can be negative (decides the activation grid).
  follows_norm: the input comes straight from a norm (+ ReLU) of this plan (see QuantPlan.act).
  weight_path: resolve the weight quantizer from another path (PikeLPN with DHQ off).
  """

  plan: QuantPlan
  features: int
  kernel_size: Union[int, Sequence[int]] = 3
  strides: Union[int, Sequence[int]] = 1
  padding: Union[str, Sequence[Tuple[int, int]]] = "SAME"
  depthwise: bool = False
  feature_group_count: int = 1
  act: Optional[str] = "relu"
  act_param_bits: Optional[int] = None
  signed_input: bool = False
  follows_norm: bool = False
  weight_path: Optional[str] = None
  dw_impl: str = "auto"
  norm_scale_init: Any = nn.initializers.ones

  @nn.compact
  def __call__(self, x, train: bool = False):
    path = module_path(self)
    wq = self.plan.weight(self.weight_path or path)
    xq = self.plan.act(path, self.signed_input, self.follows_norm)
    if self.depthwise:
      conv = QDepthwiseConv(
        features=x.shape[-1],
        w_quant=wq,
        x_quant=xq,
        kernel_size=self.kernel_size,
        strides=self.strides,
        padding=self.padding,
        impl=self.dw_impl,
        name="conv",
      )
    else:
      conv = QConv(
        features=self.features,
        w_quant=wq,
        x_quant=xq,
        kernel_size=self.kernel_size,
        strides=self.strides,
        padding=self.padding,
        feature_group_count=self.feature_group_count,
        impl=self.plan.pw_impl,
        name="conv",
      )
    y = apply_norm(self.plan, conv, x, train, scale_init=self.norm_scale_init)
    return activate(y, self.act, self.act_param_bits, self.plan.scale_format)


class Head(nn.Module):
  """Global average pool and the (quantized) classifier with a float bias."""

  plan: QuantPlan
  num_classes: int
  signed_input: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = global_avg_pool(x)
    path = module_path(self)
    dense = QDense(
      features=self.num_classes,
      w_quant=self.plan.weight(path),
      x_quant=self.plan.act(path, self.signed_input),
      use_bias=True,
      name="dense",
    )
    return dense(x, train)


def global_avg_pool(x):
  with cost_category("residual_pool"):
    return jnp.mean(x, axis=(1, 2))


def residual_add(x, y):
  with cost_category("residual_pool"):
    return x + y


def max_pool(x, window: int = 3, stride: int = 2, padding="SAME"):
  with cost_category("residual_pool"):
    return nn.max_pool(x, (window, window), (stride, stride), padding)


def avg_pool(x, window: int, stride: int, padding="SAME", count_include_pad: bool = True):
  with cost_category("residual_pool"):
    if count_include_pad or x.dtype == jnp.float32:
      return nn.avg_pool(
        x, (window, window), (stride, stride), padding, count_include_pad=count_include_pad
      )
    # nn.avg_pool counts the window's valid inputs in float32, which would promote bfloat16
    # activations to float32 for the rest of the network; count them in x's dtype (exact: the
    # counts are small integers).
    dims, strides = (window, window), (stride, stride)
    total = nn.pooling.pool(x, 0.0, lax.add, dims, strides, padding)
    ones = jnp.ones((1,) + x.shape[1:-1] + (1,), x.dtype)
    return total / nn.pooling.pool(ones, 0.0, lax.add, dims, strides, padding)
