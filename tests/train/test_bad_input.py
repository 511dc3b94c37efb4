"""Bad input: one line saying what is wrong and what is allowed, exit code 1, nothing written."""

import os

import pytest

from pikelpn_jax.train import train_and_evaluate
from tests.train import tiny_model
from tests.train.train_helpers import TINY_CONFIG, run_cli


def snapshot(path):
  if not os.path.exists(path):
    return None
  return sorted(
    (os.path.relpath(os.path.join(r, f), path), os.path.getmtime(os.path.join(r, f)))
    for r, _, fs in os.walk(path)
    for f in fs
  )


def rejects(c, workdir, exc, *fragments):
  before = snapshot(workdir)
  with pytest.raises(exc) as e:
    train_and_evaluate(c, workdir)
  msg = str(e.value)
  assert "\n" not in msg and all(f in msg for f in fragments), msg
  assert snapshot(workdir) == before  # nothing written (or created)
  return msg


@pytest.mark.parametrize(
  "field,value",
  [
    ("num_train_steps", 0),
    ("num_train_steps", -3),
    ("batch_size", 0),
    ("batch_size", -8),
    ("eval_batch_size", 0),
    ("checkpoint_every_steps", -1),
  ],
)
def test_zero_or_negative_steps_and_batch(tmp_path, field, value):
  c = tiny_model.tiny_config()
  c[field] = value
  rejects(c, str(tmp_path / "w"), ValueError, f"{field}={value}", "positive integer")


def test_unknown_dataset(tmp_path):
  c = tiny_model.tiny_config()
  c.dataset.name = "mnist"
  rejects(c, str(tmp_path / "w"), ValueError, "'mnist'", "fashion_mnist", "synthetic")


def test_missing_data_files(tmp_path):
  c = tiny_model.tiny_config(dataset="fashion_mnist")
  c.dataset.fmnist_dir = str(tmp_path / "no_fmnist")
  rejects(c, str(tmp_path / "w"), FileNotFoundError, "apt-get install -y dataset-fashion-mnist")


def test_missing_teacher_checkpoint(tmp_path):
  c = tiny_model.tiny_config()
  c.distill.teacher_config, c.distill.teacher_workdir = TINY_CONFIG, str(tmp_path / "no_teacher")
  rejects(c, str(tmp_path / "w"), FileNotFoundError, "no teacher checkpoint", "no_teacher")
  c.distill.teacher_workdir = ""
  rejects(c, str(tmp_path / "w"), ValueError, "needs distill.teacher_workdir")
  c.distill.teacher_config = "configs/nope.py:x"
  c.distill.teacher_workdir = str(tmp_path)
  rejects(c, str(tmp_path / "w"), FileNotFoundError, "configs/nope.py")


def test_mismatched_teacher_checkpoint(trained_tiny, tmp_path):
  teacher_dir, _ = trained_tiny
  wide = tmp_path / "wide_teacher.py"
  wide.write_text(
    "from tests.train.tiny_model import tiny_config\n"
    "def get_config(v=''):\n  c = tiny_config(); c.model.tiny_width = 6; return c\n"
  )
  c = tiny_model.tiny_config()
  c.distill.teacher_config, c.distill.teacher_workdir = str(wide), teacher_dir
  rejects(c, str(tmp_path / "w"), ValueError, "distill.teacher_workdir", "does not match")


def test_workdir_holding_another_model(trained_tiny):
  workdir, _ = trained_tiny
  c = tiny_model.tiny_config(steps=4)
  c.model.name = tiny_model.OTHER_NAME
  rejects(c, workdir, ValueError, "of model 'tiny_test_net'", "asks for model 'tiny_test_net_b'")
  c = tiny_model.tiny_config(steps=4)
  c.model.tiny_width = 8
  rejects(c, workdir, ValueError, "does not match the config")


def cli_error(r):
  lines = r.stderr.strip().splitlines()
  assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), r.stderr
  return lines[0]


def test_cli_bad_input_exits_1_with_one_line(tmp_path):
  w = str(tmp_path / "w")
  assert "num_train_steps=0" in cli_error(run_cli(w, "--config.num_train_steps=0"))
  assert "'imagenet'" in cli_error(run_cli(w, "--config.dataset.name=imagenet"))
  multi = ("--coordinator_address=127.0.0.1:1", "--num_processes=2", "--process_id=0")
  msg = cli_error(run_cli(w, *multi, "--heartbeat_timeout_s=0"))
  assert msg == "error: --heartbeat_timeout_s=0 is not allowed; use seconds >= 1"
  assert not os.path.exists(w)


def test_cli_batch_not_divisible_by_devices(tmp_path):
  w = str(tmp_path / "w")
  msg = cli_error(run_cli(w, "--config.batch_size=12", devices=8))
  assert "batch_size=12" in msg and "8 devices" in msg and "multiple of 8" in msg
  assert not os.path.exists(w)
