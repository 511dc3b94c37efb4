"""The ablation settings of PikeLPN-1x: its three techniques (QuantNorm, Double Quantization, DHQ)
switched off alone or together, and the Double Quantization scale formats.

experiments/ablations.py trains and compares them; dq_scale_fit.py and dhq_distribution.py read
the runs of the same settings, so the settings (and hence the run keys) are defined once, here.
"""

from __future__ import annotations

from experiments.lib import zoo

BASE = "pikelpn.py:1x"
FLOAT_REF = "mobilenet_v1.py:float"
DW_RULE = r"block\d+/dw"
# name -> (quantnorm, double_quant, dhq, depthwise weight bits under DHQ): what the setting's
# config, configs/pikelpn.py:1x_<name>, sets (with DQ_FORMAT)
SETTINGS = {
  "all_on": (True, True, True, 8),
  "quantnorm_off": (False, True, True, 8),
  "double_quant_off": (True, False, True, 8),
  "dhq_off": (True, True, False, 8),
  "all_off": (False, False, False, 8),
  "dhq_on_dw4": (True, True, True, 4),
  "dq_fixed": (True, True, True, 8),
}
# The Double Quantization scale format of each setting (config.model.dq_format): a power of two
# (a shift) unless named here. "dq_fixed" tests the candidate cause of Double Quantization's
# measured loss (docs/results.md §3): a scale rounded to the nearest power of two lies up to √2
# from the scale it replaces, an 8-bit mantissa × 2^e within 0.4 %.
DQ_FORMAT = {"dq_fixed": "fixed"}
DESCRIPTION = {
  "all_on": "PikeLPN-1x (all on)",
  "quantnorm_off": "QuantNorm off",
  "double_quant_off": "Double Quantization off",
  "dhq_off": "DHQ off (dw uses the pw quantizer: 4-bit per tensor)",
  "all_off": "all off (plain quantized MobileNetV1)",
  "dhq_on_dw4": "DHQ on at 4-bit depthwise (per channel)",
  "dq_fixed": "Double Quantization with 8-bit mantissa × 2^e scales",
}


def setting_config(name: str, image_size=None):
  """configs/pikelpn.py:1x_<name>, the named variant of the setting (SETTINGS describes it;
  tests/configs check they agree)."""
  if name not in SETTINGS:
    raise ValueError(f"ablation setting {name!r} is not allowed; use one of {list(SETTINGS)}")
  return zoo.load(f"{BASE}_{name}", image_size)


def dq_format(name: str) -> str:
  """The setting's Double Quantization scale format as its config has it ('none' when off)."""
  m = setting_config(name).model
  return m.dq_format if m.double_quant else "none"
