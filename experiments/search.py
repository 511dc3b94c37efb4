"""Searched bit widths against uniform precision and random allocations at equal ACEv2.

On Fashion-MNIST at the study recipe (experiments/lib/recipe.py) PikeLPN saturates near 90–91 %
top-1 from its hand-designed widths up, so the comparison is made where bits are scarce. The
budgets are fixed from configs alone before anything searched is trained: the ACEv2 of uniform
2-bit and uniform 3-bit PikeLPN (every body layer at b-bit weights and activations, stem/head at
8) and their midpoint; they are written to <out_dir>/search_budgets.json on the first run and a
later run with other budgets is refused. At each budget: the search with the measured
sensitivity (loss increase per choice on held-out training images, from the hand-designed
PikeLPN-1x seed 0), the search with the data-free proxy, and a random allocation (random
sensitivities, same optimiser, drawn per seed). Seeds are paired (same initialisation and data
order); effects are paired 95 % t-intervals. Writes results/search.{md,json,png}.

    python -m experiments.search                # trains what results/runs/ lacks, resumable
    python -m experiments.search --no_train     # tables from the records that exist
    python -m experiments.search --quick --out_dir /tmp/x
"""

from __future__ import annotations

import json
import os

from experiments.lib import costs, numerics, recipe, results, runs, stats, sweep, zoo
from experiments.lib import search_rows as sr
from experiments.lib.common import markdown_table

NAME = "search"
DEFAULT_SEEDS = "0,1,2,3,4"
GOAL = 0.01  # searched beats uniform by ≥ 1 point (top-1 as a fraction)
FAMILY = (("pikelpn.py:1x", "family: PikeLPN-1x"), ("pikelpn.py:2x", "family: PikeLPN-2x"))
METHODS = ("measured", "proxy", "random")


def fixed_budgets(r, out_dir: str) -> dict:
  """The three budgets; the first run records them, later runs must find the same."""
  b = sr.budgets(r)
  path = os.path.join(out_dir, "search_budgets.json")
  old = results.read_json(path)
  if old is not None and old.get("budgets") != b:
    raise ValueError(
      f"budgets {b} differ from the ones fixed in {path} ({old.get('budgets')}); the comparison "
      "needs budgets fixed before training: remove the file only to start a new study"
    )
  if old is None:
    with open(path, "w") as f:
      json.dump({"budgets": b, "note": "ACEv2 of the configs only, fixed before training"}, f)
      f.write("\n")
  return b


def fixed_jobs(r, seeds, quick):
  """Uniform precision and the family's hand-designed points (no search needed)."""
  out = []
  bits = sr.UNIFORM_BITS[:2] if quick else sr.UNIFORM_BITS
  family = FAMILY[:1] if quick else FAMILY
  for k in seeds:
    out += [
      sweep.Job(f"uniform{b}", sr.uniform_config(b, r, k), f"search/uniform{b}") for b in bits
    ]
    out += [
      sweep.Job(spec, recipe.study_config(zoo.load(spec), r, k), f"search/{spec}")
      for spec, _ in family
    ]
  return out


def reference_variables(r, args, log):
  """The trained hand-designed PikeLPN-1x, seed 0 (its checkpoint; trained here if absent)."""
  from pikelpn_jax.train.checkpoint import latest_step, restore_latest

  config = recipe.study_config(zoo.load(FAMILY[0][0]), r, 0)
  rec = runs.record_name(runs.key(config))[: -len(".json")]
  roots = [args.work_root or sweep.default_work_root(args.out_dir, args.quick, NAME)]
  roots.append(sweep.default_work_root(args.out_dir, args.quick, "ablations"))
  for root in roots:
    wd = os.path.join(root, rec)
    if latest_step(wd) == config.num_train_steps:
      return config, restore_latest(wd, config), wd
  if args.no_train:
    return config, None, None
  wd = os.path.join(roots[0], "reference_" + rec)
  log(f"training the reference PikeLPN-1x seed 0 for the sensitivity in {wd}")
  runs.trained_checkpoint(config, wd, log)
  return config, restore_latest(wd, config), wd


def measured_sensitivity(searcher, r, args, log):
  """The measured sensitivity, cached in <out_dir>/search_sensitivity.json."""
  from pikelpn_jax.search import io, sensitivity

  path = os.path.join(args.out_dir, "search_sensitivity.json")
  ref_key = runs.key(recipe.study_config(zoo.load(FAMILY[0][0]), r, 0))
  cached = results.read_json(path)
  n_images = 64 if args.quick else 1000
  if cached is not None and (cached.get("reference"), cached.get("images")) == (ref_key, n_images):
    try:
      return io.from_json(cached, searcher.space, path)
    except ValueError:
      pass  # another space: measure again
  config, variables, wd = reference_variables(r, args, log)
  if variables is None:
    return None
  images, labels = sensitivity.heldout_images(config, n_images)
  sens = sensitivity.measured(config, variables, searcher.space, images, labels, log)
  data = dict(io.sensitivity_json(sens), reference=ref_key, workdir=wd)
  with open(path, "w") as f:
    json.dump(data, f, indent=1, default=str)
  return sens


def searched_jobs(searcher, budgets, sens_measured, r, seeds, log):
  """(jobs, {(method, budget): search summary}); random allocations are drawn per seed."""
  jobs, found = [], {}
  for bname, b in budgets.items():
    for m in METHODS:
      if m == "measured" and sens_measured is None:
        continue
      per_seed = {}
      for k in seeds:
        sens = {"measured": sens_measured, "proxy": None, "random": None}[m]
        if m == "proxy":
          sens = searcher.proxy()
        if m == "random":
          sens = searcher.random_sensitivity(k)
        if m != "random" and per_seed:
          per_seed[k] = next(iter(per_seed.values()))
        else:
          per_seed[k] = searcher.search(sens, b, log)
        row = f"{m}@{bname}"
        jobs.append(sweep.Job(row, sr.searched_config(per_seed[k], r, k), f"search/{row}"))
      f0 = per_seed[seeds[0]]
      found[(m, bname)] = {
        "acev2": f0["repriced"],
        "choices": _labels(f0),
        "globals": f0["solution"].glob.overrides(),
        "tries": f0["tries"],
        # what each seed trained (random allocations differ per seed): the configs, rebuilt
        # by searched_row_config, are what tests match the committed records against
        "seeds": {
          str(k): {"choices": _labels(f), "globals": f["solution"].glob.overrides()}
          for k, f in per_seed.items()
        },
      }
  return jobs, found


def _labels(found) -> dict:
  return {p: c.label() for p, c in found["solution"].assignment.items()}


def searched_row_config(r, quick: bool, seed: int, choices: dict, glob: dict):
  """The config a searched row trains for `seed`, from its choices and globals as search.json
  records them (the search's own answer is this config: sp.apply on the seed-0 search base)."""
  from pikelpn_jax.search import space as sp

  assignment = {p: sp.Choice.from_label(c) for p, c in choices.items()}
  found = {"config": sp.apply(sr.search_base(r, quick), assignment, sp.Globals(**glob))}
  return sr.searched_config(found, r, seed)


def compared_rows(budgets) -> set:
  """The rows some paired comparison reads (the rest only place points on the figure)."""
  return {row for pair in comparison_pairs(budgets) for row in pair[:2]}


def seed_major(jobs, first=frozenset()):
  """Every job of seed k before any of seed k + 1, in the given order within a seed: an
  interrupted sweep holds whole pairs, trained by one process on one machine. Rows in `first`
  (the compared ones) go through all seeds before the others, which only add figure points."""
  return sorted(jobs, key=lambda j: (j.row not in first, j.seed))


def row_stats(outcome, configs):
  """Per row: top-1 per seed, mean ± std, missing seeds, and the ACEv2 of its seed's config
  (random allocations differ per seed: their mean ACEv2)."""
  out = {}
  for row, recs in outcome.records.items():
    tops = sweep.top1s(recs)
    mean, std, n = stats.mean_std(list(tops.values()))
    # the seed does not change a price: seed 0's config hits the price cache
    prices = [costs.acev2(sr.with_seed(c, 0))["acev2"] for c in configs.get(row, [])]
    out[row] = {
      "top1": {str(k): v for k, v in tops.items()},
      "top1_mean": mean,
      "top1_std": std,
      "n": n,
      "missing_seeds": outcome.missing.get(row, []),
      "acev2": sum(prices) / len(prices) if prices else None,
      "acev2_max": max(prices) if prices else None,
      "numerics": {str(k): v.get("numerics") for k, v in recs.items()},
      "by_numerics": sweep.by_numerics(outcome.versions.get(row, {})),
    }
  return out


def comparison_pairs(budgets):
  """(searched row, other row, goal bound or None): equal or lower ACEv2 for the other side."""
  pairs = []
  for m in ("measured", "proxy"):
    pairs += [
      (f"{m}@uniform2", "uniform2", GOAL),
      (f"{m}@mid", "uniform3", GOAL),
      (f"{m}@uniform3", "uniform3", GOAL),
    ]
    pairs += [(f"{m}@{b}", f"random@{b}", 0.0) for b in budgets]
  pairs += [(f"measured@{b}", f"proxy@{b}", None) for b in budgets]
  return pairs


def comparisons(rows, budgets):
  """Each comparison pair's interval, its seeds paired within one numerics fingerprint."""
  out = []
  for a, b, bound in comparison_pairs(budgets):
    if a not in rows or b not in rows:
      continue
    nums = sweep.pair_rows(rows[a], rows[b])  # within one fingerprint, as the ablations
    ci = stats.paired_interval(nums["on"], nums["off"])
    out.append(
      {
        "searched": a,
        "against": b,
        "paired": ci,
        "numerics": nums["numerics"],
        "left_out": nums["left_out"],
        "records": nums["records"],
        "acev2": [rows[a]["acev2"], rows[b]["acev2"]],
        "goal": None if bound is None else {"bound": bound, "check": _check(ci, bound)},
      }
    )
  return out


def _check(ci, bound: float) -> str:
  """The goal 'searched − other ≥ bound' (bound 0: strictly better, the interval above 0)."""
  if bound > 0:
    return stats.claim_check(ci, bound)
  if ci["lo"] is None:
    return stats.NOT_SETTLED
  if ci["lo"] > 0:
    return stats.SUPPORTED
  return stats.CONTRADICTED if ci["hi"] < 0 else stats.NOT_SETTLED


def _goal_words(goal) -> str:
  if goal is None:
    return "-"
  if goal["bound"]:
    return f"≥ +{100 * goal['bound']:.0f} point: {goal['check']}"
  return f"beats it (interval above 0): {goal['check']}"


def _acc(r) -> str:
  if r["top1_mean"] is None:
    return "-"
  s = f"{100 * r['top1_mean']:.2f}"
  s += " (1 seed)" if r["n"] == 1 else f" ± {100 * r['top1_std']:.2f} ({r['n']})"
  return s + (" ²" if r["missing_seeds"] else "")


def figure(rows, labels, path):
  plt = results.pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  style = {"uniform": "s", "measured": "o", "proxy": "^", "random": "x", "pikelpn.py": "*"}
  for row, r in rows.items():
    if r["top1_mean"] is None or r["acev2"] is None:
      continue
    mk = next((v for k, v in style.items() if row.startswith(k)), "d")
    ax.errorbar(
      r["acev2"],
      100 * r["top1_mean"],
      yerr=100 * (r["top1_std"] or 0),
      fmt=mk,
      capsize=3,
      label=labels.get(row, row),
    )
  if not ax.lines:  # nothing trained yet: an empty frame, said so
    ax.text(0.5, 0.5, "no trained rows yet", ha="center", transform=ax.transAxes)
  ax.set_xscale("log")
  ax.set_xlabel("ACEv2 per image (trained model, 32×32)")
  ax.set_ylabel("Fashion-MNIST top-1 % (mean ± std over seeds)")
  if ax.lines:
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def describe_ci(ci) -> str:
  if ci["mean"] is None:
    return "no pairs yet"
  if ci["lo"] is None:
    return f"{100 * ci['mean']:+.2f} (one pair: no interval)"
  return f"{100 * ci['mean']:+.2f} [{100 * ci['lo']:+.2f}, {100 * ci['hi']:+.2f}]"


def main(args) -> None:
  clock = results.Clock()
  r = recipe.recipe(args.quick)
  seeds = results.parse_seeds(args.seeds)
  if args.quick and args.seeds == DEFAULT_SEEDS:
    seeds = (0, 1)
  budgets = fixed_budgets(r, args.out_dir)
  if args.quick:  # one budget keeps the quick run short; the full study uses all three
    budgets = {"uniform3": budgets["uniform3"]}
  clock.log(f"budgets (fixed from configs): {budgets}")
  searcher = sr.Searcher.build(r, args.quick, clock.log)
  # the reference model (trained first when absent) and the searches come before any run, so
  # every run of seed k (fixed rows, searched, random) is trained before any of seed k + 1
  sens = measured_sensitivity(searcher, r, args, clock.log)
  fixed = fixed_jobs(r, seeds, args.quick)
  jobs, found = searched_jobs(searcher, budgets, sens, r, seeds, clock.log)
  outcome = sweep.run_from_args(
    args, NAME, seed_major(fixed + jobs, compared_rows(budgets)), clock.log
  )
  configs = {}
  for j in fixed + jobs:
    configs.setdefault(j.row, []).append(j.config)
  rows = row_stats(outcome, configs)
  items = comparisons(rows, budgets)
  labels = {f"uniform{b}": f"uniform {b}-bit body" for b in sr.UNIFORM_BITS}
  labels.update(dict(FAMILY))
  for m, b in found:
    labels[f"{m}@{b}"] = f"{m} search @ {b}"
  fig = results.figure_path(args.out_dir, NAME)
  figure(rows, labels, fig)
  missing = {k: v for k, v in outcome.missing.items() if v}
  body = [
    [
      labels.get(k, k),
      zoo.si(v["acev2"]),
      _acc(v),
      ", ".join(
        f"{s}: " + ("div." if t is None else f"{100 * t:.2f}") for s, t in v["top1"].items()
      )
      or "-",
    ]
    for k, v in rows.items()
  ]
  cmp_body = [
    [
      labels.get(i["searched"]),
      labels.get(i["against"]),
      f"{zoo.si(i['acev2'][0])} vs {zoo.si(i['acev2'][1])}",
      describe_ci(i["paired"]),
      f"{i['paired']['n']}" + (f" ({len(i['left_out'])} left out)" if i["left_out"] else ""),
      f"`{numerics.short(i['numerics'])}`" if i["numerics"] else "-",
      i["paired"]["verdict"],
      _goal_words(i["goal"]),
    ]
    for i in items
  ]
  parts = [
    "Study recipe: " + r.describe() + f". Seeds {', '.join(map(str, seeds))}: seed k gives every "
    "row the same initialisation and data order. ACEv2: the analyzer's price of each trained "
    "model (32×32, the recipe's width); a random row's is the mean over its seeds' allocations.",
    "Budgets, fixed from the configs before any searched config was trained, and every budget "
    "tried: " + ", ".join(f"{k} = {zoo.si(v)} ({v:,})" for k, v in budgets.items()) + ".",
  ]
  note = sweep.incomplete_note(missing, labels)
  if sens is None:
    parts.append(
      "The measured sensitivity needs the reference checkpoint (PikeLPN-1x, seed 0), "
      "absent here: its rows are missing."
    )
  if note:
    parts.append(note)
  parts += [
    "## Rows",
    markdown_table(["row", "ACEv2", "top-1 % (mean ± std, n)", "per seed"], body),
    "## Paired comparisons (searched − other, same seed)",
    markdown_table(
      [
        "searched",
        "against",
        "ACEv2 (searched vs other)",
        "top-1 points: mean [95 % CI]",
        "pairs",
        "numerics",
        "verdict",
        "goal",
      ],
      cmp_body,
    ),
    "Each comparison pairs seeds within one numerics fingerprint (the code, libraries and CPU "
    "that trained a record, experiments/lib/numerics.py): the fingerprint the most seeds of both "
    "rows share; a seed whose two records differ in it is left out and counted.",
    "A goal is *supported* when the whole interval lies at or above its bound, *contradicted* "
    "when it lies below, *not settled* otherwise.",
    "## Searched configs",
    markdown_table(
      ["search", "ACEv2 (re-priced)", "table = analyzer", "globals", "choices"],
      [
        [
          labels[f"{m}@{b}"],
          zoo.si(v["acev2"]),
          "yes" if all(t["predicted"] == t["repriced"] for t in v["tries"]) else "no",
          str(v["globals"]),
          " ".join(f"{p}:{c}" for p, c in v["choices"].items()),
        ]
        for (m, b), v in found.items()
        if m != "random"
      ],
    ),
    f"Trained by this invocation: {outcome.trained} run(s); wall time {clock.seconds:.0f} s.",
  ]
  results.write(
    args.out_dir,
    NAME,
    "Searched bit widths vs uniform precision at equal ACEv2",
    "\n\n".join(parts),
    {
      "recipe": r.__dict__,
      "seeds": list(seeds),
      "budgets": budgets,
      "rows": rows,
      "comparisons": items,
      "missing": missing,
      "runs_dir": outcome.runs_dir,
      "searched": {f"{m}@{b}": v for (m, b), v in found.items()},
      "sensitivity": None
      if sens is None
      else {"method": sens["method"], "evaluations": sens.get("evaluations")},
    },
    figure=fig,
  )


if __name__ == "__main__":
  p = results.parser(__doc__.split("\n")[0])
  p.add_argument("--seeds", default=DEFAULT_SEEDS, help="comma-separated seeds (--quick: 0,1)")
  p.add_argument("--runs_dir", default="", help="run records (default: results/runs)")
  p.add_argument("--no_train", action="store_true", help="tables from existing records only")
  p.add_argument("--max_runs", type=int, default=-1, help="train at most this many runs (-1: all)")
  p.add_argument("--work_root", default="", help="where the training workdirs go")
  results.run_main(main, p.parse_args())
