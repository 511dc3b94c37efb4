"""The benchmarks' --quick modes: each times the project's real train step (experiments/lib/
train_step.py) at tiny sizes and writes its own section, keeping the others'."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1")
  p = subprocess.run(
    [sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
  )
  assert p.returncode == 0, p.stderr[-3000:]
  return p.stdout


@pytest.mark.slow
def test_real_step_is_the_training_loops_step():
  """The step the benchmarks time is StepFactory's jitted train step of the config's optimizer."""
  from experiments.lib import train_step
  from pikelpn_jax.train.steps import StepFactory

  c = train_step.synthetic_config(
    "configs/pikelpn.py:1x", width=0.25, image_size=16, batch=2, dw_impl="shift_add"
  )
  assert (c.dataset.name, c.batch_size, c.model.width) == ("synthetic", 2, 0.25)
  step = train_step.RealStep(c)
  assert isinstance(step.steps, StepFactory) and step.batch == 2
  assert int(step.state.step) == 0
  step.run()
  step.run()
  assert int(step.state.step) == 2 and {"loss", "accuracy"} <= set(step.metrics)


@pytest.mark.slow
@pytest.mark.parametrize("script", ["bench_layers", "bench_train"])
def test_quick_writes_its_section_and_keeps_the_others(tmp_path, script):
  out = tmp_path / "benchmarks.md"
  out.write_text("# Benchmarks\n\n<!-- other -->\nkept\n<!-- /other -->\n")
  run(f"experiments.{script}", "--quick", "--out", str(out))
  md = out.read_text()
  assert "<!-- other -->\nkept\n<!-- /other -->" in md
  assert f"<!-- {script} -->" in md and f"<!-- /{script} -->" in md
  assert f"python -m experiments.{script} --quick" in md
  assert "PikeLPN" in md and "MobileNetV1" in md


@pytest.mark.slow
def test_profile_train_step_quick():
  text = run("experiments.profile_train_step", "--quick", "--rows", "3")
  assert "op time per step" in text and "thunks per step" in text
