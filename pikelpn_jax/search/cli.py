"""python -m pikelpn_jax.search: per-layer bit widths of least sensitivity within an ACEv2 budget.

    python -m pikelpn_jax.search --config configs/pikelpn.py:fmnist --budget 60M --out rules.json
    python -m pikelpn_jax.search --config configs/pikelpn.py:fmnist --workdir /tmp/fmnist \\
        --budget 60M --out rules.json

Without --workdir the sensitivity is the data-free proxy (sensitivity.proxy); with it, the loss
increase of each choice measured on held-out training images from the run's checkpoint, whose
config must be the --config given (with its overrides). The answer is re-priced by the analyzer
and lies within the budget. rules.json holds `bit_rules` (JSON that main.py takes as
--config.model.bit_rules), `model_overrides`, the predicted and re-priced ACEv2, and the main.py
flags that train it (`main_flags`). Bad input: one `error:` line on stderr, exit 1, no file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

from pikelpn_jax import workdir as wd
from pikelpn_jax.config_cli import (
  ConfigSpecError,
  apply_overrides,
  fail,
  load_config_spec,
  split_config_args,
)
from pikelpn_jax.search import space as sp

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_budget(text: str) -> int:
  m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmgt]?)\s*", str(text), re.I)
  if not m or float(m.group(1)) * _SUFFIX[m.group(2).lower()] < 1:
    raise ValueError(
      f"--budget={text!r} is not allowed; use a positive ACEv2 per image, e.g. 6.5e7, 65M or 1.2G"
    )
  return int(float(m.group(1)) * _SUFFIX[m.group(2).lower()])


def _ints(text: str, flag: str):
  try:
    return tuple(int(x) for x in text.split(","))
  except ValueError:
    raise ValueError(f"{flag}={text!r} is not allowed; use comma-separated integers") from None


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m pikelpn_jax.search", description=__doc__)
  p.add_argument("--budget", required=True, help="ACEv2 per image: 65000000, 6.5e7, 65M, 1.2G")
  p.add_argument("--out", required=True, help="where the rules JSON goes")
  p.add_argument("--workdir", default="", help="a trained run (measured sensitivity)")
  p.add_argument("--layers", default=".*", help="regex of the layer paths searched (fullmatch)")
  p.add_argument("--w_bits", default="2,3,4,8")
  p.add_argument("--a_bits", default="2,3,4,8")
  p.add_argument("--quantnorm_bits", default="8", help="searched when QuantNorm is on")
  p.add_argument("--dq_formats", default="pow2,fixed", help="searched when DQ is on")
  p.add_argument("--images", type=int, default=1000, help="held-out images (measured)")
  p.add_argument(
    "--keep_calibration",
    action="store_true",
    help="choices below 4 bits keep the config's calibration (default: mean-|w| scaling for 2- "
    "and 3-bit weights, learned 2-bit activation steps from bound 3.0)",
  )
  return p


class _Parser(argparse.ArgumentParser):
  def error(self, message):
    fail(message)


def prepare(argv):
  """(args, config, spec, applied overrides); every input checked before any JAX work."""
  spec, overrides, rest = split_config_args(argv)
  p = parser()
  p.__class__ = _Parser
  args = p.parse_args(rest)
  config, source, _ = load_config_spec(spec, "--config")
  applied = apply_overrides(config, overrides)
  args.budget_value = parse_budget(args.budget)
  args.w = _ints(args.w_bits, "--w_bits")
  args.a = _ints(args.a_bits, "--a_bits")
  args.qn = _ints(args.quantnorm_bits, "--quantnorm_bits")
  args.dq = tuple(x.strip() for x in args.dq_formats.split(","))
  if args.images < 1:
    raise ValueError(f"--images={args.images} is not allowed; use a positive integer")
  if args.workdir and not wd.isdir(args.workdir):
    raise ValueError(f"--workdir={args.workdir!r} is not a directory")
  out_dir = os.path.dirname(os.path.abspath(args.out))
  if not os.path.isdir(out_dir):
    raise ValueError(f"--out={args.out!r}: its directory {out_dir!r} does not exist")
  try:
    from pikelpn_jax.models.quant_plan import plan_from_config

    plan_from_config(config.model)
  except (ValueError, TypeError, KeyError) as e:
    raise ValueError(f"--config={source!r}: {str(e).splitlines()[0]}") from None
  return args, config, source, applied


def run(args, config, source, applied, log=lambda m: print(m, flush=True)) -> dict:
  from pikelpn_jax.search import cost, optimize, sensitivity

  base = cost.price(config)
  space = sp.build_space(
    config,
    sp.report_layers(base),
    layer_regex=args.layers,
    w_bits=args.w,
    a_bits=args.a,
    quantnorm_bits=args.qn,
    dq_formats=args.dq,
    low_bit_calibration=not args.keep_calibration,
  )
  table = cost.build_table(config, space, log)
  if args.workdir:
    from pikelpn_jax.train.checkpoint import restore_latest

    variables = restore_latest(args.workdir, config)
    images, labels = sensitivity.heldout_images(config, args.images)
    sens = sensitivity.measured(config, variables, space, images, labels, log)
  else:
    sens = sensitivity.proxy(space)
  found = optimize.search(config, table, sens, args.budget_value, log)
  return describe(config, source, applied, args.budget_value, base.acev2, table, sens, found)


def describe(config, source, applied, budget, base_acev2, table, sens, found) -> dict:
  sol = found["solution"]
  rules = sp.rules_json(found["config"].model.bit_rules)
  flags = [f"--config={source}"] + [f"--config.{a}" for a in applied]
  flags.append("--config.model.bit_rules=" + json.dumps(rules, separators=(",", ":")))
  flags += [f"--config.model.{k}={v}" for k, v in sol.glob.overrides().items()]
  return {
    "config": source,
    "overrides": list(applied),
    "budget": int(budget),
    "predicted_acev2": int(sol.predicted),
    "acev2": int(found["repriced"]),
    "config_acev2": int(base_acev2),
    "additive": sol.predicted == found["repriced"],
    "bit_rules": rules,
    "model_overrides": sol.glob.overrides(),
    "choices": {p: c.label() for p, c in sol.assignment.items()},
    "sensitivity_method": sens["method"],
    "low_bit_calibration": table.space.low_bit_calibration,
    "objective": sol.sensitivity,
    "solver_tries": found["tries"],
    "cost_table": {"traces": table.traces, "seconds": round(table.seconds, 1)},
    "main_flags": flags,
  }


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  try:
    args, config, source, applied = prepare(argv)
    result = run(args, config, source, applied)
  except (ConfigSpecError, ValueError) as e:
    fail(str(e))
  tmp = args.out + ".tmp"
  with open(tmp, "w") as f:
    json.dump(result, f, indent=1)
    f.write("\n")
  os.replace(tmp, args.out)
  print(
    f"ACEv2 {result['acev2']:,} (budget {result['budget']:,}, table {result['predicted_acev2']:,})"
    f" -> {args.out}"
  )
  return 0
