"""How much each choice hurts: the objective the optimiser minimises.

`measured` (the default with a trained run): the loss increase on held-out images when only one
thing changes post-training — one layer's weight bits, or its activation bits, or its depthwise
granularity, or one global setting — from the trained checkpoint, in evaluation mode. A learned
activation step (LSQ) is rescaled with the bits so the clipping bound stays where training put
it. A layer's choice costs the sum of its parts (clipped at 0: a measured gain is noise, not a
reason to pay bits), as HAWQ sums per-layer terms.

`proxy` (no trained run): a data-free stand-in — the noise power of a uniform quantizer with a
unit range, 4^-bits, per weight and per activation tensor, every layer weighted alike; a
per-tensor depthwise kernel counts as one bit fewer; each QuantNorm bit the same; the Double
Quantization format not at all. It only orders choices by bits, so it spends the budget where
bits are cheap; it is the baseline the measured sensitivity is compared with (docs/search.md).
"""

from __future__ import annotations

import copy
import time
from typing import Callable, Dict

import numpy as np

from pikelpn_jax.search import space as sp


def proxy(space: sp.Space) -> dict:
  layers = {}
  for p in space.layers:
    layers[p] = {}
    for c in space.choices(p):
      w_eff = c.w_bits - (1 if c.w_per_channel is False else 0)
      layers[p][c] = 4.0**-w_eff + 4.0**-c.a_bits
  n = len(space.layers)
  glob = {g: (n * 4.0**-g.quantnorm_bits if g.quantnorm_bits else 0.0) for g in space.globals}
  return {"method": "proxy", "layers": layers, "globals": glob}


def _levels(config, variables, images) -> Dict[str, float]:
  """{quantizer module path: grid steps per bound} of the config's model (no compute)."""
  import flax.linen as nn
  import jax

  from pikelpn_jax.quant.quantizer import Quantizer
  from pikelpn_jax.train.steps import make_model

  model = make_model(config)
  seen = {}

  def record(f, args, kwargs, ctx):
    if isinstance(ctx.module, Quantizer) and ctx.method_name == "__call__":
      cfg = ctx.module.config
      if not cfg.is_float:
        seen["/".join(ctx.module.path)] = float(cfg.numerics.levels_per_bound)
    return f(*args, **kwargs)

  with nn.intercept_methods(record):
    jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, images[:1])
  return seen


def rescale_steps(trained_cfg, cfg, variables, images):
  """variables with every learned step rescaled by levels(trained)/levels(cfg): same bound."""
  old, new = _levels(trained_cfg, variables, images), _levels(cfg, variables, images)
  params = copy.deepcopy(variables["params"])
  for path, lv in new.items():
    if path in old and old[path] != lv:
      node = params
      for k in path.split("/"):
        node = node.get(k, {}) if isinstance(node, dict) else {}
      if isinstance(node, dict) and "step" in node:
        node["step"] = node["step"] * (old[path] / lv)
  return dict(variables, params=params)


class Evaluator:
  """Mean cross-entropy of a config's model with given variables on a fixed set of images."""

  def __init__(self, images, labels, batch: int = 500):
    self.images, self.labels, self.batch = images, labels, batch
    self.calls = 0

  def loss(self, config, variables) -> float:
    import jax
    import jax.numpy as jnp

    from pikelpn_jax.train.steps import cross_entropy, make_model

    model = make_model(config)

    @jax.jit
    def total(v, x, y):
      return jnp.sum(cross_entropy(model.apply(v, x, train=False), y))

    s = 0.0
    for i in range(0, len(self.images), self.batch):
      s += float(total(variables, self.images[i : i + self.batch], self.labels[i : i + self.batch]))
    self.calls += 1
    return s / len(self.images)


def heldout_images(config, n: int, seed: int = 1_000_003):
  """n training images (and labels) in an order of their own: the search never sees the test
  set it will be judged on. They are training images, so the loss is not that of unseen data."""
  from pikelpn_jax.data.pipeline import InputPipeline

  c = copy.deepcopy(config)
  c.seed, c.batch_size = int(seed), int(n)
  ((_, images, labels),) = InputPipeline(c).train_batches(0, 1)
  return np.asarray(images), np.asarray(labels)


def measured(
  config, variables, space: sp.Space, images, labels, log: Callable[[str], None] = lambda _: None
) -> dict:
  from pikelpn_jax.models.quant_plan import plan_from_config

  t0 = time.perf_counter()
  ev = Evaluator(images, labels)
  base = ev.loss(config, variables)
  plan = plan_from_config(config.model)

  def delta(assignment, glob=None):
    # the trained model's own calibration: a low-bit calibration (space.LOW_BIT_*) is for
    # training from scratch, and applied post-training to weights trained without it, it
    # measures the switch (3-bit mean-|w| scaling clips at mean |w|), not the bits
    c = sp.apply(config, assignment, glob or sp.Globals(), low_bit_calibration=False)
    return ev.loss(c, rescale_steps(config, c, variables, images)) - base

  raw, layers = {}, {}
  for p in space.layers:
    t = plan.settings(p)
    w0, a0, pc0 = t.w_bits, t.a_bits, t.w_per_channel
    d_w = {w: 0.0 if w == w0 else delta({p: sp.Choice(w, a0, pc0)}) for w in space.w_bits}
    d_a = {a: 0.0 if a == a0 else delta({p: sp.Choice(w0, a, pc0)}) for a in space.a_bits}
    d_pc = {
      pc: 0.0 if pc in (None, pc0) else delta({p: sp.Choice(w0, a0, pc)})
      for pc in space.pc_options(p)
    }
    raw[p] = {"w_bits": d_w, "a_bits": d_a, "w_per_channel": {str(k): v for k, v in d_pc.items()}}
    layers[p] = {
      c: max(0.0, d_w[c.w_bits]) + max(0.0, d_a[c.a_bits]) + max(0.0, d_pc[c.w_per_channel])
      for c in space.choices(p)
    }
    log(f"sensitivity {p}: w {d_w} a {d_a}")
  glob = {}
  for g in space.globals:
    same = g.quantnorm_bits in (None, plan.norm_bits) and g.dq_format in (
      None,
      config.model.get("dq_format"),
    )
    glob[g] = 0.0 if same else max(0.0, delta({}, g))
  return {
    "method": "measured",
    "layers": layers,
    "globals": glob,
    "raw": raw,
    "base_loss": base,
    "images": int(len(images)),
    "evaluations": ev.calls,
    "seconds": time.perf_counter() - t0,
  }
