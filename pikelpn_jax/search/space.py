"""The search space: which layers are searched, their choices, and the config a choice gives.

A *layer* is the module path a bit rule addresses (docs/models.md): the parent of a MAC module in
the ACEv2 report, below the model's name ('stem', 'block3/dw', 'head'). Each searched layer picks
a `Choice` (weight bits, input-activation bits and, for depthwise layers, per-channel or
per-tensor weights); the whole model picks one `Globals` (QuantNorm multiplier bits, the Double
Quantization scale format), which act on every layer at once.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import re
from typing import Dict, Optional, Sequence, Tuple

from pikelpn_jax.models import bit_rules as br

W_BITS = (2, 3, 4, 8)
A_BITS = (2, 3, 4, 8)
# QuantNorm multiplier bits: only 8 by default. PikeLPN at the study recipe does not train with
# fewer (4 bits: chance; 6 bits: diverges near step 600), while a model trained at 8 bits loses
# little when its multipliers are cut post-training, so a sensitivity measured there would
# choose them (docs/search.md "QuantNorm bits"). --quantnorm_bits 4,6,8 searches them.
QUANTNORM_BITS = (8,)
DQ_FORMATS = ("pow2", "fixed")
# Layers whose weight granularity is searched too (per channel or per tensor): the depthwise ones.
PC_LAYERS = r"(.*/)?dw"
# How a layer is calibrated below 4 bits, where the family's settings were never meant to go
# (measured on uniform-precision PikeLPN under the study recipe, docs/search.md "Low-bit
# calibration"):
# * 2-bit weights scaled by their abs-max form a grid {-1, 0, 1}·max|w| that rounds nearly every
#   weight to 0 (training stays at chance); 3-bit ones train, then diverge near step 350. Scaled
#   by their mean |w| (as ternary weight networks do) both train.
# * 2-bit activations whose learned step starts at the family's bound / levels (6.0 / 3) start
#   mostly at 0 (32 % after 400 steps); from bound 3.0 they train (77 %).
LOW_BIT_WEIGHT_CALIBRATION = {2: "absmean", 3: "absmean"}  # replaces "absmax" only
LOW_BIT_ACT_BOUND = {2: 3.0}  # the initial bound of learned (lsq) activation steps


@dataclasses.dataclass(frozen=True, order=True)
class Choice:
  w_bits: int
  a_bits: int
  w_per_channel: Optional[bool] = None  # None: as the config has it (not searched)

  def label(self) -> str:
    pc = "" if self.w_per_channel is None else ("/pc" if self.w_per_channel else "/pt")
    return f"w{self.w_bits}a{self.a_bits}{pc}"

  @classmethod
  def from_label(cls, label: str) -> "Choice":
    """The inverse of label(): 'w4a8', 'w8a8/pc', 'w2a4/pt'."""
    m = re.fullmatch(r"w(\d+)a(\d+)(/pc|/pt)?", label)
    if not m:
      raise ValueError(f"choice {label!r} is not allowed; use w<bits>a<bits>[/pc|/pt]")
    pc = None if m.group(3) is None else m.group(3) == "/pc"
    return cls(int(m.group(1)), int(m.group(2)), pc)


@dataclasses.dataclass(frozen=True, order=True)
class Globals:
  quantnorm_bits: Optional[int] = None  # None: QuantNorm off in the config (not searched)
  dq_format: Optional[str] = None  # None: Double Quantization off in the config

  def label(self) -> str:
    return f"qn{self.quantnorm_bits}/dq-{self.dq_format}"

  def overrides(self) -> Dict[str, object]:
    out = {}
    if self.quantnorm_bits is not None:
      out["quantnorm_bits"] = self.quantnorm_bits
    if self.dq_format is not None:
      out["dq_format"] = self.dq_format
    return out


@dataclasses.dataclass(frozen=True)
class Space:
  layers: Tuple[str, ...]  # searched layers, in forward order
  pc_layers: Tuple[str, ...]  # the searched layers whose granularity is a choice too
  w_bits: Tuple[int, ...] = W_BITS
  a_bits: Tuple[int, ...] = A_BITS
  globals: Tuple[Globals, ...] = (Globals(),)
  low_bit_calibration: bool = True  # LOW_BIT_*: a choice below 4 bits brings its calibration

  def pc_options(self, layer: str) -> Tuple[Optional[bool], ...]:
    return (True, False) if layer in self.pc_layers else (None,)

  def choices(self, layer: str) -> Tuple[Choice, ...]:
    return tuple(
      Choice(w, a, pc)
      for w, a, pc in itertools.product(self.w_bits, self.a_bits, self.pc_options(layer))
    )


def report_layers(report) -> Tuple[str, ...]:
  """The bit-rule paths of the MAC layers of an ACEv2 report, in forward order."""
  out = []
  for row in report.layers:
    if row.macs <= 0:
      continue
    parts = row.path.split("/")
    if len(parts) < 3:
      raise ValueError(f"MAC row {row.path!r} is not <model>/<layer>/<mac module>")
    path = "/".join(parts[1:-1])
    if path not in out:
      out.append(path)
  return tuple(out)


def check_bits_list(values: Sequence[int], flag: str) -> Tuple[int, ...]:
  vals = tuple(sorted({int(v) for v in values}))
  if not vals or any(not 2 <= v <= 16 for v in vals):
    raise ValueError(f"{flag}={list(values)} is not allowed; use bit widths in 2..16")
  return vals


def build_space(
  config,
  layers: Sequence[str],
  *,
  layer_regex: str = ".*",
  w_bits: Sequence[int] = W_BITS,
  a_bits: Sequence[int] = A_BITS,
  quantnorm_bits: Sequence[int] = QUANTNORM_BITS,
  dq_formats: Sequence[str] = DQ_FORMATS,
  pc_regex: str = PC_LAYERS,
  low_bit_calibration: bool = True,
) -> Space:
  """The space over `layers` (report_layers) that match layer_regex; globals from the config's
  switches: QuantNorm bits only when QuantNorm is on, DQ formats only when DQ is on."""
  try:
    pat = re.compile(layer_regex)
  except re.error as e:
    raise ValueError(f"--layers={layer_regex!r} does not compile: {e}") from None
  chosen = tuple(p for p in layers if pat.fullmatch(p))
  if not chosen:
    raise ValueError(f"--layers={layer_regex!r} matches no layer; layers: {list(layers)}")
  m = config.model
  qn = tuple(check_bits_list(quantnorm_bits, "--quantnorm_bits")) if m.get("quantnorm") else (None,)
  bad = [f for f in dq_formats if f not in DQ_FORMATS]
  if bad or not dq_formats:
    raise ValueError(f"--dq_formats={list(dq_formats)} is not allowed; use some of {DQ_FORMATS}")
  dq = tuple(dq_formats) if m.get("double_quant") else (None,)
  return Space(
    layers=chosen,
    pc_layers=tuple(p for p in chosen if re.fullmatch(pc_regex, p)),
    w_bits=check_bits_list(w_bits, "--w_bits"),
    a_bits=check_bits_list(a_bits, "--a_bits"),
    globals=tuple(Globals(q, d) for q in qn for d in dq),
    low_bit_calibration=bool(low_bit_calibration),
  )


def _base_overrides(config, path: str) -> dict:
  """The overrides the config's own first matching rule gives `path` (kept under a choice)."""
  rules = br.compile_rules(tuple(config.model.get("bit_rules") or ()))
  i = br.matching_rule(path, rules)
  return dict(rules[i][1]) if i >= 0 else {}


def low_bit_overrides(settings: br.LayerQuant, choice: Choice) -> dict:
  """The calibration fields a choice below 4 bits brings (LOW_BIT_*), given the layer's settings
  in the config: only abs-max weights and learned activation steps are replaced."""
  o = {}
  if choice.w_bits in LOW_BIT_WEIGHT_CALIBRATION and settings.w_calibration == "absmax":
    o["w_calibration"] = LOW_BIT_WEIGHT_CALIBRATION[choice.w_bits]
  if choice.a_bits in LOW_BIT_ACT_BOUND and settings.a_calibration == "lsq":
    o["a_bound"] = LOW_BIT_ACT_BOUND[choice.a_bits]
  return o


def bit_rules(
  config, assignment: Dict[str, Choice], low_bit_calibration: bool = True
) -> Tuple[Tuple[str, dict], ...]:
  """The config's bit rules with one exact rule per assigned layer put first (first match wins).

  Each layer's rule keeps the other fields its original rule set (calibration, signedness...),
  and with `low_bit_calibration` takes the calibration its bits need (low_bit_overrides)."""
  from pikelpn_jax.models.quant_plan import plan_from_config

  plan = plan_from_config(config.model) if low_bit_calibration else None
  out = []
  for path, c in assignment.items():
    o = dict(_base_overrides(config, path), w_bits=int(c.w_bits), a_bits=int(c.a_bits))
    if c.w_per_channel is not None:
      o["w_per_channel"] = bool(c.w_per_channel)
    if plan is not None:
      o.update(low_bit_overrides(plan.settings(path), c))
    out.append((re.escape(path), o))
  out += [(p, dict(o)) for p, o in (config.model.get("bit_rules") or ())]
  return tuple(out)


def apply(
  config, assignment: Dict[str, Choice], glob: Globals = Globals(), low_bit_calibration=True
):
  """A copy of `config` with the assignment's bit rules and the globals set."""
  c = copy.deepcopy(config)
  c.model.bit_rules = bit_rules(config, assignment, low_bit_calibration)
  for k, v in glob.overrides().items():
    c.model[k] = v
  return c


def rules_json(rules) -> list:
  """Bit rules as JSON types: [[regex, {field: value}], ...]."""
  return [[p, dict(o)] for p, o in rules]
