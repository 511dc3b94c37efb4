"""The integer-only forward: loads an integer model file and runs its ops with jnp integer ops.

The body (`integer_body`) takes the input codes (int8/int16) and returns int32 logits on the
output grid; it contains integer and boolean values only (`assert_integer_only` checks its
jaxpr). Two steps stay outside the body, at the boundary, as in any integer deployment:
  quantize_input   the float image -> input codes (the first layer's input quantizer: the sensor
                   or the preprocessing side of the accelerator; with a power-of-two step it is a
                   shift of a fixed-point pixel);
  dequantize       int32 logits · output scale (only needed for real-valued logits; the argmax,
                   i.e. the prediction, is taken on the integers).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Dict, List

import jax
import jax.numpy as jnp
import numpy as np

from pikelpn_jax._jax_internals import (
  Eqn,
  is_literal,
  jaxpr_parts,
  literal_value,
  tag,
  var_dtype,
)
from pikelpn_jax.export.format import read_file
from pikelpn_jax.export.ops import codes_dtype, run_op, tag_tensors
from pikelpn_jax.jaxpr_interpreter import all_eqns

FORBIDDEN_PRIMS = (
  "div",
  "rem",
  "exp",
  "exp2",
  "log",
  "sqrt",
  "rsqrt",
  "pow",
  "tanh",
  "logistic",
  "erf",
  "sin",
  "cos",
  "round",
  "floor",
  "ceil",
  "reduce_precision",
)


def quantize_codes(spec: Dict[str, Any], x) -> np.ndarray:
  """The boundary input quantizer, in float32 exactly as the fake-quant model computes it."""
  v = np.asarray(x, np.float32) / np.float32(spec["step"])
  if spec["mode"] == "sign":
    q = np.where(v >= 0, 1, -1)
  else:
    q = np.clip(np.floor(v + np.float32(0.5)), spec["lo"], spec["hi"])
  return q.astype(np.int64)


def integer_values(header: Dict[str, Any], tensors: Dict[str, Any], x_codes) -> Dict[str, Any]:
  """Every value of the integer program (by id) for input codes `x_codes`."""
  ops, spec = header["ops"], header["input"]
  tensors = tag_tensors(ops, header["tensors"], tensors)
  env = {"x": tag(x_codes, bits=spec["bits"], signed=spec["signed"], kind="act")}
  for op in ops:
    env[op["out"]] = run_op(op, [env[i] for i in op["in"]], tensors)
  return env


def integer_body(header: Dict[str, Any], tensors: Dict[str, Any], x_codes):
  """The integer forward: integer arrays in, int32 logits (on the output grid) out."""
  return integer_values(header, tensors, x_codes)[header["output"]["value"]]


@dataclasses.dataclass
class IntegerModel:
  header: Dict[str, Any]
  tensors: Dict[str, Any]  # name -> jnp integer array (int8/int16/int32 container)

  @property
  def ops(self) -> List[dict]:
    return self.header["ops"]

  @property
  def input_spec(self) -> Dict[str, Any]:
    return self.header["input"]

  @property
  def output_spec(self) -> Dict[str, Any]:
    return self.header["output"]

  def body(self):
    """The pure integer function (tensors, x_codes) -> int32 logits."""
    return functools.partial(integer_body, self.header)

  @functools.cached_property
  def _jitted(self):
    return jax.jit(self.body())

  def quantize_input(self, x) -> jnp.ndarray:
    spec = self.input_spec
    return jnp.asarray(quantize_codes(spec, x), codes_dtype(spec["bits"], spec["signed"]))

  def forward_codes(self, x_codes) -> jnp.ndarray:
    """int32 logits (on the output grid) from input codes."""
    return self._jitted(self.tensors, x_codes)

  def __call__(self, x) -> np.ndarray:
    """int32 logits from a float image batch (quantized at the boundary)."""
    return np.asarray(self.forward_codes(self.quantize_input(x)))

  def dequantize(self, logits_int) -> np.ndarray:
    return np.asarray(logits_int, np.float64) * self.output_spec["scale"]


def device_tensors(header: Dict[str, Any], arrays: Dict[str, np.ndarray]) -> Dict[str, Any]:
  return {
    n: jnp.asarray(arrays[n], codes_dtype(s["bits"], s["signed"]))
    for n, s in header["tensors"].items()
  }


def load(path: str) -> IntegerModel:
  """Reads an integer model file (see format.py) into an IntegerModel."""
  header, arrays = read_file(path)
  return IntegerModel(header, device_tensors(header, arrays))


# ------------------------------------------------------------------ integer-only check
def _is_int(dtype) -> bool:
  return jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_


def integer_violations(fn, *args) -> List[str]:
  """Every equation of fn's jaxpr that touches a non-integer value or a forbidden primitive."""
  closed = jax.make_jaxpr(fn)(*args)
  bad = [
    f"input {v} has dtype {var_dtype(v)}"
    for v in jaxpr_parts(closed)[0]
    if not _is_int(var_dtype(v))
  ]
  for e in map(Eqn, all_eqns(closed)):
    name = e.prim
    dtypes = [
      np.asarray(literal_value(v)).dtype if is_literal(v) else var_dtype(v)
      for v in e.inputs + e.outputs
    ]
    floats = sorted({str(d) for d in dtypes if not _is_int(d)})
    if floats:
      bad.append(f"{name} on {floats} at {e.name_stack}")
    elif name in FORBIDDEN_PRIMS:
      bad.append(f"{name} (no such unit in integer hardware) at {e.name_stack}")
  return bad


def assert_integer_only(fn, *args) -> None:
  bad = integer_violations(fn, *args)
  if bad:
    raise AssertionError(
      f"{len(bad)} non-integer operation(s) in the integer body, e.g. " + "; ".join(bad[:5])
    )
