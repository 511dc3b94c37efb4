"""Runs a list of training jobs through the run cache and groups the records for a table.

Jobs are trained in the order given (scripts order them seed-major, so an interrupted sweep
already holds complete pairs); a job whose record exists is read, not trained. `train=False`
(the scripts' --no_train) only reads, leaving the missing jobs missing.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Collection, Dict, List, Optional, Sequence

from experiments.lib import runs, stats


@dataclasses.dataclass
class Job:
  row: str  # the table row the run belongs to
  config: Any  # the full training config (seed and steps included)
  label: str = ""  # stored in the record, for people reading results/runs/

  @property
  def seed(self) -> int:
    return int(self.config.seed)


@dataclasses.dataclass
class Outcome:
  records: Dict[str, Dict[int, dict]]  # row -> seed -> record
  missing: Dict[str, List[int]]  # row -> seeds without a record
  trained: int  # runs trained by this invocation
  runs_dir: str = ""  # where the records are
  # row -> seed -> fingerprint -> record: the current record and the superseded ones
  versions: Dict[str, Dict[int, Dict[Optional[str], dict]]] = dataclasses.field(
    default_factory=dict
  )


def run(
  jobs: Sequence[Job],
  store: runs.RunStore,
  work_root: str,
  *,
  train: bool = True,
  log: Callable[[str], None] = print,
  max_runs: Optional[int] = None,
  trainer=None,
  commit: Optional[str] = None,
  numerics: Optional[str] = None,
  rerun_stale: bool = False,
  stale_rows: Optional[Collection[str]] = None,
) -> Outcome:
  """`numerics` is the fingerprint of this process's code and machine (stored in new records);
  with `rerun_stale`, records of another fingerprint count as missing and are trained again: in
  every row, or only in `stale_rows` when given (the others keep their records whatever their
  fingerprint, e.g. a sweep that retrains one side of a comparison and none of the rest)."""
  records: Dict[str, Dict[int, dict]] = {}
  versions: Dict[str, Dict[int, Dict[Optional[str], dict]]] = {}
  missing: Dict[str, List[int]] = {}
  trained = 0
  for job in jobs:
    rec = store.get(job.config)
    rerun = rerun_stale and (stale_rows is None or job.row in stale_rows)
    redo = rec is not None and train and runs.stale(rec, numerics, rerun)
    if (rec is None or redo) and train and (max_runs is None or trained < max_runs):
      log(
        f"training {job.label or job.row} seed {job.seed} "
        f"({job.config.num_train_steps} steps) [{runs.record_name(runs.key(job.config))}]"
      )
      rec = runs.ensure(
        job.config,
        store,
        work_root,
        job.label or job.row,
        log=log,
        trainer=trainer,
        commit=commit,
        numerics=numerics,
        rerun_stale=rerun,
      )
      trained += 1
    records.setdefault(job.row, {})
    missing.setdefault(job.row, [])
    found = store.versions(job.config)
    if found:
      versions.setdefault(job.row, {})[job.seed] = found
    if rec is None:
      missing[job.row].append(job.seed)
    else:
      records[job.row][job.seed] = rec
  return Outcome(records, missing, trained, store.dir, versions)


def top1s(records: Dict[int, dict]) -> Dict[int, Optional[float]]:
  return {s: r.get("top1") for s, r in records.items()}


def by_numerics(versions) -> dict:
  """seed -> fingerprint -> {top1, record}: every record of a row's seeds (current and
  superseded), so an effect can pair within the fingerprint its two rows share most."""
  return {
    str(k): {
      str(fp): {"top1": rec.get("top1"), "record": rec["record_path"]}
      for fp, rec in sorted(by_fp.items(), key=lambda kv: str(kv[0]))
    }
    for k, by_fp in sorted(versions.items())
  }


def pair_rows(on_row: dict, off_row: dict) -> dict:
  """stats.pair_within_numerics over two rows' by_numerics (finished runs only; on a tie the
  fingerprint more pairs of current records carry wins), with each kept seed's two record
  paths."""

  def values(row):
    return {
      int(k): {
        (None if fp == "None" else fp): v for fp, v in by_fp.items() if v["top1"] is not None
      }
      for k, by_fp in row["by_numerics"].items()
    }

  current = {}  # fingerprint -> seeds whose two current records carry it
  for k, fp in on_row["numerics"].items():
    if fp and off_row["numerics"].get(k) == fp:
      current[fp] = current.get(fp, 0) + 1
  got = stats.pair_within_numerics(values(on_row), values(off_row), prefer=current)
  return dict(
    got,
    on={k: v["top1"] for k, v in got["on"].items()},
    off={k: v["top1"] for k, v in got["off"].items()},
    records={
      str(k): {"on": got["on"][k]["record"], "off": got["off"][k]["record"]} for k in got["seeds"]
    },
  )


def incomplete_note(missing: Dict[str, List[int]], names: Dict[str, str]) -> str:
  """One markdown line per incomplete row ('' when every row is complete)."""
  lines = [
    f"* **{names.get(r, r)}**: seeds {', '.join(map(str, s))} not trained yet"
    for r, s in missing.items()
    if s
  ]
  if not lines:
    return ""
  return (
    "**Incomplete sweep.** Rows below lack runs; their statistics use the seeds that exist. "
    "Run the same command again to train the rest:\n\n" + "\n".join(lines)
  )


def default_work_root(out_dir: str, quick: bool, name: str) -> str:
  """Checkpoints stay out of results/: /tmp for full runs, inside the temp out_dir for quick."""
  if quick:
    return os.path.join(out_dir, "_work", name)
  return os.path.join("/tmp", "pikelpn_experiments", name)


def enable_compile_cache(directory: str) -> None:
  """Seeds of one setting compile the same programs: a persistent cache makes repeats cheap.

  The environment variable PIKELPN_COMPILE_CACHE, when set, replaces `directory` (the tests share
  one cache between scripts that train the same quick model).
  """
  import jax

  directory = os.environ.get("PIKELPN_COMPILE_CACHE") or directory
  os.makedirs(directory, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def run_from_args(args, name: str, jobs: Sequence[Job], log: Callable[[str], None]) -> Outcome:
  """`run` as the experiment scripts call it: the record store, work root, compile cache and
  limits from their shared flags (--quick, --out_dir, --runs_dir, --work_root, --no_train,
  --max_runs)."""
  from experiments.lib.common import code_commit

  commit = code_commit()  # the code this process imported, before any run ends
  stale_rows = [r.strip() for r in getattr(args, "rerun_stale_rows", "").split(",") if r.strip()]
  unknown = sorted(set(stale_rows) - {j.row for j in jobs})
  if unknown:
    raise ValueError(
      f"--rerun_stale_rows has {unknown}; rows of this sweep: {sorted({j.row for j in jobs})}"
    )
  store = runs.RunStore(runs.runs_dir(args.quick, args.out_dir, args.runs_dir))
  default_root = default_work_root(args.out_dir, args.quick, name)
  fp = None
  if not args.no_train:
    from experiments.lib import numerics

    enable_compile_cache(os.path.join(default_root, "jax_cache"))
    fp = numerics.fingerprint(args.quick, log=log)["numerics"]
  return run(
    jobs,
    store,
    args.work_root or default_root,
    train=not args.no_train,
    log=log,
    max_runs=args.max_runs if args.max_runs >= 0 else None,
    commit=commit,
    numerics=fp,
    rerun_stale=getattr(args, "rerun_stale", False) or bool(stale_rows),
    stale_rows=stale_rows or None,
  )
