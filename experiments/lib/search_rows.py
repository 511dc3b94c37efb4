"""The configs of the search study (experiments/search.py): uniform precision, searched, random.

Every config is the study recipe's PikeLPN-1x (experiments/lib/recipe.py) with per-layer bit rules
put first; costs are priced on that trained model (32×32, the recipe's width).
"""

from __future__ import annotations

import copy
import dataclasses
import random
from typing import Dict, Optional

from experiments.lib import recipe, zoo
from pikelpn_jax.search import cost, optimize, sensitivity
from pikelpn_jax.search import space as sp

BASE = "pikelpn.py:1x"
UNIFORM_BITS = (2, 3, 4)
# The search space of the study (every layer; the CLI's defaults) and the --quick one.
FULL_SPACE = dict(layer_regex=".*")
QUICK_SPACE = dict(
  layer_regex=r"block[01]/(dw|pw)",
  w_bits=(2, 4),
  a_bits=(2, 4),
  quantnorm_bits=(8,),
  dq_formats=("pow2",),
)


def base_config(r: recipe.Recipe, seed: int = 0):
  return recipe.study_config(zoo.load(BASE), r, seed)


def with_seed(config, seed: int):
  c = copy.deepcopy(config)
  c.seed = int(seed)
  return c


def layers(config):
  return sp.report_layers(cost.price(config))


def uniform_config(bits: int, r: recipe.Recipe, seed: int = 0, low_bit_calibration: bool = True):
  """PikeLPN-1x with every body layer (depthwise and pointwise) at `bits`-bit weights and input
  activations; depthwise weights per channel, stem and head at 8 bits as in every family member.
  Below 4 bits the layers take the search space's low-bit calibration, as searched layers do."""
  c = base_config(r, seed)
  body = {
    p: sp.Choice(bits, bits, True if p.endswith("dw") else None)
    for p in layers(c)
    if p not in ("stem", "head")
  }
  return sp.apply(c, body, low_bit_calibration=low_bit_calibration)


def budgets(r: recipe.Recipe) -> Dict[str, int]:
  """The budgets, fixed from configs alone (no accuracy): the ACEv2 of uniform 2-bit and 3-bit
  PikeLPN at the trained size, and the midpoint."""
  a2 = int(cost.price(uniform_config(2, r)).acev2)
  a3 = int(cost.price(uniform_config(3, r)).acev2)
  return {"uniform2": a2, "mid": (a2 + a3) // 2, "uniform3": a3}


def search_base(r: recipe.Recipe, quick: bool):
  """The config the search starts from (seed 0). --quick searches four layers only; the others
  stay at uniform 3-bit, so the quick budget (uniform 3-bit's ACEv2) is reachable."""
  return uniform_config(3, r) if quick else base_config(r)


@dataclasses.dataclass
class Searcher:
  """One cost table, priced once, serving every budget and method."""

  config: object  # the study's PikeLPN-1x, seed 0
  space: sp.Space
  table: cost.Table

  @classmethod
  def build(cls, r: recipe.Recipe, quick: bool, log=print) -> "Searcher":
    c = search_base(r, quick)
    space = sp.build_space(c, layers(c), **(QUICK_SPACE if quick else FULL_SPACE))
    return cls(c, space, cost.build_table(c, space, log))

  def random_sensitivity(self, seed: int) -> dict:
    """An allocation drawn at random: iid uniform sensitivities, solved by the same program, so
    it spends (nearly) the whole budget like the searched one."""
    rng = random.Random(1_000 + int(seed))
    return {
      "method": "random",
      "layers": {p: {c: rng.random() for c in self.space.choices(p)} for p in self.space.layers},
      "globals": {g: rng.random() for g in self.space.globals},
    }

  def search(self, sens: dict, budget: int, log=print) -> dict:
    return optimize.search(self.config, self.table, sens, budget, log)

  def proxy(self) -> dict:
    return sensitivity.proxy(self.space)


def searched_config(found: dict, r: recipe.Recipe, seed: int, steps: Optional[int] = None):
  c = with_seed(found["config"], seed)
  if steps is not None:
    c.num_train_steps = steps
  return c
