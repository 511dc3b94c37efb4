"""The run cache (experiments/lib/runs.py, sweep.py) with a stand-in trainer: key, skip, rebuild,
incomplete sweeps. The real training path is covered by test_experiment_scripts.py."""

import json
import os

import pytest

from experiments.lib import (
  recipe,
  results,
  runs,
  sweep,
  zoo,
)


@pytest.fixture(scope="module")
def base():
  return recipe.study_config(zoo.load("pikelpn.py:1x"), recipe.QUICK, 0)


def fake_trainer(calls):
  def train(config, workdir):
    calls.append((int(config.seed), workdir))
    return {
      "eval_top1": 0.5 + 0.01 * config.seed,
      "eval_top5": 0.9,
      "acev2": 123.0,
      "train_wall_s": 1.0,
      "step": config.num_train_steps,
    }

  return train


def test_key_covers_only_what_changes_training(base):
  h = runs.config_hash(base)
  same = base.copy_and_resolve_references()
  same.log_every_steps, same.eval_every_steps, same.model.variant = 1, 1, "other"
  same.ace.float_bits = 16
  same.dataset.fmnist_dir = "/elsewhere"
  assert runs.config_hash(same) == h
  seed = base.copy_and_resolve_references()
  seed.seed = 3
  assert runs.config_hash(seed) == h and runs.key(seed)["seed"] == 3
  for field, value in (("learning_rate", 0.5), ("batch_size", 4)):
    other = base.copy_and_resolve_references()
    other[field] = value
    assert runs.config_hash(other) != h, field
  q = base.copy_and_resolve_references()
  q.model.quantnorm = False
  assert runs.config_hash(q) != h
  longer = recipe.study_config(zoo.load("pikelpn.py:1x"), recipe.QUICK, 0, steps=4)
  assert runs.key(longer)["steps"] == 4 and runs.config_hash(longer) == h


def test_sweep_skips_recorded_runs_and_rebuilds_a_deleted_one(tmp_path, base):
  store = runs.RunStore(str(tmp_path / "runs"))
  configs = [recipe.study_config(zoo.load("pikelpn.py:1x"), recipe.QUICK, s) for s in (0, 1)]
  jobs = [sweep.Job("all_on", c, "test") for c in configs]
  calls = []
  out = sweep.run(
    jobs, store, str(tmp_path / "work"), log=lambda m: None, trainer=fake_trainer(calls)
  )
  assert out.trained == 2 and [c[0] for c in calls] == [0, 1]
  assert sweep.top1s(out.records["all_on"]) == {0: 0.5, 1: pytest.approx(0.51)}
  rec = json.load(open(store.path(configs[1])))
  assert rec["key"] == runs.key(configs[1]) and rec["top1"] == pytest.approx(0.51)
  assert rec["acev2_at_training"] == 123.0 and rec["allocator"] in ("tcmalloc", "glibc malloc")
  assert {"wall_s", "device", "commit", "config", "top5"} <= set(rec)
  # again: everything is read from the records, nothing trained
  out = sweep.run(
    jobs, store, str(tmp_path / "work"), log=lambda m: None, trainer=fake_trainer(calls)
  )
  assert out.trained == 0 and len(calls) == 2 and not out.missing["all_on"]
  # a deleted record is trained again, the other one is not
  os.remove(store.path(configs[0]))
  out = sweep.run(
    jobs, store, str(tmp_path / "work"), log=lambda m: None, trainer=fake_trainer(calls)
  )
  assert out.trained == 1 and calls[-1][0] == 0 and len(calls) == 3


def test_incomplete_sweep_names_the_rows_that_lack_runs(tmp_path, base):
  store = runs.RunStore(str(tmp_path / "runs"))
  jobs = [
    sweep.Job(row, recipe.study_config(zoo.load("pikelpn.py:1x"), recipe.QUICK, s), row)
    for s in (0, 1)
    for row in ("a", "b")
  ]
  jobs[-1].config.learning_rate = 0.5  # row b, seed 1: a config of its own
  calls = []
  out = sweep.run(
    jobs, store, str(tmp_path / "w"), log=lambda m: None, max_runs=1, trainer=fake_trainer(calls)
  )
  # a/seed 0 trained; b/seed 0 has the same config, so the same record; the rest wait
  assert out.trained == 1
  out = sweep.run(jobs, store, str(tmp_path / "w"), train=False, log=lambda m: None)
  assert out.trained == 0 and out.missing == {"a": [1], "b": [1]}
  assert sorted(out.records["b"]) == [0]  # b/seed 0 has a/seed 0's config: one record
  note = sweep.incomplete_note(out.missing, {"a": "Row A"})
  assert "**Row A**: seeds 1 not trained yet" in note and "**b**: seeds 1" in note
  assert sweep.incomplete_note({"a": []}, {}) == ""


def test_a_record_of_another_key_is_refused(tmp_path, base):
  store = runs.RunStore(str(tmp_path))
  rec = runs.make_record(base, {"eval_top1": 0.1}, 1.0)
  rec["key"] = dict(rec["key"], seed=9)
  with open(store.path(base), "w") as f:
    json.dump(rec, f)
  with pytest.raises(ValueError, match="holds key"):
    store.get(base)


def test_every_committed_record_is_found_by_the_sweep_that_made_it():
  """A config field added after a record was written must not orphan it (runs.BACKWARD_DEFAULTS,
  runs.NOT_TRAINING): each record under results/runs/ is the key of a job the full sweeps ask for."""
  from experiments import ablations, family_table, search

  full = recipe.recipe(False)
  seeds = range(5)
  wanted = {
    runs.record_name(runs.key(j.config))
    for j in ablations.jobs(
      ablations.SETTINGS,
      seeds,
      full,
      False,
      ablations.parse_seeds(ablations.SETTLING_CLAIM_SEEDS),
      ablations.parse_seeds(ablations.SETTLING_LONG_SEEDS),
    )
    + family_table.jobs([e.spec for e in zoo.ZOO], seeds, full, {})
    + search.fixed_jobs(full, seeds, False)  # uniform precision and the family points
  }
  # the searched rows: their configs rebuilt from what results/search.json records per seed
  found = results.read_json(os.path.join(os.path.dirname(runs.DEFAULT_DIR), "search.json"))
  for entry in ((found or {}).get("searched") or {}).values():
    for k, got in entry.get("seeds", {}).items():
      c = search.searched_row_config(full, False, int(k), got["choices"], got["globals"])
      wanted.add(runs.record_name(runs.key(c)))
  committed = [n for n in os.listdir(runs.DEFAULT_DIR) if n.endswith(".json")]
  assert committed, runs.DEFAULT_DIR
  orphans = sorted(set(committed) - wanted)
  assert not orphans, f"records no sweep job maps to (a config field changed the hash): {orphans}"


def test_claim_settings_get_the_claim_seeds_after_every_base_seed():
  """The 'costs ≤ 0.3 points' claims' settings are trained on more seeds, and those come last, so
  an interrupted sweep already holds every setting's base seeds."""
  from experiments import ablations

  full = recipe.recipe(False)
  js = ablations.jobs(ablations.SETTINGS, (0, 1, 2), full, False, claim_seeds=range(6))
  per = {}
  for j in js:
    if j.row in ablations.SETTINGS:
      per.setdefault(j.row, []).append(j.seed)
  assert set(ablations.CLAIM_SETTINGS) == {
    "all_on",
    "quantnorm_off",
    "double_quant_off",
    "dq_fixed",
  }
  for name, seeds in per.items():
    assert seeds == ([0, 1, 2, 3, 4, 5] if name in ablations.CLAIM_SETTINGS else [0, 1, 2])
  seeds = [j.seed for j in js if j.row in ablations.SETTINGS]
  assert seeds == sorted(seeds)  # seed-major: every base seed before any claim seed
  assert ablations.seed_extension(
    ablations.seeds_by_setting(ablations.SETTINGS, (0, 1, 2), range(6)), (0, 1, 2)
  ).startswith(
    "; PikeLPN-1x (all on), QuantNorm off, Double Quantization off, Double Quantization with "
    "8-bit mantissa × 2^e scales also seeds 3–5 (6 in"
  )
  assert ablations.seed_extension(ablations.seeds_by_setting(("dhq_off",), (0,), (1,)), (0,)) == ""


def test_float_convergence_runs_follow_their_own_seeds_within_the_seed_major_order():
  """--convergence_seeds trains float MobileNetV1 (both budgets) on fewer seeds than the 4000-step
  effects, still seed-major; by default it follows --long_seeds."""
  from experiments import ablations

  full = recipe.recipe(False)
  settings = ("all_on", "quantnorm_off")
  js = ablations.jobs(settings, (0,), full, False, long_seeds=(0, 1, 2), convergence_seeds=(0, 1))
  floats = [(j.row, j.seed) for j in js if j.row.startswith("conv_float")]
  assert floats == [(f"conv_float_x{m}", k) for k in (0, 1) for m in (1, 2)]
  longs = sorted({j.seed for j in js if j.row.endswith("_x2") and not j.row.startswith("conv")})
  assert longs == [0, 1, 2]
  assert [j.seed for j in js] == sorted(j.seed for j in js)
  default = ablations.jobs(settings, (0,), full, False, long_seeds=(0, 1, 2))
  assert sorted({j.seed for j in default if j.row.startswith("conv_float")}) == [0, 1, 2]


def test_a_bad_claim_seed_is_named_with_its_flag():
  from experiments import ablations

  with pytest.raises(ValueError, match=r"--claim_seeds='1,x' is not allowed"):
    ablations.parse_seeds("1,x", "--claim_seeds")


def test_dq_fixed_setting_changes_only_the_scale_format():
  """The scale-format ablation differs from 'all on' in config.model.dq_format alone, and its
  8-bit mantissa rescales are priced as multiplies, above all on's shifts."""
  from experiments import ablations
  from experiments.lib import costs

  on, fixed = ablations.setting_config("all_on"), ablations.setting_config("dq_fixed")
  assert on.model.dq_format == "pow2" and fixed.model.dq_format == "fixed"
  fixed.model.dq_format = "pow2"
  assert fixed.to_dict() == on.to_dict()
  assert [ablations.dq_format(n) for n in ("all_on", "dq_fixed", "double_quant_off")] == [
    "pow2",
    "fixed",
    "none",
  ]
  s_on, s_fixed = (costs.acev2(ablations.setting_config(n, 32)) for n in ("all_on", "dq_fixed"))
  assert s_fixed["breakdown"]["scaling"] > s_on["breakdown"]["scaling"]
  assert s_fixed["breakdown"]["norm"] == s_on["breakdown"]["norm"]


def test_trained_checkpoint_reuses_a_finished_run_and_refuses_another_config(tmp_path):
  """The scripts that read weights (dhq_distribution, search) train through runs.py too."""
  from pikelpn_jax.config_base import config_to_dict

  model = zoo.load("pikelpn.py:1x")
  c = recipe.study_config(model, recipe.QUICK, 0)
  wd = tmp_path / "run"
  wd.mkdir()
  (wd / "config.json").write_text(json.dumps(config_to_dict(c)))
  (wd / "results.json").write_text(json.dumps({"step": c.num_train_steps, "eval_top1": 0.5}))
  out = runs.trained_checkpoint(c, str(wd), log=lambda m: None)
  assert out["eval_top1"] == 0.5 and out["config"]["seed"] == 0
  other = recipe.study_config(model, recipe.QUICK, 1)
  with pytest.raises(ValueError, match="holds a run of a different config"):
    runs.trained_checkpoint(other, str(wd), log=lambda m: None)
