"""pikelpn_jax.search.space: a choice below 4 bits brings the calibration its bits need, and only
where the config's own calibration is the one it replaces."""

import pytest

from pikelpn_jax.config_base import load_config
from pikelpn_jax.models.quant_plan import plan_from_config
from pikelpn_jax.search import space as sp

CFG = "configs/pikelpn.py:fmnist"


@pytest.fixture(scope="module")
def config():
  c = load_config(CFG)
  c.model.quant.a_calibration = "lsq"  # as the study recipe trains it
  return c


def _settings(config, assignment, **kw):
  return plan_from_config(sp.apply(config, assignment, **kw).model).settings("block0/pw")


def test_low_bit_weights_take_the_mean_and_two_bit_activations_a_lower_bound(config):
  base = plan_from_config(config.model).settings("block0/pw")
  assert (base.w_calibration, base.a_calibration, base.a_bound) == ("absmax", "lsq", 6.0)
  s = _settings(config, {"block0/pw": sp.Choice(2, 2)})
  assert (s.w_bits, s.a_bits, s.w_calibration, s.a_bound) == (2, 2, "absmean", 3.0)
  s = _settings(config, {"block0/pw": sp.Choice(3, 3)})
  assert (s.w_calibration, s.a_bound) == ("absmean", 6.0)
  for w, a in ((4, 4), (8, 8), (4, 8)):
    s = _settings(config, {"block0/pw": sp.Choice(w, a)})
    assert (s.w_calibration, s.a_bound) == ("absmax", 6.0)
  s = _settings(config, {"block0/pw": sp.Choice(2, 2)}, low_bit_calibration=False)
  assert (s.w_calibration, s.a_bound) == ("absmax", 6.0)


def test_other_calibrations_are_kept(config):
  c = load_config(CFG)
  c.model.quant.a_calibration = "ema"
  c.model.quant.w_calibration = "lsq"
  s = _settings(c, {"block0/pw": sp.Choice(2, 2)})
  assert (s.w_calibration, s.a_calibration, s.a_bound) == ("lsq", "ema", 6.0)


def test_the_space_carries_the_switch(config):
  layers = ("block0/dw", "block0/pw")
  assert sp.build_space(config, layers).low_bit_calibration is True
  assert sp.build_space(config, layers, low_bit_calibration=False).low_bit_calibration is False
