"""The numerics fingerprint (experiments/lib/numerics.py) and the record fields it feeds: what
makes it change, its cache, the code label of a record, and the committed records' pairing."""

import json
import os
import re

import pytest

from experiments.lib import common, numerics, recipe, runs, sweep, zoo


def test_combine_changes_with_any_canary_number_and_the_versions():
  c = {"a": {"params_sha256": "00", "eval_loss": 1.0, "eval_top1": 0.5}}
  v = {"jax": "1", "jaxlib": "1"}
  base = numerics.combine(c, v, False)
  assert re.fullmatch(r"[0-9a-f]{16}", base) and numerics.combine(c, v, True) == "quick-" + base
  ulp = {"a": dict(c["a"], eval_loss=float.__add__(1.0, 2**-52))}
  assert numerics.combine(ulp, v, False) != base
  assert numerics.combine(c, {"jax": "2", "jaxlib": "1"}, False) != base
  assert numerics.combine(dict(c), dict(v), False) == base


def test_code_hash_follows_the_training_code_only(tmp_path):
  for d in ("pikelpn_jax", "configs", "experiments/lib", "docs"):
    os.makedirs(tmp_path / d)
  for f in ("pikelpn_jax/a.py", "configs/c.py", "experiments/lib/recipe.py", "docs/x.py"):
    (tmp_path / f).write_text("x = 1\n")
  h = numerics.code_hash(str(tmp_path))
  (tmp_path / "docs" / "x.py").write_text("x = 2\n")
  assert numerics.code_hash(str(tmp_path)) == h
  (tmp_path / "pikelpn_jax" / "a.py").write_text("x = 2\n")
  assert numerics.code_hash(str(tmp_path)) != h


def test_fingerprint_is_cached_by_code_versions_and_cpu(tmp_path, monkeypatch):
  calls = []

  def fake(repo, quick, log):
    calls.append(quick)
    return {"pikelpn_all_on": {"params_sha256": "ab", "eval_loss": 1.0, "eval_top1": 0.1}}

  monkeypatch.setenv("PIKELPN_NUMERICS_CACHE", str(tmp_path))
  monkeypatch.setattr(numerics, "canary_results", fake)
  a = numerics.fingerprint(quick=True, log=lambda m: None)
  b = numerics.fingerprint(quick=True, log=lambda m: None)
  assert a == b and calls == [True] and a["numerics"].startswith("quick-")
  assert a["cpu"] == numerics.cpu_identity() and a["code_hash"] == numerics.code_hash()
  numerics.fingerprint(quick=False, log=lambda m: None)
  assert calls == [True, False]  # another canary set, another cache entry


def test_code_commit_names_head_and_hashes_uncommitted_code():
  label = common.code_commit()
  assert re.fullmatch(r"[0-9a-f]{7,40}(\+diff\.[0-9a-f]{12})?", label), label


def test_a_stale_record_is_superseded_and_trained_again(tmp_path):
  store = runs.RunStore(str(tmp_path / "runs"))
  config = recipe.study_config(zoo.load("pikelpn.py:1x"), recipe.QUICK, 3)
  calls = []

  def trainer(c, workdir):
    calls.append(workdir)
    os.makedirs(workdir)  # fails if a stale workdir were still there
    return {"eval_top1": 0.25 + 0.25 * len(calls), "params_sha256": f"p{len(calls)}", "step": 2}

  job = [sweep.Job("all_on", config, "t")]
  kw = dict(log=lambda m: None, trainer=trainer, commit="abc1234")
  sweep.run(job, store, str(tmp_path / "w"), numerics="fp1", **kw)
  rec = store.get(config)
  assert (rec["numerics"], rec["commit"], rec["top1"]) == ("fp1", "abc1234", 0.5)
  # another fingerprint: kept by default (tables pair within fingerprints) ...
  assert sweep.run(job, store, str(tmp_path / "w"), numerics="fp2", **kw).trained == 0
  # ... and trained again with rerun_stale, the old record kept under superseded/
  out = sweep.run(job, store, str(tmp_path / "w"), numerics="fp2", rerun_stale=True, **kw)
  assert out.trained == 1 and store.get(config)["numerics"] == "fp2"
  # the workdir of the other fingerprint is set aside, so the rerun cannot resume from its checkpoints
  assert calls[0] == calls[1] and os.path.isdir(calls[0] + ".fp1")
  (pair,) = runs.superseded_pairs(store.dir)
  assert (pair["old_numerics"], pair["new_numerics"], pair["seed"]) == ("fp1", "fp2", 3)
  assert pair["move"] == pytest.approx(0.25) and pair["same_params"] is False
  assert (
    sweep.run(job, store, str(tmp_path / "w"), numerics="fp2", rerun_stale=True, **kw).trained == 0
  )


def test_an_effect_pairs_superseded_records_when_their_fingerprint_has_more_pairs(tmp_path):
  """One row retrained at a new fingerprint on seed 0 only: the effect keeps pairing the other
  row with the superseded records (the old fingerprint holds more pairs), and the move of the
  retrained row pairs its two budgets within the new one."""

  store = runs.RunStore(str(tmp_path / "runs"))
  cfg = lambda name, k: recipe.study_config(zoo.load("pikelpn.py:1x"), recipe.QUICK, k)
  on = [cfg("on", k) for k in (0, 1, 2)]
  off = [c.copy_and_resolve_references() for c in on]
  for c in off:
    c.model.quantnorm = False
  top = {}

  def trainer(c, workdir):
    v = 0.5 + 0.01 * c.seed + (0.0 if c.model.quantnorm else -0.02) + len(top) * 1e-4
    top[workdir] = v
    return {"eval_top1": v, "params_sha256": "p", "step": 2}

  kw = dict(log=lambda m: None, trainer=trainer, commit="abc1234")
  jobs = [sweep.Job("on", c, "t") for c in on] + [sweep.Job("off", c, "t") for c in off]
  sweep.run(jobs, store, str(tmp_path / "w"), numerics="old", **kw)
  out = sweep.run(jobs[:1], store, str(tmp_path / "w"), numerics="new", rerun_stale=True, **kw)
  assert out.trained == 1 and set(out.versions["on"][0]) == {"old", "new"}
  assert out.versions["on"][0]["old"]["record_path"].startswith("superseded/")
  out = sweep.run(jobs, store, str(tmp_path / "w"), train=False, **kw)
  assert out.records["on"][0]["numerics"] == "new"  # the table's current record
  rows = {
    name: {
      "numerics": {str(k): r["numerics"] for k, r in out.records[name].items()},
      "by_numerics": sweep.by_numerics(out.versions[name]),
    }
    for name in ("on", "off")
  }
  got = sweep.pair_rows(rows["on"], rows["off"])
  assert got["numerics"] == "old" and got["seeds"] == [0, 1, 2]
  assert got["records"]["0"]["on"].startswith("superseded/")
  assert all(
    v == pytest.approx(0.02, abs=1e-3) for v in (got["on"][k] - got["off"][k] for k in (0, 1, 2))
  )


def test_stale_rows_limit_which_rows_are_trained_again(tmp_path):
  store = runs.RunStore(str(tmp_path / "runs"))
  a, b = (recipe.study_config(zoo.load("pikelpn.py:1x"), recipe.QUICK, k) for k in (0, 1))
  n = []

  def trainer(c, workdir):
    n.append(workdir)
    return {"eval_top1": 0.5, "params_sha256": "p", "step": 2}

  jobs = [sweep.Job("kept", a, "t"), sweep.Job("redone", b, "t")]
  kw = dict(log=lambda m: None, trainer=trainer, commit="abc1234")
  assert sweep.run(jobs, store, str(tmp_path / "w"), numerics="fp1", **kw).trained == 2
  out = sweep.run(
    jobs, store, str(tmp_path / "w"), numerics="fp2", rerun_stale=True, stale_rows={"redone"}, **kw
  )
  assert out.trained == 1
  assert (store.get(a)["numerics"], store.get(b)["numerics"]) == ("fp1", "fp2")


def test_backfill_stamps_records_by_commit_and_says_how(tmp_path):
  from experiments import numerics_backfill

  base = recipe.study_config(zoo.load("pikelpn.py:1x"), recipe.QUICK, 0)
  store = runs.RunStore(str(tmp_path))
  for seed, commit in ((0, "aaa1111"), (1, "aaa1111+dirty"), (2, "bbb2222")):
    c = base.copy_and_resolve_references()
    c.seed = seed
    rec = runs.make_record(c, {"eval_top1": 0.1}, 1.0, commit=commit)
    rec.pop("numerics")  # as records written before the field existed
    store.put(rec)
  asked = []

  def fake(commit, log):
    asked.append(commit)
    return {"numerics": "fp-" + commit, "cpu": "cpu", "versions": {"jax": "0"}}

  some = numerics_backfill.backfill(
    str(tmp_path), log=lambda m: None, fingerprint=fake, commits=["bbb2222"]
  )
  assert some == {"bbb2222": "legacy-fp-bbb2222@bbb2222"} and asked == ["bbb2222"]
  done = numerics_backfill.backfill(str(tmp_path), log=lambda m: None, fingerprint=fake)
  assert done == {
    "aaa1111": "legacy-fp-aaa1111@aaa1111",
    "aaa1111+dirty": "legacy-fp-aaa1111@aaa1111",
  }
  recs = {
    r["key"]["seed"]: r for r in (json.load(open(tmp_path / n)) for n in os.listdir(tmp_path))
  }
  assert [recs[s]["numerics"] for s in (0, 1, 2)] == [
    "legacy-fp-aaa1111@aaa1111",
    "legacy-fp-aaa1111@aaa1111",
    "legacy-fp-bbb2222@bbb2222",
  ]
  assert "not recorded" in recs[0]["numerics_from"]
  assert "dirty tree" in recs[1]["numerics_from"] and "dirty" not in recs[0]["numerics_from"]
  assert numerics_backfill.backfill(str(tmp_path), log=lambda m: None, fingerprint=fake) == {}
  # a superseded record written before fingerprints is stamped and renamed after its stamp
  os.makedirs(tmp_path / "superseded")
  c = base.copy_and_resolve_references()
  c.seed = 7
  rec = runs.make_record(c, {"eval_top1": 0.1}, 1.0, commit="ccc3333")
  rec.pop("numerics")
  with open(tmp_path / "superseded" / "x_s7_n2__unknown.json", "w") as f:
    json.dump(rec, f)
  numerics_backfill.backfill(str(tmp_path), log=lambda m: None, fingerprint=fake)
  assert os.listdir(tmp_path / "superseded") == ["x_s7_n2__legacy-fp-ccc3333@ccc3333.json"]


def test_older_legacy_stamps_are_split_by_the_commit_that_wrote_them(tmp_path):
  """'legacy-<fp>' grouped records of several machines: the restamp keys them by commit too, so
  records of two commits no longer pair; superseded names follow; a second pass changes nothing."""
  from experiments import numerics_backfill

  base = recipe.study_config(zoo.load("pikelpn.py:1x"), recipe.QUICK, 0)
  store = runs.RunStore(str(tmp_path))
  for seed, commit in ((0, "aaa1111"), (1, "bbb2222+dirty")):
    c = base.copy_and_resolve_references()
    c.seed = seed
    store.put(runs.make_record(c, {"eval_top1": 0.1}, 1.0, commit=commit, numerics="legacy-fp"))
  c = base.copy_and_resolve_references()
  c.seed = 2
  store.put(runs.make_record(c, {"eval_top1": 0.1}, 1.0, commit="ccc3333", numerics="measured"))
  c.seed = 3
  os.makedirs(tmp_path / "superseded")
  rec = runs.make_record(c, {"eval_top1": 0.1}, 1.0, commit="ddd4444", numerics="legacy-fp")
  with open(tmp_path / "superseded" / "x_s3_n2__legacy-fp.json", "w") as f:
    json.dump(rec, f)
  assert numerics_backfill.restamp_sessions(str(tmp_path), log=lambda m: None) == 3
  recs = {
    r["key"]["seed"]: r
    for r in (json.load(open(tmp_path / n)) for n in os.listdir(tmp_path) if n.endswith(".json"))
  }
  assert [recs[k]["numerics"] for k in (0, 1, 2)] == [
    "legacy-fp@aaa1111",
    "legacy-fp@bbb2222",
    "measured",
  ]
  assert "split by the commit" in recs[1]["numerics_from"]
  assert os.listdir(tmp_path / "superseded") == ["x_s3_n2__legacy-fp@ddd4444.json"]
  assert numerics_backfill.restamp_sessions(str(tmp_path), log=lambda m: None) == 0
  assert numerics.short("legacy-a134f3afd64e38b0@35e0bb9") == "legacy-a134f3af@35e0bb9"


def _committed_ablations():
  with open(os.path.join(common.REPO, "results", "ablations.json")) as f:
    return json.load(f)


def _paired_records(item, steps, sides):
  """Yields (seed, side, record) for each record an effect or convergence move pairs."""
  for seed in item["paired"]["seeds"]:
    paths = item["records"][str(seed)]
    for side, row in sides:
      rec = json.load(open(os.path.join(runs.DEFAULT_DIR, paths[side])))
      assert rec["key"]["seed"] == seed and rec["key"]["steps"] == steps[side], (row, paths)
      yield seed, side, row, rec


def test_every_committed_effect_pairs_records_of_one_fingerprint():
  """results/ablations.json: each effect and convergence move rests on records that all carry
  the effect's fingerprint, of the rows' own configs, with the top-1 the interval used (read
  from the records themselves, current or superseded, not from the table)."""
  data = _committed_ablations()
  steps = data["recipe"]["steps"]
  tables = {steps: data["settings"], 2 * steps: data.get("settings_x2", {})}
  checked = 0
  for e in data["effects"]:
    if not e["paired"]["n"]:
      continue
    assert e["numerics"], e["switch"]
    rows = tables[e["steps"]]
    diffs = {}
    for seed, side, row, rec in _paired_records(
      e, {"on": e["steps"], "off": e["steps"]}, (("on", e["on"]), ("off", e["off"]))
    ):
      assert rec["numerics"] == e["numerics"], (e["switch"], e["steps"], seed, side)
      current = next(iter(rows[row]["records"].values()))
      assert rec["key"]["config_hash"] == current.split("_s")[0], (e["switch"], row, seed)
      diffs[seed] = diffs.get(seed, 0.0) + (rec["top1"] if side == "on" else -rec["top1"])
      checked += 1
    mean = sum(diffs.values()) / len(diffs)
    assert mean == pytest.approx(e["paired"]["mean"], abs=1e-9), e["switch"]
  for c in data["convergence"]:
    if not c["paired"]["n"]:
      continue
    for seed, side, _row, rec in _paired_records(
      c, {"x1": steps, "x2": 2 * steps}, (("x1", c["row"]), ("x2", c["row"]))
    ):
      assert rec["numerics"] == c["numerics"], (c["model"], seed, side)
      checked += 1
  assert checked > 0
