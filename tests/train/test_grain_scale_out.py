"""main.py on a generated imagenet2012 (ArrayRecord, through grain): kill + resume with 2 worker
processes is exact, and 2 processes on localhost (jax.distributed, gloo) match 1 process."""

import contextlib
import json
import os
import signal
import time

import numpy as np
import pytest

from pikelpn_jax.train import checkpoint
from tests.train import tiny_model
from tests.train.train_helpers import free_port, launch

STEPS = 4


def overrides(data_dir, workers):
  return (
    "--config.dataset.name=imagenet2012",
    f"--config.dataset.data_dir={data_dir}",
    f"--config.dataset.worker_count={workers}",
    "--config.dataset.train_examples=-1",
    "--config.dataset.eval_examples=-1",
    f"--config.num_train_steps={STEPS}",
    "--config.checkpoint_every_steps=2",
    f"--config.eval_every_steps={STEPS}",
    "--config.log_every_steps=2",
    # SGD: Adam turns float noise in near-zero gradients into ±lr steps (2 hosts vs 1)
    "--config.optimizer=sgd",
  )


def finish(procs, timeout=300):
  for p in procs:
    _, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err[-3000:]


def kill_after_checkpoint(procs, workdir, step=2, timeout=300):
  """SIGKILLs every process group once checkpoint `step` is complete."""
  ckpt = os.path.join(workdir, "checkpoints", str(step))
  end = time.monotonic() + timeout
  while time.monotonic() < end and any(p.poll() is None for p in procs):
    if os.path.isdir(ckpt):
      for p in procs:
        with contextlib.suppress(ProcessLookupError):
          os.killpg(p.pid, signal.SIGKILL)
      for p in procs:
        p.communicate()
      return
    time.sleep(0.01)
  errors = [p.communicate()[1][-2000:] for p in procs]
  raise AssertionError(
    f"the run ended before checkpoint {step} (exit codes {[p.returncode for p in procs]}): {errors}"
  )


def results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)


def params(workdir):
  c = tiny_model.tiny_config(steps=STEPS)
  return checkpoint.restore_latest(workdir, c)["params"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  pytest.importorskip("tensorflow_datasets")
  from experiments.lib.imagenet_like import write_imagenet_like

  root = str(tmp_path_factory.mktemp("tfds"))
  write_imagenet_like(
    root, {"train": 20, "validation": 8}, num_classes=10, sizes=((48, 36), (36, 48)), num_shards=2
  )
  return root


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
  """The uninterrupted 1-process run, decoding in the training process (worker_count=0)."""
  workdir = str(tmp_path_factory.mktemp("reference"))
  finish([launch(workdir, *overrides(data_dir, 0))])
  return workdir


@pytest.mark.slow
def test_two_workers_killed_and_resumed_equal_the_uninterrupted_run(data_dir, reference, tmp_path):
  work = str(tmp_path / "resumed")
  args = overrides(data_dir, 2)
  kill_after_checkpoint([launch(work, *args)], work)
  assert not os.path.exists(os.path.join(work, "results.json"))
  finish([launch(work, *args)])
  assert results(work)["params_sha256"] == results(reference)["params_sha256"]
  with open(os.path.join(work, "metrics.jsonl")) as f:
    waits = [r["input_wait_fraction"] for r in map(json.loads, f) if "input_wait_fraction" in r]
  assert waits and all(0.0 <= w <= 1.0 for w in waits)


@pytest.mark.slow
def test_two_processes_on_localhost_match_one_after_kill_and_resume(data_dir, reference, tmp_path):
  work = str(tmp_path / "two_hosts")

  def start():
    port = free_port()
    return [
      launch(
        work,
        *overrides(data_dir, 0),
        f"--coordinator_address=127.0.0.1:{port}",
        "--num_processes=2",
        f"--process_id={i}",
      )
      for i in range(2)
    ]

  kill_after_checkpoint(start(), work)
  finish(start())
  r = results(work)
  assert r["devices"] == 2 and r["step"] == STEPS
  got, want = params(work), params(reference)
  flat_got = {"/".join(map(str, k)): v for k, v in _flatten(got)}
  flat_want = {"/".join(map(str, k)): v for k, v in _flatten(want)}
  assert flat_got.keys() == flat_want.keys()
  for k in flat_want:
    np.testing.assert_allclose(flat_got[k], flat_want[k], rtol=2e-3, atol=2e-5, err_msg=k)


def _flatten(tree, prefix=()):
  if isinstance(tree, dict):
    for k, v in tree.items():
      yield from _flatten(v, prefix + (k,))
  else:
    yield prefix, np.asarray(tree)
