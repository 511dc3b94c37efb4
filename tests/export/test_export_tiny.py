"""Export of a tiny fully quantized network built from the layers (8/4/1-bit, pow2 scales)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pikelpn_jax.export import (
  assert_integer_only,
  export_model,
  integer_violations,
  load,
  read_file,
)
from pikelpn_jax.export import ops as int_ops
from pikelpn_jax.export.forward import integer_values
from tests.export.tiny_net import TinyNet, calibrated

X_TEST = jax.random.normal(jax.random.PRNGKey(11), (6, 32, 32, 1)) * 1.5


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  model = TinyNet()
  variables = calibrated(model)
  probe = jax.random.normal(jax.random.PRNGKey(5), (4, 32, 32, 1))
  path = str(tmp_path_factory.mktemp("tiny") / "tiny.plpn")
  report = export_model(model, variables, probe, path)
  return model, variables, path, report, load(path)


def test_integer_logits_match_fake_quant(exported):
  model, variables, _, report, im = exported
  assert report["probe_checks_failed"] == []
  fake = np.asarray(model.apply(variables, X_TEST), np.float64)
  logits = im(X_TEST)
  assert logits.dtype == np.int32
  real = im.dequantize(logits)
  # The head bias lives on the accumulator grid (QDense), so nothing is rounded on the way out:
  # the integer logits are the fake-quant logits exactly.
  assert im.output_spec["max_abs_err"] == 0
  np.testing.assert_array_equal(real, fake)
  np.testing.assert_array_equal(logits.argmax(-1), fake.argmax(-1))


def test_weights_are_stored_at_their_bits(exported):
  _, _, path, report, im = exported
  t = im.header["tensors"]
  assert (
    t["stem/w"]["bits"],
    t["dw/w"]["bits"],
    t["pw/w"]["bits"],
    t["binary/w"]["bits"],
    t["head/w"]["bits"],
  ) == (8, 8, 4, 1, 8)
  assert t["binary/w"]["encoding"] == "sign" and t["stem_norm/m"]["bits"] == 8
  assert t["stem_norm/c"]["bits"] == 32
  payload = sum(-(-int(np.prod(s["shape"])) * s["bits"] // 8) for s in t.values())
  assert report["payload_bytes"] == payload
  assert os.path.getsize(path) == report["file_bytes"] == 16 + report["header_bytes"] + payload
  assert report["model_bits"] == sum(int(np.prod(s["shape"])) * s["bits"] for s in t.values())
  assert {op["op"] for op in im.ops} <= set(int_ops.OPS)
  assert im.input_spec["step_exp"] is not None and im.output_spec["scale_exp"] is not None


def test_body_is_integer_only(exported):
  im = exported[4]
  assert_integer_only(im.body(), im.tensors, im.quantize_input(X_TEST))


def test_a_float_multiply_in_the_body_is_caught(exported, monkeypatch):
  im = exported[4]
  add = int_ops.OPS["add"]

  def add_with_float_mul(op, inputs, tensors):
    out = add(op, inputs, tensors)
    return (out.astype(jnp.float32) * 0.5).astype(jnp.int32)

  monkeypatch.setitem(int_ops.OPS, "add", add_with_float_mul)
  bad = integer_violations(im.body(), im.tensors, im.quantize_input(X_TEST))
  assert any(v.startswith("mul on ['float32']") for v in bad)
  with pytest.raises(AssertionError, match="non-integer operation"):
    assert_integer_only(im.body(), im.tensors, im.quantize_input(X_TEST))


def test_flipping_one_packed_weight_changes_the_logits(exported, tmp_path):
  _, _, path, _, im = exported
  header, _ = read_file(path)
  dense = next(op for op in im.ops if op["op"] == "dot" and op["name"].startswith("head"))
  env = integer_values(im.header, im.tensors, im.quantize_input(X_TEST))
  active = int(np.argmax(np.asarray(env[dense["in"][0]]).sum(0)))  # busiest head input
  spec = header["tensors"][dense["tensors"]["w"]]
  classes, bits = spec["shape"][1], spec["bits"]
  bit = (active * classes + 3) * bits + bits - 1  # sign bit of w[active, 3]
  raw = bytearray(open(path, "rb").read())
  start = len(raw) - header["payload_nbytes"] + spec["offset"]
  raw[start + bit // 8] ^= 1 << (bit % 8)
  flipped = tmp_path / "flipped.plpn"
  flipped.write_bytes(bytes(raw))
  before, after = im(X_TEST), load(str(flipped))(X_TEST)
  changed = np.any(before != after, axis=0)
  assert changed[3] and not np.any(np.delete(changed, 3))


def test_header_documents_the_pipeline(exported):
  h = exported[4].header
  json.dumps(h)
  kinds = [op["op"] for op in h["ops"]]
  # conv → QuantNorm (mul M, add C) → ReLU → max pool → requant to the next layer's codes
  assert kinds[:6] == ["conv", "mul", "add", "max", "reduce_window_max", "requant"]
  assert "shift_left" in kinds  # the residual add aligns its two grids exactly
  requant = [op for op in h["ops"] if op["op"] == "requant"]
  assert [op["attrs"]["mode"] for op in requant] == ["round", "round", "sign", "round"]
  assert all(isinstance(op["attrs"].get("shift", 0), int) for op in requant)
  assert all(h["values"][v]["hi"] < 2**31 for v in h["values"])


def test_pow2_scales_are_exact_powers_of_two():
  # The export turns every pow2 requantization into a shift: the fake-quant scales must be
  # exactly 2^e (jnp.exp2 on XLA:CPU is off by ulps for most e; quant/ste.py uses ldexp).
  from pikelpn_jax.quant import ste

  s = jnp.exp2(jnp.linspace(-30.0, 10.0, 401)) * 1.37
  for ceil in (False, True):
    mant, _ = np.frexp(np.asarray(ste.round_pow2_ste(s, ceil), np.float64))
    np.testing.assert_array_equal(mant, 0.5)
