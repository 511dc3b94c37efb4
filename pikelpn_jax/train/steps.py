"""The training state, the models of the quantization schedule, the losses, and the train and eval
steps jitted once per quantization phase.

The state always holds the variables of the fully quantized model. A phase model (weights and/or
activations still float) may have fewer variables (no EMA bounds, no LSQ steps): its step trains
the subtree at its paths and overlays the updates back onto the full tree.

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
from flax import struct, traverse_util
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from pikelpn_jax.config_base import compute_dtype

COLLECTIONS = ("params", "batch_stats")


@struct.dataclass
class TrainState:
  """What a training step reads and writes; a checkpoint stores the same four trees.

  The fields are in alphabetical order, so the leaves flatten as the dict {'batch_stats',
  'opt_state', 'params', 'step'} does: the jitted steps take their arguments in that order, and
  another order would compile another program (other trained bits are possible).
  """

  batch_stats: Any
  opt_state: Any
  params: Any
  step: jax.Array


# -- The models of the quantization schedule and their variables. --------------------------------


class Phase(NamedTuple):
  weight_quant: bool
  act_quant: bool


FULL = Phase(True, True)


def phase_at(config, step: int) -> Phase:
  """Which quantizers are on for training step `step` (0-based)."""
  qs = config.quant_schedule
  return Phase(step >= qs.weight_start_step, step >= qs.act_start_step)


def make_model(config, phase: Phase = FULL, dw_impl: Optional[str] = None):
  from pikelpn_jax.models import build_model  # the zoo is imported on first use

  return build_model(
    config, weight_quant=phase.weight_quant, act_quant=phase.act_quant, dw_impl=dw_impl
  )


def init_fn(model, config):
  """rng -> {'params', 'batch_stats'} of `model` at config's input shape (batch 1)."""
  d = config.dataset
  shape = (1, int(d.image_size), int(d.image_size), int(d.channels))

  def init(rng):
    v = model.init(rng, jnp.zeros(shape, jnp.float32), train=False)
    return {c: v.get(c, {}) for c in COLLECTIONS}

  return init


def init_variables(config, rng, phase: Phase = FULL, sharding=None) -> Dict[str, Any]:
  return jax.jit(init_fn(make_model(config, phase), config), out_shardings=sharding)(rng)


def abstract_variables(config, phase: Phase = FULL, sharding=None) -> Dict[str, Any]:
  """ShapeDtypeStructs of {'params', 'batch_stats'} (with `sharding`, default: one device)."""
  shapes = jax.eval_shape(init_fn(make_model(config, phase), config), jax.random.PRNGKey(0))
  sharding = sharding or jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)


def _flat(tree) -> Dict[tuple, Any]:
  return traverse_util.flatten_dict(tree) if tree else {}


def select(full, template) -> Dict[str, Any]:
  """The subtree of `full` at the paths of `template` (a phase model's variables)."""
  f = _flat(full)
  out = {}
  for path, leaf in _flat(template).items():
    if path not in f:
      raise ValueError(
        f"phase model variable {'/'.join(path)} is not in the fully quantized model; "
        "build_model variants must only drop variables when a quantizer is off"
      )
    if tuple(f[path].shape) != tuple(leaf.shape):
      raise ValueError(
        f"phase model variable {'/'.join(path)} has shape {leaf.shape}, "
        f"{f[path].shape} in the fully quantized model"
      )
    out[path] = f[path]
  return traverse_util.unflatten_dict(out) if out else {}


def overlay(full, part):
  """`full` with the leaves present in `part` replaced."""
  if not part:
    return full
  f = _flat(full)
  f.update(_flat(part))
  return traverse_util.unflatten_dict(f)


# -- Losses and accuracy counts. -------------------------------------------------------------------


def cross_entropy(logits, labels, smoothing: float = 0.0):
  """Per-example softmax cross entropy against (optionally smoothed) one-hot labels."""
  n = logits.shape[-1]
  targets = jax.nn.one_hot(labels, n)
  if smoothing:
    targets = targets * (1.0 - smoothing) + smoothing / n
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def distillation(student_logits, teacher_logits, temperature: float = 1.0):
  """Per-example KD loss −Σ softmax(t/T)·log_softmax(s/T)·T² (PokeBNN's pure KD at T=1)."""
  t = jax.nn.softmax(jax.lax.stop_gradient(teacher_logits).astype(jnp.float32) / temperature)
  s = jax.nn.log_softmax(student_logits.astype(jnp.float32) / temperature)
  return -jnp.sum(t * s, axis=-1) * temperature**2


def topk_correct(logits, labels, k: int):
  """1.0 where the label is among the k largest logits (k capped at the class count)."""
  k = min(k, logits.shape[-1])
  _, top = jax.lax.top_k(logits, k)
  return jnp.any(top == labels[:, None], axis=-1).astype(jnp.float32)


# -- The pure steps. -------------------------------------------------------------------------------


def train_step(
  state: TrainState,
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

  The phase model's subset (`template`'s paths) of the fully quantized variables is trained and
  overlaid back. `teacher` is a teacher.Teacher or None. Pure: jit it with everything after `*`
  bound.
  """
  bs = select(state.batch_stats, template["batch_stats"])
  images = images.astype(dtype)

  def loss_fn(p):
    logits, mut = model.apply(
      {"params": p, "batch_stats": bs}, images, train=True, mutable=["batch_stats"]
    )
    per_ex = cross_entropy(logits, labels, label_smoothing)
    if teacher is not None:
      t_logits = teacher.model.apply(teacher_vars, images, train=False)
      kd = distillation(logits, t_logits, teacher.temperature)
      per_ex = teacher.alpha * kd + (1.0 - teacher.alpha) * per_ex
    return jnp.mean(per_ex), (logits, mut.get("batch_stats", {}))

  p_sub = select(state.params, template["params"])
  (loss, (logits, new_bs)), g_sub = jax.value_and_grad(loss_fn, has_aux=True)(p_sub)
  grads = overlay(jax.tree.map(jnp.zeros_like, state.params), g_sub)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(params))
  metrics = {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels), "finite": finite}
  new_state = TrainState(
    step=state.step + 1,
    params=params,
    batch_stats=overlay(state.batch_stats, new_bs),
    opt_state=opt_state,
  )
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
    "top1": jnp.sum(topk_correct(logits, labels, 1) * mask),
    "top5": jnp.sum(topk_correct(logits, labels, 5) * mask),
    "loss": jnp.sum(cross_entropy(logits, labels) * mask),
    "count": jnp.sum(mask),
  }


# -- The mesh, the state and the jitted steps. -----------------------------------------------------


def make_mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), ("data",))


def shardings(mesh: Mesh):
  """(replicated, batch-sharded)."""
  return NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))


def global_batch(local: np.ndarray, sharding) -> jax.Array:
  """A global array from this host's rows (multi-host: each host passes its own shard)."""
  return jax.make_array_from_process_local_data(sharding, local)


class StepFactory:
  """The state (the one place it is built) and train_step/eval_step jitted for the mesh, once per
  quantization phase. `teacher` is a teacher.Teacher or None."""

  def __init__(self, config, tx: optax.GradientTransformation, mesh: Mesh, teacher=None):
    self.config, self.tx, self.mesh, self.teacher = config, tx, mesh, teacher
    self.replicated, self.batch_sharded = shardings(mesh)
    self.dtype = compute_dtype(config)
    self._train: Dict[Phase, Callable] = {}
    self._eval: Dict[Phase, Callable] = {}
    self._bound_args: Dict[Phase, Dict[str, Any]] = {}
    init = init_fn(make_model(config, FULL), config)

    def fresh_state(rng) -> TrainState:
      v = init(rng)
      return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=v["params"],
        batch_stats=v["batch_stats"],
        opt_state=tx.init(v["params"]),
      )

    # One jitted initializer: abstract_state's trace is reused by create_state's call.
    self._init = jax.jit(fresh_state, out_shardings=self.replicated)
    self._abstract: Optional[TrainState] = None

  def abstract_state(self) -> TrainState:
    """The state's ShapeDtypeStructs (replicated), traced once and shared with create_state."""
    if self._abstract is None:
      shapes = jax.eval_shape(self._init, jax.random.PRNGKey(0))
      self._abstract = jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=self.replicated), shapes
      )
    return self._abstract

  def create_state(self, rng) -> TrainState:
    """A fresh state, replicated over the mesh."""
    return self._init(rng)

  def _bound(self, phase: Phase) -> Dict[str, Any]:
    # Tracing a model's init costs seconds on CPU for the larger zoo members: a phase's model and
    # variable template are built once and shared by its train and eval steps; the fully
    # quantized phase's template is the state's own.
    if phase not in self._bound_args:
      model = make_model(self.config, phase)
      if phase == FULL:
        a = self.abstract_state()
        template = {"params": a.params, "batch_stats": a.batch_stats}
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
