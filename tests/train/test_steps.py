"""The state, the losses and accuracy counts, and the train step of every model family, traced
abstractly and run on real batches.

Each family runs one quantized variant (QUANTIZED_VARIANT; a family missing there runs its default
variant) at width 0.0625 on 32×32 inputs, one step on synthetic data and one on a generated
imagenet2012 (tfds ArrayRecord layout, experiments/lib/imagenet_like.py). With
`jax_disable_most_optimizations` (tests/conftest.py) a step compiles in 3–8 s, PokeBNN's in about a
minute, on this 2-core CPU.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pikelpn_jax.config_base import REPO_ROOT, load_config
from pikelpn_jax.data import InputPipeline
from pikelpn_jax.models import model_names
from pikelpn_jax.train import steps as train_steps
from pikelpn_jax.train.optim import make_optimizer
from pikelpn_jax.train.steps import FULL, StepFactory, TrainState, global_batch, make_mesh
from tests.train import tiny_model

FAMILIES = [n for n in model_names() if not n.startswith(tiny_model.NAME)]
# The variant each family trains here: a quantized one, so quantizers and their STEs are exercised.
QUANTIZED_VARIANT = {
  "mobilenet_v1": "w4a4",
  "mobilenet_v2": "w4a4_prelu",
  "resnet": "18_w4a4",
  "pokebnn": "0.5x",
  "reactnet": "a",
  "pikelpn": "1x",
}
WIDTH_FIELDS = ("width", "filter_multiplier", "width_multiplier")


def family_config(name):
  path = os.path.join(REPO_ROOT, "configs", f"{name}.py")
  if not os.path.exists(path):
    pytest.skip(f"no configs/{name}.py for model family {name!r}")
  variant = QUANTIZED_VARIANT.get(name)
  c = load_config(f"{path}:{variant}" if variant else path)
  for field in WIDTH_FIELDS:
    if field in c.model:
      c.model[field] = 0.0625
  if "dw_impl" in c.model:
    c.model.dw_impl = "grouped"  # compiles ~4× faster than shift_add; the layers test both
  c.dataset.image_size, c.dataset.channels = 32, 3
  c.batch_size = c.eval_batch_size = 4
  c.learning_rate, c.warmup_steps = 1e-3, 0
  return c


def test_every_registered_family_is_covered():
  assert "pikelpn" in FAMILIES and len(FAMILIES) >= 2


@pytest.fixture(scope="module")
def imagenet_dir(tmp_path_factory):
  pytest.importorskip("tensorflow_datasets")
  from experiments.lib.imagenet_like import write_imagenet_like

  root = str(tmp_path_factory.mktemp("tfds"))
  write_imagenet_like(root, {"train": 8, "validation": 4}, sizes=((48, 36), (36, 48)))
  return root


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_train_step_builds_then_runs_on_synthetic_and_generated_imagenet(name, imagenet_dir):
  c = family_config(name)
  tx = make_optimizer(c)
  steps = StepFactory(c, tx, make_mesh())
  fn = steps.train_step(FULL)
  # Abstractly first (the traces are cached, so the run below does not trace again).
  abstract = steps.abstract_state()
  x = jax.ShapeDtypeStruct((4, 32, 32, 3), jnp.float32, sharding=steps.batch_sharded)
  y = jax.ShapeDtypeStruct((4,), jnp.int32, sharding=steps.batch_sharded)
  new_state, metrics = jax.eval_shape(fn, abstract, x, y, {})
  assert jax.tree.structure(new_state) == jax.tree.structure(abstract)
  assert metrics["loss"].shape == () and metrics["finite"].dtype == jnp.bool_

  state = steps.create_state(jax.random.PRNGKey(0))
  assert jax.tree.structure(state) == jax.tree.structure(abstract)
  before = jax.device_get(state.params)
  batches = []
  c.dataset.name = "synthetic"
  batches.append(InputPipeline(c).train_batch(0))
  c.dataset.name, c.dataset.data_dir, c.dataset.worker_count = "imagenet2012", imagenet_dir, 0
  batches.append(InputPipeline(c).train_batch(0))
  for images, labels in batches:
    assert images.shape == (4, 32, 32, 3)
    state, m = fn(
      state,
      global_batch(images, steps.batch_sharded),
      global_batch(labels, steps.batch_sharded),
      {},
    )
    assert bool(m["finite"]) and np.isfinite(float(m["loss"]))
  after = jax.device_get(state.params)
  changed = [
    not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after))
  ]
  assert int(state.step) == 2 and np.mean(changed) > 0.5


def test_state_is_built_once_and_flattens_like_the_checkpointed_dicts():
  c = tiny_model.tiny_config(steps=1)
  steps = StepFactory(c, make_optimizer(c), make_mesh())
  got = steps.create_state(jax.random.PRNGKey(3))
  again = StepFactory(c, make_optimizer(c), make_mesh()).create_state(jax.random.PRNGKey(3))
  assert isinstance(got, TrainState) and int(got.step) == 0
  assert jax.tree.structure(got) == jax.tree.structure(again)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(again)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  shapes = [(s.shape, s.dtype) for s in jax.tree.leaves(steps.abstract_state())]
  assert shapes == [(a.shape, a.dtype) for a in jax.tree.leaves(got)]
  # The jitted steps take the leaves in the order of {'batch_stats','opt_state','params','step'}.
  as_dict = {k: getattr(got, k) for k in ("step", "params", "batch_stats", "opt_state")}
  assert [id(x) for x in jax.tree.leaves(got)] == [id(x) for x in jax.tree.leaves(as_dict)]


def test_label_smoothing_and_kd():
  logits = jnp.array([[2.0, 0.0, -1.0]])
  y = jnp.array([0])
  ce = float(train_steps.cross_entropy(logits, y)[0])
  assert ce == pytest.approx(-float(jax.nn.log_softmax(logits)[0, 0]))
  smooth = float(train_steps.cross_entropy(logits, y, 0.3)[0])
  lsm = np.asarray(jax.nn.log_softmax(logits)[0])
  assert smooth == pytest.approx(-(0.8 * lsm[0] + 0.1 * lsm[1] + 0.1 * lsm[2]), rel=1e-5)
  # KD against a one-hot-like teacher equals CE; against itself it is the entropy.
  kd = float(train_steps.distillation(logits, jnp.array([[100.0, 0.0, 0.0]]))[0])
  assert kd == pytest.approx(ce, rel=1e-4)
  grad = jax.grad(lambda t: train_steps.distillation(logits, t).sum())(logits)
  assert float(jnp.abs(grad).max()) == 0.0  # no gradient into the teacher


def test_topk_correct():
  logits = jnp.array([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05]])
  labels = jnp.array([2, 0])
  assert train_steps.topk_correct(logits, labels, 1).tolist() == [0.0, 1.0]
  assert train_steps.topk_correct(logits, labels, 2).tolist() == [1.0, 1.0]
  assert train_steps.topk_correct(logits, labels, 5).tolist() == [1.0, 1.0]  # k capped at 3 classes
