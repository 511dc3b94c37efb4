"""Public entry points: analyze(fn, *args) for any function; acev2_report(config) for zoo models."""

from __future__ import annotations

import functools
import math
import time
from typing import Iterable, Optional, Sequence, Union

import jax
import jax.numpy as jnp

from pikelpn_jax._jax_internals import jaxpr_parts
from pikelpn_jax.ace.pricing import unit_cost
from pikelpn_jax.ace.report import CostReport, LayerRow, frozen
from pikelpn_jax.ace.values import CATEGORIES, AceSettings, dtype_bits, float_bits_of, input_val
from pikelpn_jax.ace.walker import AceError, Tally, Walker
from pikelpn_jax.jaxpr_interpreter import split_stack

# Conventions without a knob, written into every report's settings (docs/acev2.md). Each one is
# checked against the rules by its own micro-case in tests/ace/test_ace_conventions.py.
CONVENTIONS = {
  "mac": "MACs * b_x * b_w (ACE v1 and ACEv2); integer operands at the width of their value "
  "range, float operands at their dtype's width (f32 32, bf16/f16 16, f8 8) unless float_bits "
  "is set; the result of two integer operands is an accumulator of acc_bits",
  "requantization": "x*(1/s): b_in*b_scale (none: float_bits; fixed: scale_bits), shift b_in "
  "(pow2), nothing (folded); + round (1 add) + clip (2 compares) at b_in; "
  "binary: 1 compare",
  "mul": "b_x*b_y; by a power of two: a shift, b_x",
  "div": "by data: b_x*b_y; by a constant: b_x*float_bits (its precomputed reciprocal); by a "
  "power of two: a shift, b_x",
  "add": "add/sub/neg/abs/round: max(b_x, b_y)",
  "compare": "max/min/compare/and/or/xor: max(b_x, b_y); clamp: 2 compares at the widest",
  "select": "free when the cases have equal types; otherwise 1 compare at the widest case",
  "transcendental": "transcendental_mults * b_x^2",
  "reductions": "n-1 adds or compares per output element, at the input width",
  "constants": "anything computed from parameters and literals only is free",
  "integer_widths": "the fewest bits holding the value's range [lo, hi] (signed when lo < 0): "
  "clip/min/max narrow to their bounds; add/sub/mul/neg/abs/shifts/masks/selects/sums follow "
  "interval arithmetic, never wider than max(b1,b2)+1 (add), b1+b2 (mul), b+ceil(log2 n) (a "
  "sum of n); every integer width (tags and dtypes included) is capped at acc_bits",
  "integer_dtypes": "an integer dtype (input, convert_element_type) is a bit-width source like "
  "the quantizer tag; a float clipped to constant bounds, rounded and converted to an integer "
  "dtype is an integer of its bounds' range",
  "transposed_convs": "a conv with input dilation counts only taps on real input pixels (not "
  "the zeros the dilation inserts); border padding as count_padded_taps says",
  "traffic": "unfused: every priced op reads its operands and writes its result",
}


def _flat_param_sizes(args, param_argnums, settings: AceSettings) -> list:
  """(elements, bits: its integer dtype's, else its float width) of every parameter leaf, in
  flat order."""
  sizes = []
  for i in param_argnums:
    for leaf in jax.tree_util.tree_leaves(args[i]):
      bits = dtype_bits(leaf.dtype) or float_bits_of(leaf.dtype, settings)
      sizes.append((math.prod(leaf.shape), bits))
  return sizes


def _input_vals(closed, args, const_argnums, param_argnums, settings):
  """Types of the flattened arguments (make_jaxpr's invars, in order); parameter leaves carry
  their flat index as origin."""
  vals = []
  origin = 0
  for i, a in enumerate(args):
    for leaf in jax.tree_util.tree_leaves(a):
      size = math.prod(leaf.shape)
      if i in param_argnums:
        vals.append(input_val(leaf.dtype, settings, True, size, origin))
        origin += 1
      else:
        vals.append(input_val(leaf.dtype, settings, i in const_argnums, size))
  if len(vals) != len(jaxpr_parts(closed)[0]):
    raise AceError(f"{len(vals)} argument leaves but {len(jaxpr_parts(closed)[0])} jaxpr inputs")
  return vals


@functools.lru_cache(maxsize=4096)
def _parse_stack(stack: str):
  """(module path, category) of a name stack (jaxpr_interpreter.split_stack); a category
  outside CATEGORIES is an AceError."""
  try:
    return split_stack(stack, CATEGORIES)
  except ValueError as e:
    raise AceError(str(e)) from None


def build_report(
  tally: Tally,
  settings: AceSettings,
  param_sizes: Sequence[tuple],
  timing: dict,
  extra_settings: Optional[dict] = None,
) -> CostReport:
  s = settings
  layers = {}
  breakdown = dict.fromkeys(CATEGORIES, 0)
  by_bits, by_class = {}, {}
  macs = ace = acev2 = 0

  def row(path):
    r = layers.get(path)
    if r is None:
      r = layers[path] = {
        "macs": 0,
        "ace": 0,
        "acev2": 0,
        "ops": 0,
        "w": 0,
        "r": 0,
        "wr": 0,
        "cats": dict.fromkeys(CATEGORIES, 0),
      }
    return r

  for (stack, forced, op, bx, by, cx, cy), n in tally.costs.items():  # CostKey fields
    if not n:  # a multiply merged away by fold='affine'
      continue
    path, cat = _parse_stack(stack)
    cat = forced or cat or "other"
    cost = n * unit_cost(op, bx, by, s)
    r = row(path)
    r["acev2"] += cost
    r["ops"] += n
    r["cats"][cat] += cost
    breakdown[cat] += cost
    acev2 += cost
    if op == "mac":
      macs += n
      ace += cost
      r["macs"] += n
      r["ace"] += cost
    for table, key in (
      (by_bits, f"{op} {bx}x{by}" if by else f"{op} {bx}"),
      (by_class, f"{op} {cx}{bx}x{cy}{by}" if by else f"{op} {cx}{bx}"),
    ):
      b = table.setdefault(key, {"count": 0, "acev2": 0})
      b["count"] += n
      b["acev2"] += cost
  for stack, (w, rd, wr) in tally.traffic.items():
    r = row(_parse_stack(stack)[0])
    r["w"] += w
    r["r"] += rd
    r["wr"] += wr

  rows = tuple(
    LayerRow(
      p,
      r["macs"],
      r["ace"],
      r["acev2"],
      r["ops"],
      r["w"],
      r["r"],
      r["wr"],
      frozen({c: v for c, v in r["cats"].items() if v}),
    )
    for p, r in layers.items()
  )
  # A parameter's bits: its quantizer tag's, else its integer dtype's (int8 weights stored by
  # another library), else its float width.
  params = sum(size for size, _ in param_sizes)
  model_bits = sum(
    size * tally.param_bits.get(i, bits) for i, (size, bits) in enumerate(param_sizes)
  )
  notes = tuple(dict.fromkeys(f"{_parse_stack(st)[0] or '<top>'}: {t}" for st, t in tally.notes))
  unaccounted = tuple(f"{t} at {_parse_stack(st)[0] or '<top>'}" for st, t in tally.unaccounted)
  settings_json = dict(s.as_dict(), conventions=dict(CONVENTIONS), **(extra_settings or {}))
  return CostReport(
    macs,
    ace,
    acev2,
    params,
    model_bits,
    frozen(breakdown),
    frozen({k: frozen(v) for k, v in sorted(by_bits.items())}),
    rows,
    unaccounted,
    notes,
    frozen(settings_json),
    frozen(timing),
    frozen({k: frozen(v) for k, v in sorted(by_class.items())}),
  )


def _argnums(x: Union[int, Iterable[int]], n: int, name: str) -> tuple:
  out = (x,) if isinstance(x, int) else tuple(x)
  for i in out:
    if not isinstance(i, int) or not 0 <= i < n:
      raise ValueError(f"{name}={x!r} is not allowed; use indices of the {n} positional args")
  return out


def analyze(
  fn,
  *args,
  const_argnums: Union[int, Iterable[int]] = (),
  param_argnums: Union[int, Iterable[int], None] = None,
  settings: Optional[AceSettings] = None,
  strict: bool = True,
  extra_settings: Optional[dict] = None,
) -> CostReport:
  """ACEv2 of `fn(*args)`: traces it once (args may be arrays or jax.ShapeDtypeStruct) and walks
  the jaxpr. Args in const_argnums are constants (parameters: free to compute with); params and
  model_bits count the leaves of param_argnums (default: const_argnums). strict=False records
  unknown primitives in `unaccounted` instead of raising."""
  settings = settings or AceSettings()
  const_argnums = _argnums(const_argnums, len(args), "const_argnums")
  param_argnums = (
    const_argnums if param_argnums is None else _argnums(param_argnums, len(args), "param_argnums")
  )
  if not set(param_argnums) <= set(const_argnums):
    raise ValueError(
      f"param_argnums={param_argnums} must be a subset of const_argnums={const_argnums}"
    )
  t0 = time.perf_counter()
  closed = jax.make_jaxpr(fn)(*args)
  t1 = time.perf_counter()
  in_vals = _input_vals(closed, args, const_argnums, param_argnums, settings)
  tally, _ = Walker(settings, strict).run(closed, in_vals)
  report = build_report(
    tally,
    settings,
    _flat_param_sizes(args, param_argnums, settings),
    {"trace_s": t1 - t0, "walk_s": time.perf_counter() - t1},
    extra_settings,
  )
  return report


def model_input_spec(config, batch: int = 1) -> jax.ShapeDtypeStruct:
  """The input as training feeds it: images in config.dtype (the compute dtype), so a model
  trained in bfloat16 is traced, and priced, in bfloat16."""
  from pikelpn_jax.config_base import compute_dtype

  d = config.dataset
  shape = (batch, d.image_size, d.image_size, d.channels)
  return jax.ShapeDtypeStruct(shape, compute_dtype(config))


def abstract_variables(model, x_spec) -> dict:
  """The model's variables as ShapeDtypeStructs (no compute: costs depend only on shapes)."""
  return jax.eval_shape(
    lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(x_spec.shape, x_spec.dtype), train=False)
  )


def config_settings(
  config, source: str = "", overrides: Sequence[str] = (), variant_defaulted: bool = False
) -> dict:
  """What a report records about the config it priced: where it came from, the overrides, the
  model's scalar fields and a digest of the whole resolved config (so two reports of different
  configs never have equal settings)."""
  import hashlib
  import json

  from pikelpn_jax.config_base import config_to_dict

  resolved = config_to_dict(config)
  model = {
    k: v
    for k, v in sorted(resolved.get("model", {}).items())
    if isinstance(v, (str, int, float, bool)) or v is None
  }
  return {
    "config_source": source,
    "config_variant_defaulted": bool(variant_defaulted),
    "config_overrides": list(overrides),
    "config_model": model,
    "config_sha256": hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest(),
  }


def acev2_report(
  config,
  variables=None,
  *,
  float_bits: Optional[int] = None,
  acc_bits: int = 32,
  batch: int = 1,
  count_padded_taps: bool = True,
  strict: bool = True,
  model=None,
  fold: str = "none",
  config_source: str = "",
  overrides: Sequence[str] = (),
  variant_defaulted: bool = False,
) -> CostReport:
  """ACEv2 of the inference forward of the config's model (dw_impl='grouped') at `batch`.

  variables: {'params', 'batch_stats', ...} or None (shapes from an abstract init).
  Costs are per call, i.e. per image at batch=1. An unknown primitive raises AceError naming it and
  its module path; strict=False lists it in report.unaccounted instead. `model` overrides the
  built model (it must match `variables`). fold: 'none' (as written) or 'affine' (deployment
  folding, docs/acev2.md). config_source / overrides / variant_defaulted: recorded in settings
  (the CLI passes them).
  """
  if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
    raise ValueError(f"batch={batch!r} is not allowed; use a positive integer")
  settings = AceSettings(
    float_bits=float_bits, acc_bits=acc_bits, count_padded_taps=count_padded_taps, fold=fold
  )
  if model is None:
    from pikelpn_jax.models import build_model

    model = build_model(config, dw_impl="grouped")
  x = model_input_spec(config, batch)
  if variables is None:
    variables = abstract_variables(model, x)
  names = sorted(variables)
  if "params" not in names:
    raise ValueError(f"variables has collections {names}; 'params' is required")

  def forward(*cols_and_x):
    cols = dict(zip(names, cols_and_x[:-1]))
    return model.apply(cols, cols_and_x[-1], train=False)

  args = [variables[n] for n in names] + [x]
  extra = {
    "batch": batch,
    "model": str(config.model.get("name", "")),
    "dw_impl": "grouped",
    **config_settings(config, config_source, overrides, variant_defaulted),
  }
  return analyze(
    forward,
    *args,
    const_argnums=tuple(range(len(names))),
    param_argnums=(names.index("params"),),
    settings=settings,
    strict=strict,
    extra_settings=extra,
  )
