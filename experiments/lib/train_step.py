"""The project's real train and eval steps, set up for timing: the one place the benchmarks
(bench_layers, profile_train_step, bench_train, device_check) reach into pikelpn_jax.train.

A `RealStep` is what `python main.py` runs each step: the optimizer of the config
(pikelpn_jax.train.optim.make_optimizer), the jitted, sharded step of
pikelpn_jax.train.steps.StepFactory for the fully quantized phase (forward, loss with the
config's label smoothing, backward, update, batch-norm statistics), on a synthetic batch from the
project's input pipeline. The batch is an argument of the step, as in training: a batch closed
over would be a constant that XLA folds into the timed program.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Tuple

import jax
import numpy as np

# The two models every benchmark compares: (name, config spec).
MODELS = (
  ("MobileNetV1 float", "configs/mobilenet_v1.py:float"),
  ("PikeLPN 1x (QuantNorm, DQ, DHQ)", "configs/pikelpn.py:1x"),
)


def _train_api():
  """What the benchmarks use of pikelpn_jax.train (re-point here if that package moves)."""
  from pikelpn_jax.train.optim import make_optimizer
  from pikelpn_jax.train.steps import FULL, StepFactory, global_batch, make_mesh

  return FULL, make_optimizer, StepFactory, global_batch, make_mesh


def synthetic_config(
  spec: str,
  *,
  width: float,
  image_size: int,
  batch: int,
  num_classes: int = 10,
  dw_impl: Optional[str] = None,
  pw_impl: Optional[str] = None,
  dtype: Optional[str] = None,
):
  """`spec`'s config on synthetic RGB data of the given size, batch and class count."""
  from pikelpn_jax.config_base import load_config

  c = load_config(spec)
  c.model.width = width
  if dw_impl is not None:
    c.model.dw_impl = dw_impl
  if pw_impl is not None:
    c.model.pw_impl = pw_impl
  c.dataset.name, c.dataset.image_size, c.dataset.channels = "synthetic", image_size, 3
  c.dataset.num_classes = num_classes
  c.batch_size = c.eval_batch_size = batch
  if dtype is not None:
    c.dtype = dtype
  return c


class RealStep:
  """The real train step of `config` with its state and one batch; `run()` takes one step."""

  def __init__(self, config):
    full, make_optimizer, step_factory, global_batch, make_mesh = _train_api()
    from pikelpn_jax.data import InputPipeline

    self.config = config
    tx = make_optimizer(config)
    self.steps = step_factory(config, tx, make_mesh())
    self.state = self.steps.create_state(jax.random.PRNGKey(0))
    x, y = InputPipeline(config).train_batch(0)
    self.batch = int(x.shape[0])
    self.x = global_batch(x, self.steps.batch_sharded)
    self.y = global_batch(y, self.steps.batch_sharded)
    self._global_batch = global_batch
    self._phase = full
    self._train = self.steps.train_step(full)
    self.metrics = None

  def run(self, wait: bool = True) -> None:
    """One train step (the state is donated to the step and replaced); `wait`: until it is done,
    else only dispatched, as the training loop does between logging steps."""
    self.state, self.metrics = self._train(self.state, self.x, self.y, {})
    if wait:
      jax.block_until_ready(self.metrics)

  def compile_and_run(self) -> float:
    """The first step (compilation included), in seconds."""
    t = time.perf_counter()
    self.run()
    return time.perf_counter() - t

  def compiled_text(self) -> str:
    """The compiled train step's HLO text."""
    return self._train.lower(self.state, self.x, self.y, {}).compile().as_text()

  def eval_rate(self, steps: int) -> float:
    """Eval img/s of the real eval step over `steps` calls, after one compiling call."""
    ev = self.steps.eval_step(self._phase)
    mask = self._global_batch(np.ones(self.batch, np.float32), self.steps.batch_sharded)
    args = (self.state.params, self.state.batch_stats, self.x, self.y, mask)
    jax.block_until_ready(ev(*args))
    t = time.perf_counter()
    for _ in range(steps):
      out = ev(*args)
    jax.block_until_ready(out)
    return steps * self.batch / (time.perf_counter() - t)

  def num_params(self) -> int:
    return int(sum(np.size(p) for p in jax.tree.leaves(self.state.params)))


def compiled(spec: str, **sizes) -> Tuple[RealStep, float]:
  """`spec`'s real step at `sizes` (synthetic_config's keywords), compiled and run twice:
  (the step, seconds of its first, compiling, call)."""
  step = RealStep(synthetic_config(spec, **sizes))
  compile_s = step.compile_and_run()
  step.run()
  return step, compile_s


def throughput(spec: str, dw_impl: str, args) -> Dict[str, Any]:
  """Train (and eval) img/s of `spec` at args' sizes: compile = the first step; then
  args.warmup steps, then the mean over args.steps steps. `args.eval` False skips eval."""
  c = synthetic_config(
    spec,
    width=args.width,
    image_size=args.image_size,
    batch=args.batch,
    num_classes=args.num_classes,
    dw_impl=dw_impl,
    dtype=getattr(args, "dtype", None),
  )
  step = RealStep(c)
  compile_s = step.compile_and_run()
  for _ in range(args.warmup):
    step.run(wait=False)
  jax.block_until_ready(step.metrics)
  t = time.perf_counter()
  for _ in range(args.steps):
    step.run(wait=False)
  jax.block_until_ready(step.metrics)
  train = args.steps * args.batch / (time.perf_counter() - t)
  evals = step.eval_rate(args.steps) if getattr(args, "eval", True) else None
  return {"compile_s": compile_s, "train": train, "eval": evals, "params": step.num_params()}
