"""Checkpoints: restore_latest and its one-line refusals, and the on-disk layout (a workdir
written as {'params', 'batch_stats'} + {'opt_state', 'step'} dicts restores into the TrainState)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from pikelpn_jax.config_base import config_to_dict
from pikelpn_jax.train import checkpoint
from pikelpn_jax.train.loop import params_sha256
from pikelpn_jax.train.optim import make_optimizer
from pikelpn_jax.train.steps import FULL, StepFactory, TrainState, make_mesh
from tests.train import tiny_model


def test_restore_latest_returns_the_final_params(trained_tiny):
  workdir, results = trained_tiny
  v = checkpoint.restore_latest(workdir, tiny_model.tiny_config(steps=4))
  assert set(v) == {"params", "batch_stats"}
  assert params_sha256(v["params"]) == results["params_sha256"]


def test_restore_latest_errors(trained_tiny, tmp_path):
  workdir, _ = trained_tiny
  with pytest.raises(FileNotFoundError, match="no checkpoint in workdir"):
    checkpoint.restore_latest(str(tmp_path), tiny_model.tiny_config())
  wider = tiny_model.tiny_config()
  wider.model.tiny_width = 6
  with pytest.raises(ValueError) as e:
    checkpoint.restore_latest(workdir, wider)
  msg = str(e.value)
  assert "\n" not in msg and "tiny_test_net" in msg and "(4,)" in msg and "(6,)" in msg
  other = tiny_model.tiny_config()
  other.model.name = tiny_model.OTHER_NAME
  with pytest.raises(
    ValueError, match="of model 'tiny_test_net'.*asks for model 'tiny_test_net_b'"
  ):
    checkpoint.restore_latest(workdir, other)


def write_dict_layout(workdir, config, state):
  """A checkpoint written with orbax directly, as the training loop wrote its state dict."""
  handlers = {
    "model": ocp.StandardCheckpointHandler(),
    "train": ocp.StandardCheckpointHandler(),
    "config": ocp.JsonCheckpointHandler(),
    "meta": ocp.JsonCheckpointHandler(),
  }
  mgr = ocp.CheckpointManager(
    os.path.join(workdir, "checkpoints"),
    options=ocp.CheckpointManagerOptions(max_to_keep=3, create=True),
    item_names=tuple(handlers),
    item_handlers=handlers,
  )
  step = int(state["step"])
  mgr.save(
    step,
    args=ocp.args.Composite(
      model=ocp.args.StandardSave({"params": state["params"], "batch_stats": state["batch_stats"]}),
      train=ocp.args.StandardSave({"opt_state": state["opt_state"], "step": state["step"]}),
      config=ocp.args.JsonSave(config_to_dict(config)),
      meta=ocp.args.JsonSave(checkpoint.model_meta(config, "tiny", step)),
    ),
  )
  mgr.wait_until_finished()
  mgr.close()


def test_a_checkpoint_of_state_dicts_restores_and_trains_on(tmp_path):
  c = tiny_model.tiny_config(steps=3)
  steps = StepFactory(c, make_optimizer(c), make_mesh())
  fresh = steps.create_state(jax.random.PRNGKey(c.seed))
  images = jnp.zeros((c.batch_size, 16, 16, 3), jnp.float32)
  labels = jnp.zeros((c.batch_size,), jnp.int32)
  trained, _ = steps.train_step(FULL)(fresh, images, labels, {})
  old = {k: getattr(trained, k) for k in ("step", "params", "batch_stats", "opt_state")}
  workdir = str(tmp_path / "old")
  write_dict_layout(workdir, c, jax.device_get(old))

  step, state, damaged = checkpoint.newest_restorable(workdir, c, steps.abstract_state())
  assert (step, damaged) == (1, []) and isinstance(state, TrainState)
  assert jax.tree.structure(state) == jax.tree.structure(trained)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(trained)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  v = checkpoint.restore_latest(workdir, c)
  assert params_sha256(v["params"]) == params_sha256(trained.params)
  state, _ = steps.train_step(FULL)(state, images, labels, {})
  assert int(state.step) == 2

  # What the Checkpoints class writes reads back as the same dicts, item by item.
  new = str(tmp_path / "new")
  ckpts = checkpoint.Checkpoints(new)
  ckpts.save(1, trained, c, checkpoint.model_meta(c, "tiny", 1))
  ckpts.close()
  for workdir in (os.path.join(tmp_path, "old"), new):
    mgr = ocp.CheckpointManager(
      os.path.join(workdir, "checkpoints"),
      options=ocp.CheckpointManagerOptions(read_only=True),
      item_names=("model", "train"),
      item_handlers={k: ocp.StandardCheckpointHandler() for k in ("model", "train")},
    )
    tree = {item: mgr.item_metadata(1)[item].tree for item in ("model", "train")}
    mgr.close()
    assert set(tree["model"]) == {"params", "batch_stats"}
    assert set(tree["train"]) == {"opt_state", "step"}
