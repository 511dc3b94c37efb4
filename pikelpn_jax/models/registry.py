"""The model registry: models found by name (config.model.name).

  build_model(config, *, weight_quant=True, act_quant=True, dw_impl=None) -> flax.linen.Module
  model_names() -> sorted list of registered names

`config` is the full experiment ConfigDict (pikelpn_jax.config_base.base_config); the model reads
config.model.* and config.dataset.num_classes. A builder gets config.model with the fields a
config may leave out filled in (config_base.model_fields) and reads every field directly: one a
config lacks and no default covers is a one-line error naming it. weight_quant / act_quant = False make every
weight / activation quantizer float. dw_impl overrides config.model.dw_impl
('auto' | 'grouped' | 'shift_add').
"""

from __future__ import annotations

import importlib
from typing import Callable, Dict, List, Optional

import flax.linen as nn

from pikelpn_jax.config_base import check_int, model_fields
from pikelpn_jax.layers import DW_IMPLS
from pikelpn_jax.models.quant_plan import plan_from_config

# name -> builder(model_cfg: ModelFields, num_classes: int, plan: QuantPlan, dw_impl: str) -> Module
_BUILDERS: Dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
  def deco(fn):
    if name in _BUILDERS:
      raise ValueError(f"model {name!r} is registered twice")
    _BUILDERS[name] = fn
    return fn

  return deco


# Family modules; importing one registers its models.
FAMILIES = ("mobilenet_v1", "mobilenet_v2", "pokebnn", "reactnet", "resnet")


def _load_families():
  for fam in FAMILIES:
    importlib.import_module(f"pikelpn_jax.models.{fam}")


def model_names() -> List[str]:
  _load_families()
  return sorted(_BUILDERS)


def _check_num_classes(n):
  return check_int("config.dataset.num_classes", n, 1)


def build_model(
  config, *, weight_quant: bool = True, act_quant: bool = True, dw_impl: Optional[str] = None
) -> nn.Module:
  _load_families()
  model_cfg = model_fields(config.model)  # the one place a field a config lacks is filled in
  name = model_cfg.get("name")
  if name not in _BUILDERS:
    raise ValueError(
      f"config.model.name={name!r} is not a registered model; allowed: {sorted(_BUILDERS)}"
    )
  impl = dw_impl if dw_impl is not None else model_cfg["dw_impl"]
  if impl not in DW_IMPLS:
    raise ValueError(f"dw_impl={impl!r} is not allowed; use one of {DW_IMPLS}")
  num_classes = _check_num_classes(config.dataset.num_classes)
  plan = plan_from_config(model_cfg, weight_quant=weight_quant, act_quant=act_quant)
  return _BUILDERS[name](model_cfg, num_classes, plan, impl)
