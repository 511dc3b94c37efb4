"""Checks of a training config before anything is written (one-line ValueErrors)."""

from __future__ import annotations

from pikelpn_jax.config_base import check_int
from pikelpn_jax.data import check_dataset_name
from pikelpn_jax.data.sources import check_augment
from pikelpn_jax.train.optim import check_optimizer_fields

POSITIVE_INT_FIELDS = (
  "num_train_steps",
  "batch_size",
  "eval_batch_size",
  "eval_every_steps",
  "checkpoint_every_steps",
  "keep_checkpoints",
  "log_every_steps",
)


def check_config(config, device_count: int, process_count: int = 1) -> None:
  for field in POSITIVE_INT_FIELDS:
    check_int(field, config[field], 1)
  for field in ("batch_size", "eval_batch_size"):
    if config[field] % device_count:
      raise ValueError(
        f"{field}={config[field]} is not divisible by the {device_count} devices; "
        f"use a multiple of {device_count}"
      )
  check_dataset_name(config.dataset.name)
  d = config.dataset
  for field in ("image_size", "channels", "num_classes"):
    check_int(f"dataset.{field}", d[field], 1)
  if "augment" in d:
    check_augment(d.augment, d.get("max_shift", 0))
  check_optimizer_fields(config)
  qs = config.quant_schedule
  for field in ("weight_start_step", "act_start_step"):
    check_int(f"quant_schedule.{field}", qs[field], 0)
  kd = config.distill
  if kd.teacher_config:
    if not 0.0 <= kd.alpha <= 1.0:
      raise ValueError(f"distill.alpha={kd.alpha} is not allowed; use 0..1 (1 = pure KD)")
    if not kd.temperature > 0:
      raise ValueError(
        f"distill.temperature={kd.temperature} is not allowed; use a positive number"
      )
    if not kd.teacher_workdir:
      raise ValueError(
        f"distill.teacher_config={kd.teacher_config!r} needs distill.teacher_workdir "
        "(the teacher's training workdir)"
      )
