"""The paper's motivation: how much of ACEv2 is elementwise work that ACE (v1) does not see.

For each low-precision model (PokeBNN 0.5x/1.0x/2.0x, ReActNet-A, MobileNetV1/V2 w8a8 and w4a4,
MobileNetV2 w4a4 with PReLU, ResNet-18 w4a4; PikeLPN-1x as the reference) it prices the
inference forward at 224×224 with the ACEv2 analyzer, with float elementwise work at 32 and at
16 bits, and writes ACE, ACEv2 and the share of each category (MAC, norm, activation, scaling,
residual/pool) to results/cost_breakdown.{md,json,png}. Every model is priced under both
deployment-folding views (`fold` none: the graph as written; affine: chains of per-channel
multiplies and adds merged into one of each, docs/acev2.md), and the ratio of each baseline to
PikeLPN-1x is given under both.

    python -m experiments.cost_breakdown            # ~1 min on a 2-core CPU
    python -m experiments.cost_breakdown --quick --out_dir /tmp/x   # 2 models at 32×32
"""

from __future__ import annotations

from experiments.lib import results, zoo
from experiments.lib.common import markdown_table

NAME = "cost_breakdown"
FLOAT_BITS = (32, 16)
FOLDS = ("none", "affine")
REFERENCE = "pikelpn.py:1x"
SHOWN = ("mac", "norm", "activation", "scaling", "residual_pool")
QUICK_SPECS = ("pikelpn.py:1x", "mobilenet_v2.py:w4a4")
QUICK_IMAGE_SIZE = 32


def measure(specs, image_size, clock) -> list:
  from pikelpn_jax.ace import acev2_report

  rows = []
  for spec in specs:
    config = zoo.load(spec, image_size)
    from pikelpn_jax.ace.api import abstract_variables, model_input_spec
    from pikelpn_jax.models import build_model

    model = build_model(config, dw_impl="grouped")  # built once, traced per setting
    variables = abstract_variables(model, model_input_spec(config))
    for fb in FLOAT_BITS:
      for fold in FOLDS:
        r = acev2_report(
          config,
          variables,
          float_bits=fb,
          model=model,
          acc_bits=int(config.ace.get("acc_bits", 32)),
          fold=fold,
          config_source=f"configs/{spec}",
        )
        if r.unaccounted:
          raise RuntimeError(f"ACEv2 left primitives unpriced in {spec}: {r.unaccounted[:3]}")
        s = zoo.summary(r.to_json())
        rows.append(
          {
            "spec": spec,
            "label": zoo.label(spec),
            "float_bits": fb,
            "fold": fold,
            "bits": zoo.mac_bits_label(s["by_bits"], fb),
            **{k: s[k] for k in ("macs", "ace", "acev2", "params", "model_bits", "breakdown")},
          }
        )
    clock.log(f"priced {spec}")
  return rows


def elementwise(row) -> int:
  return row["acev2"] - row["breakdown"]["mac"]


def table(rows, fb) -> str:
  header = (
    ["model", "bits", "MACs", "ACE", "ACEv2", "ACEv2/ACE"]
    + [f"{zoo.CATEGORY_LABELS[c]} %" for c in SHOWN]
    + ["elementwise %"]
  )
  body = []
  for r in rows:
    if r["float_bits"] != fb or r["fold"] != "none":
      continue
    body.append(
      [
        r["label"],
        r["bits"],
        zoo.si(r["macs"]),
        zoo.si(r["ace"]),
        zoo.si(r["acev2"]),
        f"{r['acev2'] / r['ace']:.2f}",
      ]
      + [results.pct(r["breakdown"][c], r["acev2"]) for c in SHOWN]
      + [results.pct(elementwise(r), r["acev2"])]
    )
  return markdown_table(header, body)


def fold_table(rows) -> str:
  """ACEv2 under both folds and each model's ratio to PikeLPN-1x under each (fp32 and fp16)."""
  get = {(r["spec"], r["float_bits"], r["fold"]): r["acev2"] for r in rows}
  header = ["model"]
  for fb in FLOAT_BITS:
    header += [f"ACEv2 fp{fb}, none", "affine", "÷ PikeLPN-1x, none", "÷ PikeLPN-1x, affine"]
  body = []
  for spec in dict.fromkeys(r["spec"] for r in rows):
    line = [zoo.label(spec)]
    for fb in FLOAT_BITS:
      line += [zoo.si(get[(spec, fb, "none")]), zoo.si(get[(spec, fb, "affine")])]
      for fold in FOLDS:
        ref = get.get((REFERENCE, fb, fold))
        line.append(f"{get[(spec, fb, fold)] / ref:.2f}×" if ref else "-")
    body.append(line)
  return markdown_table(header, body)


def plot(rows, path) -> None:
  plt = results.pyplot()
  colors = {
    "mac": "#4c72b0",
    "norm": "#dd8452",
    "activation": "#55a868",
    "scaling": "#c44e52",
    "residual_pool": "#8172b3",
    "other": "#937860",
  }
  fig, axes = plt.subplots(
    1, len(FLOAT_BITS), figsize=(13, 0.45 * len(rows) / 2 + 2.2), sharey=True
  )
  for ax, fb in zip(axes, FLOAT_BITS):
    sel = [r for r in rows if r["float_bits"] == fb and r["fold"] == "none"][::-1]
    y = range(len(sel))
    left = [0.0] * len(sel)
    for c in colors:
      share = [100.0 * r["breakdown"][c] / r["acev2"] for r in sel]
      ax.barh(list(y), share, left=left, color=colors[c], label=zoo.CATEGORY_LABELS[c])
      left = [a + b for a, b in zip(left, share)]
    for i, r in enumerate(sel):
      ax.text(
        101,
        i,
        f"{zoo.si(r['acev2'], 1)} ({r['acev2'] / r['ace']:.1f}× ACE)",
        va="center",
        fontsize=7,
      )
    ax.set_yticks(list(y))
    ax.set_yticklabels([r["label"] for r in sel], fontsize=8)
    ax.set_xlim(0, 135)
    ax.set_xticks([0, 25, 50, 75, 100])
    ax.set_xlabel("share of ACEv2 (%)")
    ax.set_title(f"float elementwise work at {fb} bits")
  axes[0].legend(loc="lower left", bbox_to_anchor=(0.0, 1.08), ncol=6, fontsize=8, frameon=False)
  fig.tight_layout()
  fig.savefig(path, dpi=130)
  plt.close(fig)


def findings(rows) -> str:
  lines = []
  for fb in FLOAT_BITS:
    sel = [r for r in rows if r["float_bits"] == fb and r["fold"] == "none"]
    binary = [r for r in sel if r["spec"].startswith(("pokebnn", "reactnet"))]
    if binary:
      parts = ", ".join(f"{r['label']} {results.pct(elementwise(r), r['acev2'])}%" for r in binary)
      lines.append(
        f"* Elementwise (non-MAC) share of ACEv2 in the binary models, float at {fb} bits: {parts}."
      )
    top = max(sel, key=lambda r: r["acev2"] / r["ace"])
    lines.append(
      f"* Largest ACEv2/ACE at {fb} bits: {top['label']} ({top['acev2'] / top['ace']:.2f}×)"
      f"; smallest: {min(sel, key=lambda r: r['acev2'] / r['ace'])['label']}."
    )
  get = {(r["spec"], r["float_bits"], r["fold"]): r["acev2"] for r in rows}
  for fb in FLOAT_BITS:
    if (REFERENCE, fb, "none") not in get:
      continue
    ratios = {
      fold: max(
        v / get[(REFERENCE, fb, fold)]
        for (spec, b, f), v in get.items()
        if b == fb and f == fold and spec != REFERENCE
      )
      for fold in FOLDS
    }
    lines.append(
      f"* Largest baseline ÷ PikeLPN-1x ACEv2 at {fb}-bit floats: "
      f"{ratios['none']:.2f}× as written (fold none), {ratios['affine']:.2f}× after "
      "deployment folding (fold affine)."
    )
  return "\n".join(lines)


def main(args) -> None:
  clock = results.Clock()
  specs = zoo.specs_from_arg(args.models, QUICK_SPECS if args.quick else zoo.BREAKDOWN_SPECS)
  size = QUICK_IMAGE_SIZE if args.quick else None
  rows = measure(specs, size, clock)
  figure = results.figure_path(args.out_dir, NAME)
  plot(rows, figure)
  res = "224×224" if size is None else f"{size}×{size} (--quick)"
  body = "\n\n".join(
    [
      f"Input {res}, batch 1, accumulators at 32 bits; ACE = Σ MACs·b_w·b_a (PokeBNN), ACEv2 = ACE "
      "+ every priced elementwise operation (docs/acev2.md). Costs are bit-operations per image. "
      "Category shares are of ACEv2; *elementwise* = everything but the MACs.",
      "## Float elementwise work at 32 bits (fp32)",
      table(rows, 32),
      "## Float elementwise work at 16 bits (bf16-style)",
      table(rows, 16),
      "## Deployment folding: fold none vs affine",
      "`fold none` prices the graph as written (the tables above); `fold affine` first merges "
      "each chain of multiplies and adds by per-channel or scalar constants on one tensor "
      "(a conv's dequantization, a float batch norm, a following rescale) into one multiply and "
      "one add, as an inference compiler would. The ratio columns divide each model's ACEv2 by "
      "PikeLPN-1x's under the same fold and float width.",
      fold_table(rows),
      "## Findings",
      findings(rows),
      f"Wall time: {clock.seconds:.0f} s.",
    ]
  )
  results.write(
    args.out_dir,
    NAME,
    "ACE vs ACEv2 cost breakdown",
    body,
    {"image_size": size or 224, "float_bits": list(FLOAT_BITS), "folds": list(FOLDS), "rows": rows},
    figure,
  )


if __name__ == "__main__":
  p = results.parser(__doc__.split("\n")[0])
  p.add_argument(
    "--models", default="", help="comma-separated config specs (default: the list above)"
  )
  results.run_main(main, p.parse_args())
