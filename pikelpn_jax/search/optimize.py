"""The exact optimiser: a 0/1 integer program over the cost table (scipy.optimize.milp, HiGHS).

For each global setting g (QuantNorm bits × Double Quantization format, a handful), one binary
variable per (layer, choice), one-hot per layer:

    minimise  Σ sens[layer][choice]·x + ε·Σ cost·x / budget   (ε: the cheaper of equal optima)
    s.t.      Σ_choice x[layer][choice] = 1                    for every layer
              fixed[g] + Σ cost[g][layer][choice]·x ≤ budget

and the best g wins (its global sensitivity added). The table's integer sum of the answer is
checked against the budget in exact arithmetic; the caller re-prices it with the analyzer
(`search`), and when the analyzer's ACEv2 exceeds the budget (the additive model missed a
coupling) the budget given to the solver is lowered by the excess and the problem solved again.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional

import numpy as np

from pikelpn_jax.search import space as sp
from pikelpn_jax.search.cost import Table, price

TIE_BREAK = 1e-9  # per unit of (cost / budget): orders equal-sensitivity optima by cost only
MAX_TIGHTEN = 5


class BudgetError(ValueError):
  """The budget is below the cheapest model of the space."""


@dataclasses.dataclass
class Solution:
  glob: sp.Globals
  assignment: Dict[str, sp.Choice]
  sensitivity: float
  predicted: int  # the table's ACEv2


def solve(table: Table, sens, budget: int) -> Solution:
  """The assignment of least total sensitivity whose table cost is ≤ budget (exact over the table).

  sens: {'layers': {layer: {choice: value}}, 'globals': {glob: value}}."""
  from scipy.optimize import Bounds, LinearConstraint, milp

  best: Optional[Solution] = None
  space = table.space
  for g in space.globals:
    if table.cheapest(g) > budget:
      continue
    keys = [(p, c) for p in space.layers for c in space.choices(p)]
    cost = np.array([table.cost[g][p][c] for p, c in keys], dtype=np.float64)
    s = np.array([sens["layers"][p][c] for p, c in keys], dtype=np.float64)
    onehot = np.zeros((len(space.layers), len(keys)))
    for j, (p, _) in enumerate(keys):
      onehot[space.layers.index(p), j] = 1.0
    scale = float(budget)
    # The knapsack row over each layer's cost above its cheapest choice (one choice per layer, so
    # the cheapest sum is a constant): HiGHS's feasibility tolerance is relative to the row's
    # size, and on whole ACEv2 totals it lets answers ~100 units over the bound through.
    floor = np.array([min(table.cost[g][p].values()) for p, _ in keys], dtype=np.float64)
    room = budget - table.cheapest(g)
    row_scale = max(1.0, float(max(room, (cost - floor).max())))
    limit = int(room)
    assignment = None
    # an answer still over the budget in exact integers is solved again with the excess taken
    # off, doubled at each try
    for k in range(MAX_TIGHTEN + 1):
      cons = [
        LinearConstraint(onehot, 1, 1),
        LinearConstraint((cost - floor)[None, :] / row_scale, -np.inf, limit / row_scale),
      ]
      res = milp(
        s + TIE_BREAK * cost / scale,
        constraints=cons,
        integrality=np.ones(len(keys)),
        bounds=Bounds(0, 1),
        options={"mip_rel_gap": 0.0},
      )
      if res.x is None:
        break
      assignment = {p: c for (p, c), v in zip(keys, res.x) if v > 0.5}
      predicted = table.total(g, assignment)
      if predicted <= budget:
        break
      limit -= (predicted - budget) * 2**k
      assignment = None
    if assignment is None:
      continue
    total = float(sum(sens["layers"][p][c] for p, c in assignment.items()))
    total += float(sens["globals"].get(g, 0.0))
    cand = Solution(g, assignment, total, predicted)
    if best is None or (cand.sensitivity, cand.predicted) < (best.sensitivity, best.predicted):
      best = cand
  if best is None:
    cheapest = min(table.cheapest(g) for g in space.globals)
    raise BudgetError(
      f"--budget={budget:,} is below the cheapest model of the search space "
      f"(ACEv2 {cheapest:,}); use a budget ≥ {cheapest:,}"
    )
  return best


def search(
  config, table: Table, sens, budget: int, log: Callable[[str], None] = lambda _: None
) -> dict:
  """solve, then re-price the answer exactly; tighten and re-solve while it is over budget."""
  limit = int(budget)
  tries: List[dict] = []
  for _ in range(MAX_TIGHTEN + 1):
    sol = solve(table, sens, limit)
    final = sp.apply(config, sol.assignment, sol.glob, table.space.low_bit_calibration)
    exact = int(price(final).acev2)
    tries.append({"solver_budget": limit, "predicted": sol.predicted, "repriced": exact})
    log(f"solver budget {limit:,}: table {sol.predicted:,}, analyzer {exact:,}")
    if exact <= budget:
      return {"solution": sol, "config": final, "repriced": exact, "tries": tries}
    limit -= exact - budget
  raise BudgetError(
    f"--budget={budget:,}: no answer within it after {MAX_TIGHTEN} tightenings "
    f"(re-priced ACEv2 {tries[-1]['repriced']:,})"
  )
