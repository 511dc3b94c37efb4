"""Numerics fingerprints for run records written before records carried one.

A record without `numerics` names the commit it was written at. This script checks each such
commit out (a temporary git worktree), trains the canaries of experiments/lib/numerics.py with
that code on this machine, and stamps the record with the resulting fingerprint and where it came
from (`numerics_from`). Commits whose training code is byte-identical share one canary run.

What it cannot see is the machine that trained the record, and the machine matters (the main
job's code and seed gave 90.19 % on the machines that trained these records and 90.12 % on an
AVX-512 one). So a backfilled fingerprint is 'legacy-<the code's canary fingerprint>': records
stamped alike ran byte-identical training code on a machine that was not recorded, and are
assumed to share its arithmetic (docs/results.md gives the evidence); they never pair with
records whose fingerprint was measured when they were trained. `--verify NAME` trains a record
again here, at the current code, and writes whether the final parameters are identical
(`numerics_verified`).

A record written from a dirty tree ('<commit>+dirty') is stamped with its commit's code and says
so: the diff was not recorded (results files the sweeps rewrite made trees dirty too).

    python experiments/numerics_backfill.py                   # stamps results/runs/
    python experiments/numerics_backfill.py --verify 1368b42f98515496_s1_n2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if __name__ == "__main__":  # before JAX loads: re-executes once under tcmalloc if installed
  from pikelpn_jax.allocator import use_tcmalloc

  use_tcmalloc()
from experiments.common import REPO, code_commit  # noqa: E402
from experiments.lib import numerics, runs  # noqa: E402

LEGACY = "legacy-"


def base_commit(label: str) -> str:
  return label.split("+", 1)[0]


def fingerprint_at(commit: str, log=print) -> dict:
  """The canary fingerprint of `commit`'s code on this machine (cached by its code's hash)."""
  with tempfile.TemporaryDirectory() as parent:
    checkout = os.path.join(parent, commit)
    subprocess.run(
      ["git", "worktree", "add", "--detach", "-q", checkout, commit], cwd=REPO, check=True
    )
    try:
      log(f"canaries of {commit} (code {numerics.code_hash(checkout)})")
      return numerics.fingerprint_of_checkout(checkout)
    finally:
      subprocess.run(["git", "worktree", "remove", "--force", checkout], cwd=REPO, check=False)


def backfill(directory: str, log=print, fingerprint=fingerprint_at, commits=None) -> dict:
  """Stamps every record of `directory` that lacks `numerics` (with `commits`, only those whose
  base commit is listed); {commit label: fingerprint}."""
  names = sorted(n for n in os.listdir(directory) if n.endswith(".json"))
  sup = os.path.join(directory, "superseded")
  if os.path.isdir(sup):  # superseded records are stamped too (their file names stay)
    names += sorted(os.path.join("superseded", n) for n in os.listdir(sup) if n.endswith(".json"))
  todo = {}
  for n in names:
    with open(os.path.join(directory, n)) as f:
      rec = json.load(f)
    if not rec.get("numerics"):
      todo.setdefault(rec.get("commit") or "unknown", []).append(n)
  done = {}
  for label, files in sorted(todo.items()):
    commit = base_commit(label)
    if commits is not None and commit not in commits:
      log(f"{label}: {len(files)} record(s) left without a fingerprint (not in --commits)")
      continue
    if commit == "unknown":
      raise ValueError(f"records {files} name no commit; they cannot be fingerprinted")
    fp = fingerprint(commit, log=log)
    done[label] = legacy = LEGACY + fp["numerics"]
    how = (
      f"backfilled {time.strftime('%Y-%m-%d', time.gmtime())}: the canaries of commit "
      f"{commit}'s code gave {fp['numerics']} on {fp['cpu']} with jax {fp['versions']['jax']}; "
      "the machine that trained this record was not recorded"
    )
    if label != commit:
      how += "; the record was written from a dirty tree whose diff was not recorded"
    for n in files:
      p = os.path.join(directory, n)
      with open(p) as f:
        rec = json.load(f)
      rec["numerics"], rec["numerics_from"] = legacy, how
      tmp = p + ".tmp"
      with open(tmp, "w") as f:
        json.dump(rec, f, indent=1, sort_keys=True)
        f.write("\n")
      os.replace(tmp, p)
      if p.endswith("__unknown.json"):  # a superseded record's name says its fingerprint
        os.replace(p, p[: -len("unknown.json")] + legacy + ".json")
    log(f"{label}: {len(files)} record(s) -> {legacy}")
  return done


def verify(directory: str, name: str, work_root: str, log=print) -> dict:
  """Trains record `name`'s config again with this code here; params equal or not, in the record."""
  from ml_collections import ConfigDict

  from experiments.lib import fmnist

  p = os.path.join(directory, name if name.endswith(".json") else name + ".json")
  if not os.path.exists(p):
    raise ValueError(f"--verify {name!r}: no record {p}")
  with open(p) as f:
    rec = json.load(f)
  from pikelpn_jax.config_base import base_config

  steps = rec["key"]["steps"]
  config = base_config(rec["config"]["model"]["name"], "fashion_mnist")
  config.update(ConfigDict(rec["config"]))
  config.seed, config.num_train_steps = rec["key"]["seed"], steps
  # fields a record leaves out (runs.NOT_TRAINING), as the study recipe sets them
  config.eval_every_steps = config.checkpoint_every_steps = steps
  config.log_every_steps, config.keep_checkpoints, config.eval_batch_size = (
    max(1, steps // 10),
    1,
    500,
  )
  if runs.key(config) != rec["key"]:
    raise ValueError(f"{p}: its config does not give its key back; it cannot be retrained")
  fp = numerics.fingerprint(log=log)
  workdir = os.path.join(work_root, name.replace(".json", "") + "_verify_" + fp["numerics"])
  res = fmnist.train(config, workdir, log=log)
  rec["numerics_verified"] = {
    "rerun_numerics": fp["numerics"],
    "rerun_commit": code_commit(),
    "rerun_cpu": fp["cpu"],
    "rerun_top1": res.get("eval_top1"),
    "params_identical": res.get("params_sha256") == rec.get("params_sha256"),
    "date": time.strftime("%Y-%m-%d", time.gmtime()),
  }
  with open(p, "w") as f:
    json.dump(rec, f, indent=1, sort_keys=True)
    f.write("\n")
  log(f"{name}: {rec['numerics_verified']}")
  return rec["numerics_verified"]


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--runs_dir", default=runs.DEFAULT_DIR)
  p.add_argument("--verify", default="", help="a record's name: train it again here and compare")
  p.add_argument("--work_root", default=os.path.join("/tmp", "pikelpn_experiments", "verify"))
  p.add_argument(
    "--commits",
    default="",
    help="comma-separated commits to fingerprint (default: every commit a record names)",
  )
  args = p.parse_args(argv)
  if args.verify:
    verify(args.runs_dir, args.verify, args.work_root)
  else:
    commits = [c.strip() for c in args.commits.split(",") if c.strip()] or None
    backfill(args.runs_dir, commits=commits)


if __name__ == "__main__":
  try:
    main()
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
