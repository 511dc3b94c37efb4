"""A workdir in a bucket (`gs://…`, here a local fake GCS served by tests/train/fake_gcs.py):
the files a run writes and reads outside orbax (config.json, metrics.jsonl, results.json,
acev2.json) go through pikelpn_jax.workdir, and the checkpoint directory keeps the URL, so
orbax writes there through tensorstore.

Orbax's own writes to the fake are not tested here: the emulator does not reproduce GCS's
generation semantics closely enough for tensorstore's OCDBT manifests (some writes fail with
"Malformed StorageGeneration"), so a test of them would fail by chance."""

import json
import os
import subprocess
import sys

import pytest
from etils import epath

from pikelpn_jax import workdir as wd
from pikelpn_jax.train import checkpoint
from pikelpn_jax.train.loop import MetricsLog, write_json
from tests.train.train_helpers import HERE, free_port


@pytest.fixture(scope="module")
def bucket():
  port = free_port()
  server = subprocess.Popen(
    [sys.executable, os.path.join(HERE, "fake_gcs.py"), str(port), "bkt"],
    stdout=subprocess.PIPE,
    stderr=subprocess.DEVNULL,
    text=True,
  )
  env = {
    "STORAGE_EMULATOR_HOST": f"http://localhost:{port}",  # gcsfs (etils.epath)
    "TENSORSTORE_GCS_HTTP_URL": f"http://localhost:{port}",  # orbax's arrays
    "GOOGLE_CLOUD_PROJECT": "test",
    "NO_GCE_CHECK": "true",  # gcsfs: no metadata-server probe for credentials
  }
  saved = {k: os.environ.get(k) for k in env}
  os.environ.update(env)
  try:
    assert server.stdout.readline().strip() == "ready"
    yield "gs://bkt"
  finally:
    for k, v in saved.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v
    # The server stops itself when this process exits: tensorboardX's bucket writer uploads
    # once more at interpreter exit, and retries for minutes if the server is gone.


def test_workdir_files_in_a_bucket(bucket):
  d = wd.join(bucket, "files")
  assert wd.resolve(d) == d and wd.is_url(d) and not wd.exists(d)
  wd.makedirs(d)
  f = wd.join(d, "a.jsonl")
  wd.append_text(f, "1\n")
  wd.append_text(f, "2\n")
  assert wd.read_text(f) == "1\n2\n" and wd.isdir(d) and not wd.isdir(f)
  wd.write_text(f, "3\n")
  wd.rename(f, wd.join(d, "b.jsonl"))
  assert not wd.exists(f) and wd.read_text(wd.join(d, "b.jsonl")) == "3\n"
  # a directory moves object by object (how a damaged checkpoint step is set aside)
  wd.write_text(wd.join(d, "step", "x", "y"), "z")
  wd.rename(wd.join(d, "step"), wd.join(d, "aside", "step"))
  assert not wd.exists(wd.join(d, "step"))
  assert wd.read_text(wd.join(d, "aside", "step", "x", "y")) == "z"


def test_local_workdirs_are_made_absolute(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert wd.resolve("run") == str(tmp_path / "run")
  assert checkpoint.checkpoint_dir("run") == str(tmp_path / "run" / "checkpoints")
  wd.write_text(str(tmp_path / "x.json"), "{}")
  assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]  # the temporary file is renamed


def test_a_run_log_and_results_in_a_bucket(bucket):
  run = wd.join(bucket, "runs", "log")
  assert checkpoint.checkpoint_dir(run) == f"{run}/checkpoints"  # orbax gets the URL as given
  assert checkpoint.latest_step(run) is None  # nothing there yet, and nothing written
  wd.makedirs(run)
  log = MetricsLog(run, resume_step=0)
  for step in (1, 2, 3):
    log.write(step, {"train_loss": 1.0 / step})
  log.close()
  # a rerun resuming from step 2 drops the lines after it, as on local disk
  log = MetricsLog(run, resume_step=2)
  log.write(3, {"train_loss": 0.25})
  log.close()
  lines = [json.loads(ln) for ln in wd.read_text(wd.join(run, "metrics.jsonl")).splitlines()]
  assert [(r["step"], r["train_loss"]) for r in lines] == [(1, 1.0), (2, 0.5), (3, 0.25)]
  assert any(epath.Path(run, "tb").iterdir())  # TensorBoard events written to the bucket
  write_json(wd.join(run, "results.json"), {"step": 3})
  assert json.loads(wd.read_text(wd.join(run, "results.json"))) == {"step": 3}
