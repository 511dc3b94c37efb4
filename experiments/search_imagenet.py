"""Price-only search at ImageNet size: bit widths at the ACEv2 of PikeLPN-1x and -2x (224×224).

No ImageNet model is trained here (a 2-core CPU cannot), so the sensitivity is the search's
data-free proxy (pikelpn_jax/search/sensitivity.py) unless --sensitivity names a JSON of measured
per-layer sensitivities (experiments/search.py writes one from a Fashion-MNIST-trained PikeLPN;
layer paths are the same at every width). The budgets are the hand-designed models' ACEv2, so
each searched config costs no more than the model it replaces. Writes
results/search_imagenet.{md,json}; configs/pikelpn_searched.py reads the rules from that JSON.

    python -m experiments.search_imagenet                 # 96 analyzer traces at 224×224
    python -m experiments.search_imagenet --quick --out_dir /tmp/x
"""

from __future__ import annotations

import re

from experiments.lib import results, zoo
from experiments.lib.common import markdown_table

NAME = "search_imagenet"
TARGETS = (("1x", "PikeLPN-1x"), ("2x", "PikeLPN-2x"))


def searches(quick: bool, sens_json: str, log) -> list:
  """[(label, search summary)] at each target's ACEv2, from one cost table: every layer is
  searched, so the base config's own bits do not matter and PikeLPN-1x's serves both budgets."""
  from pikelpn_jax.config_base import load_config
  from pikelpn_jax.search import cost, optimize, sensitivity
  from pikelpn_jax.search import space as sp
  from pikelpn_jax.search.cli import describe
  from pikelpn_jax.search.io import load_sensitivity

  spec = f"configs/pikelpn.py:{'fmnist' if quick else '1x'}"
  config = load_config(spec)
  base = cost.price(config)
  # The Double Quantization format is not searched here: with the proxy (no data) the two
  # formats are equally sensitive and pow2 is the cheaper, so 'fixed' could never be chosen.
  kw = dict(dq_formats=("pow2",))
  if quick:
    kw.update(w_bits=(2, 4), a_bits=(4, 8), quantnorm_bits=(8,))
  space = sp.build_space(config, sp.report_layers(base), **kw)
  table = cost.build_table(config, space, log)
  sens = load_sensitivity(sens_json, space) if sens_json else sensitivity.proxy(space)
  out = []
  for variant, label in TARGETS[:1] if quick else TARGETS:
    target = load_config(f"configs/pikelpn.py:{'fmnist' if quick else variant}")
    hand = cost.price(target)
    log(f"searching at the ACEv2 of {label}: {hand.acev2:,}")
    found = optimize.search(config, table, sens, int(hand.acev2), log)
    r = describe(config, spec, [], int(hand.acev2), hand.acev2, table, sens, found)
    rep = cost.price(found["config"])
    r["breakdown"] = dict(rep.breakdown)
    r["config_breakdown"] = dict(hand.breakdown)
    r["macs"], r["ace"] = int(rep.macs), int(rep.ace)
    r["config_macs"], r["config_ace"] = int(hand.macs), int(hand.ace)
    out.append((label, r))
  return out


def _count(labels, key: str) -> str:
  """How many layers hold key+bits (e.g. 'w2') for bits 2/3/4/8."""
  return " / ".join(
    str(sum(1 for c in labels if re.search(rf"{key}{b}(?!\d)", c))) for b in (2, 3, 4, 8)
  )


def table(rows) -> str:
  header = [
    "budget (hand-designed model)",
    "its ACEv2",
    "searched ACEv2 (re-priced)",
    "table = analyzer",
    "QuantNorm bits / DQ format",
    "searched ACE (MACs × bits)",
    "its ACE",
    "layers at w2 / w3 / w4 / w8",
    "layers at a2 / a3 / a4 / a8",
  ]
  body = []
  for label, r in rows:
    ch = list(r["choices"].values())
    g = r["model_overrides"]
    body.append(
      [
        label,
        zoo.si(r["config_acev2"]),
        zoo.si(r["acev2"]),
        "yes" if r["additive"] else "no",
        f"{g.get('quantnorm_bits', '-')} / {g.get('dq_format', '-')}",
        zoo.si(r["ace"]),
        zoo.si(r["config_ace"]),
        _count(ch, "w"),
        _count(ch, "a"),
      ]
    )
  return markdown_table(header, body)


def layer_table(rows) -> str:
  layers = list(rows[0][1]["choices"])
  header = ["layer"] + [f"at {label}" for label, _ in rows]
  return markdown_table(header, [[p] + [r["choices"][p] for _, r in rows] for p in layers])


def main(args) -> None:
  from pikelpn_jax.search import space as sp

  clock = results.Clock()
  rows = searches(args.quick, args.sensitivity, clock.log)
  size = "32×32 (--quick: the fmnist variant)" if args.quick else "224×224"
  method = rows[0][1]["sensitivity_method"]
  parts = [
    f"Price only: nothing here is trained. Each budget is the ACEv2 of a hand-designed PikeLPN "
    f"at {size}; the search starts from PikeLPN-1x's config (every layer is searched) and chooses, per layer, weight "
    "bits {2, 3, 4, 8}, input-activation bits {2, 3, 4, 8} and (depthwise layers) per-channel "
    "or per-tensor weights; for the whole model, QuantNorm bits "
    + (
      f"{{{', '.join(map(str, sp.QUANTNORM_BITS))}}}"
      if len(sp.QUANTNORM_BITS) > 1
      else f"stay at {sp.QUANTNORM_BITS[0]} (fewer do not train at the study recipe, "
      "docs/search.md)"
    )
    + " and the Double Quantization format stays a power of two (the proxy cannot tell the "
    "formats apart and pow2 is cheaper); it minimises the "
    + (
      "data-free proxy sensitivity (4^-bits noise power per tensor, every layer alike: it "
      "orders choices by bits only, no accuracy is implied)"
      if method == "proxy"
      else "measured sensitivity given by --sensitivity"
    )
    + ". *Searched ACEv2* is the analyzer's price of the final config; *table = analyzer* says "
    "whether it equals the sum of the per-layer cost table the optimiser used.",
    table(rows),
    "Per-layer choices (`w<bits>a<bits>`, `/pc` per-channel, `/pt` per-tensor weights):",
    layer_table(rows),
    "Train one (a GPU job; the rules come from this file's JSON through "
    "configs/pikelpn_searched.py):\n\n"
    + "\n".join(
      f"    python main.py --config configs/pikelpn_searched.py:{v} --workdir /tmp/searched_{v}"
      for v, _ in (TARGETS[:1] if args.quick else TARGETS)
    ),
    f"Wall time {clock.seconds:.0f} s.",
  ]
  results.write(
    args.out_dir,
    NAME,
    "Searched bit widths at the ACEv2 of PikeLPN-1x and -2x (price only)",
    "\n\n".join(parts),
    {"image_size": 32 if args.quick else 224, "searches": dict(rows)},
  )


if __name__ == "__main__":
  p = results.parser(__doc__.split("\n")[0])
  p.add_argument("--sensitivity", default="", help="JSON of measured sensitivities (optional)")
  results.run_main(main, p.parse_args())
