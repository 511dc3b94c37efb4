"""Accuracy vs ACEv2 for every model, with the Pareto frontier.

Left: the ImageNet top-1 the papers report (config.reported_top1) against ACEv2 at 224×224.
Right (when results/family_table.json has measured numbers): our Fashion-MNIST top-1 against the
ACEv2 of the trained narrow model at 32×32. ACEv2 is on a log axis. The costs come from
family_table.json when it exists (run experiments/family_table.py first), otherwise from the
analyzer here. Writes results/pareto.{md,json,png}.

    python -m experiments.pareto
    python -m experiments.pareto --quick --out_dir /tmp/x
"""

from __future__ import annotations

import os

from experiments.lib import results, zoo
from experiments.lib.common import markdown_table

NAME = "pareto"
QUICK_SPECS = ("pikelpn.py:1x", "mobilenet_v1.py:float", "reactnet.py:a")


def frontier(points) -> list:
  """Indices of the points no other point beats on both cost (lower) and accuracy (higher)."""
  order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
  keep, best = [], float("-inf")
  for i in order:
    if points[i][1] > best:
      keep.append(i)
      best = points[i][1]
  return keep


def rows_from_family(family) -> list:
  out = []
  for r in family["rows"]:
    f = r.get("fmnist") or {}
    out.append(
      {
        "label": r["label"],
        "spec": r["spec"],
        "pikelpn": r["pikelpn"],
        "acev2": r["acev2"],
        "ace": r["ace"],
        "reported_top1": r["reported_top1"],
        "fmnist_top1": f.get("top1_mean"),
        "fmnist_std": f.get("top1_std"),
        "fmnist_n": f.get("n"),
        "fmnist_acev2": f.get("acev2_32x32"),
      }
    )
  return out


def rows_from_analyzer(specs, image_size, clock) -> list:
  out = []
  for spec in specs:
    config = zoo.load(spec, image_size)
    s = zoo.summary(zoo.report(config))
    out.append(
      {
        "label": zoo.label(spec),
        "spec": spec,
        "pikelpn": zoo.entry(spec).pikelpn,
        "acev2": s["acev2"],
        "ace": s["ace"],
        "reported_top1": zoo.reported_top1(config),
        "fmnist_top1": None,
        "fmnist_acev2": None,
      }
    )
    clock.log(f"priced {spec}")
  return out


def panel(rows, cost_key, acc_key, scale):
  sel = [r for r in rows if r.get(acc_key) is not None and r.get(cost_key)]
  pts = [(r[cost_key], scale * r[acc_key]) for r in sel]
  front = set(frontier(pts))
  return [
    dict(label=r["label"], pikelpn=r["pikelpn"], cost=c, top1=a, on_frontier=i in front)
    for i, (r, (c, a)) in enumerate(zip(sel, pts))
  ]


def draw(ax, pts, xlabel, ylabel, title) -> None:
  for p in pts:
    color = "#c44e52" if p["pikelpn"] else "#4c72b0"
    ax.scatter(
      [p["cost"]],
      [p["top1"]],
      color=color,
      marker="*" if p["pikelpn"] else "o",
      s=80 if p["pikelpn"] else 30,
      zorder=3,
    )
    ax.annotate(
      p["label"], (p["cost"], p["top1"]), fontsize=6, xytext=(3, 2), textcoords="offset points"
    )
  front = sorted((p for p in pts if p["on_frontier"]), key=lambda p: p["cost"])
  if front:
    xs, ys = [], []
    for p in front:  # a staircase: a frontier point holds until the next one is reached
      if xs:
        xs.append(p["cost"])
        ys.append(ys[-1])
      xs.append(p["cost"])
      ys.append(p["top1"])
    ax.plot(xs, ys, color="#333333", lw=1, ls="--", label="Pareto frontier", zorder=2)
    ax.legend(fontsize=8, loc="lower right")
  ax.set_xscale("log")
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=10)
  ax.grid(True, which="both", alpha=0.2)


def table(pts) -> str:
  return markdown_table(
    ["model", "ACEv2", "top-1 %", "on the frontier"],
    [
      [p["label"], zoo.si(p["cost"]), f"{p['top1']:.2f}", "yes" if p["on_frontier"] else ""]
      for p in sorted(pts, key=lambda p: p["cost"])
    ],
  )


def main(args) -> None:
  clock = results.Clock()
  family_path = args.family_json or os.path.join(args.out_dir, "family_table.json")
  family = results.read_json(family_path)
  if args.family_json and family is None:
    raise ValueError(
      f"--family_json={args.family_json!r} does not exist; run "
      "experiments/family_table.py first or leave the flag out"
    )
  if family is not None:
    rows, source = (
      rows_from_family(family),
      f"`{os.path.relpath(family_path, args.out_dir)}` ({family['stamp']})",
    )
  else:
    specs = QUICK_SPECS if args.quick else [e.spec for e in zoo.ZOO]
    rows = rows_from_analyzer(specs, 32 if args.quick else None, clock)
    source = "the analyzer, run here (no family_table.json found)"
  imagenet = panel(rows, "acev2", "reported_top1", 1.0)
  fmnist = panel(rows, "fmnist_acev2", "fmnist_top1", 100.0)
  plt = results.pyplot()
  n = 2 if fmnist else 1
  fig, axes = plt.subplots(1, n, figsize=(7 * n, 5), squeeze=False)
  draw(
    axes[0][0],
    imagenet,
    "ACEv2 at 224×224 (bit-operations per image, log)",
    "ImageNet top-1 % (reported by the papers)",
    "Reported ImageNet accuracy vs ACEv2",
  )
  if fmnist:
    draw(
      axes[0][1],
      fmnist,
      "ACEv2 of the trained narrow model at 32×32 (log)",
      "Fashion-MNIST top-1 % (measured here)",
      "Measured Fashion-MNIST accuracy vs ACEv2",
    )
  fig.tight_layout()
  figure = results.figure_path(args.out_dir, NAME)
  fig.savefig(figure, dpi=130)
  plt.close(fig)
  parts = [
    f"Costs and accuracies from {source}. PikeLPN variants are red stars. Models without a "
    "reported ImageNet number (our w8a8/w4a4 baselines, PokeBNN at our widths) are absent "
    "from the left panel.",
    "## Reported ImageNet top-1 vs ACEv2 (224×224)",
    table(imagenet),
  ]
  if fmnist:
    r = family.get("recipe") or {}
    parts += [
      "## Measured Fashion-MNIST top-1 vs ACEv2 (trained model, 32×32)",
      f"Study recipe: {r.get('steps')} steps × batch {r.get('batch_size')}, width × "
      f"{r.get('width_scale')} (families: {family.get('family_width')}); top-1 is the mean "
      f"over the seeds each row has (n in family_table.md, which also names incomplete "
      f"rows).",
      table(fmnist),
    ]
    missing = family.get("missing") or {}
    if missing:
      parts.append(
        f"**Incomplete:** {len(missing)} trained row(s) of the family table still lack "
        "seeds (listed in family_table.md); rows without any record are absent from "
        "this panel, so its frontier is not yet a claim about the models we train."
      )
  results.write(
    args.out_dir,
    NAME,
    "Accuracy vs ACEv2 (Pareto)",
    "\n\n".join(parts),
    {"source": source, "imagenet_reported": imagenet, "fmnist_measured": fmnist},
    figure,
  )


if __name__ == "__main__":
  p = results.parser(__doc__.split("\n")[0])
  p.add_argument(
    "--family_json",
    default="",
    help="family_table.json to read (default: <out_dir>/family_table.json)",
  )
  results.run_main(main, p.parse_args())
