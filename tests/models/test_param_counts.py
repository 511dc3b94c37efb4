"""Parameter counts of the float models at 224×224, 1000 classes (abstract init, no compile)."""

import os

import jax
import jax.numpy as jnp
import pytest

from pikelpn_jax.config_base import base_config, load_config
from pikelpn_jax.models import build_model
from pikelpn_jax.models.config_fields import set_quant_fields

# Reference counts (torchvision / Keras trainable parameters).
EXPECTED = {
  ("mobilenet_v1", None): 4.23e6,
  ("mobilenet_v2", None): 3.50e6,
  ("resnet", 18): 11.69e6,
  ("resnet", 50): 25.56e6,
}
# The float config of each (configs/*.py write every field the model reads).
FLOAT_CONFIG = {
  ("mobilenet_v1", None): "configs/mobilenet_v1.py:float",
  ("mobilenet_v2", None): "configs/mobilenet_v2.py:float",
  ("resnet", 18): "configs/resnet.py:18_float",
  ("resnet", 50): "configs/resnet.py:50_float",
}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def count_params(config, size=224):
  model = build_model(config)
  x = jax.ShapeDtypeStruct((1, size, size, config.dataset.channels), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x), x)
  return sum(a.size for a in jax.tree_util.tree_leaves(variables["params"]))


@pytest.mark.parametrize("name,depth", list(EXPECTED))
def test_float_param_counts_match_the_references(name, depth):
  c = load_config(os.path.join(ROOT, FLOAT_CONFIG[(name, depth)]))
  assert c.model.name == name and c.model.width == 1.0 and c.model.get("depth") == depth
  assert c.model.quant.w_bits is None and c.model.quant.a_bits is None
  n = count_params(c)
  assert abs(n - EXPECTED[(name, depth)]) / EXPECTED[(name, depth)] < 0.005, n


def test_pikelpn_has_the_mobilenet_v1_parameters_and_width_scales_them():
  c = base_config("pikelpn")
  c.model.act, c.model.stem_stride = "relu", 2  # MobileNetV1's (configs/pikelpn.py)
  set_quant_fields(c.model, w_bits=4, a_bits=4, quantnorm=True, double_quant=True, dhq=True)
  c.model.width = 1.0
  n1 = count_params(c)
  c.model.width = 2.0
  n2 = count_params(c)
  assert abs(n1 - 4.23e6) / 4.23e6 < 0.005
  # Pointwise layers dominate and grow with width², so 2× width gives ~3.5×.
  assert 3.0 < n2 / n1 < 4.0
