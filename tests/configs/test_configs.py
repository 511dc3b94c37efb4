"""Every config variant exists, documents its command, and builds (abstract init and forward)."""

import json
import os

import jax
import jax.numpy as jnp
import pytest

from pikelpn_jax.config_base import load_config
from pikelpn_jax.models import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The variant names are fixed by the issue text.
VARIANTS = {
  "configs/pikelpn.py": ("1x", "2x", "3x", "6x", "fmnist"),
  "configs/mobilenet_v1.py": ("float", "w8a8", "w4a4"),
  "configs/mobilenet_v2.py": ("float", "w8a8", "w4a4", "w4a4_prelu"),
  "configs/resnet.py": ("18_float", "18_w4a4", "50_float", "50_w8a8"),
  "configs/pokebnn.py": ("0.5x", "1.0x", "2.0x"),
  "configs/reactnet.py": ("a",),
  "configs/pikelpn_searched.py": ("1x", "2x"),
}
ALL = [(f, v) for f, vs in VARIANTS.items() for v in vs]


def _load(path, variant):
  return load_config(os.path.join(ROOT, path) + ":" + variant)


@pytest.mark.parametrize("path,variant", ALL)
def test_variant_builds_and_runs_abstractly(path, variant):
  c = _load(path, variant)
  model = build_model(c)
  size, ch = c.dataset.image_size, c.dataset.channels
  x = jax.ShapeDtypeStruct((2, size, size, ch), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x), x)
  assert set(variables) == {"params", "batch_stats"}
  logits, updates = jax.eval_shape(
    lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]), variables, x
  )
  assert logits.shape == (2, c.dataset.num_classes)
  assert set(updates) == {"batch_stats"}
  json.loads(c.to_json())  # the resolved config can be saved next to checkpoints


@pytest.mark.parametrize("path", list(VARIANTS))
def test_docstring_gives_every_command_and_the_expected_result(path):
  text = open(os.path.join(ROOT, path)).read()
  for v in VARIANTS[path]:
    assert f"python main.py --config {path}:{v} --workdir" in text, v
  assert "should produce" in text and "reported" in text


@pytest.mark.parametrize("path", list(VARIANTS))
def test_unknown_variant_is_named_with_the_allowed_ones(path):
  with pytest.raises(ValueError, match=r"variant 'nope' is not allowed; use one of \[") as e:
    _load(path, "nope")
  assert repr(VARIANTS[path][0]) in str(e.value)


def test_pikelpn_variants_differ_as_documented():
  c = {v: _load("configs/pikelpn.py", v) for v in VARIANTS["configs/pikelpn.py"]}
  assert [c[v].model.width for v in ("1x", "2x", "3x", "6x")] == [1.0, 1.0, 1.5, 2.0]
  assert c["1x"].model.quant.a_bits == 4 and c["2x"].model.quant.a_bits == 8
  assert c["1x"].model.quant.w_bits == c["2x"].model.quant.w_bits == 4
  f = c["fmnist"]
  assert (f.dataset.name, f.dataset.image_size, f.dataset.channels, f.dataset.num_classes) == (
    "fashion_mnist",
    32,
    1,
    10,
  )
  assert f.model.quantnorm and f.model.double_quant and f.model.dhq
  assert f.model.act == "relu"
  # The docstring gives the exact command of the main job (big_vision style).
  doc = open(os.path.join(ROOT, "configs/pikelpn.py")).read().split('"""')[1]
  assert "python main.py --config configs/pikelpn.py:fmnist" in doc
