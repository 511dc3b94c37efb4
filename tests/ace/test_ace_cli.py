"""python -m pikelpn_jax.ace: JSON contract, config overrides, checkpoints and bad input."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = "configs/pikelpn.py:fmnist"
SMALL = ["--config.model.width=0.25"]


def run_cli(*args):
  return subprocess.run(
    [sys.executable, "-m", "pikelpn_jax.ace", "--config", CONFIG, *args],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
  )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A checkpoint of the small fmnist PikeLPN, saved as training does."""
  from pikelpn_jax.config_base import load_config
  from pikelpn_jax.models import build_model
  from pikelpn_jax.train.checkpoint import Checkpoints, model_meta

  config = load_config(os.path.join(ROOT, CONFIG))
  config.model.width = 0.25
  from pikelpn_jax.ace.api import abstract_variables, model_input_spec

  model = build_model(config)
  # Values do not matter to the analyzer, only shapes: zeros avoid a slow eager init.
  v = jax.tree_util.tree_map(
    lambda s: jnp.zeros(s.shape, s.dtype), abstract_variables(model, model_input_spec(config))
  )
  wd = str(tmp_path_factory.mktemp("ace_ckpt"))
  ck = Checkpoints(wd)
  ck.save(
    1,
    {
      "params": v["params"],
      "batch_stats": v["batch_stats"],
      "opt_state": {},
      "step": jnp.asarray(1),
    },
    config,
    model_meta(config, CONFIG, 1),
  )
  ck.close()
  from pikelpn_jax.config_base import config_to_json

  with open(os.path.join(wd, "config.json"), "w") as f:  # as main.py writes it
    f.write(config_to_json(config) + "\n")
  return wd


@pytest.mark.slow  # prices a zoo model in subprocesses (tens of seconds)
def test_cli_json_contract_and_overrides(tmp_path):
  out = tmp_path / "r.json"
  p = run_cli(*SMALL, "--json", str(out), "--by", "category")
  assert p.returncode == 0, p.stderr
  assert "scaling" in p.stdout and "ACEv2" in p.stdout
  d = json.loads(out.read_text())
  assert {
    "macs",
    "ace",
    "acev2",
    "params",
    "model_bits",
    "breakdown",
    "layers",
    "unaccounted",
    "settings",
    "timing",
  } <= set(d)
  assert list(d["breakdown"]) == ["mac", "norm", "activation", "scaling", "residual_pool", "other"]
  assert d["unaccounted"] == [] and set(d["timing"]) == {"trace_s", "walk_s"}
  out16 = tmp_path / "r16.json"
  p16 = run_cli(
    *SMALL, "--config.model.quantnorm=False", "--float_bits", "16", "--json", str(out16)
  )
  assert p16.returncode == 0, p16.stderr
  d16 = json.loads(out16.read_text())
  assert d16["settings"]["float_bits"] == 16
  assert d16["macs"] == d["macs"] and d16["breakdown"]["norm"] != d["breakdown"]["norm"]


@pytest.mark.slow  # prices a checkpointed zoo model in subprocesses (tens of seconds)
def test_cli_prices_a_matching_checkpoint_and_refuses_another(workdir, tmp_path):
  out = tmp_path / "ck.json"
  ok = run_cli(*SMALL, "--workdir", workdir, "--json", str(out))
  assert ok.returncode == 0, ok.stderr
  assert json.loads(out.read_text())["params"] > 0
  bad = run_cli("--workdir", workdir)  # width 0.5: other shapes
  assert bad.returncode == 1
  lines = [l for l in bad.stderr.splitlines() if l.startswith("error:")]
  assert len(lines) == 1 and "does not match" in lines[0], bad.stderr


def test_cli_bad_value_exits_1_with_one_line(tmp_path):
  p = run_cli(*SMALL, "--acc_bits", "0")
  assert p.returncode == 1
  assert p.stderr.strip().splitlines()[-1].startswith("error: acc_bits=0")


def test_cli_workdir_alone_prices_the_checkpoint_with_its_training_config(
  workdir, tmp_path, capsys
):
  from absl import flags

  from pikelpn_jax.ace.__main__ import main

  out = tmp_path / "wd.json"
  flags.FLAGS.unparse_flags()
  try:  # in process: no second JAX start-up
    assert main(["ace", "--workdir", workdir, "--json", str(out)]) == 0
  finally:
    flags.FLAGS.unparse_flags()
  source = os.path.join(workdir, "config.json")
  printed = capsys.readouterr().out
  assert printed.startswith(f"pricing {workdir} with the config it was trained with ({source})")
  d = json.loads(out.read_text())
  assert d["settings"]["config_source"] == source and d["settings"]["config_model"]["width"] == 0.25
  assert d["unaccounted"] == [] and d["params"] > 0
