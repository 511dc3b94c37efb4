"""config.dtype='bfloat16': bfloat16 activations and convs, float32 params/statistics, the same
quantized codes and the same ACEv2 report as float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pikelpn_jax.config_base import load_config
from pikelpn_jax.layers import QConv, QDense
from pikelpn_jax.models import build_model
from pikelpn_jax.quant.config import act_quant, weight_quant
from tests.train import tiny_model


def quant_outputs(layer, x, variables=None):
  """{quantizer path: integer codes} of one apply (capture_intermediates), and the variables."""
  if variables is None:
    variables = layer.init(jax.random.PRNGKey(0), x.astype(jnp.float32), train=True)
  out, state = layer.apply(
    variables, x, train=True, capture_intermediates=True, mutable=["intermediates", "batch_stats"]
  )
  inter = state["intermediates"]
  codes = {
    name: np.asarray(inter[name]["__call__"][0][0], np.float32) for name in ("x_quant", "w_quant")
  }
  return out, codes, variables


@pytest.mark.parametrize(
  "make",
  [
    lambda: QConv(
      features=8,
      kernel_size=3,
      w_quant=weight_quant(4),
      x_quant=act_quant(4, signed=True, calibration="ema"),
    ),
    lambda: QConv(
      features=8,
      kernel_size=1,
      w_quant=weight_quant(4),
      x_quant=act_quant(4, signed=True, calibration="lsq"),
    ),
    lambda: QDense(
      features=5, w_quant=weight_quant(8), x_quant=act_quant(8, signed=True, calibration="absmax")
    ),
  ],
)
def test_quantized_layer_codes_identical_under_both_dtypes(make):
  layer = make()
  shape = (2, 6, 6, 4) if isinstance(layer, QConv) else (3, 16)
  x = jax.random.normal(jax.random.PRNGKey(1), shape).astype(jnp.bfloat16)  # same values in both
  out32, codes32, v = quant_outputs(layer, x.astype(jnp.float32))
  out16, codes16, _ = quant_outputs(layer, x, v)
  assert out32.dtype == jnp.float32 and out16.dtype == jnp.bfloat16
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(v["params"]))
  for name in codes32:
    assert np.abs(codes32[name]).max() >= 1  # real codes, not all zero
    np.testing.assert_array_equal(codes16[name], codes32[name], err_msg=name)
  np.testing.assert_allclose(np.asarray(out16, np.float32), out32, rtol=0.05, atol=0.05)


def test_acev2_report_under_both_dtypes():
  """The integer bits come from the quantizers' tags, whatever the dtype; float operands are as
  wide as their dtype (docs/acev2.md), or float_bits when it is set."""
  from pikelpn_jax.ace import AceSettings, analyze

  c = load_config("configs/pikelpn.py:fmnist")
  model = build_model(c, dw_impl="grouped")
  x = jnp.zeros((1, 32, 32, 1), jnp.float32)
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
  reports = {}
  for dtype in (jnp.float32, jnp.bfloat16):
    for float_bits in (None, 32):
      r = analyze(
        lambda v, img, dt=dtype: model.apply(v, img.astype(dt), train=False),
        variables,
        jax.ShapeDtypeStruct(x.shape, jnp.float32),
        const_argnums=0,
        settings=AceSettings(float_bits=float_bits),
      ).to_json()
      r.pop("timing", None)
      r.pop("settings")
      reports[dtype, float_bits] = r
  f32, b16 = reports[jnp.float32, None], reports[jnp.bfloat16, None]
  assert f32["acev2"] > 0 and f32["layers"]
  assert reports[jnp.float32, 32] == f32  # an f32 trace: the override changes nothing
  assert reports[jnp.bfloat16, 32] == f32  # every float at 32: the bf16 trace prices the same
  # from the dtypes: this model's float arithmetic all runs in float32 (its quantizers upcast
  # their input, QuantNorm computes on the float32 accumulator scale), so the bf16 trace prices
  # the same, its MACs at the tags' bits; only the traffic of its bf16 tensors is smaller
  for key in ("macs", "ace", "acev2", "breakdown", "by_bits", "by_class", "model_bits"):
    assert b16[key] == f32[key], key
  assert [row["acev2"] for row in b16["layers"]] == [row["acev2"] for row in f32["layers"]]


def test_bfloat16_train_step_computes_in_bfloat16_keeps_float32_state(tmp_path):
  from pikelpn_jax.train import train_and_evaluate
  from pikelpn_jax.train.optim import make_optimizer
  from pikelpn_jax.train.steps import FULL, StepFactory, make_mesh

  c = tiny_model.tiny_config(steps=2)
  c.dtype = "bfloat16"
  steps = StepFactory(c, make_optimizer(c), make_mesh())
  state = steps.abstract_state()
  images = jax.ShapeDtypeStruct((8, 16, 16, 3), jnp.float32)
  labels = jax.ShapeDtypeStruct((8,), jnp.int32)
  lowered = steps.train_step(FULL).lower(state, images, labels, {})
  convs = [ln for ln in lowered.as_text().splitlines() if "stablehlo.convolution" in ln]
  assert convs and all("bf16" in ln and "f32" not in ln for ln in convs)  # fwd and bwd convs
  new_state, _ = jax.eval_shape(steps.train_step(FULL), state, images, labels, {})
  assert jax.tree.map(lambda a: a.dtype, new_state) == jax.tree.map(lambda a: a.dtype, state)
  assert {a.dtype for a in jax.tree.leaves(state)} <= {jnp.dtype("float32"), jnp.dtype("int32")}
  r = train_and_evaluate(c, str(tmp_path), "tiny")
  assert r["step"] == 2 and np.isfinite(r["eval_loss"])
  c.dtype = "float16"
  with pytest.raises(ValueError, match=r"config.dtype='float16' is not allowed; use one of"):
    StepFactory(c, make_optimizer(c), make_mesh())
