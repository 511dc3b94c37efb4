"""PikeLPN with searched per-layer bit widths, at the ACEv2 of the hand-designed PikeLPN-1x / -2x.

The bit rules and QuantNorm/Double Quantization settings are read from
results/search_imagenet.json, written by `python experiments/search_imagenet.py` (price only:
the search's data-free proxy sensitivity, no model trained; docs/search.md). Each variant is
PikeLPN-1x's config (ImageNet, 224×224) with those rules, and its ACEv2 is at most the
hand-designed model's (tests/configs/test_pikelpn_searched.py re-prices both):

  python main.py --config configs/pikelpn_searched.py:1x --workdir /tmp/pikelpn_searched_1x
  python main.py --config configs/pikelpn_searched.py:2x --workdir /tmp/pikelpn_searched_2x

What they should produce: an ACEv2 per image (the analyzer, float at 32 bits) equal to the
`acev2` of the variant's entry in results/search_imagenet.json, within its budget (PikeLPN-1x:
12.224G; PikeLPN-2x: 21.412G). No ImageNet top-1 is reported by the paper or measured here for
either (neither was trained).
"""

import json
import os

from pikelpn_jax.models.config_fields import check_variant

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(os.path.dirname(HERE), "results", "search_imagenet.json")
VARIANTS = {"1x": "PikeLPN-1x", "2x": "PikeLPN-2x"}


def _to_tuples(v):
  return tuple(_to_tuples(x) for x in v) if isinstance(v, list) else v


def get_config(variant: str = "1x"):
  check_variant(variant, tuple(VARIANTS), "configs/pikelpn_searched.py")
  import importlib.util

  spec = importlib.util.spec_from_file_location("_pikelpn_cfg", os.path.join(HERE, "pikelpn.py"))
  base = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(base)
  with open(RESULTS) as f:
    found = json.load(f)["searches"][VARIANTS[variant]]
  c = base.get_config("1x")
  c.model.variant = f"searched_{variant}"
  c.model.bit_rules = tuple((p, dict(o)) for p, o in found["bit_rules"])
  for k, v in found["model_overrides"].items():
    c.model[k] = v
  c.reported_top1 = -1.0  # nothing reported or measured
  return c
