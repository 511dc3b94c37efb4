"""Data parallelism: an 8-device CPU mesh gives the losses of one device for the same global batch."""

import json
import os

import numpy as np
import pytest

from tests.train.train_helpers import run_cli

RUN = (
  "--config.num_train_steps=4",
  "--config.batch_size=16",
  "--config.eval_batch_size=16",
  "--config.checkpoint_every_steps=4",
)


def losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    recs = [json.loads(x) for x in f]
  return (
    [r["train_loss"] for r in recs if "train_loss" in r],
    [r["eval_loss"] for r in recs if "eval_loss" in r],
  )


@pytest.mark.slow
def test_eight_devices_match_one(tmp_path):
  one, eight = str(tmp_path / "one"), str(tmp_path / "eight")
  for workdir, devices in ((one, 1), (eight, 8)):
    r = run_cli(workdir, *RUN, devices=devices)
    assert r.returncode == 0, r.stderr[-2000:]
  with open(os.path.join(eight, "results.json")) as f:
    assert json.load(f)["devices"] == 8
  (t1, e1), (t8, e8) = losses(one), losses(eight)
  assert len(t1) == len(t8) == 4
  np.testing.assert_allclose(t8, t1, rtol=1e-4)
  np.testing.assert_allclose(e8, e1, rtol=1e-4)
