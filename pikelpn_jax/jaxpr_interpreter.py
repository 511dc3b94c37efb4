"""The one jaxpr interpreter: walks a (closed) jaxpr in order and asks a visitor for every value.

Four clients read the traced forward: the ACEv2 walker (ace/walker.py, numeric types), the export
lowerer (export/lower.py, integer program), the value recorder (export/lower.record_values,
concrete values under one jit) and the eqn listing (`all_eqns`, tests and the integer-only
check). They differ only in what a value is and in which sub-jaxprs they enter, so the loop lives
here once: environment, literals and constants, absolute name stacks and eqn positions; a visitor
decides per equation (`Visitor.eqn`) and enters a sub-jaxpr with `Interpreter.run(body, ins,
parent=eqn)`. Equations come as `Eqn` views (pikelpn_jax/_jax_internals.py, guarded by its
canary test): the one accessor layer between an equation and the visitor or rule reading it.

Also here, shared by the analyzer and the export: the table of layout primitives and
`split_stack` (module path and cost category of a name stack).
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from pikelpn_jax import _jax_internals as jint
from pikelpn_jax._jax_internals import Eqn

__all__ = [
  "Eqn",
  "Frame",
  "Visitor",
  "Interpreter",
  "all_eqns",
  "Layout",
  "LAYOUT_TABLE",
  "layout_names",
  "split_stack",
]

# --------------------------------------------------------------------------------------------
# Equations and frames.


class Frame:
  """One jaxpr being interpreted: its equations (Eqn views) and outputs, where it sits, the
  visitor's state."""

  __slots__ = ("jaxpr", "eqns", "outvars", "prefix", "path", "state")

  def __init__(self, jaxpr, eqns, outvars, prefix: str, path: tuple, state: Any):
    self.jaxpr = jaxpr
    self.eqns = eqns
    self.outvars = outvars
    self.prefix = prefix  # absolute name stack of the calling equation ('' at top level)
    self.path = path  # eqn indices down the call nesting of the calling equation
    self.state = state  # whatever the visitor passed to Interpreter.run


class Visitor:
  """What a value is, and what an equation does to values. Subclass and override."""

  def literal(self, value, dtype):
    return value

  def constant(self, var, value):
    return value

  def enter(self, frame: Frame) -> None:
    """Called before the first equation of every jaxpr."""

  def leave(self, frame: Frame) -> None:
    """Called after the last equation of every jaxpr (also when one raised)."""

  def eqn(self, e: Eqn, ins: list) -> list:
    raise NotImplementedError


class Interpreter:
  """Runs jaxprs for one visitor; a visitor enters sub-jaxprs by calling `run` again."""

  def __init__(self, visitor: Visitor):
    self.visitor = visitor
    self._qtag_inputs: Dict[int, tuple] = {}

  def run(
    self, jaxpr, ins: Optional[Sequence[Any]], *, parent: Optional[Eqn] = None, state: Any = None
  ) -> list:
    """Outputs of `jaxpr` on `ins` (None: every input None). `parent`: the equation whose
    sub-jaxpr this is (its absolute stack and position prefix the equations inside)."""
    invars, constvars, outvars, eqns, consts = jint.jaxpr_parts(jaxpr)
    vis = self.visitor
    env = {v: vis.constant(v, c) for v, c in zip(constvars, consts)}
    env.update(zip(invars, ins if ins is not None else [None] * len(invars)))
    prefix, path = (parent.stack, parent.path) if parent is not None else ("", ())
    frame = Frame(jaxpr, [], outvars, prefix, path, state)
    frame.eqns = [Eqn(raw, i, frame) for i, raw in enumerate(eqns)]
    is_literal, literal_value, var_dtype = jint.is_literal, jint.literal_value, jint.var_dtype

    def read(v):
      return vis.literal(literal_value(v), var_dtype(v)) if is_literal(v) else env[v]

    vis.enter(frame)
    try:
      for e in frame.eqns:
        outs = vis.eqn(e, [read(v) for v in e.inputs])
        env.update(zip(e.outputs, outs))
    finally:
      vis.leave(frame)
    return [read(v) for v in outvars]

  def qtag_inputs(self, frame: Frame) -> dict:
    """{var: qtag params} of every variable that feeds a qtag in the frame's jaxpr (cached)."""
    hit = self._qtag_inputs.get(id(frame.jaxpr))
    if hit is not None:
      return hit[1]
    tags = {}
    for e in frame.eqns:
      if e.is_tag:
        v = e.inputs[0]
        if not jint.is_literal(v):
          tags[v] = e.tag
    self._qtag_inputs[id(frame.jaxpr)] = (frame.jaxpr, tags)  # keeps the id unique
    return tags


class _AllEqns(Visitor):
  def __init__(self):
    self.out: list = []
    self.interp = Interpreter(self)

  def eqn(self, e: Eqn, ins: list) -> list:
    self.out.append(e.raw)
    for sub in e.sub_jaxprs:
      self.interp.run(sub, None, parent=e)
    return [None] * len(e.outputs)


def all_eqns(jaxpr) -> list:
  """Every equation of a jaxpr and, depth first, of every sub-jaxpr (no values computed), as
  it is (wrap one in Eqn, or use _jax_internals' shorthands, to read it)."""
  v = _AllEqns()
  v.interp.run(jaxpr, None)
  return v.out


# --------------------------------------------------------------------------------------------
# Layout primitives: they move or reinterpret data and do no arithmetic.


class Layout(NamedTuple):
  """free: the analyzer prices it at nothing and keeps operand 0's type (ace/rules.py).
  keeps_codes: a constant's quantizer codes stay codes through it (export/lower.py).
  params: the params the export writes for it (None: the export cannot lower it).
  runtime: the integer runtime executes it as a 'layout' op (export/ops.py)."""

  free: bool
  keeps_codes: bool
  params: Optional[Tuple[str, ...]]
  runtime: bool


LAYOUT_TABLE: Dict[str, Layout] = {
  "reshape": Layout(True, True, ("new_sizes",), True),
  "broadcast_in_dim": Layout(True, True, ("shape", "broadcast_dimensions"), True),
  "squeeze": Layout(True, True, ("dimensions",), True),
  "expand_dims": Layout(True, True, ("dimensions",), True),
  "transpose": Layout(True, True, ("permutation",), True),
  "slice": Layout(True, True, ("start_indices", "limit_indices", "strides"), True),
  "rev": Layout(True, True, ("dimensions",), True),
  "copy": Layout(True, True, None, True),
  "stop_gradient": Layout(True, True, None, False),
  "materialize": Layout(True, True, None, False),
  "dynamic_slice": Layout(True, False, None, False),
  "gather": Layout(True, False, None, False),
  "copy_p": Layout(True, False, None, False),
  "sharding_constraint": Layout(True, False, None, False),
  "device_put": Layout(True, False, None, False),
  "optimization_barrier": Layout(True, False, None, False),
  "name": Layout(True, False, None, False),
  "split": Layout(True, False, None, False),
  "tile": Layout(True, False, None, False),
  "unstack": Layout(True, False, None, False),
  "reduce_precision": Layout(True, False, None, False),
  # Not free for the analyzer: operands of different types join (pad, concatenate) or the
  # dtype sets the type (convert_element_type); see ace/rules.py.
  "pad": Layout(False, True, ("padding_config",), True),
  "concatenate": Layout(False, True, ("dimension",), True),
  "convert_element_type": Layout(False, True, None, True),
}


def layout_names(column: str) -> tuple:
  """Names of the layout primitives whose `column` is set (free, keeps_codes, params, runtime)."""
  return tuple(n for n, row in LAYOUT_TABLE.items() if getattr(row, column) not in (False, None))


# --------------------------------------------------------------------------------------------
# Name stacks.


def split_stack(stack: str, categories: Optional[Sequence[str]] = None) -> Tuple[str, str]:
  """(module path, cost category) of a name stack, e.g. 'PikeLPN/block0/dw/acev2:norm' ->
  ('PikeLPN/block0/dw', 'norm'). acev2:<cat> scopes set the category (innermost wins, '' when
  none) and are dropped from the path, as are Flax method scopes ('conv._finish' after 'conv').
  With `categories`, a category outside them is a ValueError."""
  category = ""
  kept: List[str] = []
  for part in stack.split("/") if stack else ():
    if part.startswith(jint.CATEGORY_PREFIX):
      category = part[len(jint.CATEGORY_PREFIX) :]
      if categories is not None and category not in categories:
        raise ValueError(
          f"cost_category {category!r} at {stack!r} is not allowed; use one of {categories}"
        )
      continue
    if kept and part.startswith(kept[-1] + "."):
      continue
    kept.append(part)
  return "/".join(kept), category
