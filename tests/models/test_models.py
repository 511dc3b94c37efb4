"""Registry contract, build-time validation and the quantization structure seen in the jaxpr."""

import jax
import pytest

from pikelpn_jax import _jax_internals as ji
from pikelpn_jax.config_base import base_config
from pikelpn_jax.models import build_model, model_names

ALL = ["mobilenet_v1", "mobilenet_v2", "pikelpn", "pokebnn", "reactnet", "resnet"]


def test_model_names_are_sorted_and_complete():
  assert model_names() == sorted(model_names())
  assert set(ALL) <= set(model_names())


def test_unknown_model_names_the_bad_value_and_the_allowed_ones():
  c = base_config("mobilenet_v3")
  with pytest.raises(ValueError, match=r"'mobilenet_v3'.*allowed: \['mobilenet_v1'"):
    build_model(c)


@pytest.mark.parametrize(
  "field,value,match",
  [
    ("width", 0, r"config.model.width=0(\.0)? is not allowed"),
    ("width", -0.5, r"config.model.width=-0.5"),
    ("dw_impl", "fft", r"dw_impl='fft'"),
    ("pw_impl", "gemm", r"config.model.pw_impl='gemm' is not allowed"),
    ("act", "gelu", r"config.model.act='gelu'"),
    ("stem_stride", 3, r"stem_stride=3"),
  ],
)
def test_bad_model_fields_fail_at_build_time(tiny, field, value, match):
  c = tiny("configs/pikelpn.py:fmnist")
  setattr(c.model, field, value)
  with pytest.raises(ValueError, match=match):
    build_model(c)


@pytest.mark.parametrize(
  "spec,path,match",
  [
    ("configs/pikelpn.py:fmnist", ("quant", "a_bits", 0), r"config.model.quant.a_bits=0"),
    ("configs/resnet.py:18_w4a4", ("quant", "w_bits", 17), r"config.model.quant.w_bits=17"),
    (
      "configs/mobilenet_v2.py:w8a8",
      ("quant", "w_channel_axis", 4),
      r"w_channel_axis=4 is not allowed",
    ),
  ],
)
def test_bad_bits_and_axes_fail_at_build_time(tiny, spec, path, match):
  c = tiny(spec)
  setattr(getattr(c.model, path[0]), path[1], path[2])
  with pytest.raises(ValueError, match=match):
    build_model(c)


def test_bad_rule_fails_at_build_time(tiny):
  c = tiny("configs/pikelpn.py:fmnist")
  c.model.bit_rules = (("stem", {"w_bits": 32}),)
  with pytest.raises(ValueError, match=r"bit_rules\[0\] \('stem'\)\.w_bits=32"):
    build_model(c)


def _bits(t, path, kind):
  return t[(path, kind)]["bits"]


def test_pikelpn_per_layer_bits_quantnorm_and_double_quant(tiny, trace):
  t, _, _ = trace(tiny("configs/pikelpn.py:fmnist"))
  assert _bits(t, "stem/conv/w_quant", "weight") == 8
  assert _bits(t, "stem/conv/x_quant", "act") == 8
  assert _bits(t, "block4/dw/conv/w_quant", "weight") == 8
  assert _bits(t, "block4/pw/conv/w_quant", "weight") == 4
  assert _bits(t, "block4/pw/conv/x_quant", "act") == 4
  assert _bits(t, "head/dense/w_quant", "weight") == 8
  assert _bits(t, "block4/pw/norm", "norm") == 8  # QuantNorm multiplier
  assert t[("block4/pw/conv/w_quant", "weight")]["scale"] == "pow2"  # Double Quantization
  assert t[("block4/pw/conv/x_quant", "act")]["folded"]  # requant folded into QuantNorm
  assert not t[("head/dense/x_quant", "act")]["folded"]


def test_pikelpn_ablation_switches(tiny, trace):
  c = tiny("configs/pikelpn.py:fmnist")
  c.model.dhq, c.model.quantnorm, c.model.double_quant = False, False, False
  t, eqns, variables = trace(c)
  # DHQ off: depthwise weights use the pointwise quantizer (4-bit, per tensor).
  assert _bits(t, "block4/dw/conv/w_quant", "weight") == 4
  assert not any(kind == "norm" for _, kind in t)  # float folded norm
  assert all(p["scale"] == "none" for p in t.values())
  # Per-tensor dw weights: the scale is a scalar; the float norm follows a dequantizing conv.
  scaling = [
    e
    for e in eqns
    if "block4/dw/conv" in str(e.source_info.name_stack)
    and "acev2:scaling" in str(e.source_info.name_stack)
    and e.primitive.name == "mul"
  ]
  assert scaling, "the dequantizing multiply must be visible to the analyzer"
  assert "norm" in variables["params"]["block4"]["dw"]


def test_quantizers_switch_off_for_the_quant_schedule(tiny, trace):
  c = tiny("configs/pikelpn.py:fmnist")
  t, _, variables = trace(c, weight_quant=False, act_quant=False)
  kinds = {kind for _, kind in t}
  assert "weight" not in kinds and "act" not in kinds
  assert "x_quant" not in variables["batch_stats"]["block0"]["dw"].get("conv", {})
  # The switches only drop quantizer state (fmnist's activations are LSQ: their learned `step`
  # params); every other parameter keeps its path, so training can overlay phases.
  _, _, quantized = trace(c)
  paths = lambda tree: {
    tuple(k.key for k in p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)
  }
  full, off = paths(quantized["params"]), paths(variables["params"])
  assert off <= full and full - off and all(p[-2:] == ("x_quant", "step") for p in full - off)


def test_dw_impl_override_decides_how_depthwise_convs_appear(tiny, trace):
  c = tiny("configs/pikelpn.py:fmnist")
  _, grouped, _ = trace(c, dw_impl="grouped")
  _, shifted, _ = trace(c, dw_impl="shift_add")

  def grouped_convs(eqns):
    return [
      e
      for e in eqns
      if e.primitive.name == "conv_general_dilated"
      and ji.conv_geometry(e)["feature_group_count"] > 1
    ]

  assert len(grouped_convs(grouped)) == 13
  assert not grouped_convs(shifted)


def test_pw_impl_decides_how_pointwise_convs_appear(tiny, trace):
  c = tiny("configs/pikelpn.py:fmnist")

  def pointwise_convs(eqns):
    return [
      e
      for e in eqns
      if e.primitive.name == "conv_general_dilated"
      and ji.conv_geometry(e)["feature_group_count"] == 1
      and e.invars[1].aval.shape[:2] == (1, 1)
    ]

  c.model.pw_impl = "conv"
  _, convs, _ = trace(c)
  c.model.pw_impl = "dot"
  _, dots, _ = trace(c)
  assert len(pointwise_convs(convs)) == 13 and not pointwise_convs(dots)
  assert sum(e.primitive.name == "dot_general" for e in dots) == 14  # 13 pointwise + head


def test_pokebnn_binary_body_8bit_init_and_head_4bit_se(tiny, trace):
  t, eqns, _ = trace(tiny("configs/pokebnn.py:1.0x"))
  body_w = t[("resblock3/unit2/conv/w_quant", "weight")]
  body_x = t[("resblock3/unit2/conv/x_quant", "act")]
  assert body_w["bits"] == body_x["bits"] == 1
  assert _bits(t, "init_conv/conv/w_quant", "weight") == 8
  assert _bits(t, "init_conv_group/conv/x_quant", "act") == 8
  assert _bits(t, "head/dense/w_quant", "weight") == 8
  assert _bits(t, "resblock3/unit2/se/se_reduce/w_quant", "weight") == 4
  assert t[("resblock3/unit2/se/se_reduce/x_quant", "act")]["signed"]
  assert not t[("resblock3/unit2/se/se_expand/x_quant", "act")]["signed"]
  # Shortcut reshapes and adds are priced as residual/pooling work.
  assert any(
    "acev2:residual_pool" in str(e.source_info.name_stack)
    and e.primitive.name == "reduce_window_sum"
    for e in eqns
  )


def test_reactnet_binary_body_with_float_stem_and_head(tiny, trace):
  t, _, variables = trace(tiny("configs/reactnet.py:a"))
  assert _bits(t, "block1/conv3x3/conv/w_quant", "weight") == 1
  assert _bits(t, "block0/pw_down2/conv/x_quant", "act") == 1
  assert not any(p.startswith(("stem/", "head/")) for p, _ in t)
  assert {"rsign", "conv", "norm"} <= set(variables["params"]["block2"]["pw"])
  assert "pw" not in variables["params"]["block1"]  # channels double: two C→C convs
  assert {"pw_down1", "pw_down2"} <= set(variables["params"]["block1"])
