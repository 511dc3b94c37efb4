"""Sensitivities: the measured one evaluates exactly one change at a time from the given
variables (and rescales a learned activation step with the bits); the proxy orders by bits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pikelpn_jax.config_base import load_config
from pikelpn_jax.search import io, sensitivity
from pikelpn_jax.search import space as sp


@pytest.fixture(scope="module")
def tiny():
  from pikelpn_jax.train.steps import make_model

  c = load_config("configs/pikelpn.py:fmnist")
  c.model.width = 0.125
  c.model.dw_impl = "grouped"
  x = jnp.zeros((1, 32, 32, 1))
  variables = jax.jit(lambda k: make_model(c).init(k, x, train=False))(jax.random.PRNGKey(0))
  rng = np.random.default_rng(0)
  images = rng.normal(size=(16, 32, 32, 1)).astype(np.float32)
  # At initialisation the norms' running statistics (0, 1) make evaluation-mode activations
  # vanish by the third block; a few training-mode passes give them the data's statistics.
  stats = jax.jit(
    lambda v, x: make_model(c).apply(v, x, train=True, mutable=["batch_stats"])[1]["batch_stats"]
  )
  for _ in range(30):
    variables = dict(variables, batch_stats=stats(variables, images))
  labels = rng.integers(0, 10, size=16).astype(np.int32)
  return c, variables, images, labels


def test_rescale_keeps_the_learned_bound(tiny):
  c, variables, images, _ = tiny
  c2 = sp.apply(c, {"block0/pw": sp.Choice(4, 2)})
  v2 = sensitivity.rescale_steps(c, c2, variables, images)
  old = variables["params"]["block0"]["pw"]["conv"]["x_quant"]["step"]
  new = v2["params"]["block0"]["pw"]["conv"]["x_quant"]["step"]
  np.testing.assert_allclose(new, old * 15 / 3)  # unsigned after ReLU: 15 then 3 levels
  other = v2["params"]["block1"]["pw"]["conv"]["x_quant"]["step"]
  np.testing.assert_array_equal(
    other, variables["params"]["block1"]["pw"]["conv"]["x_quant"]["step"]
  )


def test_measured_changes_one_thing_at_a_time(tiny):
  c, variables, images, labels = tiny
  space = sp.Space(("block0/pw",), (), (2, 4), (4,), (sp.Globals(8, "pow2"),))
  s = sensitivity.measured(c, variables, space, images, labels)
  assert s["evaluations"] == 2  # the trained model and block0/pw at 2-bit weights
  raw = s["raw"]["block0/pw"]
  assert raw["w_bits"][4] == 0.0 and raw["a_bits"][4] == 0.0
  assert 0.5 < s["base_loss"] < 50 and raw["w_bits"][2] != 0.0  # a mean loss; 2 bits change it
  ev = sensitivity.Evaluator(images, labels)
  # measured with the trained calibration (abs-max), not the low-bit one training would use
  c2 = sp.apply(c, {"block0/pw": sp.Choice(2, 4)}, low_bit_calibration=False)
  assert raw["w_bits"][2] == pytest.approx(ev.loss(c2, variables) - s["base_loss"], abs=1e-6)
  c3 = sp.apply(c, {"block0/pw": sp.Choice(2, 4)})
  assert abs(ev.loss(c3, variables) - ev.loss(c2, variables)) > 1e-6  # absmean differs
  assert s["layers"]["block0/pw"][sp.Choice(2, 4)] == max(0.0, raw["w_bits"][2])
  again = io.from_json(io.sensitivity_json(s), space)
  assert again["layers"] == s["layers"] and again["globals"] == s["globals"]


def test_proxy_orders_by_bits():
  space = sp.Space(("a/dw",), ("a/dw",), (2, 4), (2, 4), (sp.Globals(4, None), sp.Globals(8, None)))
  s = sensitivity.proxy(space)["layers"]["a/dw"]
  assert s[sp.Choice(2, 2, True)] > s[sp.Choice(4, 2, True)] > s[sp.Choice(4, 4, True)]
  assert s[sp.Choice(4, 4, False)] > s[sp.Choice(4, 4, True)]
  g = sensitivity.proxy(space)["globals"]
  assert g[sp.Globals(4, None)] > g[sp.Globals(8, None)]
