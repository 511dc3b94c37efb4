"""Models without an exact integer form are refused with a message naming the layers."""

import subprocess
import sys

import jax
import pytest

from pikelpn_jax.export import ExportError, FloatLayerError, export_model, float_layers
from pikelpn_jax.export.cli import saved_config
from tests.export.tiny_net import TinyNet

X = jax.random.normal(jax.random.PRNGKey(0), (2, 32, 32, 1))


def _abstract(model):
  return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), X))


def test_float_layers_are_named():
  model = TinyNet(float_layers=("pw", "norm"))
  found = float_layers(model, _abstract(model), X)
  assert found == ["stem_norm (float norm (QuantNorm bits=None))", "pw (float weights)"]
  assert float_layers(TinyNet(), _abstract(TinyNet()), X) == []


def test_export_refuses_a_model_that_is_not_fully_quantized(tmp_path):
  model = TinyNet(float_layers=("pw",))
  with pytest.raises(
    FloatLayerError, match=r"not fully quantized; float layers: pw \(float weights\)"
  ):
    export_model(model, _abstract(model), X, str(tmp_path / "m.plpn"))
  assert not (tmp_path / "m.plpn").exists()


def test_float_scales_are_refused_at_the_first_requantization(tmp_path):
  model = TinyNet(scale_format="none")
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), X)
  with pytest.raises(ExportError, match=r"^dw/x_quant: requantization ratio .* not a power of two"):
    export_model(model, variables, X, str(tmp_path / "m.plpn"))


def test_missing_saved_config_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="has no config.json; pass --config"):
    saved_config(str(tmp_path))


def test_cli_bad_input_exits_1_with_one_line(tmp_path):
  r = subprocess.run(
    [
      sys.executable,
      "-m",
      "pikelpn_jax.export",
      "--workdir",
      str(tmp_path),
      "--out",
      str(tmp_path / "m.plpn"),
    ],
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert r.returncode == 1
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: workdir") and "no config.json" in lines[0]
