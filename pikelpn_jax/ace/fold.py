"""The deployment-folding view (AceSettings.fold = 'affine').

An inference compiler merges a chain of elementwise multiplies and adds by per-channel or scalar
constants on one tensor — a conv's dequantization acc·(s_x·s_w), a batch norm's x·m + c, the next
quantizer's ·(1/s) — into one multiply and one add: ((x·a1 + b1)·a2 + b2)·a3 = x·A + B, with A and
B computed offline. Under 'affine' the walker charges the first multiply and the first add of such
a chain and nothing for the rest; 'none' prices every op as written.

A link extends a chain only when the tensor it consumes has no other use (otherwise the
intermediate must exist and its ops stay priced), and only inside one jaxpr (a call boundary, a
ReLU, a select or any other op ends the chain). Types are the same under both folds: only costs
change. A pow2 multiply (a shift) followed by a real multiply is re-priced as that one multiply.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional

from pikelpn_jax import _jax_internals as jint
from pikelpn_jax.ace.values import CostKey, Val

AFFINE_PRIMITIVES = ("mul", "div", "add", "sub")


@dataclasses.dataclass(frozen=True)
class Chain:
  """The charged multiply and add of a chain (None: not charged yet), and their counts."""

  mul: Optional[CostKey] = None
  mul_n: int = 0
  add: Optional[CostKey] = None


def use_counts(eqns, outvars) -> Dict[object, int]:
  uses: Dict[object, int] = {}
  for e in eqns:
    for v in e.inputs:
      if not jint.is_literal(v):
        uses[v] = uses.get(v, 0) + 1
  for v in outvars:
    if not jint.is_literal(v):
      uses[v] = uses.get(v, 0) + 2  # a result of the jaxpr is always materialized
  return uses


def affine_operand(e, prim: str, ins) -> Optional[int]:
  """Index of the data operand when equation `e` (an Eqn view) is x·c, x/c, x±c or c±x with c a per-channel or
  scalar constant; None otherwise."""
  if prim not in AFFINE_PRIMITIVES or len(ins) != 2:
    return None
  a, b = ins
  if a.const == b.const:
    return None
  i = 1 if a.const else 0
  if prim == "div" and i != 0:
    return None
  c: Val = ins[1 - i]
  shape = e.out_shape(0)
  channels = shape[-1] if shape else 1
  return i if c.stored <= channels else None


class FoldState:
  """Chains of one jaxpr being walked: {var: Chain} plus the jaxpr's use counts."""

  def __init__(self, eqns, outvars):
    """eqns: the jaxpr's Eqn views; outvars: its outputs."""
    self.uses = use_counts(eqns, outvars)
    self.chains: Dict[object, Chain] = {}

  def chain_of(self, var) -> Optional[Chain]:
    if jint.is_literal(var) or self.uses.get(var, 0) != 1:
      return None
    return self.chains.get(var)

  def price(self, costs, out_var, in_var, ops) -> bool:
    """Charges one affine link's `ops` ((CostKey, n) pairs from its rule) into `costs`, folding
    it into in_var's chain. Returns whether anything was charged."""
    chain = self.chain_of(in_var) or Chain()
    charged = False
    for key, n in ops:
      op = key.op
      if op == "add":
        if chain.add is None:
          costs[key] += n
          chain = dataclasses.replace(chain, add=key)
          charged = True
      elif chain.mul is None:
        costs[key] += n
        chain = dataclasses.replace(chain, mul=key, mul_n=n)
        charged = True
      elif chain.mul.op == "shift" and op == "mul":
        costs[chain.mul] -= chain.mul_n  # the shift merges into this multiplier
        costs[key] += n
        chain = dataclasses.replace(chain, mul=key, mul_n=n)
        charged = True
    self.chains[out_var] = chain
    return charged
