"""train_and_evaluate: the config checks, set-up, state, the loop (log, checkpoint, eval), and
what a run leaves behind (metrics.jsonl, TensorBoard events, results.json)."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Dict, List, Optional

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import traverse_util
from tqdm import tqdm

from pikelpn_jax import workdir as wd
from pikelpn_jax.allocator import allocator_in_use
from pikelpn_jax.config_base import check_int, config_to_json
from pikelpn_jax.data import InputPipeline, check_dataset_name
from pikelpn_jax.data.device_input import DeviceFeeder
from pikelpn_jax.data.sources import check_augment
from pikelpn_jax.train import checkpoint
from pikelpn_jax.train.optim import check_optimizer_fields, learning_rate_schedule, make_optimizer
from pikelpn_jax.train.preemption import Preempted, StopRequests
from pikelpn_jax.train.steps import StepFactory, make_mesh, phase_at, shardings
from pikelpn_jax.train.teacher import load_teacher

POSITIVE_INT_FIELDS = (
  "num_train_steps",
  "batch_size",
  "eval_batch_size",
  "eval_every_steps",
  "checkpoint_every_steps",
  "keep_checkpoints",
  "log_every_steps",
)


class NonFiniteLossError(RuntimeError):
  """The loss or the parameters became NaN/Inf; no checkpoint was written after it."""


def check_config(config, device_count: int, process_count: int = 1) -> None:
  """One-line ValueErrors for a config that cannot train, before anything is written."""
  for field in POSITIVE_INT_FIELDS:
    check_int(field, config[field], 1)
  for field in ("batch_size", "eval_batch_size"):
    if config[field] % device_count:
      raise ValueError(
        f"{field}={config[field]} is not divisible by the {device_count} devices; "
        f"use a multiple of {device_count}"
      )
  check_dataset_name(config.dataset.name)
  d = config.dataset
  for field in ("image_size", "channels", "num_classes"):
    check_int(f"dataset.{field}", d[field], 1)
  if "augment" in d:
    check_augment(d.augment, d.get("max_shift", 0))
  check_optimizer_fields(config)
  qs = config.quant_schedule
  for field in ("weight_start_step", "act_start_step"):
    check_int(f"quant_schedule.{field}", qs[field], 0)
  kd = config.distill
  if kd.teacher_config:
    if not 0.0 <= kd.alpha <= 1.0:
      raise ValueError(f"distill.alpha={kd.alpha} is not allowed; use 0..1 (1 = pure KD)")
    if not kd.temperature > 0:
      raise ValueError(
        f"distill.temperature={kd.temperature} is not allowed; use a positive number"
      )
    if not kd.teacher_workdir:
      raise ValueError(
        f"distill.teacher_config={kd.teacher_config!r} needs distill.teacher_workdir "
        "(the teacher's training workdir)"
      )


def to_host(tree):
  """numpy copies of replicated arrays (jax.device_get refuses multi-host arrays)."""
  return jax.tree.map(
    lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x, tree
  )


def train_and_evaluate(config, workdir: str, config_source: str = "") -> Dict[str, Any]:
  """Trains config's model in workdir, resuming from its newest checkpoint that restores.

  Returns what it writes to <workdir>/results.json (the command line adds the ACEv2 totals of
  the trained model: cli.py). Bad input raises a one-line ValueError or
  FileNotFoundError before anything is written; a NaN/Inf loss raises NonFiniteLossError. On
  SIGTERM/SIGINT or jax's preemption notice it saves the step every process agreed on and raises
  Preempted (preemption.py).
  """
  # -- Set-up: everything that can reject the input runs before the first byte is written. ----
  check_config(config, jax.device_count(), jax.process_count())
  is_main = jax.process_index() == 0
  mesh = make_mesh()
  replicated, batch_sharded = shardings(mesh)
  tx, schedule = make_optimizer(config), learning_rate_schedule(config)
  pipeline = InputPipeline(config, jax.process_index(), jax.process_count())
  teacher = load_teacher(config, replicated)
  steps = StepFactory(config, tx, mesh, teacher)
  resume_step, state, damaged = checkpoint.newest_restorable(
    workdir, config, steps.abstract_state()
  )
  if resume_step is None and damaged:
    raise ValueError(
      f"no checkpoint of workdir {workdir!r} restores ({len(damaged)} damaged; "
      f"newest: {damaged[0]}); move {checkpoint.checkpoint_dir(workdir)} away to "
      "train from scratch"
    )

  # -- State: fresh, or the newest checkpoint that restores (damaged newer ones set aside). ----
  if is_main:
    wd.makedirs(workdir)
    wd.write_text(wd.join(workdir, "config.json"), config_to_json(config) + "\n")
  checkpoint.set_aside(damaged, resume_step, is_main)
  if state is None:
    state = steps.create_state(jax.random.PRNGKey(config.seed))
  else:
    logging.info("resumed from %s/%d", checkpoint.checkpoint_dir(workdir), resume_step)
  ckpts = checkpoint.Checkpoints(workdir, keep=config.keep_checkpoints)
  log = MetricsLog(workdir, resume_step or 0, enabled=is_main)

  # -- The loop: a step per batch; metrics every log_every_steps, checkpoints, evals. --------
  total, batch = int(config.num_train_steps), int(config.batch_size)
  teacher_vars = teacher.variables if teacher else {}
  meter = Throughput()
  pending: List[Dict[str, jax.Array]] = []
  last_eval: Optional[Dict[str, float]] = None
  last_good = resume_step
  run_start = time.perf_counter()
  bar = tqdm(
    total=total,
    initial=int(to_host(state.step)),
    desc="train",
    disable=not is_main,
    dynamic_ncols=True,
    mininterval=1.0,
  )
  feeder = DeviceFeeder(batch_sharded, pipeline.mean_std)  # transfers overlap the running step
  start = int(to_host(state.step))
  stop = StopRequests().install()
  try:
    stop.reached(start)  # every process reports a step before any notice can arrive
    for step, images, labels in feeder.feed(pipeline.train_iter(start, total)):
      phase = phase_at(config, step)
      meter.compiles |= not steps.has_train_step(phase)
      state, metrics = steps.train_step(phase)(state, images, labels, teacher_vars)
      pending.append(metrics)
      bar.update(1)
      done = step + 1
      stopping = stop.reached(done) and done < total  # at `total` the run just finishes
      is_eval = not stopping and (done % config.eval_every_steps == 0 or done == total)
      is_ckpt = stopping or done % config.checkpoint_every_steps == 0 or done == total
      if not (done % config.log_every_steps == 0 or is_eval or is_ckpt):
        continue
      record = train_metrics(pending, done, last_good, workdir, config.learning_rate)
      record["images_per_sec"] = meter.interval_done(len(pending) * batch)
      record["input_wait_fraction"] = min(1.0, feeder.pop_wait() / max(meter.last_interval, 1e-9))
      record["learning_rate"] = float(schedule(step))
      log.write(done, record)
      bar.set_postfix(
        loss=f"{record['train_loss']:.4f}",
        acc=f"{record['train_accuracy']:.3f}",
        img_s=f"{record['images_per_sec']:.0f}",
      )
      pending = []
      if is_ckpt:
        ckpts.save(done, state, config, checkpoint.model_meta(config, config_source, done))
        last_good = done
      if stopping:
        ckpts.wait()
        raise Preempted(done, ckpts.step_dir(done), stop.reason)
      if is_eval:
        last_eval = evaluate(steps, pipeline, state, phase_at(config, done))
        log.write(done, last_eval)
        bar.write(
          f"step {done}: eval top-1 {last_eval['eval_top1']:.4f} top-5 {last_eval['eval_top5']:.4f}"
        )
      meter.restart()  # evals and checkpoint saves are not training time

    # -- Finish: the final eval (if this process logged none), results.json. ------------------
    bar.close()
    if last_eval is None:  # resumed a finished run: the final eval was not logged by this process
      last_eval = evaluate(steps, pipeline, state, phase_at(config, total))
    ckpts.wait()
    params = to_host(state.params)
    results: Dict[str, Any] = {
      "model": config.model.get("name"),
      "variant": config.model.get("variant"),
      "config_source": config_source,
      "step": int(to_host(state.step)),
      "params_sha256": params_sha256(params),
      "num_params": int(sum(np.size(x) for x in jax.tree.leaves(params))),
      "devices": jax.device_count(),
      "device_kind": jax.devices()[0].device_kind,
      "train_wall_s": round(time.perf_counter() - run_start, 2),
      # tcmalloc makes XLA:CPU ~1.5x faster (pikelpn_jax/allocator.py)
      "allocator": allocator_in_use(),
      "train_images_per_sec": meter.images_per_sec(),
      **last_eval,
    }
    if is_main:
      write_json(wd.join(workdir, "results.json"), results)
    return results
  finally:
    stop.uninstall()
    bar.close()
    ckpts.close()
    log.close()


class Throughput:
  """Training images per second, leaving out intervals that compiled a step."""

  def __init__(self):
    self.compiles, self.seconds, self.images, self.last_interval = False, 0.0, 0, 0.0
    self.t0 = time.perf_counter()

  def interval_done(self, images: int) -> float:
    """Closes the interval of `images` training images; returns its images per second."""
    dt = self.last_interval = time.perf_counter() - self.t0
    if not self.compiles:
      self.seconds, self.images = self.seconds + dt, self.images + images
    self.compiles = False
    return images / max(dt, 1e-9)

  def restart(self) -> None:
    self.t0 = time.perf_counter()

  def images_per_sec(self) -> Optional[float]:
    return round(self.images / self.seconds, 2) if self.seconds > 0 else None


def train_metrics(
  pending, done: int, last_good: Optional[int], workdir: str, learning_rate: float
) -> Dict[str, float]:
  """Mean loss and accuracy of the steps since the last record; NonFiniteLossError on NaN/Inf."""
  ms = to_host(pending)
  finite = np.asarray([m["finite"] for m in ms])
  if not finite.all():
    bad = done - len(ms) + int(np.argmin(finite)) + 1
    loss = float(ms[int(np.argmin(finite))]["loss"])
    where = (
      f"the last good checkpoint is step {last_good} in {checkpoint.checkpoint_dir(workdir)}"
      if last_good
      else "no checkpoint was written"
    )
    raise NonFiniteLossError(
      f"loss became non-finite (loss={loss}, or NaN/Inf parameters) at step {bad}; stopped without "
      f"saving; {where}; lower learning_rate (now {learning_rate}) or check the inputs"
    )
  return {
    "train_loss": float(np.mean([m["loss"] for m in ms])),
    "train_accuracy": float(np.mean([m["accuracy"] for m in ms])),
  }


def evaluate(steps: StepFactory, pipeline: InputPipeline, state, phase) -> Dict[str, float]:
  """Top-1/top-5/loss over the whole eval split (padded rows masked out)."""
  fn = steps.eval_step(phase)
  sums: Optional[Dict[str, jax.Array]] = None
  feeder = DeviceFeeder(steps.batch_sharded, pipeline.mean_std)
  for images, labels, mask in feeder.feed(pipeline.eval_iter()):
    out = fn(state.params, state.batch_stats, images, labels, mask)
    sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
  s = to_host(sums)
  n = max(float(s["count"]), 1.0)
  return {
    "eval_top1": float(s["top1"]) / n,
    "eval_top5": float(s["top5"]) / n,
    "eval_loss": float(s["loss"]) / n,
    "eval_examples": int(s["count"]),
  }


def params_sha256(params) -> str:
  """SHA-256 over (path, dtype, shape, bytes) of every leaf, in sorted path order."""
  h = hashlib.sha256()
  flat = traverse_util.flatten_dict(params, sep="/") if params else {}
  for path in sorted(flat):
    leaf = flat[path]
    if isinstance(leaf, jax.Array):
      leaf = leaf.addressable_data(0)
    arr = np.ascontiguousarray(np.asarray(leaf))
    h.update(path.encode())
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(arr.tobytes())
  return h.hexdigest()


def write_json(path: str, obj: Dict[str, Any]) -> None:
  """Whole-file write (workdir.write_text), so a kill never leaves half a file."""
  wd.write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


class MetricsLog:
  """Appends JSON lines to <workdir>/metrics.jsonl and scalars to TensorBoard (<workdir>/tb).

  On resume from step s, records after s (written by a run killed before its next checkpoint)
  are dropped, and TensorBoard events from step s on are purged, so the logs read as one run.
  """

  def __init__(self, workdir: str, resume_step: int, enabled: bool = True):
    self.enabled = enabled
    self.path = wd.join(workdir, "metrics.jsonl")
    self._tb = None
    if not enabled:
      return
    if resume_step > 0 and wd.exists(self.path):
      lines = wd.read_text(self.path).splitlines(keepends=True)
      keep = [ln for ln in lines if ln.strip() and json.loads(ln).get("step", 0) <= resume_step]
      wd.write_text(self.path, "".join(keep))
    elif resume_step == 0 and wd.exists(self.path):
      wd.write_text(self.path, "")
    from tensorboardX import SummaryWriter  # imported here: only the writing host needs it

    self._tb = SummaryWriter(wd.join(workdir, "tb"), purge_step=resume_step)

  def write(self, step: int, record: Dict[str, Any]) -> None:
    if not self.enabled:
      return
    plain = lambda v: v.item() if isinstance(v, (np.generic, np.ndarray)) else v
    rec = {"step": int(step), **{k: plain(v) for k, v in record.items()}}
    wd.append_text(self.path, json.dumps(rec) + "\n")
    for k, v in rec.items():
      if k != "step" and isinstance(v, (int, float)):
        self._tb.add_scalar(k, v, step)
    self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
