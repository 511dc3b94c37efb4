"""Quantized MAC layers: integer accumulators, equal depthwise forms, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pikelpn_jax.layers import QConv, QDense, QDepthwiseConv, resolve_dw_impl, resolve_pw_impl
from pikelpn_jax.quant import act_quant, weight_quant

X = jax.random.normal(jax.random.PRNGKey(0), (2, 9, 9, 8))


@pytest.mark.parametrize(
  "strides,padding", [(1, "SAME"), (2, "SAME"), (2, "VALID"), (1, ((2, 0), (1, 1)))]
)
@pytest.mark.parametrize("quantized", [False, True])
def test_depthwise_forms_agree(strides, padding, quantized):
  kw = dict(features=8, strides=strides, padding=padding)
  if quantized:
    kw.update(
      w_quant=weight_quant(8), x_quant=act_quant(8, signed=True, calibration="fixed", bound=3.0)
    )
  grouped = QDepthwiseConv(impl="grouped", **kw)
  shift = QDepthwiseConv(impl="shift_add", **kw)
  v = grouped.init(jax.random.PRNGKey(1), X)
  np.testing.assert_allclose(grouped.apply(v, X), shift.apply(v, X), atol=1e-5, rtol=1e-5)
  loss = lambda m: lambda p: jnp.sum(m.apply({"params": p}, X) ** 2)
  g1 = jax.grad(loss(grouped))(v["params"])
  g2 = jax.grad(loss(shift))(v["params"])
  np.testing.assert_allclose(g1["kernel"], g2["kernel"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
  "size,strides,padding",
  [(9, 1, "SAME"), (9, 2, "SAME"), (8, 2, "SAME"), (8, 2, "VALID"), (7, 1, ((2, 0), (1, 1)))],
)
def test_shift_add_hand_written_backward_matches_grouped(size, strides, padding):
  # The shift-and-add form has a hand-written VJP (see conv.py); both of its cotangents must
  # equal autodiff through the grouped conv, for every stride/padding geometry.
  x = jax.random.normal(jax.random.PRNGKey(3), (2, size, size, 5))
  kw = dict(features=5, strides=strides, padding=padding)
  grouped, shift = QDepthwiseConv(impl="grouped", **kw), QDepthwiseConv(impl="shift_add", **kw)
  v = grouped.init(jax.random.PRNGKey(4), x)
  loss = lambda m: lambda p, x: jnp.sum(jnp.sin(m.apply({"params": p}, x)))
  (gp1, gx1), (gp2, gx2) = (
    jax.grad(loss(m), argnums=(0, 1))(v["params"], x) for m in (grouped, shift)
  )
  np.testing.assert_allclose(gx1, gx2, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(gp1["kernel"], gp2["kernel"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("quantized", [False, True])
def test_pointwise_dot_matches_conv_forward_and_backward(quantized):
  # 1×1 convs run as a matmul with a hand-written VJP (impl 'dot'); values and both cotangents
  # must equal the convolution's autodiff.
  kw = dict(features=6, kernel_size=1)
  if quantized:
    kw.update(
      w_quant=weight_quant(4), x_quant=act_quant(4, signed=True, calibration="fixed", bound=2.0)
    )
  conv, dot = QConv(impl="conv", **kw), QConv(impl="dot", **kw)
  v = conv.init(jax.random.PRNGKey(5), X)
  jaxprs = [str(jax.make_jaxpr(lambda x, m=m: m.apply(v, x))(X)) for m in (conv, dot)]
  assert "conv_general_dilated" in jaxprs[0] and "conv_general_dilated" not in jaxprs[1]
  assert "dot_general" in jaxprs[1]
  np.testing.assert_allclose(conv.apply(v, X), dot.apply(v, X), atol=1e-5, rtol=1e-5)
  loss = lambda m: lambda p, x: jnp.sum(jnp.sin(m.apply({"params": p}, x)))
  (gp1, gx1), (gp2, gx2) = (jax.grad(loss(m), argnums=(0, 1))(v["params"], X) for m in (conv, dot))
  np.testing.assert_allclose(gx1, gx2, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(gp1["kernel"], gp2["kernel"], atol=1e-4, rtol=1e-4)


def test_pointwise_dot_only_replaces_plain_one_by_one_convs():
  # A strided, padded or grouped 1×1 conv stays a convolution whatever the impl.
  for kw in (dict(strides=2), dict(padding=((1, 0), (0, 0))), dict(feature_group_count=2)):
    m = QConv(8, kernel_size=1, impl="dot", **kw)
    v = m.init(jax.random.PRNGKey(0), X)
    assert "conv_general_dilated" in str(jax.make_jaxpr(lambda x, m=m, v=v: m.apply(v, x))(X))


def test_accumulator_holds_integers_and_scale_dequantizes():
  conv = QConv(
    6,
    kernel_size=3,
    strides=2,
    w_quant=weight_quant(4),
    x_quant=act_quant(4, signed=True, calibration="fixed", bound=2.0),
  )
  v = conv.init(jax.random.PRNGKey(2), X)
  acc, s = conv.apply(v, X, return_acc=True)
  np.testing.assert_array_equal(acc, jnp.round(acc))
  assert s.shape == (6,)
  np.testing.assert_allclose(conv.apply(v, X), acc * s, rtol=1e-6)
  # Fake-quant reference: conv of the dequantized operands.
  float_conv = QConv(6, kernel_size=3, strides=2)
  kernel = v["params"]["kernel"]
  sw = np.abs(np.asarray(kernel)).max(axis=(0, 1, 2)) / 7
  wq = np.clip(np.floor(np.asarray(kernel) / sw + 0.5), -7, 7) * sw
  xq = np.clip(np.floor(np.asarray(X) / (2 / 7) + 0.5), -7, 7) * (2 / 7)
  ref = float_conv.apply({"params": {"kernel": wq}}, xq)
  np.testing.assert_allclose(conv.apply(v, X), ref, atol=1e-4)


def test_dense_and_float_pass_through():
  x = X.reshape(2, -1)
  d = QDense(5, use_bias=True)
  v = d.init(jax.random.PRNGKey(0), x)
  np.testing.assert_allclose(
    d.apply(v, x), x @ v["params"]["kernel"] + v["params"]["bias"], rtol=1e-5
  )


def test_auto_picks_shift_add_on_cpu():
  assert resolve_dw_impl("auto") == ("shift_add" if jax.default_backend() == "cpu" else "grouped")
  assert resolve_pw_impl("auto") == ("dot" if jax.default_backend() == "cpu" else "conv")


@pytest.mark.parametrize(
  "layer,msg",
  [
    (QConv(0), "QConv.features=0"),
    (QDepthwiseConv(4), "must equal the input channels"),
    (QDepthwiseConv(8, impl="fft"), "dw_impl='fft'"),
    (QConv(6, kernel_size=1, impl="gemm"), "QConv.impl='gemm'"),
    (QConv(6, feature_group_count=3), "feature_group_count=3"),
    (QConv(6, padding="FULL"), "padding='FULL'"),
  ],
)
def test_bad_input(layer, msg):
  with pytest.raises(ValueError, match=msg):
    layer.init(jax.random.PRNGKey(0), X)
