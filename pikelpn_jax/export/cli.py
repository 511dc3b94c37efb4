"""python -m pikelpn_jax.export --workdir DIR --out FILE [--config configs/x.py:v --config.a=b]

Restores the newest checkpoint of DIR, lowers the model to integer ops and writes FILE (the
integer model; standard ONNX when FILE ends in .onnx) and FILE.report.json (sizes, probe checks, and with --eval the whole-test-set
comparison and the ACEv2 comparison). The config is the one saved in DIR (config.json) unless
--config is given (ml_collections overrides allowed). Bad input exits 1 with one line on stderr.
"""

from __future__ import annotations

import json
import os

import jax.numpy as jnp
import ml_collections
import numpy as np

from pikelpn_jax import workdir as wd
from pikelpn_jax.config_base import check_int

ONNX_SUFFIX = ".onnx"  # --out's extension picks the format: .onnx, else the integer model file


def saved_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config the workdir was trained with (config.json written by main.py)."""
  path = wd.join(workdir, "config.json")
  if not wd.exists(path):
    raise FileNotFoundError(
      f"workdir {workdir!r} has no config.json; pass --config configs/<name>.py:<variant>"
    )
  return ml_collections.ConfigDict(json.loads(wd.read_text(path)))


def _restore(config, workdir: str, probe_examples: int):
  """(model, variables, eval source, probe images, source description) of a training workdir."""
  from pikelpn_jax.data import make_source
  from pikelpn_jax.models import build_model
  from pikelpn_jax.train.checkpoint import latest_step, restore_latest

  check_int("--probe_examples", probe_examples, 1)
  variables = restore_latest(workdir, config)
  model = build_model(config, dw_impl="grouped")
  source = make_source(config.dataset, "eval", int(config.seed))
  probe, _ = source.get_batch(np.arange(min(probe_examples, len(source))))
  src = {
    "workdir": wd.resolve(workdir),
    "step": latest_step(workdir),
    "model": config.model.get("name"),
    "variant": config.model.get("variant"),
  }
  return model, variables, source, jnp.asarray(probe), src


def run(
  config,
  workdir: str,
  out: str,
  probe_examples: int = 16,
  evaluate: bool = False,
  eval_examples: int = -1,
) -> dict:
  """Exports to `out`: ONNX when it ends in .onnx, else the integer model file."""
  if out.endswith(ONNX_SUFFIX):
    return run_onnx(config, workdir, out, probe_examples, evaluate, eval_examples)
  from pikelpn_jax.export import evaluate as ev
  from pikelpn_jax.export.exporter import export_model
  from pikelpn_jax.export.forward import load

  model, variables, source, probe, src = _restore(config, workdir, probe_examples)
  report = export_model(model, variables, probe, out, source=src)
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


def run_onnx(config, workdir, out, probe_examples=16, evaluate=False, eval_examples=-1) -> dict:
  """The integer program as ONNX (onnx_export.py); with `evaluate`, onnxruntime on the test set
  against the integer forward and the fake-quant model."""
  from pikelpn_jax.export import onnx_export as ox
  from pikelpn_jax.export.exporter import lower_model
  from pikelpn_jax.export.forward import IntegerModel, device_tensors

  model, variables, source, probe, src = _restore(config, workdir, probe_examples)
  if not hasattr(source, "mean") or not hasattr(source, "uint8_batch"):
    raise ValueError(
      f"dataset {config.dataset.name!r}: its source ({type(source).__name__}) has no stored "
      "uint8 images and normalisation to fold into the ONNX input; export to .plpn instead"
    )
  header, arrays, report = lower_model(model, variables, probe)
  header["source"] = src
  onnx_model = ox.to_onnx(header, arrays, ox.input_table(header["input"], source.mean, source.std))
  floats = ox.float_nodes(onnx_model)
  if floats:
    raise ValueError(f"the ONNX graph is not integer-only: {'; '.join(floats[:5])}")
  ops: dict = {}
  for node in onnx_model.graph.node:
    ops[node.op_type] = ops.get(node.op_type, 0) + 1
  report.update(file=out, format="onnx", opset=ox.OPSET, file_bytes=ox.write_onnx(onnx_model, out))
  report.update(onnx_nodes=len(onnx_model.graph.node), onnx_ops=ops, float_nodes=floats)
  if evaluate:
    imodel = IntegerModel(header, device_tensors(header, arrays))
    report["onnx_test_set"] = ox.compare_onnx(
      ox.session(out),
      imodel,
      source,
      model=model,
      variables=variables,
      limit=None if eval_examples < 0 else eval_examples,
    )
  with open(out + ".report.json", "w") as f:
    json.dump(report, f, indent=2, sort_keys=True)
  return report


def onnx_summary(report: dict) -> str:
  ops = ", ".join(f"{k} {v}" for k, v in sorted(report["onnx_ops"].items()))
  lines = [
    f"wrote {report['file']}: {report['file_bytes']} bytes, ONNX opset {report['opset']}, "
    f"{report['onnx_nodes']} nodes ({ops}); float values or float MACs: "
    f"{len(report['float_nodes'])}; probe checks failed: {len(report['probe_checks_failed'])}"
  ]
  if "onnx_test_set" in report:
    t = report["onnx_test_set"]
    lines.append(
      f"onnxruntime on the test set ({t['examples']}): logits identical to the integer forward "
      f"{t['logits_identical']}/{t['examples']}; top-1 onnxruntime {t['onnx_top1']:.4f}, "
      f"integer {t['integer_top1']:.4f}, fake-quant {t['fake_quant_top1']:.4f}; "
      f"{t['ms_per_image']:.3f} ms per image (batch {t['batch']})"
    )
  return "\n".join(lines)


def summary(report: dict) -> str:
  if report.get("format") == "onnx":
    return onnx_summary(report)
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
  if not wd.isdir(workdir):
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
