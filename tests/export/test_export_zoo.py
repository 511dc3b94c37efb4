"""Export of the zoo's PikeLPN (configs/pikelpn.py:fmnist geometry at width 0.25, calibrated
statistics): bit-exact logits, the ACEv2 comparison, the size reconciliation and the CLI."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pikelpn_jax.config_base import config_to_json, load_config
from pikelpn_jax.export import evaluate, export_model, load
from pikelpn_jax.export.cli import run, saved_config, summary
from pikelpn_jax.models import build_model
from pikelpn_jax.train.checkpoint import Checkpoints

# Every test here exports a calibrated PikeLPN (tens of seconds of compiling and training).
pytestmark = pytest.mark.slow


def calibrated_pikelpn(config, steps: int = 2):
  """A PikeLPN built from `config`, its variables after `steps` batch-statistics updates, inputs."""
  model = build_model(config, dw_impl="grouped")
  key = jax.random.PRNGKey(0)
  x = jax.random.normal(key, (8, 32, 32, 1))
  v = jax.jit(lambda k, a: model.init(k, a, train=False))(key, x)
  step = jax.jit(lambda v, a: model.apply(v, a, train=True, mutable=["batch_stats"])[1])
  for i in range(steps):
    v = {**v, **step(v, jax.random.normal(jax.random.fold_in(key, i), x.shape))}
  return model, v, x


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
  config = load_config("configs/pikelpn.py:fmnist")
  config.model.width = 0.25
  model, v, x = calibrated_pikelpn(config)
  # Non-trivial norm affine parameters (the head bias stays 0: on the grid, so logits are exact).
  params = jax.tree_util.tree_map_with_path(
    lambda p, a: a * 1.3 + 0.2 if "norm" in str(p) else a, v["params"]
  )
  variables = {"params": params, "batch_stats": v["batch_stats"]}
  path = str(tmp_path_factory.mktemp("zoo") / "pikelpn.plpn")
  report = export_model(model, variables, x[:4], path)
  return config, model, variables, path, report, load(path)


def test_pikelpn_integer_logits_are_bit_exact(zoo):
  _, model, variables, _, report, im = zoo
  assert report["probe_checks_failed"] == [] and report["rounded_constants"] == []
  x = jax.random.normal(jax.random.PRNGKey(3), (8, 32, 32, 1))
  fake = np.asarray(jax.jit(lambda v, a: model.apply(v, a))(variables, x), np.float64)
  real = im.dequantize(im(x))
  np.testing.assert_array_equal(real, fake)
  assert (
    len({op["op"] for op in im.ops} - {"conv", "mul", "add", "max", "requant", "sum", "dot"}) == 0
  )


def test_ema_calibrated_ceil_rounded_pikelpn_is_bit_exact_too(tmp_path):
  # The zoo fixture has fmnist's LSQ steps and round-to-nearest scales; the 1x-style quantizers
  # (EMA bounds, scales rounded up) must export just as exactly.
  config = load_config("configs/pikelpn.py:fmnist")
  config.model.width, config.model.dq_round = 0.125, "auto"
  config.model.quant.a_calibration = "ema"
  model, v, x = calibrated_pikelpn(config, steps=1)
  assert "bound" in str(jax.tree_util.tree_structure(v["batch_stats"]))
  report = export_model(model, v, x[:4], str(tmp_path / "ema.plpn"))
  assert report["probe_checks_failed"] == []
  im = load(str(tmp_path / "ema.plpn"))
  fake = np.asarray(jax.jit(lambda v, a: model.apply(v, a))(v, x), np.float64)
  np.testing.assert_array_equal(im.dequantize(im(x)), fake)


def test_acev2_difference_is_explained_category_by_category(zoo):
  config, model, variables, _, _, im = zoo
  cmp = evaluate.acev2_comparison(config, variables, im, model=model)
  t, layers = cmp["totals"], cmp["layers"]
  assert cmp["unaccounted"] == {"fake_quant": [], "integer": []}
  for k in ("macs", "ace", "acev2.mac", "acev2.norm", "acev2.activation", "acev2.other"):
    assert t[k]["diff"] == 0, k
  # 1. The input quantizer runs at the boundary, outside the integer body.
  input_quant = layers["stem/conv/x_quant"]["fake_quant"]
  # 2. The global average pool's division by H·W folds into the head requantization shift.
  gap_div = layers["head"]["fake_quant"]
  # 3. The fake-quant forward shifts the last norm's output by s_M and again in the (unfolded)
  #    head input quantizer; the integer requantization shifts once (one acc-width shift per
  #    channel of the pooled vector).
  dot = next(op for op in im.ops if op["op"] == "dot" and op["name"].startswith("head"))
  one_shift = im.header["values"][dot["in"][0]]["shape"][-1] * 32
  # 4. The head's dequantization acc·(s_x·s_w): a shift per class in the fake-quant forward;
  #    in the integer body only a grid label when every class has the same grid, else an
  #    alignment shift per class (the same cost).
  classes = im.output_spec["shape"][-1]
  aligned = any(op["op"] == "shift_left" and op["name"].startswith("head") for op in im.ops)
  head_dequant = 0 if aligned else classes * 32
  assert t["acev2.residual_pool"]["diff"] == -gap_div
  assert t["acev2.scaling"]["diff"] == -input_quant - one_shift - head_dequant
  assert t["acev2"]["diff"] == -input_quant - gap_div - one_shift - head_dequant


def test_file_size_matches_the_analyzer_model_bits(zoo):
  config, model, variables, path, report, im = zoo
  cmp = evaluate.acev2_comparison(config, variables, im, model=model)
  sizes = evaluate.size_comparison(report, im.header, variables, cmp["model_bits"]["fake_quant"])
  assert sizes["weights_match"]
  norm_channels = sum(
    int(np.prod(s["shape"])) for n, s in im.header["tensors"].items() if n.endswith("/m")
  )
  roles = sizes["file_bits_by_role"]
  # C is QuantNorm's bias per norm channel, plus the head bias on the accumulator grid.
  head_bias = int(np.prod(im.header["tensors"]["head/dense/c"]["shape"]))
  assert roles["m"] == 8 * norm_channels and roles["c"] == 32 * (norm_channels + head_bias)
  # The analyzer's float parameters are QuantNorm's γ, β (2 per channel), the head bias and the
  # learned (LSQ) activation steps, one scalar per quantized activation, which the file folds
  # into its shifts.
  lsq_steps = sum(
    int(np.size(x))
    for p, x in jax.tree_util.tree_leaves_with_path(variables["params"])
    if p[-1].key == "step"
  )
  assert sizes["analyzer_float_param_bits"] == 32 * (2 * norm_channels + 10 + lsq_steps)
  assert os.path.getsize(path) == sizes["file_bytes"]


@pytest.fixture(scope="module")
def zoo_workdir(zoo, tmp_path_factory):
  """A training workdir (orbax checkpoint + config.json) holding the zoo model."""
  config, _, variables, _, _, _ = zoo
  workdir = tmp_path_factory.mktemp("zoo_run") / "run"
  ckpts = Checkpoints(str(workdir), keep=1)
  ckpts.save(
    1,
    {**variables, "opt_state": {}, "step": jnp.int32(1)},
    config,
    {"model": config.model.name, "variant": config.model.variant, "step": 1},
  )
  ckpts.close()
  (workdir / "config.json").write_text(config_to_json(config))
  return workdir


def test_cli_run_from_a_workdir(zoo_workdir, tmp_path):
  workdir = zoo_workdir
  out = str(tmp_path / "m.plpn")
  report = run(saved_config(str(workdir)), str(workdir), out, probe_examples=4)
  assert report["probe_checks_failed"] == [] and report["sizes"]["weights_match"]
  assert json.load(open(out + ".report.json"))["file_bytes"] == os.path.getsize(out)
  assert "model bits: file" in summary(report)
  assert load(out).header["source"]["step"] == 1


def test_cli_onnx_from_a_workdir(zoo, zoo_workdir, tmp_path):
  # The extension picks the format; --eval runs onnxruntime on stored uint8 test images.
  out = str(tmp_path / "m.onnx")
  report = run(
    saved_config(str(zoo_workdir)), str(zoo_workdir), out, 4, evaluate=True, eval_examples=12
  )
  t = report["onnx_test_set"]
  assert t["examples"] == 12 and t["logits_identical"] == 12
  assert t["onnx_top1"] == t["integer_top1"] == t["fake_quant_top1"]
  assert report["float_nodes"] == [] and report["opset"] == 18
  macs = sum(op["op"] in ("conv", "dot") for op in zoo[5].ops)  # one integer MAC node each
  assert report["onnx_ops"].get("ConvInteger", 0) + report["onnx_ops"]["MatMulInteger"] == macs
  assert not {"Conv", "MatMul", "Gemm"} & set(report["onnx_ops"])
  assert os.path.getsize(out) == report["file_bytes"]
  assert json.load(open(out + ".report.json"))["onnx_test_set"] == t
  assert "ONNX opset 18" in summary(report) and "12/12" in summary(report)
