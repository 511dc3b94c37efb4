"""ACEv2: arithmetic computation effort of a JAX function, from its jaxpr (docs/acev2.md).

from pikelpn_jax.ace import acev2_report, analyze, CostReport
report = acev2_report(config)                    # a zoo model, batch 1
report = acev2_report(config, fold="affine")     # after deployment folding
report = analyze(fn, params, x, const_argnums=0)  # any function
print(report.render(by="category")); report.to_json()
"""

# rules_accumulate registers the accumulating primitives' rules into rules.RULES; importing it
# here (every import of pikelpn_jax.ace.* runs this file first) keeps RULES complete without a cycle.
from pikelpn_jax.ace import rules_accumulate  # noqa: F401
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
