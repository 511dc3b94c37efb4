"""The one Fashion-MNIST training budget every measured accuracy in results/ uses.

ImageNet training is out of reach on a 2-core CPU, so each model is trained at its own config
(bits, QuantNorm, Double Quantization, DHQ, activation) but on Fashion-MNIST 32×32×1, narrower
(`width_scale` × its width) and for a fixed number of steps, with the project's training code
(pikelpn_jax.train.train_and_evaluate). The budget is the same for every model of a table.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
from typing import Any, Dict, Optional

from pikelpn_jax.config_base import dataset_config


@dataclasses.dataclass(frozen=True)
class Budget:
  steps: int = 300
  batch_size: int = 64
  learning_rate: float = 1e-2
  width_scale: float = 0.25
  train_examples: int = 60000      # Fashion-MNIST has 60,000 training images
  eval_examples: int = -1          # -1: the whole 10,000-image test set
  eval_batch_size: int = 500
  weight_decay: float = 5e-5
  dw_impl: str = ""                # "" keeps the config's (auto); --quick: grouped compiles faster

  def describe(self) -> str:
    ev = "the full 10,000-image test set" if self.eval_examples < 0 else \
        f"the first {self.eval_examples} test images"
    return (f"Fashion-MNIST (28×28 zero-padded to 32×32×1), {self.steps} steps of batch "
            f"{self.batch_size} ({self.steps * self.batch_size:,} images drawn from the first "
            f"{self.train_examples:,} training images), AdamW lr {self.learning_rate:g} with a "
            f"cosine decay to 0 and no warm-up, weight decay {self.weight_decay:g}, every quantizer "
            f"on from step 0, no distillation, width = the config's width × {self.width_scale:g}, "
            f"top-1 on {ev}")


FULL = Budget()
QUICK = Budget(steps=2, batch_size=8, width_scale=0.125, train_examples=64, eval_examples=16,
               eval_batch_size=16, dw_impl="grouped")


def budget(quick: bool) -> Budget:
  return QUICK if quick else FULL


def fmnist_config(config, b: Budget, seed: int = 0):
  """A copy of `config` (any dataset) set up for the budget: same model, Fashion-MNIST data."""
  c = copy.deepcopy(config)
  c.dataset = dataset_config("fashion_mnist")
  c.dataset.train_examples = int(b.train_examples)
  c.dataset.eval_examples = int(b.eval_examples)
  c.model.width = float(c.model.get("width", 1.0)) * b.width_scale
  if b.dw_impl and "dw_impl" in c.model:
    c.model.dw_impl = b.dw_impl
  c.seed = int(seed)
  c.batch_size, c.eval_batch_size = int(b.batch_size), int(b.eval_batch_size)
  c.num_train_steps = int(b.steps)
  c.eval_every_steps = c.checkpoint_every_steps = int(b.steps)
  c.log_every_steps = max(1, b.steps // 6)
  c.keep_checkpoints = 1
  c.learning_rate = float(b.learning_rate)
  c.optimizer, c.schedule, c.warmup_steps = "adamw", "cosine", 0
  c.b2 = 0.999
  c.weight_decay = float(b.weight_decay)
  c.label_smoothing = 0.0
  c.quant_schedule.weight_start_step = 0
  c.quant_schedule.act_start_step = 0
  c.distill.teacher_config = ""
  c.distill.teacher_workdir = ""
  return c


def enable_compile_cache(directory: str) -> None:
  """Seeds of one setting compile the same programs: a persistent cache makes repeats cheap.

  The environment variable PIKELPN_COMPILE_CACHE, when set, replaces `directory` (the tests share
  one cache between scripts that train the same quick model).
  """
  import jax
  directory = os.environ.get("PIKELPN_COMPILE_CACHE") or directory
  os.makedirs(directory, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def train(config, workdir: str, log=print) -> Dict[str, Any]:
  """Trains `config` in `workdir` (or reuses a finished run of the same config there).

  Returns results.json's dict; a run whose loss became non-finite returns eval_top1 None and its
  error, so one diverging model does not stop a table.
  """
  from pikelpn_jax.train import NonFiniteLossError, train_and_evaluate
  from pikelpn_jax.train.config_io import config_to_dict
  done = _finished(config, workdir)
  if done is not None:
    log(f"  reusing the finished run in {workdir}")
    return done
  if os.path.exists(os.path.join(workdir, "config.json")) and not _same_config(config, workdir):
    # train_and_evaluate would resume from that checkpoint: weights of another config or code.
    raise ValueError(f"workdir {workdir!r} holds a run of a different config; remove it or use "
                     "another --work_root")
  try:
    out = train_and_evaluate(config, workdir)
  except NonFiniteLossError as e:
    log(f"  diverged: {e}")
    return {"eval_top1": None, "error": str(e), "step": None}
  out = dict(out)
  out["config"] = config_to_dict(config)
  return out


def _same_config(config, workdir: str) -> bool:
  from pikelpn_jax.train.config_io import config_to_dict
  with open(os.path.join(workdir, "config.json")) as f:
    saved = json.load(f)
  return saved == json.loads(json.dumps(config_to_dict(config)))


def _finished(config, workdir: str) -> Optional[Dict[str, Any]]:
  res, cfg = os.path.join(workdir, "results.json"), os.path.join(workdir, "config.json")
  if not (os.path.exists(res) and os.path.exists(cfg)) or not _same_config(config, workdir):
    return None
  with open(res) as f:
    out = json.load(f)
  if out.get("step") != config.num_train_steps:
    return None
  with open(cfg) as f:
    out["config"] = json.load(f)
  return out


def default_work_root(out_dir: str, quick: bool, name: str) -> str:
  """Checkpoints stay out of results/: /tmp for full runs, inside the temp out_dir for quick."""
  if quick:
    return os.path.join(out_dir, "_work", name)
  return os.path.join("/tmp", "pikelpn_experiments", name)
