"""Training helpers of the experiment scripts; the recipe itself is experiments/lib/recipe.py.

ImageNet training is out of reach on a 2-core CPU, so each model is trained at its own config
(bits, QuantNorm, Double Quantization, DHQ, activation) but on Fashion-MNIST 32×32×1, narrower
and for a fixed number of steps, with the project's training code
(pikelpn_jax.train.train_and_evaluate), under the one study recipe of experiments/lib/recipe.py.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional

from experiments.lib import recipe as _recipe

# The study recipe lives in experiments/lib/recipe.py; these names keep the older scripts
# (dhq_distribution.py) on it.
Budget = _recipe.Recipe
FULL = _recipe.STUDY
QUICK = _recipe.QUICK
budget = _recipe.recipe
fmnist_config = _recipe.study_config


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
  from pikelpn_jax.config_base import config_to_dict
  from pikelpn_jax.train import NonFiniteLossError, train_and_evaluate

  done = _finished(config, workdir)
  if done is not None:
    log(f"  reusing the finished run in {workdir}")
    return done
  if os.path.exists(os.path.join(workdir, "config.json")) and not _same_config(config, workdir):
    # train_and_evaluate would resume from that checkpoint: weights of another config or code.
    raise ValueError(
      f"workdir {workdir!r} holds a run of a different config; remove it or use another --work_root"
    )
  try:
    out = train_and_evaluate(config, workdir)
  except NonFiniteLossError as e:
    log(f"  diverged: {e}")
    return {"eval_top1": None, "error": str(e), "step": None}
  out = dict(out)
  out["config"] = config_to_dict(config)
  return out


def _same_config(config, workdir: str) -> bool:
  from pikelpn_jax.config_base import config_to_dict

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
