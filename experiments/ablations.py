"""Ablations of PikeLPN's three techniques: QuantNorm, Double Quantization and DHQ.

Each is switched off alone, all three together (a plain quantized MobileNetV1: 8-bit stem/head,
4-bit per-tensor weights, 4-bit activations, float norm and scales), and DHQ is also compared at
a low depthwise precision (4-bit per-channel depthwise weights against DHQ off, whose depthwise
layers use the pointwise quantizer: 4-bit per tensor), where only the per-channel vs per-tensor
distribution handling differs. For each setting: ACEv2 at 224×224 (PikeLPN-1x) and at the
trained Fashion-MNIST size, and Fashion-MNIST top-1 as mean ± std over seeds, all under the one
budget of experiments/_fmnist.py. Writes results/ablations.{md,json}.

    python experiments/ablations.py                    # ~15 min on a 2-core CPU (6 settings × 3 seeds)
    python experiments/ablations.py --quick --out_dir /tmp/x
"""
from __future__ import annotations

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if __name__ == "__main__":  # before JAX loads: re-executes once under tcmalloc if installed
  from pikelpn_jax.allocator import use_tcmalloc
  use_tcmalloc()
from experiments import _fmnist, _results, _zoo  # noqa: E402
from experiments.common import markdown_table  # noqa: E402

NAME = "ablations"
BASE = "pikelpn.py:1x"
DW_RULE = r"block\d+/dw"
# name -> (quantnorm, double_quant, dhq, depthwise weight bits under DHQ)
SETTINGS = {
    "all_on": (True, True, True, 8),
    "quantnorm_off": (False, True, True, 8),
    "double_quant_off": (True, False, True, 8),
    "dhq_off": (True, True, False, 8),
    "all_off": (False, False, False, 8),
    "dhq_on_dw4": (True, True, True, 4),
}
DESCRIPTION = {
    "all_on": "PikeLPN-1x (all on)",
    "quantnorm_off": "QuantNorm off",
    "double_quant_off": "Double Quantization off",
    "dhq_off": "DHQ off (dw uses the pw quantizer: 4-bit per tensor)",
    "all_off": "all off (plain quantized MobileNetV1)",
    "dhq_on_dw4": "DHQ on at 4-bit depthwise (per channel)",
}
# (switch, the setting with it off, the setting with it on)
EFFECTS = (("QuantNorm", "quantnorm_off", "all_on"),
           ("Double Quantization", "double_quant_off", "all_on"),
           ("DHQ (8-bit per-channel dw vs 4-bit per-tensor)", "dhq_off", "all_on"),
           ("DHQ at 4-bit dw (per channel vs per tensor)", "dhq_off", "dhq_on_dw4"),
           ("all three", "all_off", "all_on"))
QUICK_SETTINGS = ("all_on", "all_off")


def setting_config(name: str, image_size=None):
  qn, dq, dhq, dw_bits = SETTINGS[name]
  c = _zoo.load(BASE, image_size)
  c.model.quantnorm, c.model.double_quant, c.model.dhq = qn, dq, dhq
  rules = tuple(c.model.bit_rules)
  if not any(p == DW_RULE for p, _ in rules):
    raise ValueError(f"{BASE} has no depthwise bit rule {DW_RULE!r}; rules: {[p for p, _ in rules]}")
  c.model.bit_rules = tuple((p, dict(o, w_bits=dw_bits) if p == DW_RULE else dict(o))
                            for p, o in rules)
  return c


def mean_std(values):
  vals = [v for v in values if v is not None]
  if not vals:
    return None, None
  return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def run(settings, seeds, budget, image_size, work_root, clock) -> dict:
  _fmnist.enable_compile_cache(os.path.join(work_root, "jax_cache"))
  out = {}
  for name in settings:
    s = _zoo.summary(_zoo.report(setting_config(name, image_size)))
    row = {"setting": name, "description": DESCRIPTION[name],
           "switches": dict(zip(("quantnorm", "double_quant", "dhq", "dw_bits"), SETTINGS[name])),
           "acev2": s["acev2"], "ace": s["ace"], "breakdown": s["breakdown"], "seeds": []}
    for seed in seeds:
      config = _fmnist.fmnist_config(setting_config(name), budget, seed)
      workdir = os.path.join(work_root, f"{name}_seed{seed}")
      clock.log(f"training {name} seed {seed} in {workdir}")
      res = _fmnist.train(config, workdir, log=clock.log)
      row["seeds"].append({"seed": seed, "top1": res.get("eval_top1"), "error": res.get("error"),
                           "train_wall_s": res.get("train_wall_s")})
      clock.log(f"  top-1 {res.get('eval_top1')}")
    row["top1_mean"], row["top1_std"] = mean_std([x["top1"] for x in row["seeds"]])
    # The trained model's cost from the analyzer (shapes and tags only: the same for every seed).
    row["acev2_32x32"] = _zoo.summary(_zoo.report(
        _fmnist.fmnist_config(setting_config(name), budget, seeds[0])))["acev2"]
    out[name] = row
  return out


def _acc(row) -> str:
  if row["top1_mean"] is None:
    return "diverged"
  return f"{100 * row['top1_mean']:.2f} ± {100 * row['top1_std']:.2f}"


def settings_table(rows) -> str:
  on = lambda b: "on" if b else "off"
  header = ["setting", "QuantNorm", "Double Quant", "DHQ", "dw weight bits", "ACEv2 (224)",
            "norm", "scaling", "ACEv2 (fmnist model)", "fmnist top-1 % (mean ± std)",
            "per seed"]
  body = []
  for r in rows.values():
    sw = r["switches"]
    dw = f"{sw['dw_bits']} per channel" if sw["dhq"] else "4 per tensor (pw rule)"
    seeds = ", ".join(f"{x['seed']}: " + ("div." if x["top1"] is None else f"{100 * x['top1']:.2f}")
                      for x in r["seeds"])
    body.append([r["description"], on(sw["quantnorm"]), on(sw["double_quant"]), on(sw["dhq"]), dw,
                 _zoo.si(r["acev2"]), _zoo.si(r["breakdown"]["norm"]),
                 _zoo.si(r["breakdown"]["scaling"]), _zoo.si(r["acev2_32x32"]), _acc(r), seeds])
  return markdown_table(header, body)


def effects(rows) -> list:
  items = []
  for switch, off, on in EFFECTS:
    if off not in rows or on not in rows:
      continue
    a, b = rows[off], rows[on]
    d = None if a["top1_mean"] is None or b["top1_mean"] is None else b["top1_mean"] - a["top1_mean"]
    items.append({"switch": switch, "off": off, "on": on, "acev2_off_over_on": a["acev2"] / b["acev2"],
                  "top1_on_minus_off": d,
                  "noise": max(a["top1_std"] or 0.0, b["top1_std"] or 0.0)})
  return items


def effects_table(items) -> str:
  header = ["switch", "ACEv2 off ÷ on (224)", "top-1 on − off (points)", "larger seed std (points)"]
  body = [[i["switch"], f"{i['acev2_off_over_on']:.2f}×",
           "-" if i["top1_on_minus_off"] is None else f"{100 * i['top1_on_minus_off']:+.2f}",
           f"{100 * i['noise']:.2f}"] for i in items]
  return markdown_table(header, body)


def main(args) -> None:
  clock = _results.Clock()
  budget = _fmnist.budget(args.quick)
  settings = QUICK_SETTINGS if args.quick else tuple(SETTINGS)
  if args.settings:
    settings = tuple(s.strip() for s in args.settings.split(",") if s.strip())
    bad = [s for s in settings if s not in SETTINGS]
    if bad:
      raise ValueError(f"--settings has {bad}; use names from {list(SETTINGS)}")
  try:
    seeds = tuple(int(s) for s in args.seeds.split(","))
  except ValueError:
    raise ValueError(f"--seeds={args.seeds!r} is not allowed; use comma-separated integers")
  if args.quick and args.seeds == DEFAULT_SEEDS:
    seeds = (0, 1)
  size = 32 if args.quick else None
  work_root = args.work_root or _fmnist.default_work_root(args.out_dir, args.quick, NAME)
  rows = run(settings, seeds, budget, size, work_root, clock)
  items = effects(rows)
  res = "224×224" if size is None else f"{size}×{size} (--quick)"
  body = "\n\n".join([
      f"Base model {BASE} (PikeLPN-1x: 8-bit stem/head, 4-bit pointwise weights per tensor, 4-bit "
      "activations, ReLU). *ACEv2 (224)*: the analyzer at " + res + ", float at 32 bits; *norm* and "
      "*scaling* are its categories. *ACEv2 (fmnist model)*: the trained narrow model at 32×32.",
      "Training budget (the same for every run): " + budget.describe() +
      f"; seeds {', '.join(map(str, seeds))} (seed = initialisation and data order). "
      "Std is the sample standard deviation over seeds.",
      "## Settings", settings_table(rows),
      "## Effect of each technique", effects_table(items),
      "A top-1 difference smaller than the seed std is not a measured effect at this budget.",
      f"Wall time: {clock.seconds:.0f} s."])
  _results.write(args.out_dir, NAME, "Ablations: QuantNorm, Double Quantization, DHQ", body,
                 {"base": BASE, "image_size": size or 224, "budget": budget.__dict__,
                  "seeds": list(seeds), "settings": rows, "effects": items})


DEFAULT_SEEDS = "0,1,2"

if __name__ == "__main__":
  p = _results.parser(__doc__.split("\n")[0])
  p.add_argument("--settings", default="", help=f"comma-separated subset of {list(SETTINGS)}")
  p.add_argument("--seeds", default=DEFAULT_SEEDS, help="comma-separated seeds (--quick: 0,1)")
  p.add_argument("--work_root", default="", help="where the training workdirs go "
                 "(default: /tmp/pikelpn_experiments/ablations; --quick: inside --out_dir)")
  _results.run_main(main, p.parse_args())
