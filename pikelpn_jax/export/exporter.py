"""Export: a quantized Flax model + its variables -> an integer model file (and a report).

    report = export_model(model, variables, probe_x, "model.plpn", source={...})

1. `float_layers` walks the module tree (flax method interception during an abstract apply) and
   refuses models with float layers, naming them all.
2. The eval forward is traced and lowered to integer ops (lower.py, rules*.py); each op is
   checked on `probe_x` against the fake-quant model as it is emitted.
3. The program and its integer tensors are written bit-packed (format.py).
"""

from __future__ import annotations

import functools
from typing import Any, Dict, List, Optional

import flax.linen as nn
import jax
import numpy as np

from pikelpn_jax.export import format as fmt
from pikelpn_jax.export import grid
from pikelpn_jax.export.forward import device_tensors, integer_values, quantize_codes
from pikelpn_jax.export.helpers import shift_left
from pikelpn_jax.export.lower import Lowerer, record_values
from pikelpn_jax.export.ops import codes_dtype
from pikelpn_jax.export.values import Const, ExportError, Input, Sym
from pikelpn_jax.layers import DPReLU, PReLU, QConv, QDense, QDepthwiseConv, QuantNorm, RPReLU

MAC_LAYERS = (QConv, QDepthwiseConv, QDense)
STOCK_FLOAT = (nn.Dense, nn.Conv, nn.BatchNorm, nn.LayerNorm, nn.GroupNorm)


class FloatLayerError(ExportError):
  """The model is not fully quantized; the message names every float layer."""


def _path(m) -> str:
  return "/".join(str(p) for p in m.path) or type(m).__name__


def float_layers(model: nn.Module, variables, x) -> List[str]:
  """'path (why)' for every layer that would compute in float at inference."""
  found: List[str] = []

  def intercept(next_fun, args, kwargs, context):
    m = context.module
    if context.method_name == "__call__":
      why = []
      if isinstance(m, MAC_LAYERS):
        if m.w_quant.is_float:
          why.append("float weights")
        if m.x_quant.is_float:
          why.append("float input")
      elif isinstance(m, QuantNorm) and m.bits is None:
        why.append("float norm (QuantNorm bits=None)")
      elif isinstance(m, (PReLU, DPReLU, RPReLU)) and m.param_bits is None:
        why.append("float activation slopes (param_bits=None)")
      elif isinstance(m, STOCK_FLOAT):
        why.append(f"float layer flax.linen.{type(m).__name__}")
      if why:
        entry = f"{_path(m)} ({', '.join(why)})"
        if entry not in found:
          found.append(entry)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(intercept):
    jax.eval_shape(lambda v, a: model.apply(v, a, train=False), variables, x)
  return found


def _finish_output(lw: Lowerer, out) -> Dict[str, Any]:
  if not isinstance(out, Sym) or out.pred:
    raise ExportError(
      "the model output is not an integer value of the program "
      f"({type(out).__name__}); it must depend on the input through quantizers"
    )
  if grid.uniform(out.scale) is None:
    e = grid.pow2_exponent(out.scale)
    if e is None:
      raise ExportError(
        "the output channels are on grids whose ratios are not powers of two; "
        "their integer logits cannot be compared"
      )
    out = shift_left(lw, out, e - e.min(), "model/output")
  scale = grid.uniform(out.scale)
  e = grid.pow2_exponent(scale)
  return {
    "value": out.vid,
    "shape": [None] + list(out.shape[1:]),
    "scale": scale,
    "scale_exp": None if e is None else int(e),
    "max_abs_err": out.err,
    "lo": float(np.min(out.lo)),
    "hi": float(np.max(out.hi)),
  }


def _prune(lw: Lowerer, output: str):
  """Drops ops (and tensors) the output does not depend on."""
  live, kept = {output}, []
  for op in reversed(lw.ops):
    if op["out"] in live:
      live.update(op["in"])
      kept.append(op)
  kept.reverse()
  used = {t for op in kept for t in op["tensors"].values()}
  return kept, {n: lw.tensors[n] for n in lw.tensors if n in used}


def lower_model(model: nn.Module, variables, probe_x):
  """(header without tensor offsets, {name: int64 array}, report) of the integer program."""
  bad = float_layers(model, variables, probe_x)
  if bad:
    raise FloatLayerError(f"the model is not fully quantized; float layers: {'; '.join(bad)}")
  closed = jax.make_jaxpr(lambda v, a: model.apply(v, a, train=False))(variables, probe_x)
  leaves = [np.asarray(l) for l in jax.tree_util.tree_leaves(variables)]
  probe_x = np.asarray(probe_x)
  lw = Lowerer(record_values(closed, leaves + [probe_x]))
  outs = lw.run(closed, [Const(l) for l in leaves] + [Input(probe_x)])
  if len(outs) != 1:
    raise ExportError(f"the model returns {len(outs)} arrays; export supports one (the logits)")
  if lw.input_spec is None:
    raise ExportError("the model input never reaches a quantizer")
  output = _finish_output(lw, outs[0])
  ops, tensors = _prune(lw, output["value"])
  live_values = {op["out"] for op in ops} | {"x"}
  header = {
    "input": lw.input_spec,
    "output": output,
    "ops": ops,
    "values": {k: v for k, v in lw.values.items() if k in live_values},
    "tensors": {n: dict(spec) for n, (_, spec) in tensors.items()},
  }
  arrays = {n: a for n, (a, _) in tensors.items()}
  env = jax.jit(functools.partial(integer_values, header))(
    device_tensors(header, arrays),
    quantize_codes(lw.input_spec, probe_x).astype(
      codes_dtype(lw.input_spec["bits"], lw.input_spec["signed"])
    ),
  )
  for vid, meta in header["values"].items():
    meta["dtype"] = str(env[vid].dtype)
  model_bits = sum(int(np.prod(s["shape"])) * s["bits"] for s in header["tensors"].values())
  report = {
    "ops": len(ops),
    "tensors": len(tensors),
    "model_bits": model_bits,
    "probe_batch": int(probe_x.shape[0]),
    "probe_checks_failed": lw.check_probes(
      {k: np.asarray(v) for k, v in env.items() if k in live_values}
    ),
    "rounded_constants": lw.rounded,
    "output_max_abs_err": output["max_abs_err"],
  }
  return header, arrays, report


def export_model(
  model: nn.Module, variables, probe_x, path: str, source: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
  """Lowers and writes the integer model file; returns the report (sizes, checks)."""
  header, arrays, report = lower_model(model, variables, probe_x)
  header["source"] = dict(source or {})
  size = fmt.write_file(path, header, arrays)
  payload = sum(
    fmt.packed_nbytes(int(np.prod(t["shape"])), t["bits"]) for t in header["tensors"].values()
  )
  report.update(
    file=path,
    file_bytes=size,
    payload_bytes=payload,
    header_bytes=size - payload - len(fmt.MAGIC) - 8,
  )
  return report
