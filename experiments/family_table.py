"""The main comparison: every PikeLPN variant and baseline, priced, and trained under one recipe.

For each model of the zoo: bits, params, model size (MB at the claimed bits), MACs, ACE and
ACEv2 at 224×224 (the ACEv2 analyzer, recomputed each time the table is built), the ImageNet
top-1 the papers report (cited, marked "reported"; config.reported_top1), and the Fashion-MNIST
top-1 we measure under the study recipe (experiments/lib/recipe.py) as mean ± std over seeds,
at the family's width factor (FAMILY_WIDTH). Training goes through the run cache
(results/runs/): runs whose record exists are not trained again, so running the same command
again resumes an interrupted sweep. Then the ACEv2 ratio of each PikeLPN variant to PokeBNN-1.0x,
MobileNetV2 w4a4 and the baselines of similar reported accuracy. Writes
results/family_table.{md,json}.

    python -m experiments.family_table                 # trains what results/runs/ lacks
    python -m experiments.family_table --no_train      # tables from the existing records
    python -m experiments.family_table --skip_training # the analyzer columns only (~1 min)
    python -m experiments.family_table --quick --out_dir /tmp/x
"""

from __future__ import annotations

import os

from experiments.lib import costs, recipe, results, runs, stats, sweep, zoo
from experiments.lib.common import markdown_table

NAME = "family_table"
QUICK_SPECS = ("pikelpn.py:1x", "mobilenet_v2.py:w4a4")
QUICK_IMAGE_SIZE = 32
DEFAULT_SEEDS = "0,1,2"
# The baselines of the paper's "up to 3×" claim (state-of-the-art low-precision models),
# compared whatever their accuracy.
CLAIM_BASELINES = ("pokebnn.py:1.0x", "mobilenet_v2.py:w4a4")
# "Similar reported accuracy": within this many top-1 points of the PikeLPN variant.
SIMILAR_POINTS = 2.5
# Width factor of each family under the study recipe (the recipe's own 0.5 unless listed): the
# slow-stepping families are trained narrower so that the whole sweep fits a 2-core CPU's budget.
FAMILY_WIDTH = {"ResNet": 0.25, "ReActNet": 0.25, "PokeBNN": 0.25}
# Not trained by default (--train_all trains them): the CPU budget of the full sweep.
NOT_TRAINED = {
  "pokebnn.py:0.5x": "not trained by default (CPU budget; PokeBNN-1.0x represents the family)",
  "pokebnn.py:2.0x": "not trained by default (CPU budget; PokeBNN-1.0x represents the family)",
  "resnet.py:50_float": "not trained by default (CPU budget; ResNet-18 represents the family)",
  "resnet.py:50_w8a8": "not trained by default (CPU budget; ResNet-18 represents the family)",
}
# PikeLPN and the MobileNetV1 references first: they are what the paper's claims compare.
TRAIN_ORDER = (
  "pikelpn.py:1x",
  "mobilenet_v1.py:float",
  "mobilenet_v1.py:w4a4",
  "mobilenet_v2.py:w4a4",
  "pikelpn.py:2x",
  "pikelpn.py:3x",
  "pikelpn.py:6x",
)


def width_scale(spec: str, r: recipe.Recipe) -> float:
  if r is recipe.QUICK:
    return r.width_scale
  return FAMILY_WIDTH.get(zoo.entry(spec).family, r.width_scale)


def trained_config(spec: str, r: recipe.Recipe, seed: int):
  return recipe.study_config(zoo.load(spec), r, seed, width_scale=width_scale(spec, r))


def price(specs, image_size, clock) -> list:
  rows = []
  for spec in specs:
    config = zoo.load(spec, image_size)
    s = costs.acev2(config, float_bits=32)
    s16 = costs.acev2(config, float_bits=16)
    folds = {f: costs.acev2(config, fold=f)["acev2"] for f in costs.FOLDS}
    rows.append(
      {
        "spec": spec,
        "label": zoo.label(spec),
        "family": zoo.entry(spec).family,
        "acev2_fp16": s16["acev2"],
        "ace_fp16": s16["ace"],
        "acev2_by_fold": folds,
        "pikelpn": zoo.entry(spec).pikelpn,
        "bits": zoo.mac_bits_label(s["by_bits"], 32),
        "reported_top1": zoo.reported_top1(config),
        **{
          k: s[k] for k in ("params", "model_bits", "model_mb", "macs", "ace", "acev2", "breakdown")
        },
      }
    )
    clock.log(f"priced {spec}")
  return rows


def jobs(specs, seeds, r, skip) -> list:
  order = [s for s in TRAIN_ORDER if s in specs] + [s for s in specs if s not in TRAIN_ORDER]
  return [
    sweep.Job(spec, trained_config(spec, r, seed), f"family_table/{spec}")
    for seed in seeds
    for spec in order
    if spec not in skip
  ]


def attach(rows, outcome, r, seeds, skip) -> None:
  """Adds each row's measured columns (from the records) and its trained model's ACEv2."""
  for row in rows:
    spec = row["spec"]
    if spec in skip:
      row["fmnist"] = {"skipped": skip[spec]}
      continue
    if spec not in outcome.records:
      continue
    recs = outcome.records[spec]
    tops = sweep.top1s(recs)
    mean, std, n = stats.mean_std(list(tops.values()))
    config = trained_config(spec, r, seeds[0])
    cost = costs.acev2(config)
    row["fmnist"] = {
      "top1_mean": mean,
      "top1_std": std,
      "n": n,
      "top1": {str(k): v for k, v in tops.items()},
      "diverged": [k for k, v in tops.items() if v is None],
      "missing_seeds": outcome.missing.get(spec, []),
      "width": config.model.width,
      "steps": config.num_train_steps,
      "acev2_32x32": cost["acev2"],
      "ace_32x32": cost["ace"],
      "macs_32x32": cost["macs"],
      "wall_s": [recs[k].get("wall_s") for k in sorted(recs)],
      "records": {str(k): runs.record_name(v["key"]) for k, v in recs.items()},
      "numerics": {str(k): v.get("numerics") for k, v in recs.items()},
    }


def ratios(rows) -> list:
  """ACEv2(baseline) / ACEv2(PikeLPN variant) for the claim's and the similar-accuracy baselines."""
  out = []
  for p in (r for r in rows if r["pikelpn"]):
    for b in (r for r in rows if not r["pikelpn"]):
      named = b["spec"] in CLAIM_BASELINES  # a baseline of the claim
      similar = (
        p["reported_top1"] is not None
        and b["reported_top1"] is not None
        and abs(p["reported_top1"] - b["reported_top1"]) <= SIMILAR_POINTS
      )
      if not (named or similar):
        continue
      item = {
        "pikelpn": p["label"],
        "baseline": b["label"],
        "why": 'baseline of the "up to 3×" claim'
        if named
        else f"reported top-1 within {SIMILAR_POINTS:g} points",
        "pikelpn_top1": p["reported_top1"],
        "baseline_top1": b["reported_top1"],
        "acev2_ratio": b["acev2"] / p["acev2"],
        "ace_ratio": b["ace"] / p["ace"],
        "acev2_ratio_fp16": b["acev2_fp16"] / p["acev2_fp16"],
        "acev2_ratio_by_fold": {
          f: b["acev2_by_fold"][f] / p["acev2_by_fold"][f] for f in costs.FOLDS
        },
      }
      pf, bf = p.get("fmnist", {}), b.get("fmnist", {})
      if pf.get("acev2_32x32") and bf.get("acev2_32x32"):
        item["acev2_ratio_fmnist"] = bf["acev2_32x32"] / pf["acev2_32x32"]
        item["fmnist_top1"] = (pf.get("top1_mean"), bf.get("top1_mean"))
      out.append(item)
  return out


def _pct(v) -> str:
  return "-" if v is None else f"{100 * v:.2f}"


def fold_header(fold: str) -> str:
  return "ACEv2" if fold == "none" else f"ACEv2 (fold={fold})"


def measured(f) -> str:
  if f.get("skipped"):
    return "not trained ¹"
  if f.get("top1_mean") is None:
    return "diverged" if f.get("diverged") else "-"
  s = (
    f"{100 * f['top1_mean']:.2f} (1 seed: no std)"
    if f["n"] == 1
    else f"{100 * f['top1_mean']:.2f} ± {100 * f['top1_std']:.2f} ({f['n']})"
  )
  if f.get("diverged"):
    s += f", seeds {f['diverged']} diverged"
  s += " ²" if f.get("missing_seeds") else ""
  return s + (" ³" if mixed_numerics(f) else "")


def mixed_numerics(f) -> bool:
  """Whether a row's seeds were trained at more than one numerics fingerprint (or unknown)."""
  fps = set((f.get("numerics") or {}).values())
  return len(fps) > 1 or None in fps


def main_table(rows, trained) -> str:
  header = (
    ["model", "bits", "params", "size (MB)", "MACs", "ACE"]
    + [fold_header(f) for f in costs.FOLDS]
    + ["ACEv2 (float 16 b)", "ImageNet top-1 (reported)"]
  )
  if trained:
    header += ["fmnist top-1 % (mean ± std, n)", "fmnist width", "fmnist ACEv2"]
  body = []
  for r in rows:
    rep = "-" if r["reported_top1"] is None else f"{r['reported_top1']:.2f} (reported)"
    line = (
      [
        r["label"],
        r["bits"],
        zoo.si(r["params"], 2),
        f"{r['model_mb']:.2f}",
        zoo.si(r["macs"]),
        zoo.si(r["ace"]),
      ]
      + [zoo.si(r["acev2_by_fold"][f]) for f in costs.FOLDS]
      + [zoo.si(r["acev2_fp16"]), rep]
    )
    if trained:
      f = r.get("fmnist")
      if not f:
        line += ["not trained yet ²", "-", "-"]
      elif f.get("skipped"):
        line += [measured(f), "-", "-"]
      else:
        line += [measured(f), f"{f.get('width', 0):g}", zoo.si(f.get("acev2_32x32"))]
    body.append(line)
  return markdown_table(header, body)


def ratio_table(items) -> str:
  header = (
    [
      "PikeLPN",
      "baseline",
      "why",
      "top-1 reported (PikeLPN / baseline)",
      "ACEv2 baseline ÷ PikeLPN (224)",
    ]
    + [f"same, fold={f}" for f in costs.FOLDS if f != "none"]
    + ["same, float at 16 b", "ACE baseline ÷ PikeLPN", "ACEv2 ÷ (fmnist models)"]
  )
  fmt = lambda v: "-" if v is None else f"{v:.2f}"
  body = [
    [
      i["pikelpn"],
      i["baseline"],
      i["why"],
      f"{fmt(i['pikelpn_top1'])} / {fmt(i['baseline_top1'])}",
      f"{i['acev2_ratio']:.2f}×",
    ]
    + [f"{i['acev2_ratio_by_fold'][f]:.2f}×" for f in costs.FOLDS if f != "none"]
    + [
      f"{i['acev2_ratio_fp16']:.2f}×",
      f"{i['ace_ratio']:.2f}×",
      f"{i['acev2_ratio_fmnist']:.2f}×" if "acev2_ratio_fmnist" in i else "-",
    ]
    for i in items
  ]
  return markdown_table(header, body)


def _rel(path: str) -> str:
  from experiments.lib.common import REPO

  rel = os.path.relpath(path, REPO)
  return path if rel.startswith("..") else rel


def main(args) -> None:
  clock = results.Clock()
  r = recipe.recipe(args.quick)
  specs = zoo.specs_from_arg(args.models, QUICK_SPECS if args.quick else [e.spec for e in zoo.ZOO])
  seeds = results.parse_seeds(args.seeds)
  if args.quick and args.seeds == DEFAULT_SEEDS:
    seeds = (0,)
  size = QUICK_IMAGE_SIZE if args.quick else None
  rows = price(specs, size, clock)
  trained = not args.skip_training
  skip = {} if args.train_all else {s: why for s, why in NOT_TRAINED.items() if s in specs}
  outcome = None
  if trained:
    # --quick trains only the first model: compiling a train step is most of a quick run.
    outcome = sweep.run_from_args(
      args, NAME, jobs(specs[:1] if args.quick else specs, seeds, r, skip), clock.log
    )
    attach(rows, outcome, r, seeds, skip)
  items = ratios(rows)
  best = max(
    (i for i in items if i["baseline"] in (zoo.label(s) for s in CLAIM_BASELINES)),
    key=lambda i: i["acev2_ratio"],
    default=None,
  )
  res = "224×224" if size is None else f"{size}×{size} (--quick)"
  widths = ", ".join(f"{fam} × {w:g}" for fam, w in FAMILY_WIDTH.items())
  parts = [
    f"Costs per image at {res}, batch 1, float operands at 32 bits (and at 16 bits in the "
    "*float 16 b* columns), accumulators at 32 bits (docs/acev2.md), recomputed by the analyzer "
    "each time this table is built (experiments/lib/costs.py). *size* = model_bits / 8 / 2^20, "
    "with each parameter at the bits its quantizer claims (float parameters at 32). *bits* = "
    "weight/activation widths of most MACs. ImageNet top-1 numbers are the ones the papers "
    "report (config.reported_top1; sources in each configs/*.py docstring); we did not train on "
    "ImageNet."
  ]
  if trained:
    parts.append(
      "Fashion-MNIST: the study recipe (experiments/lib/recipe.py, the same for every row): "
      + r.describe()
      + (f"; family width factors: {widths}" if not args.quick else "")
      + f". Seeds {', '.join(map(str, seeds))}; mean ± sample std over the seeds that exist (n). "
      f"Accuracies come from the run records in `{_rel(outcome.runs_dir)}`. *fmnist ACEv2* is the trained "
      "narrow model at 32×32."
    )
    missing = {k: v for k, v in outcome.missing.items() if v}
    note = sweep.incomplete_note(missing, {s: zoo.label(s) for s in specs})
    if note:
      parts.append(note)
  else:
    parts.append("Training skipped (--skip_training).")
  parts += ["## Models", main_table(rows, trained)]
  parts += [
    f"¹ {r_['label']}: {r_['fmnist']['skipped']}; run with --train_all to include it."
    for r_ in rows
    if (r_.get("fmnist") or {}).get("skipped")
  ]
  if trained and any(
    (r_.get("fmnist") or {}).get("missing_seeds")
    or (r_["spec"] not in skip and not r_.get("fmnist"))
    for r_ in rows
  ):
    parts.append("² incomplete: fewer seeds than the sweep asks for (see above).")
  if trained and any(
    mixed_numerics(r_.get("fmnist") or {}) for r_ in rows if r_.get("fmnist", {}).get("top1")
  ):
    parts.append(
      "³ the row's seeds were trained at more than one numerics fingerprint (code, libraries "
      "or CPU; experiments/lib/numerics.py), or one unknown: its mean mixes numerical codes."
    )
  parts += [
    "## ACEv2 of PikeLPN against baselines",
    "Ratios > 1: the baseline costs more than the PikeLPN variant. The paper claims up to 3×.",
    ratio_table(items),
  ]
  if best:
    parts.append(
      f"Largest ratio against a baseline of the claim: {best['baseline']} ÷ {best['pikelpn']} = "
      f"{best['acev2_ratio']:.2f}× (ACEv2)."
    )
  if outcome is not None:
    parts.append(f"Trained by this invocation: {outcome.trained} run(s).")
  parts.append(f"Wall time: {clock.seconds:.0f} s.")
  data = {
    "image_size": size or 224,
    "recipe": r.__dict__ if trained else None,
    "family_width": FAMILY_WIDTH,
    "seeds": list(seeds),
    "folds": list(costs.FOLDS),
    "rows": rows,
    "ratios": items,
    "missing": {k: v for k, v in outcome.missing.items() if v} if outcome else {},
  }
  results.write(args.out_dir, NAME, "PikeLPN family vs baselines", "\n\n".join(parts), data)


if __name__ == "__main__":
  p = results.parser(__doc__.split("\n")[0])
  p.add_argument("--models", default="", help="comma-separated config specs (default: the zoo)")
  p.add_argument("--skip_training", action="store_true", help="analyzer columns only")
  p.add_argument(
    "--no_train",
    action="store_true",
    help="measured columns from the existing records only (train nothing)",
  )
  p.add_argument("--seeds", default=DEFAULT_SEEDS, help="comma-separated seeds (--quick: 0)")
  p.add_argument(
    "--rerun_stale",
    action="store_true",
    help="train again every asked-for run whose record has another numerics fingerprint than "
    "this code's on this machine (the old record moves to <runs_dir>/superseded/)",
  )
  p.add_argument("--max_runs", type=int, default=-1, help="train at most this many runs (-1: all)")
  p.add_argument(
    "--runs_dir",
    default="",
    help="run records (default: results/runs; --quick: <out_dir>/runs_quick)",
  )
  p.add_argument("--train_all", action="store_true", help=f"also train {sorted(NOT_TRAINED)}")
  p.add_argument(
    "--work_root",
    default="",
    help="where the training workdirs go "
    "(default: /tmp/pikelpn_experiments/family_table; --quick: inside --out_dir)",
  )
  results.run_main(main, p.parse_args())
