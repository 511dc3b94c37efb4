"""Numerics fingerprints for run records written before records carried one.

A record without `numerics` names the commit it was written at. This script checks each such
commit out (a temporary git worktree), trains the canaries of experiments/lib/numerics.py with
that code on this machine, and stamps the record with the resulting fingerprint and where it came
from (`numerics_from`). Commits whose training code is byte-identical share one canary run.

What it cannot see is the machine that trained the record, and the machine matters (the main
job's code and seed gave 90.19 % on the machines that trained these records and 90.12 % on an
AVX-512 one), and the records without a fingerprint came from more than one arithmetic: all
four records of commit 35e0bb9 that were retrained on the AVX-512 machine came back with
bit-identical parameters, while the four of commit 00e82f0 did not. So a backfilled fingerprint
is 'legacy-<the code's canary fingerprint>@<the commit that wrote the record>': records stamped
alike ran byte-identical training code and were written at one commit, which is taken to mean
by one session on one machine (the finest grouping the records allow); they never pair with
records of another commit or with records whose fingerprint was measured when they were
trained. `restamp_sessions` moves stamps of the older form 'legacy-<fp>' to this one. To see what the machine does to
a record, retrain it with a sweep's `--rerun_stale`: the replaced record is kept in superseded/
and the ablations table's Noise section sets the two side by side.

A record written from a dirty tree ('<commit>+dirty') is stamped with its commit's code and says
so: the diff was not recorded (results files the sweeps rewrite made trees dirty too).

    python -m experiments.numerics_backfill                   # stamps results/runs/
        (first restamping older 'legacy-<fp>' stamps by commit: restamp_sessions)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from experiments.lib import numerics, runs
from experiments.lib.common import REPO

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
    done[label] = legacy = f"{LEGACY}{fp['numerics']}@{commit}"
    how = (
      f"backfilled {time.strftime('%Y-%m-%d', time.gmtime())}: the canaries of commit "
      f"{commit}'s code gave {fp['numerics']} on {fp['cpu']} with jax {fp['versions']['jax']}; "
      "the machine that trained this record was not recorded; records of one commit are taken "
      "to come from one machine"
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


def restamp_sessions(directory: str, log=print) -> int:
  """'legacy-<fp>' stamps (one group for every machine) become 'legacy-<fp>@<commit>' (one group
  per commit that wrote the records); superseded records are renamed after their new stamp.
  Idempotent; returns how many records were restamped."""
  names = sorted(n for n in os.listdir(directory) if n.endswith(".json"))
  sup = os.path.join(directory, "superseded")
  if os.path.isdir(sup):
    names += sorted(os.path.join("superseded", n) for n in os.listdir(sup) if n.endswith(".json"))
  n_done = 0
  for n in names:
    p = os.path.join(directory, n)
    with open(p) as f:
      rec = json.load(f)
    old = rec.get("numerics") or ""
    if not old.startswith(LEGACY) or "@" in old:
      continue
    new = f"{old}@{base_commit(rec.get('commit') or 'unknown')}"
    rec["numerics"] = new
    rec["numerics_from"] = (
      rec.get("numerics_from", "") + f"; split by the commit that wrote it ({old} -> {new}): "
      "the records stamped alike came from more than one arithmetic"
    )
    tmp = p + ".tmp"
    with open(tmp, "w") as f:
      json.dump(rec, f, indent=1, sort_keys=True)
      f.write("\n")
    os.replace(tmp, p)
    if n.startswith("superseded") and p.endswith(f"__{old}.json"):
      os.replace(p, p[: -len(f"{old}.json")] + new + ".json")
    n_done += 1
  log(f"restamped {n_done} legacy record(s) by commit")
  return n_done


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--runs_dir", default=runs.DEFAULT_DIR)
  p.add_argument(
    "--commits",
    default="",
    help="comma-separated commits to fingerprint (default: every commit a record names)",
  )
  args = p.parse_args(argv)
  commits = [c.strip() for c in args.commits.split(",") if c.strip()] or None
  restamp_sessions(args.runs_dir)
  backfill(args.runs_dir, commits=commits)


if __name__ == "__main__":
  try:
    main()
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
