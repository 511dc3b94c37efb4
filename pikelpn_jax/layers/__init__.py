"""Quantized Flax layers: MAC layers, QuantNorm and activations."""

from pikelpn_jax.layers.activations import (
  ACTIVATIONS,
  DPReLU,
  PReLU,
  RPReLU,
  RSign,
  SqueezeExcite,
  hard_sigmoid,
  make_activation,
  relu,
  relu6,
  scaled_mul,
)
from pikelpn_jax.layers.conv import (
  DW_IMPLS,
  PW_IMPLS,
  QConv,
  QDense,
  QDepthwiseConv,
  combine_scales,
  depthwise_shift_add,
  pointwise_dot,
  resolve_dw_impl,
  resolve_pw_impl,
)
from pikelpn_jax.layers.norm import QuantNorm
