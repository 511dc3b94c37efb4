"""The training loop in process: outputs, resume, quantization schedule, KD."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pikelpn_jax.train import checkpoint, train_and_evaluate
from pikelpn_jax.train.steps import Phase, init_variables, make_model, phase_at
from tests.train import tiny_model
from tests.train.train_helpers import TINY_CONFIG


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_run_leaves_results_metrics_checkpoints(trained_tiny):
  workdir, results = trained_tiny
  with open(os.path.join(workdir, "results.json")) as f:
    on_disk = json.load(f)
  assert on_disk["step"] == 4 and on_disk["params_sha256"] == results["params_sha256"]
  assert on_disk["allocator"] == results["allocator"] and "malloc" in on_disk["allocator"]
  for key in ("eval_top1", "eval_top5"):
    assert key in on_disk
  assert 0.0 <= on_disk["eval_top1"] <= on_disk["eval_top5"] <= 1.0
  # The ACEv2 totals (macs, ace, acev2) are added by the command line: test_cli.py.
  train = [m for m in read_metrics(workdir) if "train_loss" in m]
  assert [m["step"] for m in train] == [1, 2, 3, 4]
  assert all(np.isfinite(m["train_loss"]) and m["images_per_sec"] > 0 for m in train)
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]
  with open(os.path.join(workdir, "checkpoints", "4", "config", "metadata")) as f:
    assert json.load(f)["model"]["name"] == tiny_model.NAME
  assert any(f.startswith("events") for f in os.listdir(os.path.join(workdir, "tb")))


def test_rerun_of_a_finished_run_changes_nothing(trained_tiny):
  workdir, results = trained_tiny
  again = train_and_evaluate(tiny_model.tiny_config(steps=4), workdir)
  assert again["params_sha256"] == results["params_sha256"]
  assert again["eval_top1"] == results["eval_top1"]
  assert [m["step"] for m in read_metrics(workdir) if "train_loss" in m] == [1, 2, 3, 4]


@pytest.mark.parametrize("a_calibration", ["ema", "lsq"])
def test_quant_schedule_overlays_phases(tmp_path, a_calibration):
  c = tiny_model.tiny_config(steps=3)
  c.model.quant.a_calibration = a_calibration
  c.quant_schedule.weight_start_step, c.quant_schedule.act_start_step = 1, 2
  assert [phase_at(c, s) for s in range(3)] == [
    Phase(False, False),
    Phase(True, False),
    Phase(True, True),
  ]
  init = initial_params_by_path(c)
  train_and_evaluate(c, str(tmp_path))
  v = checkpoint.restore_latest(str(tmp_path), c)
  if a_calibration == "ema":
    seen = [
      float(x)
      for p, x in jax.tree_util.tree_leaves_with_path(v["batch_stats"])
      if p[-1].key == "seen"
    ]
    assert seen and all(s == 1.0 for s in seen)  # the EMA bounds saw only step 2 (act phase)
  else:
    # LSQ steps exist only in the act phase's model: step 2 alone trained them.
    steps = {
      p: x for p, x in jax.tree_util.tree_leaves_with_path(v["params"]) if p[-1].key == "step"
    }
    assert steps
    # Each step was moved by exactly one update (AdamW's first step: about lr in size).
    moved = [abs(float(x.reshape(-1)[0]) - float(init[p].reshape(-1)[0])) for p, x in steps.items()]
    assert all(0 < d < 2 * c.learning_rate for d in moved), moved


def initial_params_by_path(c):
  """The fully quantized model's initial params by path (what train_and_evaluate starts from)."""
  v = init_variables(c, jax.random.PRNGKey(c.seed))
  return dict(jax.tree_util.tree_leaves_with_path(v["params"]))


def test_distillation_loss_matches_teacher(trained_tiny, tmp_path):
  teacher_dir, _ = trained_tiny
  c = tiny_model.tiny_config(steps=1)
  c.distill.teacher_config, c.distill.teacher_workdir = TINY_CONFIG, teacher_dir
  c.distill.alpha, c.distill.temperature = 0.5, 2.0
  c.label_smoothing = 0.0
  train_and_evaluate(c, str(tmp_path))
  logged = [m for m in read_metrics(str(tmp_path)) if "train_loss" in m][0]["train_loss"]

  from pikelpn_jax.data import InputPipeline
  from pikelpn_jax.train import steps
  from pikelpn_jax.train.optim import make_optimizer

  x, y = InputPipeline(c).train_batch(0)
  factory = steps.StepFactory(c, make_optimizer(c), steps.make_mesh())
  state = factory.create_state(jax.random.PRNGKey(c.seed))
  model = make_model(c)
  student = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"])[0])
  s_logits = student({"params": state.params, "batch_stats": state.batch_stats}, x)
  t_vars = checkpoint.restore_latest(teacher_dir, tiny_model.tiny_config())
  t_logits = jax.jit(lambda v, x: model.apply(v, x, train=False))(t_vars, x)
  want = jnp.mean(
    0.5 * steps.distillation(s_logits, t_logits, 2.0) + 0.5 * steps.cross_entropy(s_logits, y)
  )
  assert logged == pytest.approx(float(want), rel=1e-4)
