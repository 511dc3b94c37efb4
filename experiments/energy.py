"""Beyond the paper: an energy estimate for every model, and how well ACE and ACEv2 track it.

The energy comes from the same per-operation counts the ACEv2 analyzer makes (op class and
operand widths, int vs float) priced with Horowitz's 45 nm table (experiments/lib/energy_model.py,
written into the output with its citation and interpolation), plus the analyzer's unfused
memory-traffic estimate priced as SRAM accesses and the weights read once from DRAM. Across the
zoo it reports the correlation (Pearson on log10, Spearman on ranks) of ACE and of ACEv2 with the
arithmetic energy and with the total, and where the metrics disagree. Writes
results/energy.{md,json,png}.

    python -m experiments.energy                    # ~2 min on a 2-core CPU
    python -m experiments.energy --quick --out_dir /tmp/x
"""

from __future__ import annotations

import math

from experiments.lib import energy_model as em
from experiments.lib import results, zoo
from experiments.lib.common import markdown_table

NAME = "energy"
QUICK_SPECS = ("pikelpn.py:1x", "mobilenet_v2.py:w4a4", "reactnet.py:a")
# Correlation targets: arithmetic only; + on-chip (SRAM) traffic; + weights from DRAM.
TARGETS = ("arithmetic", "on_chip", "with_dram")
TARGET_LABELS = {
  "arithmetic": "arithmetic only",
  "on_chip": "arithmetic + SRAM traffic",
  "with_dram": "arithmetic + SRAM + DRAM weights",
}


def measure(specs, image_size, clock) -> list:
  rows = []
  for spec in specs:
    config = zoo.load(spec, image_size)
    s32 = zoo.summary(zoo.report(config, float_bits=32))
    arith = em.arithmetic_energy(s32["by_class"])  # by_class tells float from int operands
    mem = em.memory_energy(s32["traffic"], s32["model_bits"])
    on_chip = arith["total"] + mem["sram"]
    rows.append(
      {
        "spec": spec,
        "label": zoo.label(spec),
        "ace": s32["ace"],
        "acev2": s32["acev2"],
        "macs": s32["macs"],
        "model_bits": s32["model_bits"],
        "energy_pj": {
          "arithmetic": arith,
          "memory": mem,
          "on_chip": on_chip,
          "with_dram": on_chip + mem["dram_weights_low"],
        },
      }
    )
    clock.log(f"priced {spec}")
  return rows


def energy_of(row, target: str) -> float:
  e = row["energy_pj"]
  return e["arithmetic"]["total"] if target == "arithmetic" else e[target]


def correlations(rows) -> dict:
  out = {}
  if len(rows) < 3:
    return out
  for metric in ("ace", "acev2"):
    for target in TARGETS:
      x = [r[metric] for r in rows]
      y = [energy_of(r, target) for r in rows]
      out[f"{metric}~{target}"] = {
        "pearson_log10": em.pearson([math.log10(v) for v in x], [math.log10(v) for v in y]),
        "spearman": em.spearman(x, y),
      }
  return out


def uj(pj: float) -> str:
  return f"{pj / 1e6:.3f}"


def model_table(rows) -> str:
  header = [
    "model",
    "ACE",
    "ACEv2",
    "arithmetic µJ",
    "of which float ops %",
    "SRAM traffic µJ",
    "on-chip total µJ",
    "SRAM % of on-chip",
    "DRAM weights µJ",
    "fJ per ACEv2 bit-op (arith.)",
  ]
  body = []
  for r in rows:
    e = r["energy_pj"]
    a = e["arithmetic"]
    fl = sum(v for k, v in a.items() if k.endswith("(float)"))
    body.append(
      [
        r["label"],
        zoo.si(r["ace"]),
        zoo.si(r["acev2"]),
        uj(a["total"]),
        results.pct(fl, a["total"]),
        uj(e["memory"]["sram"]),
        uj(e["on_chip"]),
        results.pct(e["memory"]["sram"], e["on_chip"]),
        uj(e["memory"]["dram_weights_low"]),
        f"{1000 * a['total'] / r['acev2']:.2f}",
      ]
    )
  return markdown_table(header, body)


def corr_table(corr) -> str:
  header = ["metric", "energy", "Pearson r (log10)", "Spearman ρ"]
  body = []
  for key, v in corr.items():
    metric, target = key.split("~")
    body.append(
      [
        "ACE (v1)" if metric == "ace" else "ACEv2",
        TARGET_LABELS[target],
        f"{v['pearson_log10']:.3f}",
        f"{v['spearman']:.3f}",
      ]
    )
  return markdown_table(header, body)


def disagreements(rows) -> list:
  """Models ordered by how far their rank by ACEv2 is from their rank by on-chip energy."""
  ra = em.ranks([r["acev2"] for r in rows])
  rr = em.ranks([energy_of(r, "arithmetic") for r in rows])
  rt = em.ranks([energy_of(r, "on_chip") for r in rows])
  rd = em.ranks([energy_of(r, "with_dram") for r in rows])
  out = [
    {
      "label": r["label"],
      "rank_acev2": a,
      "rank_arithmetic": c,
      "rank_on_chip": t,
      "rank_with_dram": d,
      "sram_share": r["energy_pj"]["memory"]["sram"] / r["energy_pj"]["on_chip"],
      "traffic_bits_per_acev2": r["energy_pj"]["memory"]["traffic_bits"] / r["acev2"],
    }
    for r, a, c, t, d in zip(rows, ra, rr, rt, rd)
  ]
  return sorted(
    out,
    key=lambda d: (
      -abs(d["rank_acev2"] - d["rank_on_chip"]),
      -abs(d["rank_acev2"] - d["rank_with_dram"]),
    ),
  )


def plot(rows, path) -> None:
  plt = results.pyplot()
  fig, axes = plt.subplots(1, len(TARGETS), figsize=(17, 5))
  for ax, target in zip(axes, TARGETS):
    title = TARGET_LABELS[target]
    get = lambda r, t=target: energy_of(r, t)
    for metric, marker, color in (("ace", "o", "#999999"), ("acev2", "s", "#c44e52")):
      xs = [r[metric] for r in rows]
      ys = [get(r) / 1e6 for r in rows]
      ax.scatter(
        xs, ys, marker=marker, color=color, label="ACE (v1)" if metric == "ace" else "ACEv2"
      )
    for r in rows:
      ax.annotate(
        r["label"],
        (r["acev2"], get(r) / 1e6),
        fontsize=6,
        xytext=(3, 2),
        textcoords="offset points",
      )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("metric (bit-operations per image)")
    ax.set_ylabel("estimated energy per image (µJ)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.2)
  fig.tight_layout()
  fig.savefig(path, dpi=130)
  plt.close(fig)


def main(args) -> None:
  clock = results.Clock()
  specs = zoo.specs_from_arg(args.models, QUICK_SPECS if args.quick else [e.spec for e in zoo.ZOO])
  size = 32 if args.quick else None
  rows = measure(specs, size, clock)
  corr = correlations(rows)
  dis = disagreements(rows)
  figure = results.figure_path(args.out_dir, NAME)
  plot(rows, figure)
  res = "224×224" if size is None else f"{size}×{size} (--quick)"
  energy_table = markdown_table(["operation (45 nm)", "energy (pJ)"], [[k, v] for k, v in em.TABLE])
  dis_table = markdown_table(
    [
      "model",
      "rank by ACEv2",
      "by arithmetic energy",
      "by on-chip energy",
      "by energy with DRAM weights",
      "SRAM % of on-chip",
      "traffic bits per ACEv2 bit-op",
    ],
    [
      [
        d["label"],
        f"{d['rank_acev2']:g}",
        f"{d['rank_arithmetic']:g}",
        f"{d['rank_on_chip']:g}",
        f"{d['rank_with_dram']:g}",
        f"{100 * d['sram_share']:.1f}",
        f"{d['traffic_bits_per_acev2']:.3f}",
      ]
      for d in dis[:10]
    ],
  )
  body = "\n\n".join(
    [
      f"Per image at {res}, batch 1. Op counts and widths: the ACEv2 analyzer (float operands "
      "fp32, accumulators 32 bits); the same counts give ACEv2.",
      "## Energy table",
      f"From {em.CITATION}:",
      energy_table,
      em.INTERPOLATION,
      "## Per model",
      model_table(rows),
      "## Correlation across the models",
      corr_table(corr) if corr else "(fewer than 3 models)",
      "## Where ACEv2 and the energy estimate disagree",
      "Models sorted by |rank by ACEv2 − rank by on-chip energy| (rank 1 = cheapest; the 10 "
      "largest):",
      dis_table,
      f"Wall time: {clock.seconds:.0f} s.",
    ]
  )
  results.write(
    args.out_dir,
    NAME,
    "Energy estimate vs ACE and ACEv2",
    body,
    {
      "image_size": size or 224,
      "citation": em.CITATION,
      "table_pj": [list(t) for t in em.TABLE],
      "interpolation": em.INTERPOLATION,
      "rows": rows,
      "correlations": corr,
      "disagreements": dis,
    },
    figure,
  )


if __name__ == "__main__":
  p = results.parser(__doc__.split("\n")[0])
  p.add_argument("--models", default="", help="comma-separated config specs (default: the zoo)")
  results.run_main(main, p.parse_args())
