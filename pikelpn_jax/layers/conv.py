"""Quantized convolution and dense layers (NHWC), quantizers injected as fields.

Each layer quantizes its input and its weights to integer codes, runs the MAC on the codes (so the
accumulator holds integers) and then multiplies by the combined scale s_x·s_w: the dequantization
that a real integer pipeline performs. With `return_acc=True` the layer returns (acc, scale)
instead, so a following QuantNorm can fold the scale into its multiplier (no separate multiply).
"""

from __future__ import annotations

import functools
from typing import Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from pikelpn_jax._jax_internals import cost_category, materialize, tag
from pikelpn_jax.quant.config import FLOAT, QuantConfig
from pikelpn_jax.quant.quantizer import Quantizer
from pikelpn_jax.quant.ste import quantize_ste

DW_IMPLS = ("auto", "grouped", "shift_add")
PW_IMPLS = ("auto", "conv", "dot")
BIAS_BITS = 32  # biases of quantized layers live on the accumulator grid
_DN = ("NHWC", "HWIO", "NHWC")

default_kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _resolve_impl(impl: str, allowed, field: str, on_cpu: str, elsewhere: str) -> str:
  if impl not in allowed:
    raise ValueError(f"{field}={impl!r} is not allowed; use one of {allowed}")
  if impl == "auto":
    return on_cpu if jax.default_backend() == "cpu" else elsewhere
  return impl


def resolve_dw_impl(impl: str) -> str:
  """'auto' = the fast form for the backend: shift-and-add on CPU, grouped conv elsewhere."""
  return _resolve_impl(impl, DW_IMPLS, "dw_impl", "shift_add", "grouped")


def resolve_pw_impl(impl: str) -> str:
  """'auto' = the fast 1×1-conv form for the backend: 'dot' on CPU, 'conv' elsewhere."""
  return _resolve_impl(impl, PW_IMPLS, "QConv.impl", "dot", "conv")


def _pair(v) -> Tuple[int, int]:
  return (v, v) if isinstance(v, int) else tuple(v)


def same_pads(size: int, k: int, s: int) -> Tuple[int, int]:
  out = -(-size // s)
  total = max((out - 1) * s + k - size, 0)
  return total // 2, total - total // 2


def _explicit_padding(x_shape, kernel, strides, padding):
  if isinstance(padding, str):
    if padding == "VALID":
      return ((0, 0), (0, 0))
    if padding == "SAME":
      return tuple(same_pads(x_shape[1 + i], kernel[i], strides[i]) for i in range(2))
    raise ValueError(f"padding={padding!r} is not allowed; use 'SAME', 'VALID' or explicit pairs")
  return tuple(tuple(p) for p in padding)


def _tap_slice(xp, i: int, j: int, strides, out_hw):
  """The (ho, wo) window of xp that tap (i, j) of a strided conv reads."""
  (sh, sw), (ho, wo) = strides, out_hw
  return lax.slice(
    xp,
    (0, i, j, 0),
    (xp.shape[0], i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1, xp.shape[3]),
    (1, sh, sw, 1),
  )


def _tap_sum(xp, w, strides, out_hw):
  """sum over taps (i, j) of the strided slice of xp at (i, j) times the per-channel tap w[i, j]."""
  out = None
  for i in range(w.shape[0]):
    for j in range(w.shape[1]):
      term = _tap_slice(xp, i, j, strides, out_hw) * w[i, j, 0]
      out = term if out is None else out + term
  return out


def _shift_add_fwd(x, w, strides, pads):
  xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  ho = (xp.shape[1] - w.shape[0]) // strides[0] + 1
  wo = (xp.shape[2] - w.shape[1]) // strides[1] + 1
  return _tap_sum(xp, w, strides, (ho, wo)), (xp, w)


def _shift_add_bwd(strides, pads, res, g):
  # Written by hand because autodiff's form (the sum of nine padded copies of g, one per tap)
  # makes XLA:CPU recompute the whole upstream backward (norm, quantizer masks) once per tap.
  # Here g is padded once and read by nine slices, the same gather form as the forward.
  xp, w = res
  kh, kw = w.shape[0], w.shape[1]
  (sh, sw), (_, ho, wo, c) = strides, g.shape
  h, wd = xp.shape[1] - sum(pads[0]), xp.shape[2] - sum(pads[1])
  dw = jnp.stack(
    [
      jnp.sum(_tap_slice(xp, i, j, strides, (ho, wo)) * g, axis=(0, 1, 2))
      for i in range(kh)
      for j in range(kw)
    ]
  ).reshape(kh, kw, 1, c)
  # The transposed conv: g dilated by the stride and padded to (k-1) + (h or w) rows/columns,
  # aligned so the forward's low padding drops out (lax.pad trims where a pad is negative),
  # read by the flipped taps at stride 1.
  lo_h, lo_w = kh - 1 - pads[0][0], kw - 1 - pads[1][0]
  gd = lax.pad(
    g,
    jnp.zeros((), g.dtype),
    (
      (0, 0, 0),
      (lo_h, kh - 1 + h - lo_h - (ho - 1) * sh - 1, sh - 1),
      (lo_w, kw - 1 + wd - lo_w - (wo - 1) * sw - 1, sw - 1),
      (0, 0, 0),
    ),
  )
  dx = _tap_sum(gd, w[::-1, ::-1], (1, 1), (h, wd))
  return dx, dw


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _shift_add(x, w, strides, pads):
  return _shift_add_fwd(x, w, strides, pads)[0]


_shift_add.defvjp(_shift_add_fwd, _shift_add_bwd)


def _pointwise_fwd(x, w):
  return lax.dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ()))), (x, w)


def _pointwise_bwd(res, g):
  # Written by hand for the orientation of the weight gradient: dw = xᵀ·g. Autodiff computes
  # (gᵀ·x)ᵀ, for which XLA:CPU transposes g and recomputes its whole upstream backward chain
  # into that transpose; xᵀ is the cheaper operand to transpose (measured in docs/benchmarks.md).
  x, w = res
  batch = tuple(range(x.ndim - 1))
  dx = lax.dot_general(g, w, (((g.ndim - 1,), (1,)), ((), ())))
  dw = lax.dot_general(x, g, ((batch, batch), ((), ())))
  return dx, dw


@jax.custom_vjp
def _pointwise(x, w):
  return _pointwise_fwd(x, w)[0]


_pointwise.defvjp(_pointwise_fwd, _pointwise_bwd)


def pointwise_dot(x, w):
  """A 1×1 stride-1 conv as a matmul over the channel axis: x (..., C_in), w (C_in, C_out).

  Equal to the conv up to float summation order; on XLA:CPU, whose 1×1 convolutions (and their
  transposes) are slower than its matmuls, a MobileNet train step runs ~1.35× faster with it
  (docs/benchmarks.md). Its VJP is
  hand-written, so forward mode (jvp) is not supported: use QConv(impl='conv') for that.
  """
  return _pointwise(x, w)


def depthwise_shift_add(x, w, strides, pads):
  """Depthwise conv as a sum of strided slices × per-channel taps (fast on XLA:CPU).

  x: (N, H, W, C); w: (kh, kw, 1, C). Equal to the grouped conv up to float summation order.
  Its VJP is hand-written (jax.custom_vjp), so it supports reverse mode (grad) but not
  forward mode (jvp, e.g. Hessian-vector products): use impl='grouped' for those.
  """
  return _shift_add(x, w, tuple(strides), tuple(tuple(p) for p in pads))


def combine_scales(sx, sw, features: int):
  """s_x·s_w as a scalar or a per-output-channel vector; None when both are float."""
  parts = []
  if sx is not None:
    parts.append(jnp.reshape(sx, ()))
  if sw is not None:
    parts.append(jnp.reshape(sw, (-1,)) if sw.size > 1 else jnp.reshape(sw, ()))
  if not parts:
    return None
  s = parts[0]
  for p in parts[1:]:
    s = s * p
  return s


def in_compute_dtype(x, qx, qw):
  """The MAC operands in the layer input's dtype (bfloat16 under config.dtype='bfloat16').

  The quantizers run in float32 on float32 parameters and the (exactly upcast) input, so the codes
  are the same under both dtypes; integer codes of up to 8 bits are exact in bfloat16. A no-op
  for float32 inputs.
  """
  return qx.astype(x.dtype), qw.astype(x.dtype)


class _QuantizedLinearBase(nn.Module):
  """Shared fields of the quantized MAC layers."""

  features: int
  w_quant: QuantConfig = FLOAT
  x_quant: QuantConfig = FLOAT
  use_bias: bool = False
  kernel_init: nn.initializers.Initializer = default_kernel_init
  bias_init: nn.initializers.Initializer = nn.initializers.zeros

  def _check(self):
    if not isinstance(self.features, int) or self.features <= 0:
      raise ValueError(
        f"{type(self).__name__}.features={self.features!r} is not allowed; use a positive int"
      )

  def _finish(self, acc, scale, return_acc: bool):
    if return_acc:
      if self.use_bias:
        raise ValueError(
          f"{type(self).__name__}: return_acc=True needs use_bias=False (the bias "
          "belongs to the following QuantNorm)"
        )
      return acc, scale
    bias = (
      self.param("bias", self.bias_init, (self.features,), jnp.float32) if self.use_bias else None
    )
    # Mixed precision: bias and scale join the accumulator in its dtype (float32 params).
    bias = None if bias is None else bias.astype(acc.dtype)
    scale = None if scale is None else scale.astype(acc.dtype)
    if scale is None:
      return acc if bias is None else acc + bias
    if bias is not None:
      # An integer pipeline adds the bias to the accumulator, on its grid (int32).
      hi = float(2 ** (BIAS_BITS - 1) - 1)
      codes = tag(
        quantize_ste(bias, scale, -hi, hi, False), bits=BIAS_BITS, signed=True, kind="param"
      )
      acc = acc + codes.astype(acc.dtype)
    with cost_category("scaling"):
      return acc * scale


class QConv(_QuantizedLinearBase):
  """Quantized 2-D convolution (NHWC / HWIO), optionally grouped.

  impl (1×1, stride 1, ungrouped, unpadded convs only; others are always convolutions):
  'conv' (lax.conv_general_dilated), 'dot' (pointwise_dot: a matmul with a hand-written VJP,
  faster on XLA:CPU) or 'auto' (the fast one for the backend).
  """

  kernel_size: Union[int, Sequence[int]] = 3
  strides: Union[int, Sequence[int]] = 1
  padding: Union[str, Sequence[Tuple[int, int]]] = "SAME"
  feature_group_count: int = 1
  impl: str = "auto"

  @nn.compact
  def __call__(self, x, train: bool = False, return_acc: bool = False):
    self._check()
    k, s = _pair(self.kernel_size), _pair(self.strides)
    cin = x.shape[-1]
    if cin % self.feature_group_count or self.features % self.feature_group_count:
      raise ValueError(
        f"feature_group_count={self.feature_group_count} must divide the input "
        f"channels ({cin}) and features ({self.features})"
      )
    kernel = self.param(
      "kernel", self.kernel_init, (*k, cin // self.feature_group_count, self.features), jnp.float32
    )
    impl = resolve_pw_impl(self.impl)
    qx, sx = Quantizer(self.x_quant, name="x_quant")(x.astype(jnp.float32), train)
    qw, sw = Quantizer(self.w_quant, name="w_quant")(kernel, train)
    qx, qw = in_compute_dtype(x, qx, qw)
    pads = _explicit_padding(x.shape, k, s, self.padding)
    if (
      impl == "dot"
      and k == (1, 1)
      and s == (1, 1)
      and self.feature_group_count == 1
      and pads == ((0, 0), (0, 0))
    ):
      acc = pointwise_dot(qx, jnp.reshape(qw, qw.shape[2:]))
    else:
      acc = lax.conv_general_dilated(
        qx, qw, s, pads, dimension_numbers=_DN, feature_group_count=self.feature_group_count
      )
    return self._finish(acc, combine_scales(sx, sw, self.features), return_acc)


class QDepthwiseConv(_QuantizedLinearBase):
  """Quantized depthwise conv (channel multiplier 1); `features` must equal the input channels.

  impl: 'grouped' (lax.conv_general_dilated with feature_group_count=C), 'shift_add' (a sum of
  strided slices; ~3× faster end to end on XLA:CPU) or 'auto' (the fast one for the backend).
  """

  kernel_size: Union[int, Sequence[int]] = 3
  strides: Union[int, Sequence[int]] = 1
  padding: Union[str, Sequence[Tuple[int, int]]] = "SAME"
  impl: str = "auto"

  @nn.compact
  def __call__(self, x, train: bool = False, return_acc: bool = False):
    self._check()
    impl = resolve_dw_impl(self.impl)
    c = x.shape[-1]
    if self.features != c:
      raise ValueError(
        f"QDepthwiseConv.features={self.features} must equal the input channels ({c})"
      )
    k, s = _pair(self.kernel_size), _pair(self.strides)
    kernel = self.param("kernel", self.kernel_init, (*k, 1, c), jnp.float32)
    qx, sx = Quantizer(self.x_quant, name="x_quant")(x.astype(jnp.float32), train)
    qw, sw = Quantizer(self.w_quant, name="w_quant")(kernel, train)
    qx, qw = in_compute_dtype(x, qx, qw)
    pads = _explicit_padding(x.shape, k, s, self.padding)
    if impl == "grouped":
      acc = lax.conv_general_dilated(qx, qw, s, pads, dimension_numbers=_DN, feature_group_count=c)
    else:
      # The taps multiply whole activations: computed once, not per element (materialize).
      acc = depthwise_shift_add(qx, materialize(qw), s, pads)
    return self._finish(acc, combine_scales(sx, sw, c), return_acc)


class QDense(_QuantizedLinearBase):
  """Quantized dense layer over the last axis."""

  # LeCun normal (flax Dense's default): the conv default (fan-out, gain 2) would give a
  # 10-class head logits of std ≈ 7 at init and a loss that starts near 8.
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x, train: bool = False, return_acc: bool = False):
    self._check()
    kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features), jnp.float32)
    qx, sx = Quantizer(self.x_quant, name="x_quant")(x.astype(jnp.float32), train)
    qw, sw = Quantizer(self.w_quant, name="w_quant")(kernel, train)
    qx, qw = in_compute_dtype(x, qx, qw)
    acc = lax.dot_general(qx, qw, (((qx.ndim - 1,), (0,)), ((), ())))
    return self._finish(acc, combine_scales(sx, sw, self.features), return_acc)
