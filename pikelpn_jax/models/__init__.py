"""The model zoo: PikeLPN and its baselines, found by name (see registry.py and docs/models.md)."""

from pikelpn_jax.models.bit_rules import LAYER_KEYS, compile_rules, resolve
from pikelpn_jax.models.quant_plan import QuantPlan, plan_from_config
from pikelpn_jax.models.registry import build_model, model_names, register
