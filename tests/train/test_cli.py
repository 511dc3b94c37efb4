"""The command-line layer: the ACEv2 report of the trained model (results.json's totals,
acev2.json, the printed tables), and that it is the training package's only analyzer import."""

import glob
import json
import os
import shutil

from pikelpn_jax.train import cli
from tests.train import tiny_model


def test_run_adds_the_acev2_report_of_the_final_checkpoint(trained_tiny, tmp_path, capsys):
  src, results = trained_tiny
  workdir = str(tmp_path / "run")
  shutil.copytree(src, workdir)  # a finished run: run() retrains nothing, then prices it
  assert cli.run(tiny_model.tiny_config(steps=4), workdir, "tiny") == 0
  with open(os.path.join(workdir, "results.json")) as f:
    on_disk = json.load(f)
  for key in ("eval_top1", "eval_top5", "macs", "ace", "acev2"):
    assert key in on_disk
  assert on_disk["acev2"] > 0 and on_disk["params_sha256"] == results["params_sha256"]
  with open(os.path.join(workdir, "acev2.json")) as f:
    assert json.load(f)["acev2"] == on_disk["acev2"]
  out = capsys.readouterr().out
  # The ACEv2 report by category, then the results table.
  assert out.index("category") < out.index("params_sha256") < out.index("acev2 ")


def test_only_the_cli_imports_the_analyzer():
  train = os.path.dirname(os.path.abspath(cli.__file__))
  importers = [
    os.path.basename(p)
    for p in sorted(glob.glob(os.path.join(train, "*.py")))
    if "pikelpn_jax.ace" in open(p).read()
  ]
  assert importers == ["cli.py"]
