"""Models of the quantization schedule and their variable trees.

The training state always holds the variables of the fully quantized model. A phase model
(weights and/or activations still float) may have fewer variables (no EMA bounds, no LSQ
steps); a phase step selects its subtree, and its updates are overlaid back onto the full tree.
"""

from __future__ import annotations

from typing import Any, Dict, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
from flax import traverse_util

COLLECTIONS = ("params", "batch_stats")


class Phase(NamedTuple):
  weight_quant: bool
  act_quant: bool


FULL = Phase(True, True)


def phase_at(config, step: int) -> Phase:
  """Which quantizers are on for training step `step` (0-based)."""
  qs = config.quant_schedule
  return Phase(step >= qs.weight_start_step, step >= qs.act_start_step)


def make_model(config, phase: Phase = FULL, dw_impl: Optional[str] = None):
  from pikelpn_jax.models import build_model  # the zoo is imported on first use

  return build_model(
    config, weight_quant=phase.weight_quant, act_quant=phase.act_quant, dw_impl=dw_impl
  )


def input_shape(config, batch: int = 1) -> Tuple[int, int, int, int]:
  d = config.dataset
  return (batch, int(d.image_size), int(d.image_size), int(d.channels))


def init_fn(model, config):
  """rng -> {'params', 'batch_stats'} of `model` at config's input shape (batch 1)."""

  def init(rng):
    v = model.init(rng, jnp.zeros(input_shape(config), jnp.float32), train=False)
    return {c: v.get(c, {}) for c in COLLECTIONS}

  return init


def init_variables(config, rng, phase: Phase = FULL, sharding=None) -> Dict[str, Any]:
  model = make_model(config, phase)
  return jax.jit(init_fn(model, config), out_shardings=sharding)(rng)


def abstract_variables(config, phase: Phase = FULL, sharding=None) -> Dict[str, Any]:
  """ShapeDtypeStructs of {'params', 'batch_stats'} (with `sharding`, default: one device)."""
  model = make_model(config, phase)
  shapes = jax.eval_shape(init_fn(model, config), jax.random.PRNGKey(0))
  sharding = sharding or jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)


def flat(tree) -> Dict[Tuple[str, ...], Any]:
  return traverse_util.flatten_dict(tree) if tree else {}


def select(full, template) -> Dict[str, Any]:
  """The subtree of `full` at the paths of `template` (a phase model's variables)."""
  f = flat(full)
  out = {}
  for path, leaf in flat(template).items():
    if path not in f:
      raise ValueError(
        f"phase model variable {'/'.join(path)} is not in the fully quantized model; "
        "build_model variants must only drop variables when a quantizer is off"
      )
    if tuple(f[path].shape) != tuple(leaf.shape):
      raise ValueError(
        f"phase model variable {'/'.join(path)} has shape {leaf.shape}, "
        f"{f[path].shape} in the fully quantized model"
      )
    out[path] = f[path]
  return traverse_util.unflatten_dict(out) if out else {}


def overlay(full, part):
  """`full` with the leaves present in `part` replaced."""
  if not part:
    return full
  f = flat(full)
  f.update(flat(part))
  return traverse_util.unflatten_dict(f)
