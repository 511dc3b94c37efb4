"""Every touch of JAX internals in the project lives here (guarded by tests/test_jax_internals.py).

Four things need them:
  * the bit-width tag: a tiny identity primitive whose hashable params carry the numeric type of a
    quantized value into the jaxpr, so the ACEv2 analyzer reads bit widths from the traced computation;
  * `materialize`: an identity primitive that makes XLA compute a small value once, as its own
    buffer, instead of recomputing it inside every element of the fusions that read it;
  * jaxpr inspection for the analyzer: sub-jaxprs in eqn params, module paths in `source_info`.
  * the training loop's stop requests: whether jax.distributed's preemption service (and its
    SIGTERM handler) runs in this process.

Everything here targets jax 0.10.2 (pinned). If a JAX upgrade breaks the canary test, fix it here only.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import jax
import numpy as np
from jax.extend import core as jex_core
from jax.interpreters import ad, batching, mlir

# --------------------------------------------------------------------------------------------
# The bit-width tag.

qtag_p = jex_core.Primitive("qtag")

TAG_KINDS = ("weight", "act", "norm", "scale", "param")
SCALE_FORMATS = ("none", "pow2", "fixed")


def tag(
  x,
  *,
  bits: int,
  signed: bool,
  kind: str,
  scale: str = "none",
  scale_bits: int = 0,
  folded: bool = False,
):
  """Marks `x` as holding integer codes of `bits` bits (identity on values, free at runtime).

  kind: what the value is (weight | act | norm | scale | param).
  scale: the format of the scale that maps x's codes to real values (none | pow2 | fixed);
    for kind='scale' it is the format of x itself.
  folded: the requantization scale of this quantizer is folded into a neighbouring multiplier, so
    the analyzer charges no multiply for it.
  """
  if kind not in TAG_KINDS:
    raise ValueError(f"tag kind={kind!r}; allowed: {TAG_KINDS}")
  if scale not in SCALE_FORMATS:
    raise ValueError(f"tag scale={scale!r}; allowed: {SCALE_FORMATS}")
  return qtag_p.bind(
    x,
    bits=int(bits),
    signed=bool(signed),
    kind=kind,
    scale=scale,
    scale_bits=int(scale_bits),
    folded=bool(folded),
  )


qtag_p.def_impl(lambda x, **_: x)
qtag_p.def_abstract_eval(lambda x, **_: x)


def _qtag_jvp(primals, tangents, **params):
  # The tangent passes untouched: no transpose rule is needed and the tag survives grad.
  return qtag_p.bind(primals[0], **params), tangents[0]


def _qtag_batch(args, dims, **params):
  return qtag_p.bind(args[0], **params), dims[0]


ad.primitive_jvps[qtag_p] = _qtag_jvp
batching.primitive_batchers[qtag_p] = _qtag_batch
mlir.register_lowering(qtag_p, mlir.lower_fun(lambda x, **_: [x], multiple_results=True))


def is_tag(eqn) -> bool:
  return eqn.primitive is qtag_p


# --------------------------------------------------------------------------------------------
# materialize: a fusion barrier for small values (scales, per-channel multipliers and taps).
#
# XLA:CPU fuses cheap elementwise producers into every consumer. A per-channel vector such as a
# QuantNorm multiplier (codes of γ/σ: add, floor, clamp) or a power-of-two scale is then
# recomputed once per element of each activation-sized fusion that broadcasts it, forward and
# backward. optimization_barrier does not stop this (XLA:CPU removes it before fusion), but a
# reduction is never fused into its consumers; so the lowering is max(x, -inf) written as a
# reduction over a stacked pair, which is exact (-0.0 and NaN included) and costs one pass over
# the small value. Identity for values, tangents, batching and the ACEv2 analyzer.

materialize_p = jex_core.Primitive("materialize")


def materialize(x):
  """x, computed once as its own buffer (see above); use it on small values only."""
  return materialize_p.bind(x)


def _materialize_lowering(x):
  import jax.numpy as jnp

  pair = jnp.stack([x, jnp.full_like(x, -jnp.inf)])
  return [jax.lax.reduce_max(pair, axes=(0,))]


materialize_p.def_impl(lambda x: x)
materialize_p.def_abstract_eval(lambda x: x)
ad.primitive_jvps[materialize_p] = lambda primals, tangents: (
  materialize_p.bind(primals[0]),
  tangents[0],
)
batching.primitive_batchers[materialize_p] = lambda args, dims: (
  materialize_p.bind(args[0]),
  dims[0],
)
mlir.register_lowering(materialize_p, mlir.lower_fun(_materialize_lowering, multiple_results=True))


# --------------------------------------------------------------------------------------------
# Cost categories: layers mark their elementwise work with a named scope the analyzer reads back.

CATEGORY_PREFIX = "acev2:"


@contextlib.contextmanager
def cost_category(name: str) -> Iterator[None]:
  with jax.named_scope(CATEGORY_PREFIX + name):
    yield


# --------------------------------------------------------------------------------------------
# jaxpr inspection.

Jaxpr = jex_core.Jaxpr
ClosedJaxpr = jex_core.ClosedJaxpr
Literal = jex_core.Literal
Var = jex_core.Var


def name_stack(eqn) -> str:
  """The Flax module path (plus named scopes) that emitted `eqn`, e.g. 'PikeLPN/block0/dw'."""
  return str(eqn.source_info.name_stack)


def open_jaxpr(j) -> tuple[Jaxpr, list[Any]]:
  """(jaxpr, consts) of a Jaxpr or ClosedJaxpr."""
  if isinstance(j, ClosedJaxpr):
    return j.jaxpr, list(j.consts)
  return j, []


def custom_call_function_name(eqn) -> str:
  """Source function name of a custom_jvp_call / custom_vjp_call (e.g. 'relu')."""
  call = eqn.params.get("call_jaxpr")
  jaxpr = call.jaxpr if isinstance(call, ClosedJaxpr) else call
  info = getattr(jaxpr, "debug_info", None)
  src = getattr(info, "func_src_info", None) or ""
  return src.split(" ")[0]


def literal_value(v):
  """The Python/NumPy value of a Literal operand, or None for a Var."""
  return v.val if isinstance(v, Literal) else None


# --------------------------------------------------------------------------------------------
# Accessors for the ACEv2 analyzer (pikelpn_jax/ace). Each returns plain Python values, so the
# analyzer never reads an eqn's params, source_info or avals itself: if JAX renames a param,
# only these functions change (and tests/test_jax_internals.py says which).

QUANTIZER_FUNCTION = "quantize_ste"


def primitive_name(eqn) -> str:
  return eqn.primitive.name


def eqn_inputs(eqn) -> list:
  return list(eqn.invars)


def eqn_outputs(eqn) -> list:
  return list(eqn.outvars)


def is_literal(v) -> bool:
  return isinstance(v, Literal)


def var_shape(v) -> tuple[int, ...]:
  return tuple(int(d) for d in v.aval.shape)


def var_dtype(v):
  return v.aval.dtype


def jaxpr_parts(j):
  """(invars, constvars, outvars, eqns, consts) of a Jaxpr or ClosedJaxpr."""
  jaxpr, consts = open_jaxpr(j)
  return list(jaxpr.invars), list(jaxpr.constvars), list(jaxpr.outvars), jaxpr.eqns, consts


def tag_params(eqn) -> dict:
  """The qtag params: bits, signed, kind, scale, scale_bits, folded."""
  p = eqn.params
  return {k: p[k] for k in ("bits", "signed", "kind", "scale", "scale_bits", "folded")}


def is_quantizer_call(eqn) -> bool:
  """A quantizer's integer-code STE (custom_jvp_call of quantize_ste); jax.nn.relu is not one."""
  return (
    eqn.primitive.name == "custom_jvp_call" and custom_call_function_name(eqn) == QUANTIZER_FUNCTION
  )


def call_body(eqn):
  """The sub-jaxpr of a call-like eqn whose operands map 1:1 onto its invars, or None.

  jit / remat2 / checkpoint keep it in 'jaxpr'; closed_call, core_call, custom_jvp_call and
  custom_vjp_call in 'call_jaxpr'.
  """
  name = eqn.primitive.name
  if name in ("jit", "pjit", "remat2", "checkpoint"):
    return eqn.params["jaxpr"]
  if name in (
    "closed_call",
    "core_call",
    "custom_jvp_call",
    "custom_vjp_call",
    "custom_vjp_call_jaxpr",
  ):
    return eqn.params["call_jaxpr"]
  return None


def scan_info(eqn) -> tuple[Any, int, int, int]:
  """(body, length, num_consts, num_carry) of a scan eqn."""
  p = eqn.params
  return p["jaxpr"], int(p["length"]), int(p["num_consts"]), int(p["num_carry"])


def cond_branches(eqn) -> tuple:
  return tuple(eqn.params["branches"])


def conv_geometry(eqn) -> dict:
  """Shapes and window of a conv_general_dilated eqn, spatial dims in lhs/rhs/out order."""
  p = eqn.params
  lhs, rhs = eqn.invars[0], eqn.invars[1]
  dn = p["dimension_numbers"]
  lhs_spec, rhs_spec, out_spec = dn.lhs_spec, dn.rhs_spec, dn.out_spec
  lshape, rshape = var_shape(lhs), var_shape(rhs)
  return {
    "lhs_spatial": tuple(lshape[d] for d in lhs_spec[2:]),
    "rhs_spatial": tuple(rshape[d] for d in rhs_spec[2:]),
    "rhs_out_features": rshape[rhs_spec[0]],
    "rhs_in_features": rshape[rhs_spec[1]],
    "out_batch_features": tuple(var_shape(eqn.outvars[0])[d] for d in out_spec[:2]),
    "strides": tuple(p["window_strides"]),
    "padding": tuple(tuple(int(a) for a in pr) for pr in p["padding"]),
    "lhs_dilation": tuple(p["lhs_dilation"] or (1,) * len(lshape[2:])),
    "rhs_dilation": tuple(p["rhs_dilation"] or (1,) * len(lshape[2:])),
    "feature_group_count": int(p["feature_group_count"]),
    "batch_group_count": int(p["batch_group_count"]),
  }


def dot_contracting_size(eqn) -> int:
  (lhs_contract, _), _ = eqn.params["dimension_numbers"]
  shape = var_shape(eqn.invars[0])
  size = 1
  for d in lhs_contract:
    size *= shape[d]
  return size


def reduce_axes_of(eqn) -> tuple[int, ...]:
  """Reduced axes of reduce_* / argmax / argmin, or the axis of a cumulative op."""
  p = eqn.params
  if "axes" in p:
    return tuple(int(a) for a in p["axes"])
  return (int(p["axis"]),)


def window_geometry(eqn) -> dict:
  """reduce_window_* params, as conv-like per-dimension tuples."""
  p = eqn.params
  return {
    "in_shape": var_shape(eqn.invars[0]),
    "window": tuple(int(a) for a in p["window_dimensions"]),
    "strides": tuple(int(a) for a in p["window_strides"]),
    "padding": tuple(tuple(int(a) for a in pr) for pr in p["padding"]),
    "base_dilation": tuple(int(a) for a in p["base_dilation"]),
    "window_dilation": tuple(int(a) for a in p["window_dilation"]),
  }


def integer_pow_exponent(eqn) -> int:
  return int(eqn.params["y"])


def _plain(v):
  """Tuples of ints as lists (JSON-ready), numpy ints as ints; anything else unchanged."""
  if isinstance(v, (tuple, list)):
    return [_plain(x) for x in v]
  if isinstance(v, np.integer):
    return int(v)
  return v


def conv_attrs(eqn) -> dict:
  """conv_general_dilated's window and layout params as JSON-ready values (the export's attrs)."""
  p = eqn.params
  dn = p["dimension_numbers"]
  return {
    "window_strides": list(p["window_strides"]),
    "padding": _plain(p["padding"]),
    "lhs_dilation": list(p["lhs_dilation"]),
    "rhs_dilation": list(p["rhs_dilation"]),
    "dimension_numbers": [list(dn.lhs_spec), list(dn.rhs_spec), list(dn.out_spec)],
    "feature_group_count": int(p["feature_group_count"]),
    "batch_group_count": int(p["batch_group_count"]),
  }


def dot_dimension_numbers(eqn) -> tuple:
  """dot_general's ((lhs_contract, rhs_contract), (lhs_batch, rhs_batch))."""
  (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
  return (tuple(lc), tuple(rc)), (tuple(lb), tuple(rb))


def window_attrs(eqn) -> dict:
  """reduce_window_*'s params under their jaxpr names, JSON-ready (the export's attrs)."""
  p = eqn.params
  return {
    k: _plain(p[k])
    for k in ("window_dimensions", "window_strides", "padding", "base_dilation", "window_dilation")
  }


def layout_params(eqn, keys) -> dict:
  """The named params of a layout primitive (reshape, pad, ...), JSON-ready; absent ones None."""
  return {k: _plain(eqn.params.get(k)) for k in keys}


def join_name_stacks(outer: str, inner: str) -> str:
  """Name stacks inside a sub-jaxpr are relative to the calling eqn's stack."""
  if not outer:
    return inner
  if not inner:
    return outer
  return outer + "/" + inner


def eqn_params(eqn) -> dict:
  """A copy of an eqn's params (primitive-specific keys; see the canary test)."""
  return dict(eqn.params)


def bind_eqn(eqn, vals: list) -> list:
  """Evaluates one equation on concrete values (a call-like one runs its body whole)."""
  body = call_body(eqn)
  if body is not None:
    closed = body if isinstance(body, ClosedJaxpr) else ClosedJaxpr(body, [])
    return list(jex_core.jaxpr_as_fun(closed)(*vals))
  outs = eqn.primitive.bind(*vals, **eqn.params)
  return list(outs) if eqn.primitive.multiple_results else [outs]


def sub_jaxprs(eqn) -> list:
  """Every sub-jaxpr in an eqn's params: call bodies, scan/while bodies, cond branches."""
  out = []
  for v in eqn.params.values():
    for sub in v if isinstance(v, (tuple, list)) else (v,):
      if isinstance(sub, (Jaxpr, ClosedJaxpr)):
        out.append(sub)
  return out


def lax_primitive_names() -> frozenset:
  """Names of every primitive jax.lax exports as `<name>_p` (the analyzer's coverage test
  enumerates them, so a new JAX cannot add one that nobody prices or refuses)."""
  names = set()
  for attr in dir(jax.lax):
    p = getattr(jax.lax, attr)
    if attr.endswith("_p") and isinstance(p, jex_core.Primitive):
      names.add(p.name)
  return frozenset(names)


# --------------------------------------------------------------------------------------------
# Preemption: what jax.distributed keeps private.


def preemption_service_running() -> bool:
  """Whether jax.distributed runs its preemption sync service in this process (it does after
  jax.distributed.initialize unless jax_enable_preemption_service is off). While it runs, jax's
  own handler owns SIGTERM and multihost_utils.reached_preemption_sync_point works."""
  from jax._src import distributed

  state = distributed.global_state
  return state.client is not None and state.preemption_sync_manager is not None
