"""train_and_evaluate: the training loop (resume, eval, checkpoints, logs, final report)."""
from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from pikelpn_jax.data import InputPipeline
from pikelpn_jax.data.device_input import DeviceFeeder
from pikelpn_jax.train import checkpoint, reporting
from pikelpn_jax.train.config_io import config_to_json
from pikelpn_jax.train.model_init import phase_at
from pikelpn_jax.train.optim import learning_rate_schedule, make_optimizer
from pikelpn_jax.train.steps import (StepFactory, abstract_state, create_state,
                                     make_mesh)
from pikelpn_jax.train.teacher import load_teacher
from pikelpn_jax.train.validate import check_config


def to_host(tree):
  """numpy copies of replicated arrays (jax.device_get refuses multi-host arrays)."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x,
                      tree)


class NonFiniteLossError(RuntimeError):
  """The loss or the parameters became NaN/Inf; no checkpoint was written after it."""


class _Trainer:
  def __init__(self, config, workdir: str, config_source: str):
    self.config, self.workdir, self.config_source = config, workdir, config_source
    self.is_main = jax.process_index() == 0
    # Everything that can reject the input runs before the first byte is written.
    check_config(config, jax.device_count(), jax.process_count())
    self.mesh = make_mesh()
    self.tx = make_optimizer(config)
    self.schedule = learning_rate_schedule(config)
    self.pipeline = InputPipeline(config, jax.process_index(), jax.process_count())
    self.steps = StepFactory(config, self.tx, self.mesh)
    self.abstract = abstract_state(config, self.tx, self.steps.replicated)
    self.steps.teacher = load_teacher(config, self.steps.replicated)
    self.teacher_vars = self.steps.teacher.variables if self.steps.teacher else {}
    self.resume_step = checkpoint.latest_step(workdir)
    if self.resume_step is not None:
      ro = checkpoint.Checkpoints(workdir, read_only=True)
      try:
        abstract_model = {k: self.abstract[k] for k in ("params", "batch_stats")}
        checkpoint.check_matches(ro, self.resume_step, config, abstract_model, "workdir")
      finally:
        ro.close()

  # -- state ------------------------------------------------------------------------------
  def init_state(self, ckpts: checkpoint.Checkpoints):
    if self.resume_step is None:
      return create_state(self.config, self.tx, jax.random.PRNGKey(self.config.seed),
                          self.steps.replicated)
    state = ckpts.restore_state(self.resume_step, self.abstract)
    print(f"resumed from {checkpoint.checkpoint_dir(self.workdir)}/{self.resume_step}")
    return state

  def meta(self, step: int) -> Dict[str, Any]:
    return checkpoint.model_meta(self.config, self.config_source, step)

  # -- eval -------------------------------------------------------------------------------
  def evaluate(self, state, step: int) -> Dict[str, float]:
    fn = self.steps.eval_step(phase_at(self.config, step))
    _, b = self.steps.replicated, self.steps.batch_sharded
    sums: Optional[Dict[str, jax.Array]] = None
    feeder = DeviceFeeder(b, self.pipeline.mean_std)
    for images, labels, mask in feeder.feed(self.pipeline.eval_iter()):
      out = fn(state["params"], state["batch_stats"], images, labels, mask)
      sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
    s = to_host(sums)
    n = max(float(s["count"]), 1.0)
    return {"eval_top1": float(s["top1"]) / n, "eval_top5": float(s["top5"]) / n,
            "eval_loss": float(s["loss"]) / n, "eval_examples": int(s["count"])}

  # -- loop -------------------------------------------------------------------------------
  def run(self) -> Dict[str, Any]:
    c, workdir = self.config, self.workdir
    if self.is_main:
      os.makedirs(workdir, exist_ok=True)
      with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config_to_json(c) + "\n")
    ckpts = checkpoint.Checkpoints(workdir, keep=c.keep_checkpoints)
    log = reporting.MetricsLog(workdir, self.resume_step or 0, enabled=self.is_main)
    try:
      return self._run(ckpts, log)
    finally:
      ckpts.close()
      log.close()

  def _run(self, ckpts, log) -> Dict[str, Any]:
    c = self.config
    total, gb = int(c.num_train_steps), int(c.batch_size)
    state = self.init_state(ckpts)
    start = int(to_host(state["step"]))
    b = self.steps.batch_sharded
    bar = tqdm(total=total, initial=start, desc="train", disable=not self.is_main,
               dynamic_ncols=True, mininterval=1.0)
    pending: List[Dict[str, jax.Array]] = []
    compiled_in_interval = False
    last_eval: Optional[Dict[str, float]] = None
    t_train, n_train, t0 = 0.0, 0, time.perf_counter()
    last_good = self.resume_step
    run_start = time.perf_counter()
    feeder = DeviceFeeder(b, self.pipeline.mean_std)   # transfers overlap the running step
    try:
      for step, images, labels in feeder.feed(self.pipeline.train_iter(start, total)):
        phase = phase_at(c, step)
        compiled_in_interval |= not self.steps.has_train_step(phase)
        fn = self.steps.train_step(phase)
        state, m = fn(state, images, labels, self.teacher_vars)
        pending.append(m)
        bar.update(1)
        done = step + 1
        is_eval = done % c.eval_every_steps == 0 or done == total
        is_ckpt = done % c.checkpoint_every_steps == 0 or done == total
        if done % c.log_every_steps == 0 or is_eval or is_ckpt:
          record = self._flush(pending, done, last_good)
          dt = time.perf_counter() - t0
          if not compiled_in_interval:   # throughput excludes intervals that compiled a step
            t_train, n_train = t_train + dt, n_train + len(pending) * gb
          compiled_in_interval = False
          record["images_per_sec"] = len(pending) * gb / max(dt, 1e-9)
          record["input_wait_fraction"] = min(1.0, feeder.pop_wait() / max(dt, 1e-9))
          record["learning_rate"] = float(self.schedule(step))
          log.write(done, record)
          bar.set_postfix(loss=f"{record['train_loss']:.4f}", acc=f"{record['train_accuracy']:.3f}",
                          img_s=f"{record['images_per_sec']:.0f}")
          pending = []
          if is_ckpt:
            ckpts.save(done, state, c, self.meta(done))
            last_good = done
          if is_eval:
            last_eval = self.evaluate(state, done)
            log.write(done, last_eval)
            bar.write(f"step {done}: eval top-1 {last_eval['eval_top1']:.4f} "
                      f"top-5 {last_eval['eval_top5']:.4f}")
          t0 = time.perf_counter()
    finally:
      bar.close()
    if last_eval is None:   # resumed a finished run: the final eval was not logged by this process
      last_eval = self.evaluate(state, total)
    ckpts.wait()
    return self._finish(state, total, last_eval, t_train, n_train, time.perf_counter() - run_start)

  def _flush(self, pending, done: int, last_good: Optional[int]) -> Dict[str, float]:
    ms = to_host(pending)
    finite = np.asarray([m["finite"] for m in ms])
    if not finite.all():
      bad = done - len(ms) + int(np.argmin(finite)) + 1
      loss = float(ms[int(np.argmin(finite))]["loss"])
      where = (f"the last good checkpoint is step {last_good} in {checkpoint.checkpoint_dir(self.workdir)}"
               if last_good else "no checkpoint was written")
      raise NonFiniteLossError(
          f"loss became non-finite (loss={loss}, or NaN/Inf parameters) at step {bad}; stopped without "
          f"saving; {where}; lower learning_rate (now {self.config.learning_rate}) or check the inputs")
    return {"train_loss": float(np.mean([m["loss"] for m in ms])),
            "train_accuracy": float(np.mean([m["accuracy"] for m in ms]))}

  def _finish(self, state, total, last_eval, t_train, n_train, wall) -> Dict[str, Any]:
    c = self.config
    variables = to_host({"params": state["params"], "batch_stats": state["batch_stats"]})
    results: Dict[str, Any] = {
        "model": c.model.get("name"), "variant": c.model.get("variant"),
        "config_source": self.config_source, "step": int(to_host(state["step"])),
        "params_sha256": reporting.params_sha256(variables["params"]),
        "num_params": int(sum(np.size(x) for x in jax.tree.leaves(variables["params"]))),
        "devices": jax.device_count(), "device_kind": jax.devices()[0].device_kind,
        "train_wall_s": round(wall, 2),
        "train_images_per_sec": round(n_train / t_train, 2) if t_train > 0 else None,
        **last_eval}
    ace = reporting.ace_summary(c, variables) if self.is_main else None
    for key in ("macs", "ace", "acev2"):
      results[key] = ace.get(key) if ace else None
    if self.is_main:
      if ace is not None:
        reporting.write_json(os.path.join(self.workdir, "acev2.json"), ace)
      reporting.write_json(os.path.join(self.workdir, "results.json"), results)
      print(reporting.results_table(results))
    return results


def train_and_evaluate(config, workdir: str, config_source: str = "") -> Dict[str, Any]:
  """Trains config's model in workdir (resuming from its latest checkpoint); returns results.json."""
  return _Trainer(config, workdir, config_source).run()
