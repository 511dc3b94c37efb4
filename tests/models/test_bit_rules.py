"""The ordered regex rules resolver and the QuantPlan built on it."""

import pytest

from pikelpn_jax.models import bit_rules
from pikelpn_jax.models.quant_plan import plan_from_config
from pikelpn_jax.quant.config import FLOAT

RULES = bit_rules.compile_rules(
  (
    ("stem", {"w_bits": 8, "a_bits": 8}),
    (r"block\d+/dw", {"w_bits": 8, "w_per_channel": True}),
    (r"block1/.*", {"w_bits": 2}),  # after the dw rule: loses to it on block1/dw
    ("head", {"w_bits": None}),
  )
)
DEFAULTS = {"w_bits": 4, "a_bits": 4, "w_per_channel": False}


def test_first_matching_rule_wins_over_later_ones():
  assert bit_rules.resolve("block1/dw", RULES, DEFAULTS).w_bits == 8
  assert bit_rules.resolve("block1/pw", RULES, DEFAULTS).w_bits == 2


def test_rules_must_match_the_whole_path():
  # 'stem' does not match 'stem2' nor 'block0/stem'; they fall back to the defaults.
  assert bit_rules.resolve("stem2", RULES, DEFAULTS).w_bits == 4
  assert bit_rules.resolve("block0/stem", RULES, DEFAULTS).w_bits == 4
  assert bit_rules.matching_rule("stem", RULES) == 0


def test_overrides_only_replace_the_fields_they_name():
  s = bit_rules.resolve("block3/dw", RULES, DEFAULTS)
  assert (s.w_bits, s.a_bits, s.w_per_channel) == (8, 4, True)
  s = bit_rules.resolve("block3/pw", RULES, DEFAULTS)
  assert (s.w_bits, s.a_bits, s.w_per_channel) == (4, 4, False)
  assert bit_rules.resolve("head", RULES, DEFAULTS).w_bits is None


@pytest.mark.parametrize(
  "rules,match",
  [
    ((("x", {"w_bits": 0}),), r"bit_rules\[0\] \('x'\)\.w_bits=0"),
    ((("x", {"a_bits": 17}),), "a_bits=17"),
    ((("x", {"bits": 4}),), "unknown field"),
    ((("(", {"w_bits": 4}),), "does not compile"),
    ((("x", {"w_channel_axis": 5}),), "w_channel_axis=5 is not allowed"),
    ((("x", {"w_calibration": "minmax"}),), "w_calibration='minmax'"),
    (("x",), "pair"),
    ("stem", "list of"),
  ],
)
def test_bad_rules_are_rejected_with_the_field_named(rules, match):
  with pytest.raises(ValueError, match=match):
    bit_rules.compile_rules(rules)


def test_plan_resolves_quantizers_and_the_global_switches():
  model = {
    "quant": DEFAULTS,
    "bit_rules": (("stem", {"w_bits": 8, "a_bits": 1, "w_per_channel": True}),),
    "double_quant": True,
    "quantnorm": True,
  }
  plan = plan_from_config(model)
  w = plan.weight("stem")
  assert (w.bits, w.granularity.channel_axis, w.scale_quant.format) == (8, -1, "pow2")
  assert plan.weight("block0/pw").granularity.channel_axis is None
  # A 1-bit input is always signed (±1), whatever the model says.
  assert plan.act("stem", signed=False).numerics.signed
  a = plan.act("block0/pw", signed=False, follows_norm=True)
  assert (a.bits, a.numerics.signed, a.folded) == (4, False, True)
  assert not plan.act("head", signed=False, follows_norm=False).folded
  off = plan_from_config(model, weight_quant=False, act_quant=False)
  assert off.weight("stem") is FLOAT and off.act("stem", True) is FLOAT
  assert (
    plan_from_config({**model, "double_quant": False}).weight("stem").scale_quant.format == "none"
  )
  nearest = plan_from_config({**model, "dq_round": "nearest"})
  assert nearest.weight("stem").scale_quant.rounding == "nearest"
  assert nearest.act("block0/pw", signed=False).scale_quant.rounding == "nearest"
  assert plan.weight("stem").scale_quant.rounding == "auto"


@pytest.mark.parametrize(
  "field,value,match",
  [
    ("quantnorm_bits", 0, "quantnorm_bits=0"),
    ("dq_format", "log", "dq_format='log'"),
    ("dq_round", "up", "dq_round='up'"),
    ("quant", {"w_bits": 20}, r"config.model.quant.w_bits=20"),
  ],
)
def test_bad_plan_fields_are_rejected(field, value, match):
  model = {"quant": DEFAULTS, "quantnorm": True, field: value}
  with pytest.raises(ValueError, match=match):
    plan_from_config(model)
