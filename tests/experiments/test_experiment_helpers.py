"""Pure helpers of the experiment scripts: energy model, Pareto frontier, budget config, zoo."""

import math
import os

import numpy as np
import pytest

from experiments.lib import energy_model as em
from experiments.lib import recipe, zoo
from experiments.pareto import frontier


def test_energy_interpolation_hits_the_published_points_and_grows():
  assert em.int_add(8) == pytest.approx(0.03)
  assert em.int_add(32) == pytest.approx(0.1)
  assert em.int_mult(8, 8) == pytest.approx(0.2)
  assert em.int_mult(32, 32) == pytest.approx(3.1)
  assert em.int_add(4) == pytest.approx(0.015)  # ∝ b below 8 bits
  assert em.int_mult(4, 4) == pytest.approx(0.05)  # ∝ b_x·b_y below 8×8
  adds = [em.int_add(b) for b in range(1, 65)]
  assert all(a < b for a, b in zip(adds, adds[1:]))
  assert em.int_mult(4, 8) < em.int_mult(8, 8) < em.int_mult(16, 16) < em.int_mult(32, 32)


def test_op_energy_prices_float_and_int_operands():
  assert em.op_energy("mul", [32, 32], True) == pytest.approx(3.7)
  assert em.op_energy("mul", [32, 8], False) == pytest.approx(em.int_mult(32, 8))
  assert em.op_energy("add", [32, 32], True) == pytest.approx(0.9)
  assert em.op_energy("add", [32, 32], False) == pytest.approx(0.1)
  # int MAC: multiply + accumulate at min(32, bx+bw+10) bits
  assert em.op_energy("mac", [4, 4], False) == pytest.approx(em.int_mult(4, 4) + em.int_add(18))
  assert em.op_energy("mac", [32, 32], True) == pytest.approx(3.7 + 0.9)
  with pytest.raises(ValueError, match="'bogus'"):
    em.op_energy("bogus", [8], False)


def test_by_class_keys_parse_into_widths_and_classes():
  assert em.parse_class_key("mul acc32xfloat32") == ("mul", [32, 32], ["acc", "float"])
  assert em.parse_class_key("mac int4xfixed8") == ("mac", [4, 8], ["int", "fixed"])
  assert em.parse_class_key("cmp float32") == ("cmp", [32], ["float"])
  with pytest.raises(ValueError, match="'mul 32x32'"):
    em.parse_class_key("mul 32x32")  # a by_bits key has no classes


def test_arithmetic_energy_sums_counts_times_unit_costs():
  e = em.arithmetic_energy(
    {
      "mac int8xint8": {"count": 10, "acev2": 640},
      "mul float32xfloat32": {"count": 2, "acev2": 2048},
      "mul acc32xint32": {"count": 3, "acev2": 3072},  # int32: not a float though 32 bits wide
    }
  )
  assert e["mac"] == pytest.approx(10 * (0.2 + em.int_add(26)))
  assert e["mul (float)"] == pytest.approx(2 * 3.7)
  assert e["mul"] == pytest.approx(3 * 3.1)
  assert e["total"] == pytest.approx(e["mac"] + e["mul (float)"] + e["mul"])


def test_rank_correlations():
  assert em.spearman([1, 2, 3, 4], [10, 20, 30, 1000]) == pytest.approx(1.0)
  assert em.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
  assert em.ranks([5, 1, 5, 2]) == [3.5, 1, 3.5, 2]
  assert em.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
  assert math.isnan(em.pearson([1, 1, 1], [1, 2, 3]))


def test_pareto_frontier_keeps_only_undominated_points():
  pts = [(10, 70), (5, 60), (20, 69), (5, 65), (30, 75), (40, 74)]
  keep = frontier(pts)
  assert sorted(keep) == [0, 3, 4]
  for i in keep:
    assert not any(c <= pts[i][0] and a >= pts[i][1] and (c, a) != pts[i] for c, a in pts)


def test_study_config_keeps_the_model_and_sets_the_recipe():
  base = zoo.load("pikelpn.py:3x")
  r = recipe.STUDY
  c = recipe.study_config(base, r, seed=2)
  assert c.dataset.name == "fashion_mnist" and c.dataset.image_size == 32
  assert c.model.width == pytest.approx(1.5 * r.width_scale)
  assert c.model.quant.a_calibration == "lsq" and c.model.dq_round == "nearest"
  q = dict(c.model.quant.to_dict(), a_calibration=base.model.quant.a_calibration)
  assert q == base.model.quant.to_dict()  # only the calibration changes
  assert c.model.bit_rules == base.model.bit_rules
  assert (c.num_train_steps, c.batch_size, c.seed) == (r.steps, r.batch_size, 2)
  assert (c.warmup_steps, c.label_smoothing, c.weight_decay) == (100, 0.1, 1e-3)
  assert c.quant_schedule.act_start_step == 0 and c.distill.teacher_config == ""
  assert base.dataset.name == "imagenet2012"  # the original is untouched
  assert "2000 steps of batch 256" in r.describe() and "lr 0.02" in r.describe()
  assert recipe.study_config(base, r, 0, steps=4000).num_train_steps == 4000


def test_study_config_of_pikelpn_1x_is_the_main_job_model():
  """The study's PikeLPN-1x at width × 0.5 is configs/pikelpn.py:fmnist: one run record."""
  from experiments.lib import runs
  from pikelpn_jax.config_base import load_config

  main = load_config(os.path.join(zoo.REPO, "configs", "pikelpn.py:fmnist"))
  study = recipe.study_config(
    zoo.load("pikelpn.py:1x"), recipe.STUDY, 0, steps=main.num_train_steps
  )
  assert runs.config_hash(study) == runs.config_hash(main)


def test_binary_and_float_models_keep_their_activation_calibration():
  poke = recipe.study_config(zoo.load("pokebnn.py:1.0x"), recipe.STUDY, 0)
  assert poke.model.quant.a_calibration == "fixed"
  flt = recipe.study_config(zoo.load("mobilenet_v1.py:float"), recipe.STUDY, 0)
  assert flt.model.quant.a_bits is None and flt.model.quant.a_calibration == "ema"


def test_zoo_lists_every_config_variant_once():
  specs = [e.spec for e in zoo.ZOO]
  assert len(specs) == len(set(specs)) == 19
  assert set(zoo.BREAKDOWN_SPECS) <= set(specs)
  with pytest.raises(ValueError, match="'nope.py:x'"):
    zoo.entry("nope.py:x")
  assert (
    zoo.mac_bits_label({"mac 4x4": {"count": 95}, "mac 8x8": {"count": 5}}, 32)
    == "W4A4 (95% of MACs)"
  )
  assert zoo.mac_bits_label({"mac 32x32": {"count": 7}}, 32) == "fp32"


def test_dhq_distribution_setting_selects_the_ablation_config_and_names_the_outputs():
  from experiments import ablations
  from experiments import dhq_distribution as dd

  assert dd.output_name("") == "dhq_distribution"
  assert dd.output_name("dhq_off") == "dhq_distribution_dhq_off"
  off = dd.model_config(ablations.BASE, "dhq_off")
  assert off.model.dhq is False and off.model.quantnorm and off.model.double_quant
  assert dd.model_config(ablations.BASE, "").model.dhq is True
  with pytest.raises(ValueError, match=r"--setting='bogus' is not allowed"):
    dd.model_config(ablations.BASE, "bogus")
  with pytest.raises(
    ValueError, match=r"needs --model pikelpn.py:1x .*, not 'mobilenet_v1.py:float'"
  ):
    dd.model_config("mobilenet_v1.py:float", "dhq_off")


def test_dq_scale_fit_of_a_hand_computed_kernel():
  from experiments.dq_scale_fit import format_scale, tensor_fit

  # s = 1/7: log2 s = -2.81 rounds to -3, so the pow2 grid (step 1/8) ends at 7/8 < max|w| = 1.
  f = tensor_fit(np.asarray([1.0, -0.5, 0.1]), 7.0, "pow2")
  assert f["r_pow2"] == f["r_own"] == pytest.approx(0.875)
  assert f["beyond_grid"] == pytest.approx(1 / 3) and f["clipped"] == pytest.approx(1 / 3)
  # max|w| = 0.9: still beyond 7/8 (no gradient), but below 7.5/8, so not clipped.
  f = tensor_fit(np.asarray([0.9, -0.5, 0.1]), 7.0, "pow2")
  assert f["r_pow2"] == pytest.approx(0.125 / (0.9 / 7))
  assert f["beyond_grid"] == pytest.approx(1 / 3) and f["clipped"] == 0.0
  # Without Double Quantization the grid ends exactly at max|w|; pow2 r is still reported.
  f = tensor_fit(np.asarray([1.0, -0.5, 0.1]), 7.0, "none")
  assert f["r_own"] == 1.0 and f["beyond_grid"] == f["clipped"] == 0.0
  assert f["r_pow2"] == pytest.approx(0.875)
  # The 8-bit mantissa × 2^e lies within 0.4 % of the scale it replaces.
  s = np.asarray([1 / 7, 0.3, 1e-3, 5.0])
  assert np.all(np.abs(format_scale(s, "fixed") / s - 1) < 0.004)
  with pytest.raises(ValueError, match="'bogus'"):
    format_scale(s, "bogus")


def test_dq_scale_fit_measures_only_the_study_rounding():
  from experiments import ablations
  from experiments.dq_scale_fit import check_rounding

  c = recipe.study_config(ablations.setting_config("all_on"), recipe.STUDY, 5)
  check_rounding(c)  # the study recipe rounds to nearest
  c.model.dq_round = "ceil"
  with pytest.raises(ValueError, match="dq_round='ceil' is not measured here"):
    check_rounding(c)
