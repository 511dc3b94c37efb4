"""experiments/lib/eval_swap.py: parsing --set variants and applying them to a config copy."""

import pytest

from experiments.lib import (
  eval_swap,
  zoo,
)


def test_parse_variant_values():
  assert eval_swap.parse_variant("model.quantnorm_bits=None,model.dq_format=none") == [
    ("model.quantnorm_bits", None),
    ("model.dq_format", "none"),
  ]
  assert eval_swap.parse_variant("a=16,b=0.5,c=True") == [("a", 16), ("b", 0.5), ("c", True)]
  with pytest.raises(ValueError, match="'nonsense'"):
    eval_swap.parse_variant("nonsense")


def test_apply_variant_changes_a_copy_and_refuses_unknown_fields():
  c = zoo.load("pikelpn.py:1x")
  d = eval_swap.apply_variant(c, [("model.quantnorm_bits", None), ("model.dq_round", "ceil")])
  assert d.model.quantnorm_bits is None and d.model.dq_round == "ceil"
  assert c.model.quantnorm_bits == 8 and c.model.dq_round == "auto"
  with pytest.raises(ValueError, match="'model.nope'"):
    eval_swap.apply_variant(c, [("model.nope", 1)])


def test_apply_variant_edits_one_bit_rule():
  c = zoo.load("pikelpn.py:1x")
  d = eval_swap.apply_variant(c, [(r"model.bit_rules.block\d+/dw.w_bits", 4)])
  rules = dict(d.model.bit_rules)
  assert rules[r"block\d+/dw"]["w_bits"] == 4 and rules["stem"]["w_bits"] == 8
  assert dict(c.model.bit_rules)[r"block\d+/dw"]["w_bits"] == 8
  with pytest.raises(ValueError, match="no bit rule 'nope'"):
    eval_swap.apply_variant(c, [("model.bit_rules.nope.w_bits", 4)])
