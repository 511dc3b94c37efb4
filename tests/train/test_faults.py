"""Kill-and-resume, kills during checkpoint writes, NaN losses, damaged checkpoints."""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from pikelpn_jax.train import checkpoint
from pikelpn_jax.train.loop import params_sha256
from pikelpn_jax.train.steps import abstract_variables
from tests.train import tiny_model
from tests.train.train_helpers import REPO, TINY_CONFIG, repo_env, run_cli

STEPS = 24
RUN = (
  f"--config.num_train_steps={STEPS}",
  "--config.checkpoint_every_steps=2",
  "--config.keep_checkpoints=100",
  f"--config.eval_every_steps={STEPS}",
)


def results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)


def config():
  c = tiny_model.tiny_config(steps=STEPS)
  c.checkpoint_every_steps, c.keep_checkpoints = 2, 100
  return c


def complete_steps(workdir):
  d = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def kill_when(proc, condition, timeout=120):
  """SIGKILLs proc as soon as condition() holds; returns whether it was killed before finishing."""
  end = time.monotonic() + timeout
  while proc.poll() is None and time.monotonic() < end:
    if condition():
      proc.send_signal(signal.SIGKILL)
      proc.wait()
      return True
    time.sleep(0.001)
  proc.wait()
  return False


@pytest.mark.slow
def test_sigkill_anywhere_then_rerun_equals_uninterrupted_run(tmp_path):
  ref, work = str(tmp_path / "ref"), str(tmp_path / "work")
  r = run_cli(ref, *RUN)
  assert r.returncode == 0, r.stderr[-2000:]
  ref_sha = results(ref)["params_sha256"]
  # The CLI prints the ACEv2 report by category, then the results table.
  printed = re.search(rf"^params_sha256 +{ref_sha}$", r.stdout, re.M)
  assert printed and r.stdout.index("category") < printed.start(), r.stdout[-3000:]

  # 1) Kill while a checkpoint is being written (a temporary directory exists).
  tmp_glob = os.path.join(work, "checkpoints", "*orbax-checkpoint-tmp*")
  proc = run_cli(work, *RUN, wait=False)
  killed = kill_when(proc, lambda: complete_steps(work) and glob.glob(tmp_glob))
  assert killed, "the run finished before a checkpoint write could be interrupted"
  # Every checkpoint that survived restores to exactly what the uninterrupted run saved.
  c = config()
  ro_ref = checkpoint.Checkpoints(ref, read_only=True)
  ro_work = checkpoint.Checkpoints(work, read_only=True)

  abstract = abstract_variables(c)
  for step in complete_steps(work):
    got = ro_work.restore_model(step, abstract)["params"]
    assert params_sha256(got) == params_sha256(ro_ref.restore_model(step, abstract)["params"])
  ro_work.close()
  ro_ref.close()

  # 2) Rerun, kill again at an arbitrary moment, 3) rerun to the end.
  proc = run_cli(work, *RUN, wait=False)
  start = time.monotonic()
  delay = float(np.random.default_rng().uniform(0.5, 4.0))
  kill_when(proc, lambda: time.monotonic() - start > delay)
  r = run_cli(work, *RUN)
  assert r.returncode == 0, r.stderr[-2000:]
  assert results(work)["params_sha256"] == ref_sha
  with open(os.path.join(work, "metrics.jsonl")) as f:
    steps = [json.loads(x)["step"] for x in f if "train_loss" in x]
  assert steps == list(range(1, STEPS + 1))  # no step logged twice after the resumes


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
  work = str(tmp_path / "nan")
  # Warm-up from lr 0: step 0 is a no-op, step 1 multiplies by ~1e37 and overflows.
  r = run_cli(
    work,
    "--config.learning_rate=1e38",
    "--config.warmup_steps=3",
    "--config.checkpoint_every_steps=1",
    "--config.optimizer=sgd",
  )
  assert r.returncode == 1
  err = r.stderr.strip().splitlines()[-1]  # after the progress bar
  assert err.startswith("error: loss became non-finite") and "last good checkpoint is step" in err
  assert not os.path.exists(os.path.join(work, "results.json"))
  c = tiny_model.tiny_config()
  v = checkpoint.restore_latest(work, c)
  assert checkpoint.latest_step(work) >= 1
  assert all(np.isfinite(np.asarray(x)).all() for x in jax_leaves(v))


def jax_leaves(tree):
  import jax

  return jax.tree.leaves(tree)


def damage_newest(workdir):
  """Flips bytes in the data files of the newest checkpoint's model; returns its step."""
  step = complete_steps(workdir)[-1]
  files = glob.glob(os.path.join(workdir, "checkpoints", str(step), "model", "d", "*"))
  assert files
  for path in files:
    with open(path, "r+b") as f:
      data = bytearray(f.read())
      for i in range(len(data) // 4, len(data) // 4 + 32):
        data[i] ^= 0xFF
      f.seek(0)
      f.write(data)
  return step


def test_damaged_newest_checkpoint(trained_tiny, tmp_path, caplog):
  from pikelpn_jax.train import train_and_evaluate

  src, _ = trained_tiny
  work = str(tmp_path / "work")
  shutil.copytree(src, work)
  bad = damage_newest(work)
  assert bad == 4 and complete_steps(work) == [2, 4]
  c = tiny_model.tiny_config(steps=4)

  # The tools that read the newest checkpoint name it in one line (export: exit code 1).
  with pytest.raises(
    checkpoint.CheckpointError,
    match=rf"checkpoints/{bad} \(step {bad}\) is "
    "unreadable: DATA_LOSS .*checksum",
  ) as e:
    checkpoint.restore_latest(work, c)
  assert "\n" not in str(e.value) and len(str(e.value)) < 600
  for cli in (
    ["pikelpn_jax.export", "--out", str(tmp_path / "m.plpn")],
    ["pikelpn_jax.ace", "--json", str(tmp_path / "ace.json")],
  ):
    p = subprocess.run(
      [sys.executable, "-m", cli[0], "--config", TINY_CONFIG, "--workdir", work, *cli[1:]],
      cwd=REPO,
      env=repo_env(),
      capture_output=True,
      text=True,
      timeout=300,
    )
    assert p.returncode == 1 and p.stderr.count("\n") == 1, (cli[0], p.stderr[-3000:])
    assert p.stderr.startswith(f"error: checkpoint {work}/checkpoints/{bad} (step {bad})")
    assert p.stdout == ""
  assert sorted(os.listdir(tmp_path)) == ["work"]

  # A resumed run skips it for step 2, sets it aside, and retrains 2 -> 4 exactly.
  with caplog.at_level("WARNING"):
    train_and_evaluate(c, work, config_source="tiny")
  said = [r.getMessage() for r in caplog.records if "skipped checkpoint" in r.getMessage()]
  assert len(said) == 1 and "\n" not in said[0], said
  assert f"checkpoints/{bad}, unreadable (DATA_LOSS" in said[0] and "from step 2" in said[0]
  assert complete_steps(work) == [2, 4]
  assert os.listdir(os.path.join(work, "damaged_checkpoints")) == [str(bad)]
  abstract = abstract_variables(c)
  shas = []
  for d in (src, work):
    ro = checkpoint.Checkpoints(d, read_only=True)
    shas.append(params_sha256(ro.restore_model(bad, abstract)["params"]))
    ro.close()
  assert shas[0] == shas[1]
