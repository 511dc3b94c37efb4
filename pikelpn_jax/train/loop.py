"""train_and_evaluate: set-up, state, the loop (log, checkpoint, eval), finish (results.json)."""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from tqdm import tqdm

from pikelpn_jax.config_base import config_to_json
from pikelpn_jax.data import InputPipeline
from pikelpn_jax.data.device_input import DeviceFeeder
from pikelpn_jax.train import checkpoint, reporting
from pikelpn_jax.train.model_init import phase_at
from pikelpn_jax.train.optim import learning_rate_schedule, make_optimizer
from pikelpn_jax.train.preemption import Preempted, StopRequests
from pikelpn_jax.train.steps import StepFactory, make_mesh, shardings
from pikelpn_jax.train.teacher import load_teacher
from pikelpn_jax.train.validate import check_config


class NonFiniteLossError(RuntimeError):
  """The loss or the parameters became NaN/Inf; no checkpoint was written after it."""


def to_host(tree):
  """numpy copies of replicated arrays (jax.device_get refuses multi-host arrays)."""
  return jax.tree.map(
    lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x, tree
  )


def train_and_evaluate(config, workdir: str, config_source: str = "") -> Dict[str, Any]:
  """Trains config's model in workdir, resuming from its newest checkpoint that restores.

  Returns what it writes to <workdir>/results.json. Bad input raises a one-line ValueError or
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
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config_to_json(config) + "\n")
  set_aside(damaged, resume_step, is_main)
  if state is None:
    state = steps.create_state(jax.random.PRNGKey(config.seed))
  else:
    logging.info("resumed from %s/%d", checkpoint.checkpoint_dir(workdir), resume_step)
  ckpts = checkpoint.Checkpoints(workdir, keep=config.keep_checkpoints)
  log = reporting.MetricsLog(workdir, resume_step or 0, enabled=is_main)

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
    initial=int(to_host(state["step"])),
    desc="train",
    disable=not is_main,
    dynamic_ncols=True,
    mininterval=1.0,
  )
  feeder = DeviceFeeder(batch_sharded, pipeline.mean_std)  # transfers overlap the running step
  start = int(to_host(state["step"]))
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

    # -- Finish: the final eval (if this process logged none), results.json, acev2.json. -----
    bar.close()
    if last_eval is None:  # resumed a finished run: the final eval was not logged by this process
      last_eval = evaluate(steps, pipeline, state, phase_at(config, total))
    ckpts.wait()
    return finish(
      config,
      workdir,
      config_source,
      state,
      last_eval,
      meter,
      time.perf_counter() - run_start,
      is_main,
    )
  finally:
    stop.uninstall()
    bar.close()
    ckpts.close()
    log.close()


def set_aside(
  damaged: List[checkpoint.CheckpointError], resume_step: Optional[int], is_main: bool
) -> None:
  """Moves damaged checkpoints out of checkpoints/ (one warning line each) before the manager
  lists the steps, so their steps are trained and saved again."""
  for error in damaged:
    moved = checkpoint.set_aside(error) if is_main else "damaged_checkpoints/"
    logging.warning(
      "skipped checkpoint %s, unreadable (%s); resuming from step %d (moved it to %s)",
      error.path,
      error.reason,
      resume_step,
      moved,
    )
  if damaged and jax.process_count() > 1:
    multihost_utils.sync_global_devices("damaged checkpoints set aside")


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
    out = fn(state["params"], state["batch_stats"], images, labels, mask)
    sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
  s = to_host(sums)
  n = max(float(s["count"]), 1.0)
  return {
    "eval_top1": float(s["top1"]) / n,
    "eval_top5": float(s["top5"]) / n,
    "eval_loss": float(s["loss"]) / n,
    "eval_examples": int(s["count"]),
  }


def finish(
  config,
  workdir: str,
  config_source: str,
  state,
  last_eval: Dict[str, float],
  meter: Throughput,
  wall: float,
  is_main: bool,
) -> Dict[str, Any]:
  """results.json (and acev2.json of the trained model) in workdir; returns the results."""
  variables = to_host({"params": state["params"], "batch_stats": state["batch_stats"]})
  results: Dict[str, Any] = {
    "model": config.model.get("name"),
    "variant": config.model.get("variant"),
    "config_source": config_source,
    "step": int(to_host(state["step"])),
    "params_sha256": reporting.params_sha256(variables["params"]),
    "num_params": int(sum(np.size(x) for x in jax.tree.leaves(variables["params"]))),
    "devices": jax.device_count(),
    "device_kind": jax.devices()[0].device_kind,
    "train_wall_s": round(wall, 2),
    "allocator": reporting.allocator(),
    "train_images_per_sec": meter.images_per_sec(),
    **last_eval,
  }
  ace = reporting.ace_summary(config, variables) if is_main else None
  for key in ("macs", "ace", "acev2"):
    results[key] = ace.get(key) if ace else None
  if is_main:
    if ace is not None:
      reporting.write_json(os.path.join(workdir, "acev2.json"), ace)
    reporting.write_json(os.path.join(workdir, "results.json"), results)
  return results
