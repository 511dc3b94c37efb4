"""python -m pikelpn_jax.ace on bad input: one line on stderr, exit 1, nothing written, before any
work; a config without a variant prices the file's default and says so."""

import json
import os
import subprocess
import sys

import pytest

from pikelpn_jax.config_cli import ConfigSpecError, apply_overrides, load_config_spec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CFG = "configs/pikelpn.py:fmnist"


def run(*args, cwd=ROOT):
  return subprocess.run(
    [sys.executable, "-m", "pikelpn_jax.ace", *args],
    cwd=cwd,
    capture_output=True,
    text=True,
    timeout=300,
  )


@pytest.mark.parametrize(
  "args,names",
  [
    (["--config", "configs/nope.py:1x"], "configs/nope.py"),
    (["--config", "configs/pikelpn.py:zz"], "'zz'"),
    (["--config", CFG, "--config.model.nope=3"], "'nope'"),
    (["--config", CFG, "--config.model.width=abc"], "'abc'"),
    (["--config", CFG, "--config.model=3"], "model"),
    (["--config", CFG, "--acc_bits", "x"], "acc_bits"),
    (["--config", CFG, "--float_bits", "0"], "float_bits=0"),
    (["--config", CFG, "--fold", "all"], "fold"),
    (["--config", CFG, "--json", "/nonexistent_dir/r.json"], "/nonexistent_dir"),
    (["--config", CFG, "--workdir", "/nonexistent_dir"], "/nonexistent_dir"),
    (["--config", CFG, "--bogus"], "bogus"),
    (["--config.model.width=2"], "--config"),
  ],
)
def test_bad_input_is_one_line_and_exit_1(args, names, capsys, monkeypatch):
  # In process (the CLI's main() returns the exit code; one subprocess run below checks the
  # real exit status): no JAX start-up per case.
  from absl import flags

  from pikelpn_jax.ace.__main__ import main

  monkeypatch.chdir(ROOT)
  flags.FLAGS.unparse_flags()
  try:
    assert main(["ace", *args]) == 1
  finally:
    flags.FLAGS.unparse_flags()
  out = capsys.readouterr()
  lines = out.err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and names in lines[0], out.err
  assert out.out == ""


def test_bad_input_exit_status_in_a_subprocess():
  p = run("--config", "configs/pikelpn.py:zz")
  assert p.returncode == 1 and p.stdout == ""
  assert p.stderr.strip().splitlines() == [
    "error: configs/pikelpn.py: variant 'zz' is not allowed; use one of "
    "['1x', '2x', '3x', '6x', 'fmnist']"
  ]


def test_missing_variant_prices_the_default_and_says_so(tmp_path):
  out = tmp_path / "r.json"
  p = run(
    "--config",
    "configs/pikelpn.py",
    "--config.dataset.image_size=32",
    "--json",
    str(out),
    "--fold",
    "affine",
  )
  assert p.returncode == 0, p.stderr
  assert "the file's default variant" in p.stdout
  s = json.loads(out.read_text())["settings"]
  assert s["config_source"] == "configs/pikelpn.py:1x" and s["config_variant_defaulted"]
  assert s["config_overrides"] == ["dataset.image_size=32"] and s["fold"] == "affine"


def test_config_helpers_raise_one_line_errors():
  config, source, defaulted = load_config_spec("configs/mobilenet_v2.py:w4a4")
  assert (source, defaulted) == ("configs/mobilenet_v2.py:w4a4", False)
  assert apply_overrides(config, [("model.width", "0.5"), ("dataset.channels", "1")]) == [
    "model.width=0.5",
    "dataset.channels=1",
  ]
  assert config.model.width == 0.5 and config.dataset.channels == 1
  for bad in [("model.width", None), ("model.nope", "1"), ("dataset.channels", "1.5")]:
    with pytest.raises(ConfigSpecError) as e:
      apply_overrides(config, [bad])
    assert "\n" not in str(e.value)
  with pytest.raises(ConfigSpecError, match="no config file"):
    load_config_spec("configs/nope.py")


def test_a_variant_for_a_config_without_variants_names_the_file(tmp_path):
  cfg = tmp_path / "single.py"
  base = os.path.join(ROOT, "configs", "pikelpn.py:fmnist")
  cfg.write_text(
    "from pikelpn_jax.config_base import load_config\n\n\n"
    f"def get_config():\n  return load_config({base!r})\n"
  )
  with pytest.raises(ConfigSpecError) as e:
    load_config_spec(f"{cfg}:x")
  assert str(cfg) in str(e.value) and "takes no variant" in str(e.value)
  assert "\n" not in str(e.value)
  config, source, defaulted = load_config_spec(str(cfg))  # no variant: the one config
  assert (source, defaulted, config.model.name) == (str(cfg), False, "pikelpn")
