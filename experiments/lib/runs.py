"""The run cache: one small JSON per finished training run, so a sweep can stop and resume.

A run is keyed by (config hash, seed, step budget). The config hash covers only what changes
training: the resolved config minus the seed and step count (separate parts of the key) and the
fields in NOT_TRAINING (logging, checkpointing, evaluation batching, cost-analyzer settings,
labels). A record holds top-1, top-5, the ACEv2 the trained model had at training time, wall time,
device, allocator and commit, plus the training config itself, so tables can recompute every cost
column from the config with the current analyzer: analyzer changes never invalidate a run.

    records/<config_hash>_s<seed>_n<steps>.json

Full sweeps write results/runs/ (committed); --quick writes its own directory (see runs_dir).

A record also says which code trained it: `commit` is the code the training process imported
(experiments.lib.common.code_commit at the sweep's start, '+diff.<hash>' for uncommitted code), and
`numerics` the numerics fingerprint of that code on that machine (experiments/lib/numerics.py):
tables pair only records with equal fingerprints. A record trained again at another fingerprint
(`--rerun_stale`) moves to superseded/ first, so nothing measured is lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any, Callable, Dict, Optional

from experiments.lib.common import REPO, code_commit

DEFAULT_DIR = os.path.join(REPO, "results", "runs")
SCHEMA = 2  # 2: `numerics` and the imported code's `commit`
# Dotted config fields that do not change the trained weights or the measured accuracy (where the
# same data lives on a machine, how many threads decode it, logging, checkpoints, labels).
NOT_TRAINING = (
  "seed",
  "num_train_steps",
  "eval_every_steps",
  "checkpoint_every_steps",
  "log_every_steps",
  "keep_checkpoints",
  "eval_batch_size",
  "ace",
  "reported_top1",
  "model.variant",
  "dataset.fmnist_dir",
  "dataset.data_dir",
  "dataset.num_workers",
  # grain worker processes: the batch is a function of (seed, step) for any worker count
  # (tests/train/test_grain_scale_out.py checks it)
  "dataset.worker_count",
)
# Fields added to the configs after records existed, with the value that trains exactly as
# before the field existed: left out of the hash while they hold it, so a new option never
# orphans the committed records (tests/experiments/test_lib_runs.py re-keys every one of them).
BACKWARD_DEFAULTS = {
  "dtype": "float32",
}


def runs_dir(quick: bool, out_dir: str, explicit: str = "") -> str:
  """--runs_dir if given; else results/runs for full runs and <out_dir>/runs_quick for --quick."""
  if explicit:
    return explicit
  return os.path.join(out_dir, "runs_quick") if quick else DEFAULT_DIR


def training_dict(config) -> Dict[str, Any]:
  """The config as JSON types, minus the fields that do not change training."""
  from pikelpn_jax.config_base import config_to_dict

  d = json.loads(json.dumps(config_to_dict(config)))
  for dotted in NOT_TRAINING:
    node, leaf = _parent(d, dotted)
    node.pop(leaf, None)
  for dotted, old_behaviour in BACKWARD_DEFAULTS.items():
    node, leaf = _parent(d, dotted)
    if node.get(leaf, old_behaviour) == old_behaviour:
      node.pop(leaf, None)
  return d


def _parent(d: Dict[str, Any], dotted: str):
  *parents, leaf = dotted.split(".")
  for p in parents:
    d = d.get(p, {})
  return d, leaf


def config_hash(config) -> str:
  blob = json.dumps(training_dict(config), sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(blob.encode()).hexdigest()[:16]


def key(config) -> Dict[str, Any]:
  return {
    "config_hash": config_hash(config),
    "seed": int(config.seed),
    "steps": int(config.num_train_steps),
  }


def record_name(k: Dict[str, Any]) -> str:
  return f"{k['config_hash']}_s{k['seed']}_n{k['steps']}.json"


def allocator() -> str:
  """'tcmalloc' when the process runs with tcmalloc preloaded, else 'glibc malloc'."""
  return "tcmalloc" if "tcmalloc" in os.environ.get("LD_PRELOAD", "") else "glibc malloc"


class RunStore:
  """The records of one directory."""

  def __init__(self, directory: str):
    self.dir = directory

  def path(self, config) -> str:
    return os.path.join(self.dir, record_name(key(config)))

  def get(self, config) -> Optional[Dict[str, Any]]:
    p = self.path(config)
    if not os.path.exists(p):
      return None
    with open(p) as f:
      rec = json.load(f)
    if rec.get("key") != key(config):
      raise ValueError(f"run record {p} holds key {rec.get('key')}, not {key(config)}; remove it")
    return rec

  def supersede(self, config) -> Optional[str]:
    """Moves `config`'s record to superseded/<name>__<its numerics>.json; its new path or None."""
    rec = self.get(config)
    if rec is None:
      return None
    stem = record_name(key(config))[: -len(".json")]
    dest_dir = os.path.join(self.dir, "superseded")
    os.makedirs(dest_dir, exist_ok=True)
    dest = os.path.join(dest_dir, f"{stem}__{rec.get('numerics') or 'unknown'}.json")
    os.replace(self.path(config), dest)
    return dest

  def versions(self, config) -> Dict[Optional[str], Dict[str, Any]]:
    """Every record of `config` by fingerprint: the current one and the superseded ones (a run
    trained again at another fingerprint), each with `record_path` (relative to this directory)
    added, so a table can pair two configs within whichever fingerprint both were trained at."""
    out: Dict[Optional[str], Dict[str, Any]] = {}
    stem = record_name(key(config))[: -len(".json")]
    sup = os.path.join(self.dir, "superseded")
    names = (
      sorted(n for n in os.listdir(sup) if n.startswith(stem + "__")) if os.path.isdir(sup) else []
    )
    for name in names:
      with open(os.path.join(sup, name)) as f:
        rec = json.load(f)
      if rec.get("key") != key(config):
        raise ValueError(f"superseded record {name} holds key {rec.get('key')}, not {key(config)}")
      out[rec.get("numerics")] = dict(rec, record_path=os.path.join("superseded", name))
    current = self.get(config)
    if current is not None:  # the current record wins a tie of fingerprints
      out[current.get("numerics")] = dict(current, record_path=record_name(current["key"]))
    return out

  def put(self, record: Dict[str, Any]) -> str:
    os.makedirs(self.dir, exist_ok=True)
    p = os.path.join(self.dir, record_name(record["key"]))
    tmp = p + ".tmp"
    with open(tmp, "w") as f:
      json.dump(record, f, indent=1, sort_keys=True)
      f.write("\n")
    os.replace(tmp, p)
    return p


def make_record(
  config,
  results: Dict[str, Any],
  wall_s: float,
  label: str = "",
  commit: Optional[str] = None,
  numerics: Optional[str] = None,
) -> Dict[str, Any]:
  """A record from train_and_evaluate's results.json dict (or a divergence: eval_top1 None).

  `commit` is the code the training process imported (default: code_commit() now) and
  `numerics` its fingerprint (None: not measured).
  """
  import jax

  from experiments.lib.numerics import cpu_identity

  dev = jax.devices()[0]
  return {
    "schema": SCHEMA,
    "key": key(config),
    "label": label,
    "top1": results.get("eval_top1"),
    "top5": results.get("eval_top5"),
    "eval_loss": results.get("eval_loss"),
    "error": results.get("error"),
    "acev2_at_training": results.get("acev2"),
    "params_sha256": results.get("params_sha256"),
    "num_params": results.get("num_params"),
    "train_wall_s": results.get("train_wall_s"),
    "wall_s": round(float(wall_s), 1),
    "device": f"{jax.default_backend()} {getattr(dev, 'device_kind', dev.platform)} "
    f"×{jax.device_count()}",
    "cpu_count": os.cpu_count(),
    "cpu": cpu_identity(),
    "allocator": allocator(),
    "commit": commit or code_commit(),
    "numerics": numerics,
    "finished_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "config": training_dict(config),
  }


def ensure(
  config,
  store: RunStore,
  work_root: str,
  label: str = "",
  log: Callable[[str], None] = print,
  trainer: Optional[Callable[[Any, str], Dict[str, Any]]] = None,
  commit: Optional[str] = None,
  numerics: Optional[str] = None,
  rerun_stale: bool = False,
) -> Dict[str, Any]:
  """The record of `config`'s run: read from the store, or trained now in work_root and stored.

  A run whose loss became non-finite is recorded too (top1 None, its error): it is deterministic,
  so training it again would diverge again. `trainer(config, workdir) -> results` defaults to
  `train` (the project's training loop). With `rerun_stale`, a record whose fingerprint is not `numerics`
  is superseded and trained again.
  """
  rec = store.get(config)
  k = key(config)
  workdir = os.path.join(work_root, record_name(k)[: -len(".json")])
  if rec is not None and stale(rec, numerics, rerun_stale):
    log(f"  superseded ({rec.get('numerics')} is not {numerics}): {store.supersede(config)}")
    if os.path.exists(workdir):  # its checkpoints are another fingerprint's: never resume from them
      os.replace(workdir, f"{workdir}.{rec.get('numerics') or 'unknown'}")
    rec = None
  if rec is not None:
    log(f"  cached: {label} seed {config.seed} ({os.path.relpath(store.path(config))})")
    return rec
  t0 = time.perf_counter()
  results = trainer(config, workdir) if trainer is not None else train(config, workdir, log)
  rec = make_record(config, results, time.perf_counter() - t0, label, commit, numerics)
  log(f"  recorded {label} seed {config.seed}: top-1 {rec['top1']} -> {store.put(rec)}")
  return rec


def train(config, workdir: str, log: Callable[[str], None] = print) -> Dict[str, Any]:
  """Trains `config` in `workdir` with the project's training loop (resuming a checkpoint there):
  every experiment trains through here. Returns results.json's dict; a run whose loss became
  non-finite returns eval_top1 None and its error, so one diverging model does not stop a table.
  """
  from pikelpn_jax.train import NonFiniteLossError, train_and_evaluate
  from pikelpn_jax.train.cli import add_acev2

  try:
    results = dict(train_and_evaluate(config, workdir))
    add_acev2(config, workdir, results)  # as main.py does: the record's acev2_at_training
    return results
  except NonFiniteLossError as e:
    log(f"  diverged: {e}")
    return {"eval_top1": None, "error": str(e), "step": None}


def trained_checkpoint(config, workdir: str, log: Callable[[str], None] = print) -> Dict[str, Any]:
  """`config` trained in `workdir`, for a script that reads the weights (not only the record):
  a finished run of the same config there is reused, a run of another config is refused (its
  checkpoint would be resumed), else `train`. Returns results.json's dict plus "config"."""
  from pikelpn_jax.config_base import config_to_dict

  done = _finished(config, workdir)
  if done is not None:
    log(f"  reusing the finished run in {workdir}")
    return done
  if os.path.exists(os.path.join(workdir, "config.json")) and not _same_config(config, workdir):
    raise ValueError(
      f"workdir {workdir!r} holds a run of a different config; remove it or use another --work_root"
    )
  out = train(config, workdir, log)
  out["config"] = config_to_dict(config)
  return out


def _same_config(config, workdir: str) -> bool:
  from pikelpn_jax.config_base import config_to_dict

  with open(os.path.join(workdir, "config.json")) as f:
    saved = json.load(f)
  return saved == json.loads(json.dumps(config_to_dict(config)))


def _finished(config, workdir: str) -> Optional[Dict[str, Any]]:
  res, cfg = os.path.join(workdir, "results.json"), os.path.join(workdir, "config.json")
  if not (os.path.exists(res) and os.path.exists(cfg)) or not _same_config(config, workdir):
    return None
  with open(res) as f:
    out = json.load(f)
  if out.get("step") != config.num_train_steps:
    return None
  with open(cfg) as f:
    out["config"] = json.load(f)
  return out


def stale(rec: Dict[str, Any], numerics: Optional[str], rerun_stale: bool) -> bool:
  """Whether a sweep at fingerprint `numerics` trains `rec`'s run again."""
  return bool(rerun_stale and numerics and rec.get("numerics") != numerics)


def import_workdir(
  config,
  workdir: str,
  store: RunStore,
  label: str = "",
  commit: Optional[str] = None,
  numerics: Optional[str] = None,
) -> Dict[str, Any]:
  """Records a run finished by main.py in `workdir` (its results.json) if it is `config`'s run.

  `commit` and `numerics` say which code trained it, on which machine (the caller knows; the
  workdir does not record them)."""
  with open(os.path.join(workdir, "config.json")) as f:
    saved = json.load(f)
  from ml_collections import ConfigDict

  if config_hash(ConfigDict(saved)) != config_hash(config) or saved.get("seed") != config.seed:
    raise ValueError(f"{workdir} holds a run of another config than the one to record")
  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  if results.get("step") != config.num_train_steps:
    raise ValueError(
      f"{workdir} stopped at step {results.get('step')}, not {config.num_train_steps}"
    )
  rec = make_record(
    config, results, results.get("train_wall_s") or 0.0, label, commit=commit, numerics=numerics
  )
  rec["imported_from"] = workdir
  store.put(rec)
  return rec


def superseded_pairs(directory: str) -> list:
  """Each superseded record beside the record that replaced it: the same config and seed
  trained at two fingerprints (code, libraries or CPU), with the top-1 move between them."""
  sup = os.path.join(directory, "superseded")
  if not os.path.isdir(sup):
    return []
  out = []
  for name in sorted(os.listdir(sup)):
    if not name.endswith(".json"):
      continue
    current = os.path.join(directory, name.split("__")[0] + ".json")
    if not os.path.exists(current):
      continue
    with open(os.path.join(sup, name)) as f:
      old = json.load(f)
    with open(current) as f:
      new = json.load(f)
    a, b = old.get("top1"), new.get("top1")
    out.append(
      {
        "name": name.split("__")[0],
        "label": new.get("label", ""),
        "seed": new["key"]["seed"],
        "old_numerics": old.get("numerics"),
        "new_numerics": new.get("numerics"),
        "old_commit": old.get("commit"),
        "new_commit": new.get("commit"),
        "old_device": old.get("cpu") or old.get("device"),
        "new_device": new.get("cpu") or new.get("device"),
        "old_top1": a,
        "new_top1": b,
        "move": None if a is None or b is None else b - a,
        "same_params": old.get("params_sha256") == new.get("params_sha256"),
      }
    )
  return out
