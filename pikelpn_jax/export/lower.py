"""Lowering the fake-quant forward's jaxpr to an integer program (an abstract interpreter).

The eval forward is traced once. Walking its equations in order, every value is a Const (it
depends only on the variables: weights, statistics and scales are computed here, once), the
float Input, or a Sym: an integer value of the integer program with a grid S (real value = T·S).
Quantizers turn the Input or a Sym into codes; a multiply by a float constant only changes S
(no op is emitted); a multiply by tagged integer codes (QuantNorm's M), an add of integers
(QuantNorm's C on the accumulator grid), MACs on codes, compares and shifts emit integer ops.
A requantization is exact only when the ratio of grids S/s is a power of two: it becomes a
rounding shift. Anything else is refused with the layer's path. The fake-quant values of every
equation on a probe batch come from one compiled evaluation (record_values); after lowering, the
integer program runs on the same batch and every value is compared with the variable it stands
for (Lowerer.check_probes).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import jax
import numpy as np

from pikelpn_jax.export import grid, rules
from pikelpn_jax.export.helpers import module_path, stack_category
from pikelpn_jax.export.values import Const, ExportError, Input, Sym
from pikelpn_jax.jaxpr_interpreter import Eqn, Interpreter, Visitor, layout_names

# Ops that keep integer codes integer codes (a tagged weight stays tagged through them).
CODE_PRESERVING = layout_names("keeps_codes")
INT32_LIMIT = 2**31 - 1


def _expands(e: Eqn) -> bool:
  """Call-like equations whose bodies the lowering walks (a quantizer is one unit)."""
  return e.body is not None and not e.is_quantizer


class _Recorder(Visitor):
  """Concrete values: call bodies are entered (a quantizer runs whole), the rest is bound."""

  def __init__(self, table: dict):
    self.table = table
    self.interp = Interpreter(self)

  def eqn(self, e: Eqn, vals: list) -> list:
    outs = self.interp.run(e.body, vals, parent=e) if _expands(e) else e.bind(vals)
    self.table[e.path] = outs
    return outs


def record_values(closed, args) -> Dict[tuple, List[np.ndarray]]:
  """Every equation's outputs on `args`, keyed by its position (eqn indices down the call
  nesting), from ONE compiled evaluation (op-by-op evaluation compiles every op separately)."""

  def run(*flat):
    rec = _Recorder({})
    rec.interp.run(closed, list(flat))
    return rec.table

  return jax.tree_util.tree_map(np.asarray, jax.jit(run)(*args))


class Lowerer(Visitor):
  """Holds the integer program being built: ops, stored tensors, value metadata, checks.
  A visitor of the jaxpr interpreter whose values are Const, Input or Sym."""

  def __init__(self, table: Dict[tuple, List[np.ndarray]]):
    self.interp = Interpreter(self)
    self.table = table  # fake-quant values of every equation
    self.ops: List[dict] = []
    self.values: Dict[str, dict] = {}
    self.tensors: Dict[str, tuple] = {}  # name -> (int64 array, spec)
    self.input_spec: Optional[dict] = None
    self.probes: List[tuple] = []  # (vid, grid, err, fake-quant value, path)
    self.rounded: List[dict] = []  # float constants rounded onto a grid

  # ------------------------------------------------------------------ interpretation
  def run(self, closed, args: List[Any]) -> List[Any]:
    return self.interp.run(closed, args)

  def literal(self, value, dtype):
    return Const(np.asarray(value))

  def constant(self, var, value):
    return Const(np.asarray(value))

  def eqn(self, e: Eqn, ins):
    prim, stack = e.prim, e.stack
    refs = self.table[e.path]
    if all(isinstance(i, Const) for i in ins):
      codes = None
      if prim == "qtag" and e.tag["kind"] != "scale":
        codes = {k: e.tag[k] for k in ("bits", "signed", "kind")}
      elif prim in CODE_PRESERVING and ins and ins[0].codes:
        codes = ins[0].codes
      return [Const(o, codes) for o in refs]
    if e.is_quantizer:
      out, tags = e.outputs[0], self.interp.qtag_inputs(e.frame)
      if out not in tags:
        raise ExportError(f"{module_path(stack)}: a quantizer output without a bit-width tag")
      return [rules.quantize(self, tags[out], ins, refs[0], stack)]
    if any(isinstance(i, Input) for i in ins):
      if prim in ("convert_element_type", "copy"):
        return [ins[0]]
      raise ExportError(
        f"{module_path(stack)}: the float model input feeds {prim!r} before any "
        "quantizer; integer export needs the input to go straight into the first "
        "layer's input quantizer (do normalisation in the data pipeline)"
      )
    if _expands(e):
      return self.interp.run(e.body, ins, parent=e)
    rule = rules.RULES.get(prim)
    if rule is None:
      raise ExportError(
        f"{module_path(stack)}: primitive {prim!r} on an integer value has no "
        f"integer lowering; supported: {sorted(rules.RULES)}"
      )
    return rule(self, e, ins, refs, stack)

  # ------------------------------------------------------------------ emission
  def add_tensor(
    self, stack: str, role: str, values, bits: int, signed: bool, encoding: str = "twos"
  ) -> str:
    """Stores an integer constant of the model (packed at `bits` in the file)."""
    values = np.asarray(values, np.float64)
    if not grid.is_integer_valued(values):
      raise ExportError(f"{module_path(stack)}: {role} is not integer-valued")
    base = f"{module_path(stack)}/{role}"
    name, i = base, 1
    while name in self.tensors:
      i += 1
      name = f"{base}_{i}"
    ints = np.round(values).astype(np.int64)
    self.tensors[name] = (
      ints,
      {"shape": list(ints.shape), "bits": int(bits), "signed": bool(signed), "encoding": encoding},
    )
    return name

  def emit(
    self,
    kind: str,
    inputs: List[Sym],
    attrs: dict,
    stack: str,
    tensors: Optional[dict] = None,
    category: Optional[str] = None,
  ) -> str:
    """Appends one op; returns its value id."""
    vid = f"v{len(self.ops)}"
    self.ops.append(
      {
        "op": kind,
        "name": module_path(stack),
        "category": category or stack_category(stack),
        "in": [s.vid for s in inputs],
        "out": vid,
        "attrs": attrs,
        "tensors": tensors or {},
      }
    )
    return vid

  def sym(
    self, vid, scale, lo, hi, ref, stack: str, *, err: float = 0.0, pred: bool = False, codes=None
  ) -> Sym:
    """A new integer value: checks the int32 range; queues the probe comparison."""
    nd = np.ndim(ref)
    s = Sym(
      vid,
      grid.compact(scale, nd),
      grid.compact(lo, nd),
      grid.compact(hi, nd),
      ref,
      err=float(err),
      pred=pred,
      codes=codes,
    )
    lo_v, hi_v = float(np.min(s.lo)), float(np.max(s.hi))
    if max(abs(lo_v), abs(hi_v)) > INT32_LIMIT:
      raise ExportError(
        f"{module_path(stack)}: values may reach [{lo_v:.3g}, {hi_v:.3g}], beyond "
        f"int32 (at op {vid}); reduce bit widths or accumulate fewer terms"
      )
    self.values[vid] = {
      "shape": [None] + list(np.shape(ref))[1:],
      "lo": lo_v,
      "hi": hi_v,
      "bits": list(grid.bits_for(lo_v, hi_v)),
    }
    if not pred:
      self.probes.append((vid, s.scale, s.err, ref, module_path(stack)))
    return s

  def check_probes(self, env: Dict[str, Any]) -> List[dict]:
    """Compares every integer value (times its grid) with the fake-quant value it stands for."""
    failed = []
    for vid, scale, err, ref, name in self.probes:
      if vid not in env:
        continue
      real = np.asarray(env[vid], np.float64) * scale
      diff = np.abs(real - np.asarray(ref, np.float64))
      # Where a constant was rounded, the fake-quant float32 result is itself rounded too.
      allowed = err + np.spacing(np.abs(np.asarray(ref, np.float32))) if err else 0.0
      worst = float(diff.max()) if diff.size else 0.0
      if np.any(diff > allowed):
        failed.append(
          {
            "op": vid,
            "name": name,
            "mismatches": int(np.count_nonzero(diff > allowed)),
            "max_abs_diff": worst,
            "numel": int(diff.size),
          }
        )
    return failed
