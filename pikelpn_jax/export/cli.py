"""python -m pikelpn_jax.export --workdir DIR --out FILE [--config configs/x.py:v --config.a=b]

Restores the newest checkpoint of DIR, lowers the model to integer ops and writes FILE (the
integer model) and FILE.report.json (sizes, probe checks, and with --eval the whole-test-set
comparison and the ACEv2 comparison). The config is the one saved in DIR (config.json) unless
--config is given (ml_collections overrides allowed). Bad input exits 1 with one line on stderr.
"""

from __future__ import annotations

import json
import os

import jax.numpy as jnp
import ml_collections
import numpy as np

from pikelpn_jax.config_base import check_int


def saved_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config the workdir was trained with (config.json written by main.py)."""
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(
      f"workdir {workdir!r} has no config.json; pass --config configs/<name>.py:<variant>"
    )
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def run(
  config,
  workdir: str,
  out: str,
  probe_examples: int = 16,
  evaluate: bool = False,
  eval_examples: int = -1,
) -> dict:
  from pikelpn_jax.data import make_source
  from pikelpn_jax.export import evaluate as ev
  from pikelpn_jax.export.exporter import export_model
  from pikelpn_jax.export.forward import load
  from pikelpn_jax.models import build_model
  from pikelpn_jax.train.checkpoint import latest_step, restore_latest

  check_int("--probe_examples", probe_examples, 1)
  variables = restore_latest(workdir, config)
  model = build_model(config, dw_impl="grouped")
  source = make_source(config.dataset, "eval", int(config.seed))
  probe, _ = source.get_batch(np.arange(min(probe_examples, len(source))))
  src = {
    "workdir": os.path.abspath(workdir),
    "step": latest_step(workdir),
    "model": config.model.get("name"),
    "variant": config.model.get("variant"),
  }
  report = export_model(model, variables, jnp.asarray(probe), out, source=src)
  imodel = load(out)
  acev2 = ev.acev2_comparison(config, variables, imodel, model=model) if evaluate else None
  if acev2 is None:
    from pikelpn_jax.ace import acev2_report

    analyzer_bits = acev2_report(config, variables, strict=False, model=model).model_bits
  else:
    analyzer_bits = acev2["model_bits"]["fake_quant"]
  report["sizes"] = ev.size_comparison(report, imodel.header, variables, int(analyzer_bits))
  if evaluate:
    report["test_set"] = ev.compare_predictions(
      model, variables, imodel, source, limit=None if eval_examples < 0 else eval_examples
    )
    report["acev2"] = acev2
  with open(out + ".report.json", "w") as f:
    json.dump(report, f, indent=2, sort_keys=True)
  return report


def summary(report: dict) -> str:
  s = report["sizes"]
  lines = [
    f"wrote {report['file']}: {s['file_bytes']} bytes = {s['payload_bytes']} payload "
    f"(integer tensors) + {s['header_bytes']} header + 16 preamble",
    f"model bits: file {s['file_model_bits']} ({s['file_model_bits'] / 8:.0f} B), "
    f"analyzer (fake-quant forward) {s['analyzer_model_bits']} "
    f"({s['analyzer_model_bytes']:.0f} B); weights: file {s['file_bits_by_role'].get('weights', 0)}"
    f" = analyzer {s['analyzer_weight_bits']} ({'match' if s['weights_match'] else 'MISMATCH'});"
    f" analyzer float params {s['analyzer_float_param_bits']} -> file "
    + ", ".join(f"{k} {v}" for k, v in sorted(s["file_bits_by_role"].items()) if k != "weights"),
    f"{report['ops']} integer ops, {report['tensors']} tensors; probe checks failed: "
    f"{len(report['probe_checks_failed'])}; output rounding bound "
    f"{report['output_max_abs_err']:.3g}",
  ]
  if "test_set" in report:
    t = report["test_set"]
    lines.append(
      f"test set ({t['examples']}): top-1 agree {t['top1_agree']}/{t['examples']}, "
      f"logits bit-exact {t['logits_bit_exact']}/{t['examples']}, within the stated "
      f"bound {t['logits_within_bound']}/{t['examples']}, max |Δlogit| "
      f"{t['max_abs_logit_diff']:.3g}; top-1 fake-quant {t['fake_quant_top1']:.4f}, "
      f"integer {t['integer_top1']:.4f}"
    )
  if "acev2" in report:
    for k, r in report["acev2"]["totals"].items():
      lines.append(
        f"  {k:<22} fake-quant {r['fake_quant']:>14}  integer {r['integer']:>14}  "
        f"diff {r['diff']:>12}"
      )
  return "\n".join(lines)


def check_flags(workdir, out, probe_examples: int, eval_examples: int) -> None:
  """The flags' values, before anything is loaded (one-line ValueErrors/FileNotFoundErrors)."""
  if not workdir or not out:
    raise ValueError(f"--workdir={workdir!r} --out={out!r}: both are required")
  if not os.path.isdir(workdir):
    raise FileNotFoundError(
      f"--workdir={workdir!r} is not a directory; use a training workdir "
      "(python main.py --workdir DIR)"
    )
  out_dir = os.path.dirname(os.path.abspath(out))
  if not os.path.isdir(out_dir) or os.path.isdir(out):
    raise FileNotFoundError(f"--out={out!r}: use a file path in an existing directory")
  check_int("--probe_examples", probe_examples, 1)
  if eval_examples == 0 or eval_examples < -1:
    raise ValueError(
      f"--eval_examples={eval_examples} is not allowed; use -1 (all) or a positive integer"
    )
