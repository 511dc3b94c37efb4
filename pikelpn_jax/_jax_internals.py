"""Every touch of JAX internals in the project lives here (guarded by tests/test_jax_internals.py).

Four things need them:
  * the bit-width tag: a tiny identity primitive whose hashable params carry the numeric type of a
    quantized value into the jaxpr, so the ACEv2 analyzer reads bit widths from the traced computation;
  * `materialize`: an identity primitive that makes XLA compute a small value once, as its own
    buffer, instead of recomputing it inside every element of the fusions that read it;
  * jaxpr inspection for the analyzer and the export: the `Eqn` view (an equation's primitive,
    params, sub-jaxprs and module path in `source_info`), variables' shapes and dtypes.
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
# jaxpr inspection: the Eqn view, and variables and jaxprs as plain values.

Jaxpr = jex_core.Jaxpr
ClosedJaxpr = jex_core.ClosedJaxpr
Literal = jex_core.Literal
Var = jex_core.Var

QUANTIZER_FUNCTION = "quantize_ste"
# jit / remat2 / checkpoint keep their body in 'jaxpr'; the other call-like primitives, whose
# operands map 1:1 onto the body's invars, in 'call_jaxpr'.
_BODY_IN_JAXPR = ("jit", "pjit", "remat2", "checkpoint")
_BODY_IN_CALL_JAXPR = (
  "closed_call",
  "core_call",
  "custom_jvp_call",
  "custom_vjp_call",
  "custom_vjp_call_jaxpr",
)


def _plain(v):
  """Tuples of ints as lists (JSON-ready), numpy ints as ints; anything else unchanged."""
  if isinstance(v, (tuple, list)):
    return [_plain(x) for x in v]
  if isinstance(v, np.integer):
    return int(v)
  return v


def join_name_stacks(outer: str, inner: str) -> str:
  """Name stacks inside a sub-jaxpr are relative to the calling eqn's stack."""
  if not outer:
    return inner
  if not inner:
    return outer
  return outer + "/" + inner


class Eqn:
  """A typed view of one jaxpr equation: the only reader of its primitive, params, source_info
  and operands' avals. The jaxpr interpreter (pikelpn_jax/jaxpr_interpreter.py) makes one per
  equation it walks and hands it to its visitor, which hands it to a rule (the analyzer's and the
  export's rules take this view); everything returned is a plain Python value, so if JAX renames
  a param only this class changes (and tests/test_jax_internals.py says which).

  raw: the equation itself (for jax calls only: binding it, see `bind`); index: its position in
  its jaxpr; frame: the interpreter's frame of that jaxpr (None for a view made outside it).
  """

  __slots__ = ("raw", "index", "frame")

  def __init__(self, raw, index: int = 0, frame=None):
    self.raw = raw
    self.index = index
    self.frame = frame

  # ------------------------------------------------------------------ what and where
  @property
  def prim(self) -> str:
    return self.raw.primitive.name

  @property
  def inputs(self) -> list:
    return list(self.raw.invars)

  @property
  def outputs(self) -> list:
    return list(self.raw.outvars)

  def in_shape(self, i: int = 0) -> tuple[int, ...]:
    return var_shape(self.raw.invars[i])

  def out_shape(self, i: int = 0) -> tuple[int, ...]:
    return var_shape(self.raw.outvars[i])

  def out_dtype(self, i: int = 0):
    return self.raw.outvars[i].aval.dtype

  @property
  def name_stack(self) -> str:
    """The Flax module path (plus named scopes) that emitted the equation, relative to the
    enclosing jaxpr, e.g. 'PikeLPN/block0/dw'."""
    return str(self.raw.source_info.name_stack)

  @property
  def stack(self) -> str:
    """The absolute name stack (the callers' stacks joined in front)."""
    prefix = self.frame.prefix if self.frame is not None else ""
    return join_name_stacks(prefix, self.name_stack)

  @property
  def path(self) -> tuple:
    """Position: eqn indices down the call nesting (the key of the export's recorded values)."""
    return (self.frame.path if self.frame is not None else ()) + (self.index,)

  # ------------------------------------------------------------------ tags and quantizers
  @property
  def is_tag(self) -> bool:
    return self.raw.primitive is qtag_p

  @property
  def tag(self) -> dict:
    """The qtag params: bits, signed, kind, scale, scale_bits, folded."""
    p = self.raw.params
    return {k: p[k] for k in ("bits", "signed", "kind", "scale", "scale_bits", "folded")}

  @property
  def custom_call_function_name(self) -> str:
    """Source function name of a custom_jvp_call / custom_vjp_call (e.g. 'relu')."""
    call = self.raw.params.get("call_jaxpr")
    jaxpr = call.jaxpr if isinstance(call, ClosedJaxpr) else call
    info = getattr(jaxpr, "debug_info", None)
    src = getattr(info, "func_src_info", None) or ""
    return src.split(" ")[0]

  @property
  def is_quantizer(self) -> bool:
    """A quantizer's integer-code STE (custom_jvp_call of quantize_ste); jax.nn.relu is not one."""
    return self.prim == "custom_jvp_call" and self.custom_call_function_name == QUANTIZER_FUNCTION

  # ------------------------------------------------------------------ sub-jaxprs
  @property
  def body(self):
    """The sub-jaxpr of a call-like equation (jit, remat, custom_jvp/vjp, ...) whose operands
    map 1:1 onto its invars, or None."""
    name = self.prim
    if name in _BODY_IN_JAXPR:
      return self.raw.params["jaxpr"]
    if name in _BODY_IN_CALL_JAXPR:
      return self.raw.params["call_jaxpr"]
    return None

  @property
  def scan(self) -> tuple[Any, int, int, int]:
    """(body, length, num_consts, num_carry) of a scan."""
    p = self.raw.params
    return p["jaxpr"], int(p["length"]), int(p["num_consts"]), int(p["num_carry"])

  @property
  def branches(self) -> tuple:
    return tuple(self.raw.params["branches"])

  @property
  def sub_jaxprs(self) -> list:
    """Every sub-jaxpr in the params: call bodies, scan/while bodies, cond branches."""
    out = []
    for v in self.raw.params.values():
      for sub in v if isinstance(v, (tuple, list)) else (v,):
        if isinstance(sub, (Jaxpr, ClosedJaxpr)):
          out.append(sub)
    return out

  def bind(self, vals: list) -> list:
    """Evaluates the equation on concrete values (a call-like one runs its body whole)."""
    body = self.body
    if body is not None:
      closed = body if isinstance(body, ClosedJaxpr) else ClosedJaxpr(body, [])
      return list(jex_core.jaxpr_as_fun(closed)(*vals))
    outs = self.raw.primitive.bind(*vals, **self.raw.params)
    return list(outs) if self.raw.primitive.multiple_results else [outs]

  # ------------------------------------------------------------------ geometry (the analyzer)
  @property
  def conv_geometry(self) -> dict:
    """Shapes and window of a conv_general_dilated, spatial dims in lhs/rhs/out order."""
    p = self.raw.params
    dn = p["dimension_numbers"]
    lhs_spec, rhs_spec, out_spec = dn.lhs_spec, dn.rhs_spec, dn.out_spec
    lshape, rshape, oshape = self.in_shape(0), self.in_shape(1), self.out_shape(0)
    return {
      "lhs_spatial": tuple(lshape[d] for d in lhs_spec[2:]),
      "rhs_spatial": tuple(rshape[d] for d in rhs_spec[2:]),
      "rhs_out_features": rshape[rhs_spec[0]],
      "rhs_in_features": rshape[rhs_spec[1]],
      "out_batch_features": tuple(oshape[d] for d in out_spec[:2]),
      "strides": tuple(p["window_strides"]),
      "padding": tuple(tuple(int(a) for a in pr) for pr in p["padding"]),
      "lhs_dilation": tuple(p["lhs_dilation"] or (1,) * len(lshape[2:])),
      "rhs_dilation": tuple(p["rhs_dilation"] or (1,) * len(lshape[2:])),
      "feature_group_count": int(p["feature_group_count"]),
      "batch_group_count": int(p["batch_group_count"]),
    }

  @property
  def dot_contracting_size(self) -> int:
    (lhs_contract, _), _ = self.raw.params["dimension_numbers"]
    shape = self.in_shape(0)
    size = 1
    for d in lhs_contract:
      size *= shape[d]
    return size

  @property
  def reduce_axes(self) -> tuple[int, ...]:
    """Reduced axes of reduce_* / argmax / argmin, or the axis of a cumulative op."""
    p = self.raw.params
    if "axes" in p:
      return tuple(int(a) for a in p["axes"])
    return (int(p["axis"]),)

  @property
  def window_geometry(self) -> dict:
    """reduce_window_* params, as conv-like per-dimension tuples."""
    p = self.raw.params
    return {
      "in_shape": self.in_shape(0),
      "window": tuple(int(a) for a in p["window_dimensions"]),
      "strides": tuple(int(a) for a in p["window_strides"]),
      "padding": tuple(tuple(int(a) for a in pr) for pr in p["padding"]),
      "base_dilation": tuple(int(a) for a in p["base_dilation"]),
      "window_dilation": tuple(int(a) for a in p["window_dilation"]),
    }

  @property
  def integer_pow_exponent(self) -> int:
    return int(self.raw.params["y"])

  # ------------------------------------------------------------------ attrs (the export)
  @property
  def conv_attrs(self) -> dict:
    """conv_general_dilated's window and layout params, JSON-ready (the export's attrs)."""
    p = self.raw.params
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

  @property
  def dot_dimension_numbers(self) -> tuple:
    """dot_general's ((lhs_contract, rhs_contract), (lhs_batch, rhs_batch))."""
    (lc, rc), (lb, rb) = self.raw.params["dimension_numbers"]
    return (tuple(lc), tuple(rc)), (tuple(lb), tuple(rb))

  @property
  def window_attrs(self) -> dict:
    """reduce_window_*'s params under their jaxpr names, JSON-ready (the export's attrs)."""
    p = self.raw.params
    return {
      k: _plain(p[k])
      for k in (
        "window_dimensions",
        "window_strides",
        "padding",
        "base_dilation",
        "window_dilation",
      )
    }

  def layout_params(self, keys) -> dict:
    """The named params of a layout primitive (reshape, pad, ...), JSON-ready; absent ones None."""
    return {k: _plain(self.raw.params.get(k)) for k in keys}


# Shorthands for code that holds equations themselves (all_eqns' list, a jaxpr's eqns): each is
# the Eqn view's accessor of the same name.


def primitive_name(eqn) -> str:
  return Eqn(eqn).prim


def name_stack(eqn) -> str:
  return Eqn(eqn).name_stack


def is_tag(eqn) -> bool:
  return Eqn(eqn).is_tag


def tag_params(eqn) -> dict:
  return Eqn(eqn).tag


def conv_geometry(eqn) -> dict:
  return Eqn(eqn).conv_geometry


# Variables and jaxprs.


def is_literal(v) -> bool:
  return isinstance(v, Literal)


def literal_value(v):
  """The Python/NumPy value of a Literal operand, or None for a Var."""
  return v.val if isinstance(v, Literal) else None


def var_shape(v) -> tuple[int, ...]:
  return tuple(int(d) for d in v.aval.shape)


def var_dtype(v):
  return v.aval.dtype


def open_jaxpr(j) -> tuple[Jaxpr, list[Any]]:
  """(jaxpr, consts) of a Jaxpr or ClosedJaxpr."""
  if isinstance(j, ClosedJaxpr):
    return j.jaxpr, list(j.consts)
  return j, []


def jaxpr_parts(j):
  """(invars, constvars, outvars, eqns, consts) of a Jaxpr or ClosedJaxpr; eqns as they are
  (wrap one in Eqn to read it)."""
  jaxpr, consts = open_jaxpr(j)
  return list(jaxpr.invars), list(jaxpr.constvars), list(jaxpr.outvars), jaxpr.eqns, consts


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
