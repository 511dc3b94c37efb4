"""CostReport: the frozen, addable result of an ACEv2 analysis, as a terminal table or JSON."""

from __future__ import annotations

import dataclasses
import types
from typing import Mapping, Tuple

from pikelpn_jax.ace.values import CATEGORIES

_FROZEN = types.MappingProxyType


def frozen(d) -> Mapping:
  return _FROZEN(dict(d))


def _add_maps(a: Mapping, b: Mapping) -> dict:
  out = dict(a)
  for k, v in b.items():
    out[k] = out.get(k, 0) + v
  return out


def _add_tables(a: Mapping, b: Mapping) -> Mapping:
  """Sum of two {key: {count, acev2}} tables, keys sorted (by_bits, by_class)."""
  out = {k: dict(v) for k, v in a.items()}
  for k, v in b.items():
    out[k] = _add_maps(out.get(k, {}), v)
  return frozen({k: frozen(v) for k, v in sorted(out.items())})


@dataclasses.dataclass(frozen=True)
class LayerRow:
  """Costs of one Flax module path; traffic is an unfused estimate (docs/acev2.md)."""

  path: str
  macs: int = 0
  ace: int = 0
  acev2: int = 0
  ops: int = 0  # elementary operations (a MAC counts one)
  weight_bits: int = 0  # bits of stored constants read (weights, scales, biases)
  act_read_bits: int = 0  # bits of activations read by priced ops
  act_write_bits: int = 0  # bits of activations written by priced ops
  breakdown: Mapping[str, int] = dataclasses.field(default_factory=lambda: _FROZEN({}))

  @property
  def traffic_bits(self) -> int:
    return self.weight_bits + self.act_read_bits + self.act_write_bits

  @property
  def intensity(self) -> float:
    """Arithmetic intensity: elementary ops per byte moved (0 when nothing moves)."""
    return self.ops / (self.traffic_bits / 8) if self.traffic_bits else 0.0

  def __add__(self, other: "LayerRow") -> "LayerRow":
    if other.path != self.path:
      raise ValueError(f"cannot add rows of different layers {self.path!r} and {other.path!r}")
    return LayerRow(
      self.path,
      self.macs + other.macs,
      self.ace + other.ace,
      self.acev2 + other.acev2,
      self.ops + other.ops,
      self.weight_bits + other.weight_bits,
      self.act_read_bits + other.act_read_bits,
      self.act_write_bits + other.act_write_bits,
      frozen(_add_maps(self.breakdown, other.breakdown)),
    )

  def to_json(self) -> dict:
    return {
      "path": self.path,
      "macs": self.macs,
      "ace": self.ace,
      "acev2": self.acev2,
      "ops": self.ops,
      "breakdown": dict(self.breakdown),
      "weight_bits": self.weight_bits,
      "act_read_bits": self.act_read_bits,
      "act_write_bits": self.act_write_bits,
      "intensity_ops_per_byte": round(self.intensity, 4),
    }


def _float_label(float_bits) -> str:
  return "widths from dtypes" if float_bits is None else f"{float_bits}b"


@dataclasses.dataclass(frozen=True)
class CostReport:
  """Totals, ACEv2 by category and by bit-width pair, rows per module path.

  macs: multiply-accumulates of conv_general_dilated / dot_general.
  ace: PokeBNN's ACE (v1): Σ MACs · b_x · b_w. acev2: ACE plus every priced elementwise op.
  params: parameter count; model_bits: Σ params × their bits (quantizer tag, else float bits).
  breakdown: ACEv2 per category (exactly CATEGORIES). by_bits: {"<op> <bx>x<by>": {count, acev2}}.
  by_class: the same split by operand class too, {"<op> <cx><bx>x<cy><by>": {count, acev2}} with
    cx, cy in int, acc, float, bool, fixed (e.g. "mul acc32xfixed16"); unary ops "<op> <cx><bx>".
  unaccounted: primitives that could not be priced (non-strict mode only; must be empty).
  notes: conventions applied that change a type (pad widening, cond branches disagreeing).
  """

  macs: int
  ace: int
  acev2: int
  params: int
  model_bits: int
  breakdown: Mapping[str, int]
  by_bits: Mapping[str, Mapping[str, int]]
  layers: Tuple[LayerRow, ...]
  unaccounted: Tuple[str, ...]
  notes: Tuple[str, ...]
  settings: Mapping[str, object]
  timing: Mapping[str, float]
  by_class: Mapping[str, Mapping[str, int]] = dataclasses.field(default_factory=lambda: _FROZEN({}))

  def __post_init__(self):
    if tuple(self.breakdown) != CATEGORIES:
      raise ValueError(f"breakdown keys {tuple(self.breakdown)} must be exactly {CATEGORIES}")

  def layer(self, path: str) -> LayerRow:
    for row in self.layers:
      if row.path == path:
        return row
    raise KeyError(f"no layer {path!r}; layers: {[r.path for r in self.layers]}")

  def __add__(self, other: "CostReport") -> "CostReport":
    if not isinstance(other, CostReport):
      return NotImplemented
    if dict(self.settings) != dict(other.settings):
      raise ValueError(
        "cannot add CostReports made with different settings: "
        f"{dict(self.settings)} vs {dict(other.settings)}"
      )
    rows = {r.path: r for r in self.layers}
    for r in other.layers:
      rows[r.path] = rows[r.path] + r if r.path in rows else r
    by_bits = _add_tables(self.by_bits, other.by_bits)
    by_class = _add_tables(self.by_class, other.by_class)
    return CostReport(
      self.macs + other.macs,
      self.ace + other.ace,
      self.acev2 + other.acev2,
      self.params + other.params,
      self.model_bits + other.model_bits,
      frozen(_add_maps(self.breakdown, other.breakdown)),
      by_bits,
      tuple(rows.values()),
      self.unaccounted + other.unaccounted,
      tuple(dict.fromkeys(self.notes + other.notes)),
      self.settings,
      frozen(_add_maps(self.timing, other.timing)),
      by_class,
    )

  def __radd__(self, other):
    if other == 0:  # sum([...])
      return self
    return NotImplemented

  def to_json(self) -> dict:
    return {
      "macs": self.macs,
      "ace": self.ace,
      "acev2": self.acev2,
      "params": self.params,
      "model_bits": self.model_bits,
      "breakdown": dict(self.breakdown),
      "by_bits": {k: dict(v) for k, v in self.by_bits.items()},
      "by_class": {k: dict(v) for k, v in self.by_class.items()},
      "layers": [r.to_json() for r in self.layers],
      "unaccounted": list(self.unaccounted),
      "notes": list(self.notes),
      "settings": dict(self.settings),
      "timing": dict(self.timing),
    }

  def render(self, by: str = "layer") -> str:
    if by not in ("layer", "category"):
      raise ValueError(f"render(by={by!r}) is not allowed; use 'layer' or 'category'")
    head = [
      f"MACs {_si(self.macs)}  ACE {_si(self.ace)}  ACEv2 {_si(self.acev2)}  "
      f"params {_si(self.params)}  model {_si(self.model_bits / 8)}B  "
      f"(float {_float_label(self.settings.get('float_bits'))}, "
      f"acc {self.settings.get('acc_bits')}b"
      + (f", fold {self.settings['fold']})" if self.settings.get("fold", "none") != "none" else ")")
    ]
    src = self.settings.get("config_source")
    if src:
      line = f"config {src}"
      if self.settings.get("config_variant_defaulted"):
        line += " (no variant given: the file's default variant)"
      if self.settings.get("config_overrides"):
        line += "  overrides " + " ".join(self.settings["config_overrides"])
      head.append(line)
    if by == "category":
      body = _table(
        ["category", "ACEv2", "%"],
        [[c, _si(v), _pct(v, self.acev2)] for c, v in self.breakdown.items()],
      )
      bits = _table(
        ["op bits", "count", "ACEv2", "%"],
        [
          [k, _si(v["count"]), _si(v["acev2"]), _pct(v["acev2"], self.acev2)]
          for k, v in sorted(self.by_bits.items(), key=lambda kv: -kv[1]["acev2"])
        ],
      )
      out = head + [body, "", bits]
    else:
      rows = [
        [
          r.path or "<top>",
          _si(r.macs),
          _si(r.ace),
          _si(r.acev2),
          _pct(r.acev2, self.acev2),
          _si(r.traffic_bits / 8) + "B",
          f"{r.intensity:.2f}",
        ]
        for r in self.layers
      ]
      out = head + [_table(["layer", "MACs", "ACE", "ACEv2", "%", "traffic", "ops/B"], rows)]
    if self.unaccounted:
      out.append("UNACCOUNTED: " + "; ".join(self.unaccounted))
    if self.notes:
      out.append("notes: " + "; ".join(self.notes))
    return "\n".join(out)


def _si(x: float) -> str:
  for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
    if abs(x) >= div:
      return f"{x / div:.3f}{unit}"
  return f"{x:.0f}" if float(x).is_integer() else f"{x:.2f}"


def _pct(v: float, total: float) -> str:
  return f"{100.0 * v / total:.1f}" if total else "0.0"


def _table(header, rows) -> str:
  cols = list(zip(*([header] + rows))) if rows else [[h] for h in header]
  widths = [max(len(str(c)) for c in col) for col in cols]

  def line(cells):
    return "  ".join(
      str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
    )

  return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])
