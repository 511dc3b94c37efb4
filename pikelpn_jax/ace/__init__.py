"""ACEv2: arithmetic computation effort of a JAX function, from its jaxpr (docs/acev2.md).

from pikelpn_jax.ace import acev2_report, analyze, CostReport
report = acev2_report(config)                    # a zoo model, batch 1
report = acev2_report(config, fold="affine")     # after deployment folding
report = analyze(fn, params, x, const_argnums=0)  # any function
print(report.render(by="category")); report.to_json()

RULES (pikelpn_jax/ace/rules.py) is the table of every priced primitive and its rule; nothing
registers itself into it on import.
"""

from pikelpn_jax.ace.api import acev2_report, analyze
from pikelpn_jax.ace.report import CostReport, LayerRow
from pikelpn_jax.ace.rules import LAYOUT_PRIMITIVES, RULES
from pikelpn_jax.ace.values import CATEGORIES, FOLDS, AceSettings
from pikelpn_jax.ace.walker import AceError

__all__ = [
  "acev2_report",
  "analyze",
  "CostReport",
  "LayerRow",
  "AceSettings",
  "AceError",
  "CATEGORIES",
  "FOLDS",
  "RULES",
  "LAYOUT_PRIMITIVES",
]
