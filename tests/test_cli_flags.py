"""Bad command lines of main.py and `python -m pikelpn_jax.export` (pikelpn_jax/config_cli.py).

Each answers with one line on stderr naming the bad value and what is allowed, exit code 1, and
writes nothing: no workdir, no output file. Also the one override parser every CLI shares.
"""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "tests/train/tiny_config.py:tiny"

# (extra argv, fragments the one line must contain); main.py also gets --workdir <tmp>/w.
MAIN_CASES = {
  "missing_file": (
    ["--config", "configs/no_such_file.py"],
    ["'configs/no_such_file.py'", "pikelpn.py"],
  ),
  "bad_variant": (
    ["--config", "configs/pikelpn.py:no_such_variant"],
    ["'no_such_variant'", "'fmnist'"],
  ),
  "unknown_field": (
    ["--config", TINY, "--config.no_such_field=3"],
    ["--config.no_such_field", "batch_size"],
  ),
  "unknown_nested_field": (
    ["--config", TINY, "--config.model.quant_nrm=False"],
    ["--config.model.quant_nrm", "quantnorm"],
  ),
  "bad_int": (["--config", TINY, "--config.batch_size=abc"], ["'abc'", "int"]),
  "bad_bool": (["--config", TINY, "--config.model.quantnorm=maybe"], ["'maybe'", "bool"]),
  "bad_float": (["--config", TINY, "--config.learning_rate=fast"], ["'fast'", "float"]),
  "bad_tuple": (["--config", TINY, "--config.model.bit_rules=[oops"], ["'[oops'", "tuple"]),
  "bad_value": (
    ["--config", TINY, "--config.num_train_steps=0"],
    ["num_train_steps=0", "positive integer"],
  ),
  "unknown_flag": (["--config", TINY, "--epochs=3"], ["--epochs", "workdir"]),
  "positional": (["--config", TINY, "stray"], ["'stray'"]),
  "no_config": ([], ["--config", "required"]),
}

EXPORT_CASES = {
  "missing_file": (["--config", "configs/no_such_file.py"], ["'configs/no_such_file.py'"]),
  "bad_variant": (["--config", "configs/resnet.py:34"], ["'34'", "'18_float'"]),
  "unknown_field": (
    ["--config", TINY, "--config.dataset.no_such=1"],
    ["--config.dataset.no_such", "image_size"],
  ),
  "bad_probe_examples": (["--probe_examples=0"], ["--probe_examples=0", "positive integer"]),
  "probe_examples_not_int": (["--probe_examples=many"], ["'many'", "int"]),
  "unknown_flag": (["--output=x"], ["--output", "out"]),
  "no_config_json": ([], ["config.json", "--config"]),
  "override_without_config": (["--config.seed=1"], ["--config.seed", "not given"]),
}


def run(args, cwd=REPO):
  env = dict(os.environ, PYTHONPATH=REPO)
  return subprocess.run(
    [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
  )


def check_one_line(p, fragments):
  assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
  lines = p.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr[-2000:]
  assert all(f in lines[0] for f in fragments), (lines[0], fragments)
  assert p.stdout == ""


@pytest.mark.parametrize("case", sorted(MAIN_CASES))
def test_main_bad_input(tmp_path, case):
  args, fragments = MAIN_CASES[case]
  workdir = tmp_path / "w"
  p = run(["main.py", *args, "--workdir", str(workdir)])
  check_one_line(p, fragments)
  assert not workdir.exists()


@pytest.mark.parametrize("case", sorted(EXPORT_CASES))
def test_export_bad_input(tmp_path, case):
  args, fragments = EXPORT_CASES[case]
  workdir, out = tmp_path / "w", tmp_path / "model.plpn"
  workdir.mkdir()
  p = run(["-m", "pikelpn_jax.export", "--workdir", str(workdir), "--out", str(out), *args])
  check_one_line(p, fragments)
  assert sorted(os.listdir(tmp_path)) == ["w"] and not os.listdir(workdir)


@pytest.mark.parametrize(
  "args,fragments",
  [
    (["--out", "{tmp}/no_dir/m.plpn"], ["no_dir", "existing directory"]),
    (["--workdir", "{tmp}/no_workdir"], ["'{tmp}/no_workdir'", "training workdir"]),
  ],
)
def test_export_bad_paths(tmp_path, args, fragments):
  args = [a.format(tmp=tmp_path) for a in args]
  base = {"--workdir": str(tmp_path), "--out": str(tmp_path / "m.plpn")}
  base.update(dict(zip(args[::2], args[1::2])))
  p = run(["-m", "pikelpn_jax.export", *[x for kv in base.items() for x in kv]])
  check_one_line(p, [f.format(tmp=tmp_path) for f in fragments])
  assert os.listdir(tmp_path) == []


def test_json_overrides_become_python_literals():
  """A JSON value (true/false/null, arrays) of a --config override is read as the equal Python
  literal, arrays as tuples; a Python literal or anything else is left alone."""
  from pikelpn_jax.config_cli import json_overrides_as_literals, literal_or_json

  rules = '[["block0/pw", {"w_bits": 2, "w_per_channel": false, "a_signed": null}]]'
  want = (("block0/pw", {"w_bits": 2, "w_per_channel": False, "a_signed": None}),)
  assert literal_or_json(rules) == want
  assert literal_or_json("(1, 2)") == (1, 2)
  (arg,) = json_overrides_as_literals([f"--config.model.bit_rules={rules}"])
  assert arg == f"--config.model.bit_rules={want!r}"
  kept = ["--config.model.bit_rules=(('stem', {}),)", "--config.x=[oops", "--workdir=[1]"]
  assert json_overrides_as_literals(kept) == kept
  with pytest.raises(ValueError, match="neither a Python literal nor JSON"):
    literal_or_json("[oops")


def test_parse_value_reads_untyped_text():
  """The parser for values with no field type (eval_swap's --set, None-valued fields)."""
  from experiments.lib import eval_swap
  from pikelpn_jax.config_cli import parse_value

  assert eval_swap.parse_value is parse_value
  cases = {
    "None": None,
    "none_value": None,
    "none": "none",
    "True": True,
    "False": False,
    "16": 16,
    "-3": -3,
    "0.5": 0.5,
    "1e-3": 1e-3,
    "08": 8,
    "ceil": "ceil",
    "(1, 2)": (1, 2),
    "'x'": "x",
  }
  for raw, want in cases.items():
    got = parse_value(raw)
    assert got == want and type(got) is type(want), (raw, got)
  assert parse_value("inf") == float("inf")


def test_parse_override_follows_the_field_type():
  from pikelpn_jax.config_cli import ConfigSpecError, parse_override

  assert parse_override("a", "3", int) == 3
  assert parse_override("a", "3", float) == 3.0 and isinstance(
    parse_override("a", "3", float), float
  )
  assert parse_override("a", "3", str) == "3"
  for raw, want in (("true", True), ("T", True), ("1", True), (None, True), ("False", False)):
    assert parse_override("a", raw, bool) is want
  assert parse_override("a", "[1, 2]", tuple) == (1, 2)
  # JSON that is no Python literal (false, null) reads as tuples all the way down
  assert parse_override("a", '[["x", {"w_per_channel": false}]]', tuple) == (
    ("x", {"w_per_channel": False}),
  )
  assert parse_override("a", "8", type(None)) == 8
  for raw, kind, fragments in (
    ("maybe", bool, ["'maybe'", "bool"]),
    ("1.5", int, ["'1.5'", "int"]),
    ("x", float, ["'x'", "float"]),
    ("3", tuple, ["'3'", "tuple"]),
    (None, int, ["needs a value"]),
  ):
    with pytest.raises(ConfigSpecError) as e:
      parse_override("model.f", raw, kind)
    assert all(f in str(e.value) for f in fragments) and "\n" not in str(e.value), e.value


def test_main_applies_overrides_with_the_shared_parser():
  """main.py's --config.x=y give the config apply_overrides gives (the ace and search CLIs')."""
  from pikelpn_jax.config_base import config_to_json
  from pikelpn_jax.config_cli import apply_overrides, load_config_spec

  overrides = [
    ("num_train_steps", "7"),
    ("learning_rate", "0.5"),
    ("model.quantnorm", "false"),
    ("model.dq_round", "ceil"),
    ("model.act_param_bits", "8"),
    ("model.bit_rules", '[["stem", {"w_bits": 8}]]'),
    ("dataset.data_dir", "/data"),
    ("ace.float_bits", "16"),
  ]
  spec = "configs/pikelpn.py:fmnist_dhq_off"
  want, _, _ = load_config_spec(spec)
  apply_overrides(want, overrides)
  argv = ["--config", spec, *[f"--config.{k}={v}" for k, v in overrides], "--workdir", "/never"]
  code = (
    "import sys, json; sys.argv = ['main.py'] + json.loads(sys.argv[1]);"
    "import main; from pikelpn_jax.config_cli import parse_flags; parse_flags(sys.argv);"
    "from pikelpn_jax.config_base import config_to_json; print(config_to_json(main.FLAGS.config))"
  )
  p = run(["-c", code, json.dumps(argv)])
  assert p.returncode == 0, p.stderr[-3000:]
  assert p.stdout.strip() == config_to_json(want)
  assert json.loads(p.stdout)["model"]["act_param_bits"] == 8
