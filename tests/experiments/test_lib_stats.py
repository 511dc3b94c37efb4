"""experiments/lib/stats.py against hand-computed t-intervals."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from experiments.lib import stats  # noqa: E402

T_975_2 = 4.302652729911275  # Student t, 97.5 % quantile, 2 degrees of freedom (tables: 4.303)


def test_paired_interval_hand_computed_no_effect():
  # differences on − off per seed: 1, 2, 3 → mean 2, sd 1, half width t·1/√3
  on = {0: 11.0, 1: 22.0, 2: 33.0}
  off = {0: 10.0, 1: 20.0, 2: 30.0}
  ci = stats.paired_interval(on, off)
  half = T_975_2 / 3**0.5
  assert half == pytest.approx(2.48414, abs=1e-5)
  assert (ci["n"], ci["seeds"]) == (3, [0, 1, 2])
  assert ci["mean"] == pytest.approx(2.0) and ci["sd"] == pytest.approx(1.0)
  assert ci["lo"] == pytest.approx(2.0 - half) and ci["hi"] == pytest.approx(2.0 + half)
  assert ci["lo"] < 0 < ci["hi"] and ci["verdict"] == stats.NO_EFFECT


def test_paired_interval_gain_loss_and_unpaired_seeds():
  # differences 2, 3, 4 → [3 − 2.484, 3 + 2.484] excludes 0; seed 7 has no partner and is ignored
  ci = stats.paired_interval({0: 2.0, 1: 3.0, 2: 4.0, 7: 100.0}, {0: 0.0, 1: 0.0, 2: 0.0})
  assert ci["seeds"] == [0, 1, 2] and ci["lo"] == pytest.approx(3.0 - T_975_2 / 3**0.5)
  assert ci["verdict"] == "gain"
  neg = stats.paired_interval({0: 0.0, 1: 0.0, 2: 0.0}, {0: 2.0, 1: 3.0, 2: 4.0})
  assert neg["verdict"] == "loss" and neg["hi"] == pytest.approx(-3.0 + T_975_2 / 3**0.5)


def test_paired_interval_needs_two_pairs_and_skips_diverged():
  ci = stats.paired_interval({0: 0.9, 1: None}, {0: 0.8, 1: 0.7})
  assert ci["n"] == 1 and ci["mean"] == pytest.approx(0.1) and ci["lo"] is None
  assert ci["verdict"] == "too few seeds"


def test_mean_std():
  assert stats.mean_std([1.0, 2.0, 3.0, None]) == (2.0, 1.0, 3)
  assert stats.mean_std([None]) == (None, None, 0)
  assert stats.mean_std([0.5]) == (0.5, 0.0, 1)


def test_claim_check_against_a_bound():
  # differences 2, 3, 4 → [0.516, 5.484] (t·1/√3 = 2.484)
  ci = stats.paired_interval({0: 2.0, 1: 3.0, 2: 4.0}, {0: 0.0, 1: 0.0, 2: 0.0})
  assert stats.claim_check(ci, 0.5) == stats.SUPPORTED  # "at least 0.5": 0.516 ≥ 0.5
  assert stats.claim_check(ci, 0.52) == stats.NOT_SETTLED  # the interval straddles 0.52
  assert stats.claim_check(ci, 5.5) == stats.CONTRADICTED  # 5.484 < 5.5
  # "costs at most 0.3": differences −0.1, 0, +0.1 → [−0.248, +0.248], all above −0.3
  small = stats.paired_interval({0: 0.9, 1: 1.0, 2: 1.1}, {0: 1.0, 1: 1.0, 2: 1.0})
  assert small["hi"] == pytest.approx(0.1 * T_975_2 / 3**0.5)
  assert stats.claim_check(small, -0.3) == stats.SUPPORTED
  assert stats.claim_check(small, -0.2) == stats.NOT_SETTLED
  one_pair = stats.paired_interval({0: 5.0}, {0: 0.0})
  assert stats.claim_check(one_pair, 0.0) == stats.NOT_SETTLED  # no interval, whatever the mean
