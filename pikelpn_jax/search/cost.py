"""The cost table: the exact ACEv2 of every (layer, choice), read from the analyzer's per-layer rows.

One analyzer trace per uniform setting (every searched layer at the same weight bits, activation
bits and depthwise granularity) gives, from its per-layer rows, the cost of each layer under that
choice. The cost of a model is then modelled as `fixed + Σ_layer cost[layer][choice]`, where
`fixed` is everything the search does not change (unsearched layers, pooling outside any layer).
That sum is exact only if a layer's rows depend on its own choice alone; the search re-prices its
answer with the analyzer (`price`) and tightens the budget when the two disagree (optimize.py).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Callable, Dict, Optional, Tuple

from pikelpn_jax.search import space as sp


def price(config):
  """The analyzer's report of `config`'s inference forward at batch 1 (every primitive priced)."""
  from pikelpn_jax.ace import acev2_report

  return acev2_report(config, None, acc_bits=int(config.ace.get("acc_bits", 32)))


def _layer_of(row_path: str, layers) -> Optional[str]:
  """The searched layer a report row belongs to (longest path prefix), or None."""
  p = row_path.split("/", 1)[1] if "/" in row_path else ""
  best = None
  for layer in layers:
    if (p == layer or p.startswith(layer + "/")) and (best is None or len(layer) > len(best)):
      best = layer
  return best


def split_rows(report, layers) -> Tuple[Dict[str, int], int]:
  """({layer: ACEv2 of its rows}, ACEv2 of the rows of no searched layer)."""
  per = dict.fromkeys(layers, 0)
  rest = 0
  for row in report.layers:
    layer = _layer_of(row.path, layers)
    if layer is None:
      rest += row.acev2
    else:
      per[layer] += row.acev2
  if sum(per.values()) + rest != report.acev2:
    raise ValueError(f"rows sum to {sum(per.values()) + rest}, the report says {report.acev2}")
  return per, rest


@dataclasses.dataclass
class Table:
  """cost[glob][layer][choice] and fixed[glob] (ACEv2 per image); traces: analyzer calls."""

  space: sp.Space
  cost: Dict[sp.Globals, Dict[str, Dict[sp.Choice, int]]]
  fixed: Dict[sp.Globals, int]
  fixed_spread: Dict[sp.Globals, int]  # max - min of `fixed` over the traces (0: constant)
  traces: int = 0
  seconds: float = 0.0

  def total(self, glob: sp.Globals, assignment: Dict[str, sp.Choice]) -> int:
    return self.fixed[glob] + sum(self.cost[glob][p][c] for p, c in assignment.items())

  def cheapest(self, glob: sp.Globals) -> int:
    return self.fixed[glob] + sum(min(v.values()) for v in self.cost[glob].values())


def build_table(config, space: sp.Space, log: Callable[[str], None] = lambda _: None) -> Table:
  t0 = time.perf_counter()
  cost, fixed, spread = {}, {}, {}
  traces = 0
  pcs = (True, False) if space.pc_layers else (None,)
  for g in space.globals:
    cost[g] = {p: {} for p in space.layers}
    seen_fixed = []
    for w, a, pc in itertools.product(space.w_bits, space.a_bits, pcs):
      assignment = {p: sp.Choice(w, a, pc if p in space.pc_layers else None) for p in space.layers}
      report = price(sp.apply(config, assignment, g, space.low_bit_calibration))
      traces += 1
      per, rest = split_rows(report, space.layers)
      for p, c in assignment.items():
        if c in cost[g][p] and cost[g][p][c] != per[p]:
          raise ValueError(f"layer {p} costs {per[p]} and {cost[g][p][c]} under {c.label()}")
        cost[g][p][c] = per[p]
      seen_fixed.append(rest)
    fixed[g] = max(seen_fixed)  # the worst case when it moves (re-pricing settles it)
    spread[g] = max(seen_fixed) - min(seen_fixed)
    log(f"cost table {g.label()}: {traces} traces, fixed {fixed[g]:,}")
  for g in space.globals:
    for p in space.layers:
      if len(cost[g][p]) > 1 and len(set(cost[g][p].values())) == 1:
        raise ValueError(f"layer {p!r}: no choice changes its cost; bit rules do not reach it")
  return Table(space, cost, fixed, spread, traces, time.perf_counter() - t0)
