"""Per-layer quantization settings by ordered regex rules on module paths (Qwix / big_vision style).

A layer's path is its Flax module path below the model, joined by '/', e.g. 'stem', 'block3/pw',
'stage2_block0/conv2', 'head'. `rules` is a sequence of (regex, overrides) pairs; the FIRST rule
whose regex matches the whole path (re.fullmatch) wins and its overrides are laid over `defaults`.
Later rules are not consulted, so put specific rules before general ones.

Keys of `defaults` and of every overrides mapping (LAYER_KEYS):
  w_bits, a_bits      weight / input-activation bits: 1..16, or None (float)
  w_per_channel       weights per output channel (True) or per tensor (False)
  w_channel_axis      the per-channel axis of the kernel (-1: output channels; kernels are 4-d
                      HWIO for convs, 2-d for dense)
  w_calibration       absmax | absmean | fixed | lsq | ema   (see quant/config.py)
  a_calibration       same choices, for the input activation
  a_bound             activation bound: the fixed bound, or the initial value for lsq/ema
  a_signed            None: the model decides from what feeds the layer; True/False forces it
  half_shift          PokeBNN's half-shifted grid (binary values ±0.5·bound), weights and inputs
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping, Optional, Sequence, Tuple

from pikelpn_jax.config_base import LAYER_DEFAULTS, check_int
from pikelpn_jax.quant.config import CALIBRATIONS, check_bits

LAYER_KEYS = (
  "w_bits",
  "a_bits",
  "w_per_channel",
  "w_channel_axis",
  "w_calibration",
  "a_calibration",
  "a_bound",
  "a_signed",
  "half_shift",
)

DEFAULT_LAYER = LAYER_DEFAULTS  # the settings no rule or config.model.quant sets (config_base)

Frozen = Tuple[Tuple[str, Any], ...]


def _check_bool(v, field, allow_none=False):
  if (v is None and allow_none) or isinstance(v, bool):
    return v
  raise ValueError(
    f"{field}={v!r} is not allowed; use True or False" + (" or None" if allow_none else "")
  )


def check_layer_settings(settings: Mapping[str, Any], where: str) -> None:
  """Validates (a subset of) layer settings; errors name `where` and the field."""
  unknown = set(settings) - set(LAYER_KEYS)
  if unknown:
    raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {list(LAYER_KEYS)}")
  for k, v in settings.items():
    f = f"{where}.{k}"
    if k in ("w_bits", "a_bits"):
      check_bits(v, f)
    elif k in ("w_per_channel", "half_shift"):
      _check_bool(v, f)
    elif k == "a_signed":
      _check_bool(v, f, allow_none=True)
    elif k == "w_channel_axis":
      # Kernels are at most 4-d (HWIO); dense kernels (2-d) are checked again at trace time.
      check_int(f, v, -4, 3, allowed="an int in -4..3 (-1: output channels)")
    elif k in ("w_calibration", "a_calibration"):
      if v not in CALIBRATIONS:
        raise ValueError(f"{f}={v!r} is not allowed; use one of {CALIBRATIONS}")
    elif k == "a_bound":
      if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise ValueError(f"{f}={v!r} is not allowed; use a positive number")


def freeze(m: Mapping[str, Any]) -> Frozen:
  return tuple(sorted((str(k), v) for k, v in dict(m).items()))


def compile_rules(
  rules: Sequence, where: str = "config.model.bit_rules"
) -> Tuple[Tuple[str, Frozen], ...]:
  """Validates rules once (regexes compile, overrides are valid) and freezes them (hashable)."""
  if rules is None:
    return ()
  if isinstance(rules, (str, bytes)) or not isinstance(rules, (list, tuple)):
    raise ValueError(f"{where}={rules!r} is not allowed; use a list of (regex, overrides) pairs")
  out = []
  for i, rule in enumerate(rules):
    if not isinstance(rule, (list, tuple)) or len(rule) != 2:
      raise ValueError(f"{where}[{i}]={rule!r} is not allowed; use a (regex, overrides) pair")
    pattern, overrides = rule
    try:
      re.compile(pattern)
    except (re.error, TypeError) as e:
      raise ValueError(f"{where}[{i}] regex {pattern!r} does not compile: {e}") from None
    if not isinstance(overrides, Mapping):
      raise ValueError(
        f"{where}[{i}] ({pattern!r}): overrides={overrides!r} is not allowed; "
        "use a mapping of layer fields"
      )
    check_layer_settings(overrides, f"{where}[{i}] ({pattern!r})")
    out.append((pattern, freeze(overrides)))
  return tuple(out)


def matching_rule(path: str, rules) -> int:
  """Index of the first rule whose regex fully matches `path`, or -1."""
  for i, (pattern, _) in enumerate(rules):
    if re.fullmatch(pattern, path):
      return i
  return -1


@dataclasses.dataclass(frozen=True)
class LayerQuant:
  """The resolved quantization settings of one layer (fields: LAYER_KEYS, see the docstring)."""

  w_bits: Optional[int]
  a_bits: Optional[int]
  w_per_channel: bool
  w_channel_axis: int
  w_calibration: str
  a_calibration: str
  a_bound: float
  a_signed: Optional[bool]
  half_shift: bool


def resolve(path: str, rules, defaults: Mapping[str, Any]) -> LayerQuant:
  """The settings of the layer at `path`: `defaults` overlaid by the first matching rule."""
  out = dict(DEFAULT_LAYER)
  out.update(dict(defaults))
  i = matching_rule(path, rules)
  if i >= 0:
    out.update(dict(rules[i][1]))
  return LayerQuant(**out)
