"""python -m pikelpn_jax.search: the answer is re-priced within the budget and its rules train
through main.py's override; bad input is one `error:` line, exit 1, no file written."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CFG = "configs/pikelpn.py:fmnist"
# a small space: two blocks searched, 2 or 4 bits, the config's QuantNorm/DQ (8 traces)
SMALL = ["--layers", "block[01]/.*", "--w_bits", "2,4", "--a_bits", "4", "--quantnorm_bits", "8"]
SMALL += ["--dq_formats", "pow2"]


def run(args, timeout=300):
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  return subprocess.run(
    [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
  )


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
  out = tmp_path_factory.mktemp("search") / "rules.json"
  p = run(
    ["-m", "pikelpn_jax.search", "--config", CFG, "--budget", "74M", "--out", str(out), *SMALL]
  )
  assert p.returncode == 0, p.stderr[-3000:]
  with open(out) as f:
    return json.load(f)


def test_answer_is_repriced_within_budget(searched):
  from pikelpn_jax.config_base import load_config
  from pikelpn_jax.search.cost import price

  assert searched["acev2"] <= searched["budget"] == 74_000_000
  assert searched["acev2"] < searched["config_acev2"]  # the config (75.6M) is over budget
  assert searched["predicted_acev2"] == searched["acev2"] and searched["additive"]
  assert set(searched["choices"]) == {"block0/dw", "block0/pw", "block1/dw", "block1/pw"}
  assert searched["sensitivity_method"] == "proxy"
  # an independent re-pricing of the config the rules give
  c = load_config(CFG)
  c.model.bit_rules = tuple((p, o) for p, o in searched["bit_rules"])
  for k, v in searched["model_overrides"].items():
    c.model[k] = v
  assert price(c).acev2 == searched["acev2"]


def test_low_bit_choices_bring_their_calibration(searched, tmp_path):
  """A 2-bit weight choice is written with mean-|w| scaling (space.LOW_BIT_WEIGHT_CALIBRATION);
  --keep_calibration writes the bits alone."""
  rules = dict(searched["bit_rules"])
  assert searched["low_bit_calibration"] is True
  two_bit = [p for p, c in searched["choices"].items() if c.startswith("w2")]
  assert two_bit, searched["choices"]  # 74M needs some 2-bit weights
  for p in searched["choices"]:
    want = "absmean" if p in two_bit else None
    assert rules[p].get("w_calibration") == want, (p, rules)
  out = tmp_path / "kept.json"
  budget = str(searched["config_acev2"] - 1)  # one layer, so it must take 2-bit weights
  args = ["--config", CFG, "--budget", budget, "--out", str(out), "--keep_calibration"]
  p = run(["-m", "pikelpn_jax.search", *args, "--layers", "block0/pw", *SMALL[2:]])
  assert p.returncode == 0, p.stderr[-3000:]
  kept = json.loads(out.read_text())
  assert kept["low_bit_calibration"] is False and kept["choices"]["block0/pw"].startswith("w2")
  assert all("w_calibration" not in o for _, o in kept["bit_rules"][:1])


def test_rules_round_trip_through_main_flags(searched):
  """main.py's parse_flags takes the JSON rules as --config.model.bit_rules (ml_collections'
  tuple parser reads Python literals only; config_cli rewrites JSON into one)."""
  code = (
    "import sys, json; sys.argv = ['main.py'] + json.loads(sys.argv[1]);"
    "import main; from pikelpn_jax.config_cli import parse_flags; parse_flags(sys.argv);"
    "from pikelpn_jax.models.quant_plan import plan_from_config;"
    "plan = plan_from_config(main.FLAGS.config.model);"
    "print(json.dumps([[p, dict(o)] for p, o in plan.rules]))"
  )
  argv = searched["main_flags"] + ["--workdir", "/nonexistent/never_written"]
  p = run(["-c", code, json.dumps(argv)])
  assert p.returncode == 0, p.stderr[-3000:]
  assert json.loads(p.stdout.strip().splitlines()[-1]) == [
    [r, dict(sorted(o.items()))] for r, o in searched["bit_rules"]
  ]


@pytest.mark.parametrize(
  "args, fragments",
  [
    (["--config", CFG, "--budget", "1M", *SMALL], ["--budget=1,000,000", "cheapest", "ACEv2"]),
    (["--config", "configs/pikelpn.py:9x", "--budget", "74M"], ["'9x'", "fmnist"]),
    (["--config", CFG, "--config.model.dq_format=cube", "--budget", "74M"], ["'cube'", "pow2"]),
    (["--config", CFG, "--budget", "lots"], ["--budget='lots'", "65M"]),
    (["--config", CFG, "--budget", "74M", "--w_bits", "1,4"], ["--w_bits=[1, 4]", "2..16"]),
    (["--config", CFG, "--budget", "74M", "--layers", "nope"], ["--layers='nope'", "block0/dw"]),
  ],
)
def test_bad_input_is_one_line(tmp_path, args, fragments):
  out = tmp_path / "rules.json"
  p = run(["-m", "pikelpn_jax.search", *args, "--out", str(out)])
  assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
  lines = p.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr[-2000:]
  assert all(f in lines[0] for f in fragments), (lines[0], fragments)
  assert not out.exists() and not os.path.exists(str(out) + ".tmp")
