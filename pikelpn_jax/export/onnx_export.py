"""The integer program as one standard ONNX graph, run by onnxruntime (docs/export.md §6).

    model = to_onnx(header, arrays, input_table(header["input"], mean, std))
    write_onnx(model, "model.onnx")

The graph takes the image as the data set stores it (uint8, NHWC, after the pad or resize) and
returns the int32 logits of the integer program (real logits = logits · metadata logit_scale).
The data pipeline's normalisation and the first quantizer are folded into one integer lookup: a
256-entry int32 table per channel, computed here with the pipeline's own float32 arithmetic, so
the codes are those the integer forward sees. Between input and logits every value is an integer
(onnx_lower.py); float_nodes() checks a graph for anything else.

Opset 18: the lowest opset in which every operator used here takes its axes as an input
(ReduceMax since 18) and int32 Max/Min/Clip/Mod exist, so any onnxruntime since 1.14 loads it.
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Optional

import numpy as np
import onnx
from onnx import TensorProto, helper

from pikelpn_jax.export.forward import quantize_codes
from pikelpn_jax.export.onnx_lower import Graph, lower_op
from pikelpn_jax.export.values import ExportError

OPSET = 18
FLOAT_MAC_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm", "QLinearConv", "QLinearMatMul")
INTEGER_TYPES = {
  TensorProto.INT8,
  TensorProto.UINT8,
  TensorProto.INT16,
  TensorProto.INT32,
  TensorProto.INT64,
  TensorProto.BOOL,
}


def input_table(spec: Dict[str, Any], mean, std) -> np.ndarray:
  """[C, 256] int32: the input codes of every stored pixel value u in channel c, i.e. the first
  quantizer applied to the data pipeline's normalize(u) (float32, as training and eval see it)."""
  from pikelpn_jax.data.images import normalize

  channels = int(spec["shape"][-1])
  u8 = np.repeat(np.arange(256, dtype=np.uint8)[:, None], channels, axis=1)
  return quantize_codes(spec, normalize(u8, mean, std)).T.astype(np.int32)


def _bounds(header: Dict[str, Any], vid: str):
  meta = header["input"] if vid == "x" else header["values"][vid]
  return meta["lo"], meta["hi"]


def _shape(header: Dict[str, Any], vid: str):
  return (header["input"] if vid == "x" else header["values"][vid])["shape"]


def to_onnx(
  header: Dict[str, Any], arrays: Dict[str, np.ndarray], table: np.ndarray
) -> onnx.ModelProto:
  """The ONNX model of an integer program (header and int arrays as lower_model returns them)."""
  g = Graph()
  in_shape = list(header["input"]["shape"])
  g.dtypes["image"] = TensorProto.UINT8
  channels = in_shape[-1]
  if table.shape != (channels, 256):
    raise ExportError(f"input table shape {table.shape} != ({channels}, 256)")
  idx = g.node("Cast", ["image"], TensorProto.INT32, to=TensorProto.INT32)
  idx = g.node("Add", [idx, g.i32(np.arange(channels) * 256, "channel_base")])
  env = {"x": g.node("Gather", [g.i32(table.reshape(-1), "input_table"), idx], axis=0)}
  for op in header["ops"]:
    ins = [env[i] for i in op["in"]]
    env[op["out"]] = lower_op(
      g,
      op,
      ins,
      arrays,
      [_bounds(header, i) for i in op["in"]],
      [_shape(header, i) for i in op["in"]],
    )
  out = header["output"]
  g.nodes.append(helper.make_node("Identity", [env[out["value"]]], ["logits"]))
  graph = helper.make_graph(
    g.nodes,
    "pikelpn_integer",
    [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N"] + in_shape[1:])],
    [helper.make_tensor_value_info("logits", TensorProto.INT32, ["N"] + out["shape"][1:])],
    g.inits,
  )
  model = helper.make_model(
    graph,
    opset_imports=[helper.make_opsetid("", OPSET)],
    producer_name="pikelpn_jax.export",
    doc_string="uint8 NHWC image -> int32 logits; real logits = logits * logit_scale",
  )
  model.ir_version = 8  # the IR of opset 18, readable by onnxruntime >= 1.14
  helper.set_model_props(
    model,
    {
      "logit_scale": repr(float(out["scale"])),
      "logit_scale_exp": json.dumps(out.get("scale_exp")),
      "source": json.dumps(header.get("source", {}), sort_keys=True),
    },
  )
  onnx.checker.check_model(model, full_check=True)
  return model


def float_nodes(model: onnx.ModelProto) -> List[str]:
  """Every float MAC node, float initializer or float-typed value of the graph (after shape
  inference): what an integer-only graph must not contain."""
  inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
  g = inferred.graph
  bad = [f"{n.op_type} node {n.output[0]}" for n in g.node if n.op_type in FLOAT_MAC_OPS]
  bad += [f"initializer {t.name}" for t in g.initializer if t.data_type not in INTEGER_TYPES]
  for v in list(g.input) + list(g.value_info) + list(g.output):
    if v.type.tensor_type.elem_type not in INTEGER_TYPES:
      bad.append(f"value {v.name} ({TensorProto.DataType.Name(v.type.tensor_type.elem_type)})")
  return bad


def write_onnx(model: onnx.ModelProto, path: str) -> int:
  data = model.SerializeToString()
  with open(path, "wb") as f:
    f.write(data)
  return len(data)


def session(model_or_path, threads: int = 0):
  """An onnxruntime CPU session (all graph optimisations on, `threads` 0 = onnxruntime's choice)."""
  import onnxruntime as ort

  opts = ort.SessionOptions()
  opts.intra_op_num_threads = threads
  src = (
    model_or_path.SerializeToString()
    if isinstance(model_or_path, onnx.ModelProto)
    else model_or_path
  )
  return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def compare_onnx(
  sess, imodel, source, *, model=None, variables=None, batch: int = 500, limit: Optional[int] = None
) -> Dict[str, Any]:
  """onnxruntime on the stored uint8 images vs the integer forward (and, with model/variables,
  the fake-quant model) on the same images normalised by the pipeline."""
  import jax

  if not hasattr(source, "uint8_batch"):
    raise ValueError(f"{type(source).__name__} has no uint8 images (uint8_batch) to feed ONNX")
  fake = None if model is None else jax.jit(lambda v, x: model.apply(v, x, train=False))
  n = len(source) if limit is None else min(limit, len(source))
  identical = c_onnx = c_int = c_fake = 0
  ort_s = 0.0
  for start in range(0, n, batch):
    idx = np.arange(start, min(start + batch, n))
    raw = source.uint8_batch(idx)
    images, labels = source.get_batch(idx)
    t0 = time.perf_counter()
    lo = sess.run(["logits"], {"image": raw})[0]
    ort_s += time.perf_counter() - t0
    li = np.asarray(imodel(images))
    identical += int(np.sum(np.all(lo == li, axis=-1)))
    c_onnx += int(np.sum(lo.argmax(-1) == labels))
    c_int += int(np.sum(li.argmax(-1) == labels))
    if fake is not None:
      lf = np.asarray(fake(variables, images))
      c_fake += int(np.sum(lf.argmax(-1) == labels))
  out = {
    "examples": n,
    "logits_identical": identical,
    "onnx_top1": c_onnx / n,
    "integer_top1": c_int / n,
    "ms_per_image": 1e3 * ort_s / n,
    "batch": batch,
  }
  if fake is not None:
    out["fake_quant_top1"] = c_fake / n
  return out
