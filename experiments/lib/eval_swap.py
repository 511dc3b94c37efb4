"""Evaluates a trained run with inference-time changes: what a technique's numerics cost at the
scales the model actually learned (QuantNorm's integer M/C at the trained scales, Double
Quantization's rounding).

Each --set FIELD=VALUE (repeatable, one variant per flag; several changes in one variant joined
by ',') rebuilds the model with that config change and evaluates the *same* trained variables on
the run's test set. A variant whose model has other variables than the checkpoint is an error.

    python -m experiments.lib.eval_swap --workdir /tmp/pikelpn_fmnist \\
        --set model.quantnorm_bits=16 --set model.double_quant=False --set model.dq_round=ceil
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from typing import Any, Dict, List, Tuple

from pikelpn_jax.config_cli import parse_value  # the CLIs' override parser


def parse_variant(arg: str) -> List[Tuple[str, Any]]:
  out = []
  for part in arg.split(","):
    field, sep, value = part.partition("=")
    if not sep or not field:
      raise ValueError(f"--set={arg!r} is not allowed; use FIELD=VALUE[,FIELD=VALUE]")
    out.append((field.strip(), parse_value(value.strip())))
  return out


def apply_variant(config, changes):
  """A copy of config with the changes; 'model.bit_rules.<regex>.<key>' edits one bit rule."""
  c = copy.deepcopy(config)
  for field, value in changes:
    if field.startswith("model.bit_rules."):
      pattern, _, key = field[len("model.bit_rules.") :].rpartition(".")
      rules = [(p, dict(o)) for p, o in c.model.bit_rules]
      hits = [o for p, o in rules if p == pattern]
      if not hits:
        raise ValueError(
          f"--set field {field!r}: no bit rule {pattern!r}; rules: {[p for p, _ in rules]}"
        )
      hits[0][key] = value
      c.model.bit_rules = tuple((p, o) for p, o in rules)
      continue
    *parents, leaf = field.split(".")
    node = c
    for p in parents:
      node = node[p]
    if leaf not in node:
      raise ValueError(f"--set field {field!r} is not in the run's config")
    with node.ignore_type():
      node[leaf] = value
  return c


def evaluate(config, variables) -> Dict[str, float]:
  import jax
  import jax.numpy as jnp

  from pikelpn_jax.data.pipeline import InputPipeline
  from pikelpn_jax.train.steps import make_model

  model = make_model(config)

  @jax.jit
  def correct(variables, images, labels, mask):  # variables as arguments: no constant folding
    logits = model.apply(variables, images, train=False)
    return jnp.sum((jnp.argmax(logits, -1) == labels) * mask), jnp.sum(mask)

  hits = total = 0.0
  for images, labels, mask in InputPipeline(config).eval_batches():
    h, n = correct(variables, images, labels, mask)
    hits, total = hits + float(h), total + float(n)
  return {"top1": hits / total, "examples": int(total)}


def main(argv=None) -> Dict[str, Any]:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--set", action="append", default=[], dest="variants")
  p.add_argument("--json", default="", help="also write the results here")
  args = p.parse_args(argv)
  import ml_collections

  from pikelpn_jax.train.checkpoint import restore_latest

  path = os.path.join(args.workdir, "config.json")
  if not os.path.exists(path):
    raise SystemExit(f"error: --workdir={args.workdir!r} has no config.json")
  with open(path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  variants = [parse_variant(v) for v in args.variants]
  variables = restore_latest(args.workdir, config)
  rows = [{"variant": "as trained", **evaluate(config, variables)}]
  print(f"as trained: top-1 {100 * rows[0]['top1']:.2f} %", flush=True)
  for changes in variants:
    c = apply_variant(config, changes)
    name = ", ".join(f"{f}={v}" for f, v in changes)
    try:
      r = evaluate(c, variables)
    except (ValueError, TypeError, KeyError) as e:  # e.g. a variant with other variables
      rows.append({"variant": name, "error": str(e).splitlines()[0][:300]})
      print(f"{name}: not evaluable ({rows[-1]['error']})", flush=True)
      continue
    rows.append({"variant": name, **r, "delta": r["top1"] - rows[0]["top1"]})
    print(f"{name}: top-1 {100 * r['top1']:.2f} % ({100 * rows[-1]['delta']:+.2f})", flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"workdir": args.workdir, "rows": rows}, f, indent=1)
  return {"rows": rows}


if __name__ == "__main__":
  main()
