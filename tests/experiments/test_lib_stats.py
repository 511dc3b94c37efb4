"""experiments/lib/stats.py against hand-computed t-intervals."""

import pytest

from experiments.lib import stats

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


def test_paired_p_value_is_the_t_test_the_interval_matches():
  # differences 1, 2, 3: t = 2 / (1/√3) = 2√3 with 2 degrees of freedom
  from scipy import stats as st

  ci = stats.paired_interval({0: 11.0, 1: 22.0, 2: 33.0}, {0: 10.0, 1: 20.0, 2: 30.0})
  assert ci["p"] == pytest.approx(2 * st.t.sf(2 * 3**0.5, 2))
  assert ci["p"] > 0.05 and ci["verdict"] == stats.NO_EFFECT  # the interval holds 0
  gain = stats.paired_interval({0: 2.0, 1: 3.0, 2: 4.0}, {0: 0.0, 1: 0.0, 2: 0.0})
  assert gain["p"] < 0.05 and gain["verdict"] == "gain"


def test_holm_hand_computed():
  # sorted p: 0.01 (×4), 0.02 (×3), 0.03 (×2 = 0.06), 0.5 (×1); monotone; None kept
  adj = stats.holm([0.03, None, 0.01, 0.5, 0.02])
  assert adj[1] is None
  assert adj[2] == pytest.approx(0.04) and adj[4] == pytest.approx(0.06)
  assert adj[0] == pytest.approx(0.06) and adj[3] == pytest.approx(0.5)
  items = [{"p": 0.01, "mean": -0.3}, {"p": 0.03, "mean": 0.2}, {"p": None, "mean": 0.0}]
  (p0, v0), (p1, v1), (p2, v2) = stats.holm_verdicts(items)
  assert (p0, v0) == (pytest.approx(0.02), "loss")  # 0.01 × 2 < 0.05
  assert (p1, v1) == (pytest.approx(0.03), "gain")  # max(0.02, 0.03 × 1)
  assert (p2, v2) == (None, "too few seeds")
  assert stats.holm_verdicts([{"p": 0.03, "mean": 1.0}] * 2)[0][1] == stats.NO_EFFECT


def test_pairing_keeps_the_largest_fingerprint_group_and_names_the_rest():
  on = {0: "a", 1: "b", 2: "b", 3: "b", 4: None, 5: "a"}
  off = {0: "a", 1: "b", 2: "b", 3: "c", 4: None, 5: "a"}
  one = lambda side: {k: {fp: 0.5} for k, fp in side.items()}  # one record per seed
  got = stats.pair_within_numerics(one(on), one(off))
  # a: seeds 0, 5; b: seeds 1, 2 → tie at 2, the larger name wins; 3 mixes, 4 is unknown
  assert got["numerics"] == "b" and got["seeds"] == [1, 2]
  assert [(x["seed"], x["why"]) for x in got["left_out"]] == [
    (0, "another fingerprint"),
    (3, "mixed"),
    (4, "mixed"),
    (5, "another fingerprint"),
  ]
  got = stats.pair_within_numerics({0: {None: 0.5}}, {0: {None: 0.5}})
  assert (got["numerics"], got["seeds"]) == (None, [])
  assert got["left_out"] == [{"seed": 0, "on": None, "off": None, "why": "mixed"}]


def test_pairing_within_numerics_uses_any_record_of_a_seed():
  # seed 0 was trained at two fingerprints on the "on" side: its old record pairs with "off"
  on = {0: {"new": 0.9, "old": 0.8}, 1: {"old": 0.81}, 2: {"new": 0.7}}
  off = {0: {"old": 0.78}, 1: {"old": 0.8}, 2: {"x": 0.6}, 3: {"old": 0.5}}
  got = stats.pair_within_numerics(on, off)
  assert got["numerics"] == "old" and got["seeds"] == [0, 1]
  assert got["on"] == {0: 0.8, 1: 0.81} and got["off"] == {0: 0.78, 1: 0.8}
  assert got["left_out"] == [{"seed": 2, "on": "new", "off": "x", "why": "mixed"}]
  # a tie goes to the preferred fingerprint, whatever its name
  tie = stats.pair_within_numerics({0: {"a": 1}, 1: {"z": 2}}, {0: {"a": 1}, 1: {"z": 2}}, {"a": 1})
  assert tie["numerics"] == "a" and tie["left_out"][0]["why"] == "another fingerprint"
