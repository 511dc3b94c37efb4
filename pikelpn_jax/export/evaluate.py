"""Checks of an exported model against the fake-quant model it came from.

compare_predictions: integer vs fake-quant logits and top-1 over a data source (the test set).
acev2_comparison: the ACEv2 analyzer on both forwards, totals and category by category.
size_comparison: file bytes vs the analyzer's model bits (fake-quant) and the file's own bits.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np

from pikelpn_jax.export.forward import IntegerModel
from pikelpn_jax.export.ops import codes_dtype, tensor_kind


def compare_predictions(
  model, variables, imodel: IntegerModel, source, *, batch: int = 500, limit: Optional[int] = None
) -> Dict[str, Any]:
  """Runs both forwards over `source` (get_batch(indices) -> images, labels)."""
  n = len(source) if limit is None else min(limit, len(source))
  fake = jax.jit(lambda v, x: model.apply(v, x, train=False))
  scale = imodel.output_spec["scale"]
  agree = exact = within = correct_f = correct_i = 0
  max_diff = 0.0
  worst_margin = np.inf
  for start in range(0, n, batch):
    idx = np.arange(start, min(start + batch, n))
    images, labels = source.get_batch(idx)
    lf = np.asarray(fake(variables, jnp.asarray(images)), np.float64)
    li = np.asarray(imodel(images))
    real = li.astype(np.float64) * scale
    pf, pi = lf.argmax(-1), li.argmax(-1)
    agree += int(np.sum(pf == pi))
    exact += int(np.sum(np.all(real == lf, axis=-1)))
    # Stated bound: the rounded constants' error plus the fake-quant float32 rounding (1 ulp).
    bound = imodel.output_spec["max_abs_err"] + np.spacing(np.abs(lf).astype(np.float32))
    within += int(np.sum(np.all(np.abs(real - lf) <= bound, axis=-1)))
    correct_f += int(np.sum(pf == labels))
    correct_i += int(np.sum(pi == labels))
    max_diff = max(max_diff, float(np.max(np.abs(real - lf))))
    top2 = np.sort(lf, axis=-1)[:, -2:]
    worst_margin = min(worst_margin, float(np.min(top2[:, 1] - top2[:, 0])))
  return {
    "examples": n,
    "top1_agree": agree,
    "logits_bit_exact": exact,
    "logits_within_bound": within,
    "max_abs_logit_diff": max_diff,
    "fake_quant_top1": correct_f / n,
    "integer_top1": correct_i / n,
    "min_top2_margin": worst_margin,
    "output_grid": scale,
    "bound": imodel.output_spec["max_abs_err"],
  }


def _category_table(fake, integer) -> Dict[str, Dict[str, int]]:
  f, i = fake.to_json(), integer.to_json()
  rows = {
    k: {"fake_quant": int(f[k]), "integer": int(i[k]), "diff": int(i[k]) - int(f[k])}
    for k in ("macs", "ace", "acev2")
  }
  for cat in f["breakdown"]:
    a, b = int(f["breakdown"][cat]), int(i["breakdown"].get(cat, 0))
    rows[f"acev2.{cat}"] = {"fake_quant": a, "integer": b, "diff": b - a}
  return rows


def _layer_table(fake, integer) -> Dict[str, Dict[str, int]]:
  """ACEv2 by layer path (the fake-quant trace prefixes the model's class name)."""

  def by_path(rep, strip):
    out = {}
    for row in rep.to_json()["layers"]:
      path = row["path"].split("/", 1)[1] if strip and "/" in row["path"] else row["path"]
      out[path] = out.get(path, 0) + int(row["acev2"])
    return out

  f, i = by_path(fake, True), by_path(integer, False)
  return {
    p: {"fake_quant": f.get(p, 0), "integer": i.get(p, 0), "diff": i.get(p, 0) - f.get(p, 0)}
    for p in sorted(set(f) | set(i))
  }


def acev2_comparison(config, variables, imodel: IntegerModel, model=None) -> Dict[str, Any]:
  """ACEv2 (batch 1) of the fake-quant forward and of the integer body, side by side."""
  from pikelpn_jax.ace import acev2_report, analyze

  fake = acev2_report(config, variables, strict=False, model=model)
  spec = imodel.input_spec
  x = jax.ShapeDtypeStruct((1, *spec["shape"][1:]), codes_dtype(spec["bits"], spec["signed"]))
  integer = analyze(imodel.body(), imodel.tensors, x, const_argnums=0, strict=False)
  return {
    "totals": _category_table(fake, integer),
    "layers": _layer_table(fake, integer),
    "unaccounted": {"fake_quant": list(fake.unaccounted), "integer": list(integer.unaccounted)},
    "model_bits": {"fake_quant": int(fake.model_bits), "integer": int(integer.model_bits)},
  }


def size_comparison(
  report: Dict[str, Any],
  header: Dict[str, Any],
  variables,
  analyzer_model_bits: int,
  float_bits: int = 32,
) -> Dict[str, Any]:
  """File bytes vs the analyzer's model bits, reconciled tensor role by tensor role.

  The analyzer (fake-quant forward) counts each quantized kernel at its weight bits and every
  other parameter (QuantNorm γ/β, the head bias) at float_bits; the file holds the same kernels
  at the same bits and, instead of the float parameters, integer M/C per norm channel, the
  head bias on the logit grid and per-channel shifts.
  """
  from flax import traverse_util

  kinds = tensor_kind(header["ops"])
  by_role: Dict[str, int] = {}
  for name, spec in header["tensors"].items():
    role = (
      "weights" if kinds.get(name) == "weight" else name.rsplit("/", 1)[-1].rstrip("_0123456789")
    )
    by_role[role] = by_role.get(role, 0) + int(np.prod(spec["shape"])) * spec["bits"]
  flat = traverse_util.flatten_dict(dict(variables["params"]))
  float_params = sum(int(np.prod(np.shape(v))) for k, v in flat.items() if k[-1] != "kernel")
  analyzer_weights = analyzer_model_bits - float_bits * float_params
  return {
    "file_bytes": report["file_bytes"],
    "payload_bytes": report["payload_bytes"],
    "header_bytes": report["header_bytes"],
    "file_model_bits": report["model_bits"],
    "analyzer_model_bits": analyzer_model_bits,
    "analyzer_model_bytes": analyzer_model_bits / 8,
    "file_bits_by_role": by_role,
    "analyzer_weight_bits": analyzer_weights,
    "analyzer_float_param_bits": float_bits * float_params,
    "weights_match": analyzer_weights == by_role.get("weights", 0),
  }
