"""The 0/1 program is exact over the table: it matches brute force on small random tables, keeps
the budget, and a budget below the cheapest model is a BudgetError naming the cheapest."""

import itertools
import random

import pytest

from pikelpn_jax.search import space as sp
from pikelpn_jax.search.cost import Table
from pikelpn_jax.search.optimize import BudgetError, solve


def random_problem(seed, n_layers=4):
  rng = random.Random(seed)
  layers = tuple(f"l{i}" for i in range(n_layers))
  space = sp.Space(
    layers, (layers[0],), (2, 4), (2, 8), (sp.Globals(8, "pow2"), sp.Globals(4, "pow2"))
  )
  cost, sens = {}, {"layers": {}, "globals": {}}
  fixed = {}
  for g in space.globals:
    fixed[g] = rng.randint(0, 1000)
    cost[g] = {p: {c: rng.randint(100, 5000) for c in space.choices(p)} for p in layers}
    sens["globals"][g] = rng.random() * 0.1
  sens["layers"] = {p: {c: rng.random() for c in space.choices(p)} for p in layers}
  return Table(space, cost, fixed, dict.fromkeys(space.globals, 0)), sens


def brute(table, sens, budget):
  best = None
  sp_ = table.space
  for g in sp_.globals:
    for combo in itertools.product(*(sp_.choices(p) for p in sp_.layers)):
      a = dict(zip(sp_.layers, combo))
      if table.total(g, a) > budget:
        continue
      s = sum(sens["layers"][p][c] for p, c in a.items()) + sens["globals"][g]
      if best is None or s < best - 1e-12:
        best = s
  return best


@pytest.mark.parametrize("seed", range(6))
def test_solve_matches_brute_force(seed):
  table, sens = random_problem(seed)
  lo = min(table.cheapest(g) for g in table.space.globals)
  budget = lo + random.Random(seed).randint(0, 8000)
  sol = solve(table, sens, budget)
  assert sol.predicted == table.total(sol.glob, sol.assignment) <= budget
  assert sol.sensitivity == pytest.approx(brute(table, sens, budget), abs=1e-9)


def test_budget_below_cheapest_names_it():
  table, sens = random_problem(0)
  lo = min(table.cheapest(g) for g in table.space.globals)
  with pytest.raises(BudgetError, match=f"cheapest model of the search space \\(ACEv2 {lo:,}\\)"):
    solve(table, sens, lo - 1)
  assert solve(table, sens, lo).predicted == lo


def test_a_budget_one_unit_below_the_best_choice_is_kept():
  """At ACEv2 scale HiGHS's feasibility tolerance lets a row a few units over its bound through;
  the answer must still lie within the budget in exact integers (PikeLPN fmnist's numbers: its
  block0/pw at 4-bit weights would be 1 over)."""
  g = sp.Globals(8, "pow2")
  w2, w4 = sp.Choice(2, 4), sp.Choice(4, 4)
  space = sp.Space(("block0/pw",), (), (2, 4), (4,), (g,))
  table = Table(space, {g: {"block0/pw": {w2: 4_325_376, w4: 5_373_952}}}, {g: 70_247_040}, {g: 0})
  sens = {"layers": {"block0/pw": {w2: 0.066, w4: 0.008}}, "globals": {g: 0.0}}
  budget = 70_247_040 + 5_373_952 - 1
  sol = solve(table, sens, budget)
  assert sol.assignment == {"block0/pw": w2} and sol.predicted <= budget
  assert solve(table, sens, budget + 1).assignment == {"block0/pw": w4}
