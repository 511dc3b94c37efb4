"""configs/pikelpn_searched.py: each variant is priced by the analyzer at the ACEv2 that
results/search_imagenet.json records for it, within the hand-designed model's budget."""

import json
import os

import pytest

from pikelpn_jax.config_base import load_config
from pikelpn_jax.search.cost import price

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("variant, label", [("1x", "PikeLPN-1x"), ("2x", "PikeLPN-2x")])
def test_searched_variant_costs_what_the_search_found(variant, label):
  with open(os.path.join(ROOT, "results", "search_imagenet.json")) as f:
    found = json.load(f)["searches"][label]
  hand = price(load_config(os.path.join(ROOT, "configs", f"pikelpn.py:{variant}"))).acev2
  assert found["budget"] == hand
  c = load_config(os.path.join(ROOT, "configs", f"pikelpn_searched.py:{variant}"))
  assert (c.dataset.image_size, c.model.width) == (224, 1.0)
  assert price(c).acev2 == found["acev2"] <= hand
