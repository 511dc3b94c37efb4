"""Quantizer configuration: numerics × calibration × granularity (× scale format), as frozen objects.

`bits=None` anywhere means float pass-through, so one flag gives the float baseline.
Every constructor validates its fields and raises one clear ValueError naming the field.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, NamedTuple, Optional


class CalibrationMethod(NamedTuple):
  """What a calibration method is (quantizer.py reads these, never the method's name).

  state: where its scale lives: '' none (stateless, recomputed from x or a constant), 'param' a
    learned step (lsq), 'batch_stats' a running bound (ema).
  measured: the bound is measured on data (max|x| or mean|x|), so a pow2 scale with rounding
    'auto' rounds up and never clips max|x|; a constant or learned bound rounds to nearest.
  statistic: the statistic of |x| a measured bound takes: 'max' or 'mean' ('' when not measured).
  """

  state: str
  measured: bool
  statistic: str


CALIBRATION_METHODS = {
  "absmax": CalibrationMethod(state="", measured=True, statistic="max"),
  "absmean": CalibrationMethod(state="", measured=True, statistic="mean"),
  "fixed": CalibrationMethod(state="", measured=False, statistic=""),
  "lsq": CalibrationMethod(state="param", measured=False, statistic=""),
  "ema": CalibrationMethod(state="batch_stats", measured=True, statistic="max"),
}
CALIBRATIONS = tuple(CALIBRATION_METHODS)
SCALE_FORMATS = ("none", "pow2", "fixed")
SCALE_ROUNDINGS = ("auto", "ceil", "nearest")
KINDS = ("weight", "act", "norm", "scale", "param")


def check_bits(bits, field: str = "bits", allow_none: bool = True):
  """Validates a bit width: an int in 1..16, or None (float)."""
  if bits is None and allow_none:
    return None
  if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
    allowed = "an integer 1..16 or None (float)" if allow_none else "an integer 1..16"
    raise ValueError(f"{field}={bits!r} is not allowed; use {allowed}")
  return bits


@dataclasses.dataclass(frozen=True)
class Numerics:
  """The integer grid and the rounding/STE rule.

  bits: 1..16 or None (float pass-through).
  signed: symmetric narrow range [-(2^(b-1)-1), 2^(b-1)-1] (b>=2); unsigned: [0, 2^b-1].
  bits=1, signed: the binary grid {-1, +1} (sign, with sign(0)=+1). With half_shift (PokeBNN) the
    real values are ±0.5·bound, otherwise ±bound.
  STE: identity gradient inside the clip range, zero outside (see quant/ste.py).
  """

  bits: Optional[int] = 8
  signed: bool = True
  half_shift: bool = False

  def __post_init__(self):
    check_bits(self.bits)
    if self.bits == 1 and not self.signed:
      raise ValueError("bits=1 with signed=False is not allowed; binary grids are signed (±1)")

  @property
  def is_float(self) -> bool:
    return self.bits is None

  @property
  def is_binary(self) -> bool:
    return self.bits == 1

  @property
  def qmin(self) -> float:
    if self.bits == 1:
      return -1.0
    return float(-(2 ** (self.bits - 1) - 1)) if self.signed else 0.0

  @property
  def qmax(self) -> float:
    if self.bits == 1:
      return 1.0
    return float(2 ** (self.bits - 1) - 1) if self.signed else float(2**self.bits - 1)

  @property
  def levels_per_bound(self) -> float:
    """How many grid steps map to the calibration bound (scale = bound / levels_per_bound)."""
    if self.bits == 1:
      return 2.0 if self.half_shift else 1.0
    return self.qmax


@dataclasses.dataclass(frozen=True)
class Calibration:
  """How the scale is chosen.

  absmax: max|x| (weights); absmean: mean|x| (ReActNet binary weights); fixed: a constant bound
  (PokeBNN uses 3.0 for binary activations); lsq: a learned step size (LSQ, with its gradient),
  initialised from `bound`; ema: an exponential moving average of max|x| over training batches.
  """

  method: str = "absmax"
  bound: float = 1.0
  momentum: float = 0.99
  lsq_grad_scale: bool = True

  def __post_init__(self):
    if self.method not in CALIBRATIONS:
      raise ValueError(
        f"calibration.method={self.method!r} is not allowed; use one of {CALIBRATIONS}"
      )
    if not self.bound > 0:
      raise ValueError(f"calibration.bound={self.bound!r} is not allowed; use a positive number")
    if not 0.0 <= self.momentum < 1.0:
      raise ValueError(f"calibration.momentum={self.momentum!r} is not allowed; use 0 <= m < 1")

  @property
  def spec(self) -> CalibrationMethod:
    return CALIBRATION_METHODS[self.method]


@dataclasses.dataclass(frozen=True)
class Granularity:
  """Per tensor (channel_axis=None) or per channel along `channel_axis` (negative allowed)."""

  channel_axis: Optional[int] = None

  def resolve(self, ndim: int) -> Optional[int]:
    """The non-negative channel axis for an `ndim`-d tensor; an error if out of range."""
    if self.channel_axis is None:
      return None
    if not -ndim <= self.channel_axis < ndim:
      raise ValueError(
        f"granularity.channel_axis={self.channel_axis} is out of range for a "
        f"{ndim}-d tensor; allowed: {-ndim}..{ndim - 1} or None (per tensor)"
      )
    return self.channel_axis % ndim


@dataclasses.dataclass(frozen=True)
class ScaleQuant:
  """Double Quantization: how the quantization scale itself is quantized.

  none: a float scale; pow2: 2^round(log2 s) (rescaling becomes a shift);
  fixed: a `bits`-bit integer mantissa times a power of two.
  rounding (pow2 only): how log2 s is rounded. 'ceil' never shrinks the scale, so an abs-max range
  is never clipped but up to half of the grid can go unused; 'nearest' clips up to 29 % of the
  range and keeps the grid fuller; 'auto' = ceil for data-calibrated scales (absmax, absmean,
  ema), nearest for learned and fixed ones.
  """

  format: str = "none"
  bits: int = 8
  rounding: str = "auto"

  def __post_init__(self):
    if self.format not in SCALE_FORMATS:
      raise ValueError(
        f"scale_quant.format={self.format!r} is not allowed; use one of {SCALE_FORMATS}"
      )
    if self.rounding not in SCALE_ROUNDINGS:
      raise ValueError(
        f"scale_quant.rounding={self.rounding!r} is not allowed; use one of {SCALE_ROUNDINGS}"
      )
    check_bits(self.bits, "scale_quant.bits", allow_none=False)


@dataclasses.dataclass(frozen=True)
class QuantConfig:
  """A quantizer: numerics × calibration × granularity × scale format, plus what it quantizes."""

  numerics: Numerics = Numerics()
  calibration: Calibration = Calibration()
  granularity: Granularity = Granularity()
  scale_quant: ScaleQuant = ScaleQuant()
  kind: str = "act"
  folded: bool = False

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"quant kind={self.kind!r} is not allowed; use one of {KINDS}")

  @property
  def bits(self) -> Optional[int]:
    return self.numerics.bits

  @property
  def is_float(self) -> bool:
    return self.numerics.is_float

  def replace(self, **kw) -> "QuantConfig":
    return dataclasses.replace(self, **kw)


FLOAT = QuantConfig(numerics=Numerics(bits=None))
# An activation's calibration unless one is given (weights: Calibration()'s, abs-max).
ACT_CALIBRATION = Calibration(method="ema", bound=6.0)


def weight_quant(
  bits: Optional[int],
  *,
  per_channel: bool = True,
  channel_axis: int = -1,
  scale: str = "none",
  scale_bits: int = 8,
  calibration: str = "absmax",
  half_shift: bool = False,
  folded: bool = False,
  scale_round: str = "auto",
) -> QuantConfig:
  """Signed weight quantizer (per output channel by default)."""
  return QuantConfig(
    numerics=Numerics(bits=bits, signed=True, half_shift=half_shift),
    calibration=Calibration(method=calibration),
    granularity=Granularity(channel_axis if per_channel else None),
    scale_quant=ScaleQuant(scale, scale_bits, scale_round),
    kind="weight",
    folded=folded,
  )


def act_quant(
  bits: Optional[int],
  *,
  signed: bool = False,
  calibration: str = ACT_CALIBRATION.method,
  bound: float = ACT_CALIBRATION.bound,
  scale: str = "none",
  scale_bits: int = 8,
  half_shift: bool = False,
  folded: bool = False,
  scale_round: str = "auto",
) -> QuantConfig:
  """Per-tensor activation quantizer (unsigned after ReLU by default)."""
  return QuantConfig(
    numerics=Numerics(bits=bits, signed=signed, half_shift=half_shift),
    calibration=Calibration(method=calibration, bound=bound),
    granularity=Granularity(None),
    scale_quant=ScaleQuant(scale, scale_bits, scale_round),
    kind="act",
    folded=folded,
  )


def from_dict(d: Mapping[str, Any], kind: str = "act") -> QuantConfig:
  """Builds a QuantConfig from a flat mapping (e.g. an ml-collections ConfigDict).

  Keys: bits, signed, half_shift, calibration, bound, momentum, lsq_grad_scale, channel_axis,
  scale, scale_bits, scale_round, folded, kind. Unknown keys are an error. A key left out takes the
  default of its dataclass field (Numerics, Calibration, Granularity, ScaleQuant, QuantConfig);
  an activation's calibration and bound default to ACT_CALIBRATION's.
  """
  allowed = {
    "bits",
    "signed",
    "half_shift",
    "calibration",
    "bound",
    "momentum",
    "channel_axis",
    "scale",
    "scale_bits",
    "scale_round",
    "folded",
    "kind",
    "lsq_grad_scale",
  }
  d = dict(d)
  unknown = set(d) - allowed
  if unknown:
    raise ValueError(f"unknown quantizer field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
  kind = d.pop("kind", kind)
  cal = Calibration() if kind == "weight" else ACT_CALIBRATION

  def part(default, keys: Mapping[str, str]):
    """`default` with the keys of `d` it has (d's name -> the dataclass field's name)."""
    return dataclasses.replace(default, **{f: d[k] for k, f in keys.items() if k in d})

  return QuantConfig(
    numerics=part(Numerics(), {k: k for k in ("bits", "signed", "half_shift")}),
    calibration=part(
      cal,
      {
        "calibration": "method",
        "bound": "bound",
        "momentum": "momentum",
        "lsq_grad_scale": "lsq_grad_scale",
      },
    ),
    granularity=part(Granularity(), {"channel_axis": "channel_axis"}),
    scale_quant=part(
      ScaleQuant(), {"scale": "format", "scale_bits": "bits", "scale_round": "rounding"}
    ),
    kind=kind,
    folded=d.get("folded", QuantConfig.folded),
  )
