"""Helpers for configs/*.py: the model-quantization fields and variant checking.

Fields written into config.model (read by plan_from_config):
  quant          ConfigDict of layer defaults (keys: bit_rules.LAYER_KEYS)
  bit_rules      tuple of (regex, overrides) pairs, first full match on the module path wins
  quantnorm      bool: QuantNorm (quantized folded norm, fed by the integer accumulator)
  quantnorm_bits, quantnorm_bias_bits
  double_quant   bool: scales of weight/activation quantizers and QuantNorm quantized
  dq_format      'pow2' (a shift) | 'fixed' (8-bit mantissa · 2^e)
  dq_round       pow2 rounding of weight/activation scales: 'auto' (ceil for abs-max/EMA,
                 nearest for learned) | 'ceil' | 'nearest' (quant/config.py ScaleQuant)
  dhq            bool: depthwise weights use their own rule (PikeLPN: 8-bit per channel);
                 False: they use the pointwise layer's quantizer
Their defaults are pikelpn_jax/config_base.py's (LAYER_DEFAULTS, MODEL_FIELD_DEFAULTS).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import ml_collections

from pikelpn_jax.config_base import LAYER_DEFAULTS, MODEL_FIELD_DEFAULTS


def check_variant(variant: str, allowed: Sequence[str], config_file: str) -> str:
  if variant not in allowed:
    raise ValueError(
      f"{config_file}: variant {variant!r} is not allowed; use one of {list(allowed)}"
    )
  return variant


def set_quant_fields(
  model: ml_collections.ConfigDict,
  *,
  w_bits: Optional[int],
  a_bits: Optional[int],
  bit_rules: Sequence = (),
  quantnorm: bool = False,
  double_quant: bool = False,
  dhq: bool = False,
  **layer_defaults: Any,
) -> ml_collections.ConfigDict:
  """Writes the quantization fields into config.model (see the module docstring)."""
  q = dict(LAYER_DEFAULTS)
  q.update(w_bits=w_bits, a_bits=a_bits)
  q.update(layer_defaults)
  model.quant = ml_collections.ConfigDict(q)
  model.bit_rules = tuple((p, dict(o)) for p, o in bit_rules)
  model.quantnorm = quantnorm
  for field in ("quantnorm_bits", "quantnorm_bias_bits"):
    model[field] = MODEL_FIELD_DEFAULTS[field]
  model.double_quant = double_quant
  for field in ("dq_format", "dq_round"):
    model[field] = MODEL_FIELD_DEFAULTS[field]
  model.dhq = dhq
  return model


def stem_head_rules(bits: Mapping[str, Any]) -> tuple:
  """The usual 'first and last layer at 8 bits' rules."""
  return (("stem", dict(bits)), ("head", dict(bits)))


def set_baseline_bits(model: ml_collections.ConfigDict, quant: str) -> None:
  """The baselines' bit settings: float | w8a8 | w4a4 (w4a4 keeps an 8-bit stem and head)."""
  if quant == "float":
    set_quant_fields(model, w_bits=None, a_bits=None)
  elif quant == "w8a8":
    set_quant_fields(model, w_bits=8, a_bits=8)
  elif quant == "w4a4":
    set_quant_fields(model, w_bits=4, a_bits=4, bit_rules=stem_head_rules(dict(w_bits=8, a_bits=8)))
  else:
    raise ValueError(f"quantization {quant!r} is not allowed; use float, w8a8 or w4a4")
