"""Quantization numerics, calibration, granularity, Double Quantization and STEs."""

from pikelpn_jax.quant.config import (
  CALIBRATIONS,
  FLOAT,
  KINDS,
  SCALE_FORMATS,
  Calibration,
  Granularity,
  Numerics,
  QuantConfig,
  ScaleQuant,
  act_quant,
  check_bits,
  from_dict,
  weight_quant,
)
from pikelpn_jax.quant.quantizer import (
  Quantizer,
  codes,
  fake_quant,
  quantize,
  quantize_scale,
  quantize_with_bound,
)
from pikelpn_jax.quant.ste import quantize_ste, round_fixed_ste, round_pow2_ste
