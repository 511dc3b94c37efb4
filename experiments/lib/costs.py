"""The ACEv2 columns of the result tables, recomputed from a config whenever a table is built.

Every table takes its cost numbers from `acev2(config, fold=...)`, never from a run record, so a
change of the analyzer re-prices every row without retraining. Costs come from the config and
abstract weights (shapes and quantizer tags; no trained value decides the pricing of our models).
"""

from __future__ import annotations

import json
from typing import Dict

_CACHE: Dict[tuple, dict] = {}
# The analyzer's fold views the tables price: the graph as written and after deployment folding
# (every per-channel multiply/add chain merged; docs/acev2.md).
FOLDS = ("none", "affine")


def acev2(config, *, fold: str = "none", float_bits: int = 32) -> dict:
  """{'acev2', 'ace', 'macs', 'breakdown', ...} of `config`'s inference forward (batch 1).

  `fold` is the analyzer's deployment-folding view (acev2_report(fold=...)): 'none' prices the
  graph as written, 'affine' after folding per-channel multiply/add chains.
  """
  from experiments.lib import zoo
  from pikelpn_jax.config_base import config_to_dict

  k = (json.dumps(config_to_dict(config), sort_keys=True), fold, float_bits)
  if k not in _CACHE:
    from pikelpn_jax.ace import acev2_report

    r = acev2_report(
      config, None, float_bits=float_bits, acc_bits=int(config.ace.get("acc_bits", 32)), fold=fold
    )
    if r.unaccounted:
      raise RuntimeError(
        f"ACEv2 left primitives unpriced in {config.model.name}: {list(r.unaccounted)[:3]}"
      )
    _CACHE[k] = zoo.summary(r.to_json())
  return _CACHE[k]
