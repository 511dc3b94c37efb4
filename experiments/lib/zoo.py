"""The model zoo as the experiment scripts see it: which configs, their labels, their ACEv2.

Every config variant of configs/*.py that the paper's comparison needs, in one list, so that all
scripts price and train the same models under the same names.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Dict, List, Optional, Sequence

from experiments.lib.common import REPO


@dataclasses.dataclass(frozen=True)
class ZooEntry:
  spec: str  # 'file.py:variant' under configs/
  label: str
  family: str
  pikelpn: bool = False


ZOO: Sequence[ZooEntry] = (
  ZooEntry("pikelpn.py:1x", "PikeLPN-1x", "PikeLPN", True),
  ZooEntry("pikelpn.py:2x", "PikeLPN-2x", "PikeLPN", True),
  ZooEntry("pikelpn.py:3x", "PikeLPN-3x", "PikeLPN", True),
  ZooEntry("pikelpn.py:6x", "PikeLPN-6x", "PikeLPN", True),
  ZooEntry("pokebnn.py:0.5x", "PokeBNN-0.5x", "PokeBNN"),
  ZooEntry("pokebnn.py:1.0x", "PokeBNN-1.0x", "PokeBNN"),
  ZooEntry("pokebnn.py:2.0x", "PokeBNN-2.0x", "PokeBNN"),
  ZooEntry("reactnet.py:a", "ReActNet-A", "ReActNet"),
  ZooEntry("mobilenet_v1.py:float", "MobileNetV1 fp32", "MobileNetV1"),
  ZooEntry("mobilenet_v1.py:w8a8", "MobileNetV1 w8a8", "MobileNetV1"),
  ZooEntry("mobilenet_v1.py:w4a4", "MobileNetV1 w4a4", "MobileNetV1"),
  ZooEntry("mobilenet_v2.py:float", "MobileNetV2 fp32", "MobileNetV2"),
  ZooEntry("mobilenet_v2.py:w8a8", "MobileNetV2 w8a8", "MobileNetV2"),
  ZooEntry("mobilenet_v2.py:w4a4", "MobileNetV2 w4a4", "MobileNetV2"),
  ZooEntry("mobilenet_v2.py:w4a4_prelu", "MobileNetV2 w4a4 PReLU", "MobileNetV2"),
  ZooEntry("resnet.py:18_float", "ResNet-18 fp32", "ResNet"),
  ZooEntry("resnet.py:18_w4a4", "ResNet-18 w4a4", "ResNet"),
  ZooEntry("resnet.py:50_float", "ResNet-50 fp32", "ResNet"),
  ZooEntry("resnet.py:50_w8a8", "ResNet-50 w8a8", "ResNet"),
)

# The low-precision models whose ACEv2 breakdown is the paper's motivation,
# with PikeLPN-1x as the reference they are compared to.
BREAKDOWN_SPECS = (
  "pokebnn.py:0.5x",
  "pokebnn.py:1.0x",
  "pokebnn.py:2.0x",
  "reactnet.py:a",
  "mobilenet_v1.py:w8a8",
  "mobilenet_v1.py:w4a4",
  "mobilenet_v2.py:w8a8",
  "mobilenet_v2.py:w4a4",
  "mobilenet_v2.py:w4a4_prelu",
  "resnet.py:18_w4a4",
  "pikelpn.py:1x",
)

CATEGORY_LABELS = {
  "mac": "MAC",
  "norm": "norm",
  "activation": "activation",
  "scaling": "scaling",
  "residual_pool": "residual/pool",
  "other": "other",
}


def entry(spec: str) -> ZooEntry:
  for e in ZOO:
    if e.spec == spec:
      return e
  raise ValueError(
    f"model {spec!r} is not in the experiment zoo; use one of {[e.spec for e in ZOO]}"
  )


def label(spec: str) -> str:
  return entry(spec).label


def load(spec: str, image_size: Optional[int] = None):
  """The config of 'file.py:variant' (configs/ of this repo); image_size overrides the input."""
  from pikelpn_jax.config_base import load_config

  config = load_config(os.path.join(REPO, "configs", spec))
  if image_size is not None:
    config.dataset.image_size = int(image_size)
  return config


def reported_top1(config) -> Optional[float]:
  v = float(config.get("reported_top1", -1.0))
  return v if v >= 0 else None


def report(config, float_bits: int = 32, variables=None) -> dict:
  """The analyzer's JSON for `config` (batch 1); refuses a report with unpriced primitives."""
  from pikelpn_jax.ace import acev2_report

  r = acev2_report(
    config, variables, float_bits=float_bits, acc_bits=int(config.ace.get("acc_bits", 32))
  )
  if r.unaccounted:
    raise RuntimeError(
      f"ACEv2 left primitives unpriced in {config.model.name}: {list(r.unaccounted)[:3]}"
    )
  return r.to_json()


def summary(rep: dict) -> dict:
  """The numbers the tables print, from an analyzer JSON (layers dropped)."""
  traffic = {
    "weight_bits": sum(l["weight_bits"] for l in rep["layers"]),
    "act_read_bits": sum(l["act_read_bits"] for l in rep["layers"]),
    "act_write_bits": sum(l["act_write_bits"] for l in rep["layers"]),
  }
  return {
    "macs": rep["macs"],
    "ace": rep["ace"],
    "acev2": rep["acev2"],
    "params": rep["params"],
    "model_bits": rep["model_bits"],
    "model_mb": rep["model_bits"] / 8 / 2**20,
    "breakdown": dict(rep["breakdown"]),
    "by_bits": {k: dict(v) for k, v in rep["by_bits"].items()},
    "by_class": {k: dict(v) for k, v in rep["by_class"].items()},
    "traffic": traffic,
    "float_bits": rep["settings"]["float_bits"],
  }


def mac_bits_label(by_bits: Dict[str, dict], float_bits: int) -> str:
  """'W4A4 (95%)': the weight/activation widths of the largest share of MACs ('fp' if float)."""
  macs = {k.split()[1]: v["count"] for k, v in by_bits.items() if k.startswith("mac ")}
  total = sum(macs.values())
  if not total:
    return "-"
  pair, n = max(macs.items(), key=lambda kv: kv[1])
  bx, bw = (int(b) for b in pair.split("x"))
  name = "fp" + str(float_bits) if bx == float_bits and bw == float_bits else f"W{bw}A{bx}"
  share = 100.0 * n / total
  return name if share > 99.5 else f"{name} ({share:.0f}% of MACs)"


def si(x: float, digits: int = 3) -> str:
  """1.234G style (the unit is the caller's)."""
  if x is None or (isinstance(x, float) and math.isnan(x)):
    return "-"
  for unit, div in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
    if abs(x) >= div:
      return f"{x / div:.{digits}f}{unit}"
  return f"{x:.0f}" if float(x).is_integer() else f"{x:.{digits}f}"


def specs_from_arg(arg: Optional[str], default: Sequence[str]) -> List[str]:
  """A comma-separated --models value (checked against the zoo), or the default list."""
  if not arg:
    return list(default)
  specs = [s.strip() for s in arg.split(",") if s.strip()]
  for s in specs:
    entry(s)
  return specs
