"""The distillation teacher: a config file ('configs/x.py:variant') and its training workdir."""

from __future__ import annotations

from typing import Any, Dict, NamedTuple, Optional

from pikelpn_jax.config_base import load_config
from pikelpn_jax.train import checkpoint
from pikelpn_jax.train.steps import FULL, abstract_variables, make_model


class Teacher(NamedTuple):
  """What the train step needs of the teacher: its model, variables and loss weights."""

  model: Any
  variables: Dict[str, Any]
  alpha: float
  temperature: float


def load_teacher(config, replicated) -> Optional[Teacher]:
  """None without distillation; otherwise the restored teacher, or a one-line error."""
  kd = config.distill
  if not kd.teacher_config:
    return None
  tcfg = load_config(kd.teacher_config, "distill.teacher_config")
  for field in ("image_size", "channels", "num_classes"):
    if tcfg.dataset[field] != config.dataset[field]:
      raise ValueError(
        f"teacher {kd.teacher_config!r} has dataset.{field}={tcfg.dataset[field]}, "
        f"the student {config.dataset[field]}; they must see the same inputs and classes"
      )
  step = checkpoint.latest_step(kd.teacher_workdir)
  if step is None:
    raise checkpoint.NoCheckpointError(
      f"no teacher checkpoint in distill.teacher_workdir={kd.teacher_workdir!r}; "
      f"train the teacher first: python main.py --config {kd.teacher_config} "
      f"--workdir {kd.teacher_workdir}"
    )
  abstract = abstract_variables(tcfg, sharding=replicated)
  ckpts = checkpoint.Checkpoints(kd.teacher_workdir, read_only=True)
  try:
    ckpts.verify(step, items=("model",))
    checkpoint.check_matches(ckpts, step, tcfg, abstract, "distill.teacher_workdir")
    variables = ckpts.restore_model(step, abstract)
  finally:
    ckpts.close()
  return Teacher(make_model(tcfg, FULL), variables, float(kd.alpha), float(kd.temperature))
