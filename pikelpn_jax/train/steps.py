"""Training state, the pure train and eval steps, and their jitted forms (one per quantization phase).

Data parallel with jax.sharding: a 1-D mesh 'data' over all devices, batches sharded along it,
state replicated; XLA inserts the gradient and batch-statistics all-reduces, so the math equals
one device with the same global batch.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from pikelpn_jax.config_base import compute_dtype
from pikelpn_jax.train import losses
from pikelpn_jax.train.model_init import FULL, Phase, init_fn, make_model, overlay, select

State = Dict[str, Any]  # {'step', 'params', 'batch_stats', 'opt_state'}


class Teacher(NamedTuple):
  model: Any
  variables: Dict[str, Any]
  alpha: float
  temperature: float


def make_mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), ("data",))


def shardings(mesh: Mesh):
  """(replicated, batch-sharded)."""
  return NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))


def global_batch(local: np.ndarray, sharding) -> jax.Array:
  """A global array from this host's rows (multi-host: each host passes its own shard)."""
  return jax.make_array_from_process_local_data(sharding, local)


def _state_fn(config, tx):
  init = init_fn(make_model(config, FULL), config)

  def create(rng):
    v = init(rng)
    return {
      "step": jnp.zeros((), jnp.int32),
      "params": v["params"],
      "batch_stats": v["batch_stats"],
      "opt_state": tx.init(v["params"]),
    }

  return create


def state_initializer(config, tx, replicated) -> Callable[[jax.Array], State]:
  """rng -> a fresh State, jitted. Keep one: its abstract evaluation and its call share a trace."""
  return jax.jit(_state_fn(config, tx), out_shardings=replicated)


def create_state(config, tx, rng, replicated) -> State:
  return state_initializer(config, tx, replicated)(rng)


def abstract_state(config, tx, replicated, initializer=None) -> State:
  """ShapeDtypeStructs (replicated) of the State; tracing `initializer` (if given) warms its call."""
  init = initializer or _state_fn(config, tx)
  shapes = jax.eval_shape(init, jax.random.PRNGKey(0))
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=replicated), shapes)


def train_step(
  state: State,
  images,
  labels,
  teacher_vars,
  *,
  model,
  template,
  tx,
  teacher,
  label_smoothing: float,
  dtype=jnp.float32,
):
  """One optimizer step of `model` (a quantization phase's model) -> (new state, metrics).

  state holds the fully quantized model's variables; the phase model's subset (`template`'s
  paths) is trained and overlaid back. Pure: jit it with everything after `*` bound.
  """
  bs = select(state["batch_stats"], template["batch_stats"])
  images = images.astype(dtype)

  def loss_fn(p):
    logits, mut = model.apply(
      {"params": p, "batch_stats": bs}, images, train=True, mutable=["batch_stats"]
    )
    per_ex = losses.cross_entropy(logits, labels, label_smoothing)
    if teacher is not None:
      t_logits = teacher.model.apply(teacher_vars, images, train=False)
      kd = losses.distillation(logits, t_logits, teacher.temperature)
      per_ex = teacher.alpha * kd + (1.0 - teacher.alpha) * per_ex
    return jnp.mean(per_ex), (logits, mut.get("batch_stats", {}))

  p_sub = select(state["params"], template["params"])
  (loss, (logits, new_bs)), g_sub = jax.value_and_grad(loss_fn, has_aux=True)(p_sub)
  grads = overlay(jax.tree.map(jnp.zeros_like, state["params"]), g_sub)
  updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
  params = optax.apply_updates(state["params"], updates)
  finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(params))
  metrics = {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels), "finite": finite}
  new_state = {
    "step": state["step"] + 1,
    "params": params,
    "batch_stats": overlay(state["batch_stats"], new_bs),
    "opt_state": opt_state,
  }
  return new_state, metrics


def eval_step(params, batch_stats, images, labels, mask, *, model, template, dtype=jnp.float32):
  """Sums of top-1/top-5 hits, loss and examples over the rows where mask is 1."""
  images = images.astype(dtype)
  v = {
    "params": select(params, template["params"]),
    "batch_stats": select(batch_stats, template["batch_stats"]),
  }
  logits = model.apply(v, images, train=False)
  return {
    "top1": jnp.sum(losses.topk_correct(logits, labels, 1) * mask),
    "top5": jnp.sum(losses.topk_correct(logits, labels, 5) * mask),
    "loss": jnp.sum(losses.cross_entropy(logits, labels) * mask),
    "count": jnp.sum(mask),
  }


class StepFactory:
  """train_step and eval_step jitted for the mesh, once per quantization phase."""

  def __init__(
    self, config, tx: optax.GradientTransformation, mesh: Mesh, teacher: Optional[Teacher] = None
  ):
    self.config, self.tx, self.mesh, self.teacher = config, tx, mesh, teacher
    self.replicated, self.batch_sharded = shardings(mesh)
    self.dtype = compute_dtype(config)
    self._train: Dict[Phase, Callable] = {}
    self._eval: Dict[Phase, Callable] = {}
    self._bound_args: Dict[Phase, Dict[str, Any]] = {}
    self._init = state_initializer(config, tx, self.replicated)
    self._abstract: Optional[State] = None

  def abstract_state(self) -> State:
    """The State's ShapeDtypeStructs (replicated), traced once and shared with create_state."""
    if self._abstract is None:
      self._abstract = abstract_state(self.config, self.tx, self.replicated, self._init)
    return self._abstract

  def create_state(self, rng) -> State:
    """A fresh State, replicated over the mesh (reuses abstract_state's trace)."""
    return self._init(rng)

  def _bound(self, phase: Phase) -> Dict[str, Any]:
    # Tracing a model's init costs seconds on CPU for the larger zoo members: a phase's model and
    # variable template are built once and shared by its train and eval steps; the fully
    # quantized phase's template is the State's own.
    if phase not in self._bound_args:
      model = make_model(self.config, phase)
      if phase == FULL:
        a = self.abstract_state()
        template = {"params": a["params"], "batch_stats": a["batch_stats"]}
      else:
        template = jax.eval_shape(init_fn(model, self.config), jax.random.PRNGKey(0))
      self._bound_args[phase] = {"model": model, "dtype": self.dtype, "template": template}
    return self._bound_args[phase]

  def has_train_step(self, phase: Phase) -> bool:
    return phase in self._train

  def train_step(self, phase: Phase) -> Callable:
    """(state, images, labels, teacher_vars) -> (state, metrics), jitted; state is donated."""
    if phase not in self._train:
      fn = functools.partial(
        train_step,
        **self._bound(phase),
        tx=self.tx,
        teacher=self.teacher,
        label_smoothing=float(self.config.label_smoothing),
      )
      r, b = self.replicated, self.batch_sharded
      self._train[phase] = jax.jit(
        fn, in_shardings=(r, b, b, r), out_shardings=(r, r), donate_argnums=(0,)
      )
    return self._train[phase]

  def eval_step(self, phase: Phase) -> Callable:
    """(params, batch_stats, images, labels, mask) -> sums, jitted."""
    if phase not in self._eval:
      r, b = self.replicated, self.batch_sharded
      self._eval[phase] = jax.jit(
        functools.partial(eval_step, **self._bound(phase)),
        in_shardings=(r, r, b, b, b),
        out_shardings=r,
      )
    return self._eval[phase]
