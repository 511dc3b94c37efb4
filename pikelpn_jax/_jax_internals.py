"""Every touch of JAX internals in the project lives here (guarded by tests/test_jax_internals.py).

Two things need them:
  * the bit-width tag: a tiny identity primitive whose hashable params carry the numeric type of a
    quantized value into the jaxpr, so the ACEv2 analyzer reads bit widths from the traced computation;
  * jaxpr inspection for the analyzer: sub-jaxprs in eqn params, module paths in `source_info`.

Everything here targets jax 0.10.2 (pinned). If a JAX upgrade breaks the canary test, fix it here only.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import jax
from jax.extend import core as jex_core
from jax.interpreters import ad, batching, mlir

# --------------------------------------------------------------------------------------------
# The bit-width tag.

qtag_p = jex_core.Primitive("qtag")

TAG_KINDS = ("weight", "act", "norm", "scale", "param")
SCALE_FORMATS = ("none", "pow2", "fixed")


def tag(x, *, bits: int, signed: bool, kind: str, scale: str = "none", scale_bits: int = 0,
        folded: bool = False):
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
  return qtag_p.bind(x, bits=int(bits), signed=bool(signed), kind=kind, scale=scale,
                     scale_bits=int(scale_bits), folded=bool(folded))


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
