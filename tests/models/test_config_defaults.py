"""Where configuration defaults live: config_base (LAYER_DEFAULTS, MODEL_FIELD_DEFAULTS,
FIELD_DEFAULTS) and configs/*.py. A config that lacks a field of the tables (an older saved
config) builds as it was trained; one that lacks any other field a model reads is an error."""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from pikelpn_jax import config_base
from pikelpn_jax.config_base import (
  FIELD_DEFAULTS,
  LAYER_DEFAULTS,
  MODEL_FIELD_DEFAULTS,
  compute_dtype,
  load_config,
  model_fields,
)
from pikelpn_jax.models import bit_rules, build_model
from pikelpn_jax.models.config_fields import set_quant_fields
from pikelpn_jax.models.quant_plan import plan_from_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_tables_hold_the_values_models_were_built_with():
  assert FIELD_DEFAULTS == {"dtype": "float32"}
  assert MODEL_FIELD_DEFAULTS == {
    "act_param_bits": None,
    "dw_impl": "auto",
    "pw_impl": "auto",
    "quant": {},
    "bit_rules": (),
    "quantnorm": False,
    "quantnorm_bits": 8,
    "quantnorm_bias_bits": 32,
    "double_quant": False,
    "dq_format": "pow2",
    "dq_round": "auto",
    "dhq": True,
  }
  assert bit_rules.DEFAULT_LAYER is LAYER_DEFAULTS
  assert set(LAYER_DEFAULTS) == set(bit_rules.LAYER_KEYS)


def test_set_quant_fields_writes_the_table_values():
  m = ml_collections.ConfigDict()
  set_quant_fields(m, w_bits=4, a_bits=4, a_bound=3.0)
  assert dict(m.quant) == dict(LAYER_DEFAULTS, w_bits=4, a_bits=4, a_bound=3.0)
  for f in ("quantnorm_bits", "quantnorm_bias_bits", "dq_format", "dq_round"):
    assert m[f] == MODEL_FIELD_DEFAULTS[f], f


def test_model_fields_fills_only_what_is_missing():
  m = model_fields({"name": "pikelpn", "dq_round": "nearest", "width": 0.5})
  assert m["dq_round"] == "nearest" and m["dw_impl"] == "auto" and m["width"] == 0.5
  with pytest.raises(ValueError, match=r"config.model.stem_stride is missing") as e:
    m["stem_stride"]
  assert isinstance(e.value, KeyError) and "\n" not in str(e.value)


def _old_saved(spec, drop):
  """The resolved config of `spec` as an older run saved it: without the fields in `drop`."""
  d = json.loads(load_config(os.path.join(ROOT, spec)).to_json())
  for dotted in drop:
    *parents, leaf = dotted.split(".")
    node = d
    for p in parents:
      node = node[p]
    del node[leaf]
  return ml_collections.ConfigDict(d)


def _shapes(config):
  model = build_model(config)
  x = jax.ShapeDtypeStruct((1, 32, 32, config.dataset.channels), jnp.float32)
  v = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x), x)
  return jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), v)


def test_an_older_saved_config_builds_as_the_current_one():
  spec = "configs/pikelpn.py:fmnist"
  fields = ("act_param_bits", "dw_impl", "pw_impl", "quantnorm_bits", "quantnorm_bias_bits")
  drop = ["dtype", *(f"model.{f}" for f in fields + ("dq_format", "dq_round"))]
  old = _old_saved(spec, drop)
  assert "dtype" not in old and "dq_round" not in old.model
  assert compute_dtype(old) == jnp.float32
  new = load_config(os.path.join(ROOT, spec))
  # the fields the old config lacks take the table's values, which a current config may override
  new.model.dq_round = "auto"
  assert plan_from_config(old.model) == plan_from_config(new.model)
  assert _shapes(old) == _shapes(new)


def test_a_config_lacking_a_required_field_names_it():
  c = _old_saved("configs/pikelpn.py:fmnist", ["model.stem_stride"])
  with pytest.raises(ValueError, match=r"^config.model.stem_stride is missing"):
    build_model(c)


def test_every_config_has_every_field_its_model_reads():
  """configs/*.py write every field but those of the tables: build_model reads them directly."""
  for spec in ("configs/resnet.py:18_w4a4", "configs/pokebnn.py:0.5x", "configs/reactnet.py:a"):
    c = load_config(os.path.join(ROOT, spec))
    c.dataset.image_size, c.dataset.channels = 32, 3
    assert "dw_impl" not in c.model  # filled in by model_fields, the config dict unchanged
    _shapes(c)


def test_from_dict_defaults_are_the_dataclasses():
  from pikelpn_jax.quant import config as q

  assert q.from_dict({}, "weight") == q.QuantConfig(kind="weight")
  assert q.from_dict({}) == q.QuantConfig(calibration=q.ACT_CALIBRATION, kind="act")
  assert q.act_quant(4).calibration == q.ACT_CALIBRATION
  assert q.from_dict({"kind": "weight", "scale": "pow2", "calibration": "lsq"}) == q.QuantConfig(
    calibration=q.Calibration(method="lsq"),
    scale_quant=q.ScaleQuant(format="pow2"),
    kind="weight",
  )
  assert config_base.LAYER_DEFAULTS["a_calibration"] == q.ACT_CALIBRATION.method
  assert config_base.LAYER_DEFAULTS["a_bound"] == q.ACT_CALIBRATION.bound
