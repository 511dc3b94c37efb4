"""Optimizers (SGD+momentum, Adam, AdamW) and learning-rate schedules; weight decay on kernels only."""

from __future__ import annotations

import jax
import optax

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "linear", "piecewise", "constant")


def check_optimizer_fields(config) -> None:
  if config.optimizer not in OPTIMIZERS:
    raise ValueError(
      f"optimizer={config.optimizer!r} is not allowed; use one of {list(OPTIMIZERS)}"
    )
  if config.schedule not in SCHEDULES:
    raise ValueError(f"schedule={config.schedule!r} is not allowed; use one of {list(SCHEDULES)}")
  if not config.learning_rate > 0:
    raise ValueError(
      f"learning_rate={config.learning_rate!r} is not allowed; use a positive number"
    )
  if config.warmup_steps < 0 or config.warmup_steps > config.num_train_steps:
    raise ValueError(
      f"warmup_steps={config.warmup_steps} is not allowed; use 0..num_train_steps "
      f"({config.num_train_steps})"
    )
  if config.weight_decay < 0:
    raise ValueError(f"weight_decay={config.weight_decay} is not allowed; use >= 0")
  if not 0.0 <= config.label_smoothing < 1.0:
    raise ValueError(f"label_smoothing={config.label_smoothing} is not allowed; use 0 <= x < 1")


def learning_rate_schedule(config) -> optax.Schedule:
  """Linear warm-up from 0 over warmup_steps, then the named decay to 0 at num_train_steps.

  piecewise (PokeBNN): linear decay to 0 at schedule_knee_step (-1: the last step), then 0.
  """
  lr, total, warm = (
    float(config.learning_rate),
    int(config.num_train_steps),
    int(config.warmup_steps),
  )
  rest = max(1, total - warm)
  if config.schedule == "cosine":
    decay = optax.cosine_decay_schedule(lr, rest)
  elif config.schedule == "linear":
    decay = optax.linear_schedule(lr, 0.0, rest)
  elif config.schedule == "piecewise":
    knee = int(config.schedule_knee_step)
    knee = total if knee <= 0 else min(knee, total)
    decay = optax.linear_schedule(lr, 0.0, max(1, knee - warm))
  else:
    decay = optax.constant_schedule(lr)
  if warm == 0:
    return decay
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warm), decay], [warm])


def kernel_mask(params):
  """True for leaves named 'kernel' (conv/dense weights); norms, biases and quantizer steps get no decay."""

  def is_kernel(path, _):
    last = path[-1]
    return getattr(last, "key", getattr(last, "name", None)) == "kernel"

  return jax.tree_util.tree_map_with_path(is_kernel, params)


def make_optimizer(config) -> optax.GradientTransformation:
  check_optimizer_fields(config)
  sched = learning_rate_schedule(config)
  # config.momentum is SGD's momentum and Adam's b1 (a separate config field would change every
  # config's hash, recorded in results and ACEv2 reports).
  wd, b1, b2 = float(config.weight_decay), float(config.momentum), float(config.b2)
  if config.optimizer == "adamw":
    return optax.adamw(sched, b1=b1, b2=b2, weight_decay=wd, mask=kernel_mask)
  # L2 as in PokeBNN: the gradient of 0.5·wd·Σw² over kernels, before the optimizer.
  decay = optax.add_decayed_weights(wd, mask=kernel_mask) if wd > 0 else optax.identity()
  if config.optimizer == "adam":
    return optax.chain(decay, optax.adam(sched, b1=b1, b2=b2))
  return optax.chain(
    decay, optax.sgd(sched, momentum=b1 or None, nesterov=bool(config.get("nesterov", False)))
  )
