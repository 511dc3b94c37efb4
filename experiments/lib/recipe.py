"""The one study recipe every measured accuracy in results/ is trained with.

ImageNet training is out of reach on a 2-core CPU, so each model is trained at its own config
(bits, QuantNorm, Double Quantization, DHQ, activation) on Fashion-MNIST 32×32×1, narrower
(`width_scale` × its width, per family: FAMILY_WIDTH), with the project's training loop. The
recipe is the main job's (configs/pikelpn.py:fmnist), budget included: 2000 steps of batch 256,
AdamW lr 2e-2 with 100 warm-up steps and a cosine decay, label smoothing 0.1, weight decay 1e-3 on
kernels, learned (LSQ) activation steps where a layer's activations are calibrated (multi-bit,
abs-max/EMA), and power-of-two scales rounded to nearest. PikeLPN-1x at width × 0.5 under it *is*
the main job's model, so the main job's run is the ablations' "all on" seed 0. Whether 2000 steps
is near convergence is measured by ablations.py (the same models at 4000 steps).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Optional

from pikelpn_jax.config_base import dataset_config


@dataclasses.dataclass(frozen=True)
class Recipe:
  steps: int = 2000
  batch_size: int = 256
  learning_rate: float = 2e-2
  warmup_steps: int = 100
  label_smoothing: float = 0.1
  weight_decay: float = 1e-3
  width_scale: float = 0.5
  a_calibration: str = "lsq"  # replaces 'ema'/'absmax' activation calibration; '' keeps it
  dq_round: str = "nearest"  # pow2 scale rounding; '' keeps the config's
  train_examples: int = 60000  # Fashion-MNIST has 60,000 training images
  eval_examples: int = -1  # -1: the whole 10,000-image test set
  eval_batch_size: int = 500
  dw_impl: str = ""  # "" keeps the config's (auto); --quick: grouped compiles faster

  def describe(self, steps: Optional[int] = None) -> str:
    steps = self.steps if steps is None else steps
    ev = (
      "the full 10,000-image test set"
      if self.eval_examples < 0
      else f"the first {self.eval_examples} test images"
    )
    act = (
      "activation steps learned (LSQ) wherever the config calibrates them (abs-max/EMA)"
      if self.a_calibration
      else "activation calibration as configured"
    )
    rnd = (
      f"power-of-two scales rounded to {self.dq_round}"
      if self.dq_round
      else "power-of-two scales rounded as configured"
    )
    return (
      f"Fashion-MNIST (28×28 zero-padded to 32×32×1), {steps} steps of batch "
      f"{self.batch_size} ({steps * self.batch_size:,} images drawn from the first "
      f"{self.train_examples:,} training images), AdamW lr {self.learning_rate:g} with "
      f"{self.warmup_steps} warm-up steps and a cosine decay to 0, label smoothing "
      f"{self.label_smoothing:g}, weight decay {self.weight_decay:g} on kernels, {act}, "
      f"{rnd}, every quantizer on from step 0, no distillation, width = the config's width "
      f"× {self.width_scale:g} unless the family table says otherwise, top-1 on {ev}"
    )


STUDY = Recipe()
QUICK = Recipe(
  steps=2,
  batch_size=8,
  warmup_steps=1,
  width_scale=0.125,
  train_examples=64,
  eval_examples=16,
  eval_batch_size=16,
  dw_impl="grouped",
)

# Calibrations the recipe replaces by LSQ: the ones that estimate a scale from the data. 'fixed'
# (binary sign activations, PokeBNN/ReActNet) and float layers keep theirs.
_CALIBRATED = ("ema", "absmax")


def recipe(quick: bool) -> Recipe:
  return QUICK if quick else STUDY


def study_config(
  config,
  r: Recipe = STUDY,
  seed: int = 0,
  *,
  steps: Optional[int] = None,
  width_scale: Optional[float] = None,
):
  """A copy of `config` (any dataset) under the recipe: same model, Fashion-MNIST, seed `seed`.

  `steps` overrides the recipe's budget (the convergence check doubles it); `width_scale` the
  recipe's width factor (a family's own, see experiments/family_table.py).
  """
  c = copy.deepcopy(config)
  steps = int(r.steps if steps is None else steps)
  c.dataset = dataset_config("fashion_mnist")
  c.dataset.train_examples = int(r.train_examples)
  c.dataset.eval_examples = int(r.eval_examples)
  c.model.width = float(c.model.get("width", 1.0)) * (
    r.width_scale if width_scale is None else width_scale
  )
  if r.dw_impl and "dw_impl" in c.model:
    c.model.dw_impl = r.dw_impl
  if "quant" in c.model:
    q = c.model.quant
    if (
      r.a_calibration and q.get("a_bits") not in (None, 1) and q.get("a_calibration") in _CALIBRATED
    ):
      q.a_calibration = r.a_calibration
    if r.dq_round and "dq_round" in c.model:
      c.model.dq_round = r.dq_round
  c.seed = int(seed)
  c.batch_size, c.eval_batch_size = int(r.batch_size), int(r.eval_batch_size)
  c.num_train_steps = steps
  c.eval_every_steps = c.checkpoint_every_steps = steps
  c.log_every_steps = max(1, steps // 10)
  c.keep_checkpoints = 1
  c.learning_rate = float(r.learning_rate)
  c.optimizer, c.schedule, c.warmup_steps = "adamw", "cosine", int(min(r.warmup_steps, steps // 2))
  c.b2 = 0.999
  c.weight_decay = float(r.weight_decay)
  c.label_smoothing = float(r.label_smoothing)
  c.quant_schedule.weight_start_step = 0
  c.quant_schedule.act_start_step = 0
  c.distill.teacher_config = ""
  c.distill.teacher_workdir = ""
  return c
