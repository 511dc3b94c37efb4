"""experiments/search.py: --quick --no_train builds a correct partial table (every missing run
named, no accuracy), fixes its budgets in search_budgets.json and refuses a study whose budgets
moved; the paired comparisons pair seeds and check the 1-point goal."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args):
  env = dict(os.environ, JAX_DISABLE_MOST_OPTIMIZATIONS="1", JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
  return subprocess.run(
    [sys.executable, "-m", "experiments.search", *args],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )


def test_quick_partial_table_and_fixed_budgets(tmp_path):
  p = run("--quick", "--no_train", "--out_dir", str(tmp_path))
  assert p.returncode == 0, p.stderr[-3000:]
  with open(tmp_path / "search.json") as f:
    data = json.load(f)
  md = (tmp_path / "search.md").read_text()
  assert (tmp_path / "search.png").exists()
  fixed = json.loads((tmp_path / "search_budgets.json").read_text())["budgets"]
  assert fixed["uniform2"] < fixed["mid"] < fixed["uniform3"]
  assert data["budgets"] == {"uniform3": fixed["uniform3"]}
  for row in ("uniform2", "uniform3", "pikelpn.py:1x", "proxy@uniform3", "random@uniform3"):
    assert data["rows"][row]["missing_seeds"] == [0, 1] and data["rows"][row]["n"] == 0
  assert "Incomplete sweep" in md and "proxy search @ uniform3" in md
  assert "absent here: its rows are missing" in md  # no reference checkpoint without training
  proxy = data["searched"]["proxy@uniform3"]
  assert proxy["acev2"] <= fixed["uniform3"]
  assert data["rows"]["proxy@uniform3"]["acev2"] == proxy["acev2"]
  # the configs rebuilt from what search.json records per seed are the ones priced (and trained)
  from experiments.lib import costs, recipe
  from experiments.search import searched_row_config

  def price(row, seed):
    got = data["searched"][row]["seeds"][str(seed)]
    c = searched_row_config(recipe.QUICK, True, seed, got["choices"], got["globals"])
    assert c.seed == seed
    return costs.acev2(c)["acev2"]

  assert price("proxy@uniform3", 1) == proxy["acev2"]
  rand = data["searched"]["random@uniform3"]["seeds"]
  assert set(rand) == {"0", "1"} and rand["0"] != rand["1"]  # drawn per seed
  assert (price("random@uniform3", 0) + price("random@uniform3", 1)) / 2 == pytest.approx(
    data["rows"]["random@uniform3"]["acev2"]
  )


def test_budgets_that_moved_are_refused(tmp_path, monkeypatch):
  from experiments import search
  from experiments.lib import search_rows

  monkeypatch.setattr(search_rows, "budgets", lambda r: {"uniform2": 1, "mid": 2, "uniform3": 3})
  assert search.fixed_budgets(None, str(tmp_path))["mid"] == 2  # recorded on the first run
  assert search.fixed_budgets(None, str(tmp_path))["mid"] == 2  # found again
  monkeypatch.setattr(search_rows, "budgets", lambda r: {"uniform2": 1, "mid": 5, "uniform3": 3})
  with pytest.raises(ValueError, match="differ from the ones fixed"):
    search.fixed_budgets(None, str(tmp_path))


def test_comparisons_pair_seeds_and_check_the_goal():
  from experiments.search import comparisons

  def row(tops, acev2, fps=None):
    fps = fps or ["fp"] * len(tops)
    return {
      "top1": {str(k): v for k, v in enumerate(tops)},
      "acev2": acev2,
      "numerics": {str(k): fp for k, fp in enumerate(fps)},
      "by_numerics": {
        str(k): {fp: {"top1": v, "record": f"r{k}.json"}}
        for k, (v, fp) in enumerate(zip(tops, fps))
      },
    }

  rows = {
    "measured@uniform3": row([0.80, 0.82, 0.81, 0.83, 0.80], 99),
    "uniform3": row([0.78, 0.80, 0.79, 0.81, 0.78], 100),
    "random@uniform3": row([0.80, 0.82, 0.81, 0.83, 0.80], 98),
  }
  items = {(i["searched"], i["against"]): i for i in comparisons(rows, {"uniform3": 100})}
  vs_uniform = items[("measured@uniform3", "uniform3")]
  assert vs_uniform["paired"]["mean"] == pytest.approx(0.02)
  assert vs_uniform["paired"]["n"] == 5 and vs_uniform["paired"]["lo"] == pytest.approx(0.02)
  assert vs_uniform["goal"]["check"] == "supported"
  vs_random = items[("measured@uniform3", "random@uniform3")]
  assert vs_random["paired"]["mean"] == pytest.approx(0.0)
  assert vs_random["goal"]["check"] == "not settled"
  # a seed trained at another fingerprint on one side is left out, named, not paired
  rows["uniform3"] = row([0.78, 0.80, 0.79, 0.81, 0.0], 100, ["fp"] * 4 + ["other"])
  items = {(i["searched"], i["against"]): i for i in comparisons(rows, {"uniform3": 100})}
  mixed = items[("measured@uniform3", "uniform3")]
  assert mixed["paired"]["n"] == 4 and mixed["numerics"] == "fp"
  assert mixed["left_out"] == [{"seed": 4, "on": "fp", "off": "other", "why": "mixed"}]
  assert mixed["paired"]["mean"] == pytest.approx(0.02)


def test_the_study_trains_seed_major():
  """Every run of seed k (fixed rows, then searched ones) before any of seed k + 1."""
  from experiments.lib import recipe, sweep
  from experiments.search import fixed_jobs, seed_major

  fixed = fixed_jobs(recipe.QUICK, (0, 1), quick=True)
  searched = [sweep.Job(f"m@{b}", j.config, "") for b in ("a", "b") for j in fixed[:1] + fixed[-1:]]
  order = [(j.seed, j.row) for j in seed_major(fixed + searched)]
  assert [k for k, _ in order] == sorted(k for k, _ in order)
  assert [r for k, r in order if k == 0] == [j.row for j in fixed + searched if j.seed == 0]


def test_compared_rows_go_through_every_seed_before_the_figure_only_rows():
  """An interrupted study should hold the paired comparisons' seeds, not extra figure points."""
  from experiments.lib import recipe
  from experiments.lib import search_rows as sr
  from experiments.search import compared_rows, fixed_jobs, seed_major

  first = compared_rows({"uniform2": 1, "mid": 2, "uniform3": 3})
  assert {"uniform2", "uniform3", "measured@mid", "proxy@uniform2", "random@uniform3"} <= first
  assert f"uniform{sr.UNIFORM_BITS[-1]}" not in first and "pikelpn.py:1x" not in first
  jobs = fixed_jobs(recipe.QUICK, (0, 1, 2), quick=False)
  order = [(j.row in first, j.seed) for j in seed_major(jobs, first)]
  assert order == sorted(order, key=lambda t: (not t[0], t[1]))
  assert order[0] == (True, 0) and order[-1] == (False, 2)


def test_low_bit_calibration_costs_no_acev2():
  """The budgets were fixed from uniform configs without the low-bit calibration; with it they
  must price the same, or the fixed budgets would no longer be uniform precision's ACEv2."""
  from experiments.lib import recipe
  from experiments.lib import search_rows as sr
  from pikelpn_jax.search import cost

  c = sr.uniform_config(2, recipe.QUICK)
  rules = dict(c.model.bit_rules)
  assert rules["block0/pw"]["w_calibration"] == "absmean" and rules["block0/pw"]["a_bound"] == 3.0
  plain = sr.uniform_config(2, recipe.QUICK, low_bit_calibration=False)
  assert "w_calibration" not in dict(plain.model.bit_rules)["block0/pw"]
  assert cost.price(c).acev2 == cost.price(plain).acev2
