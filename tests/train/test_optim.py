"""Schedules and optimizers (weight decay on kernels only)."""

import jax
import jax.numpy as jnp
import pytest

from pikelpn_jax.config_base import base_config
from pikelpn_jax.train.optim import kernel_mask, learning_rate_schedule, make_optimizer


def cfg(**kw):
  c = base_config("x", "synthetic")
  c.num_train_steps, c.learning_rate = 100, 1.0
  for k, v in kw.items():
    setattr(c, k, v)
  return c


@pytest.mark.parametrize("name", ["cosine", "linear", "piecewise", "constant"])
def test_schedules_warm_up_then_decay(name):
  s = learning_rate_schedule(cfg(schedule=name, warmup_steps=10, schedule_knee_step=60))
  assert float(s(0)) == 0.0 and float(s(5)) == pytest.approx(0.5)
  assert float(s(10)) == pytest.approx(1.0)
  if name == "constant":
    assert float(s(99)) == pytest.approx(1.0)
    return
  assert float(s(100)) == pytest.approx(0.0, abs=1e-6)
  assert float(s(40)) < 1.0
  if name == "linear":
    assert float(s(55)) == pytest.approx(0.5)
  if name == "piecewise":
    assert float(s(35)) == pytest.approx(0.5) and float(s(70)) == 0.0


def test_piecewise_knee_default_is_last_step():
  s = learning_rate_schedule(cfg(schedule="piecewise", schedule_knee_step=-1))
  assert float(s(50)) == pytest.approx(0.5)


@pytest.mark.parametrize("opt", ["sgd", "adam", "adamw"])
def test_weight_decay_touches_kernels_only(opt):
  params = {
    "conv": {"kernel": jnp.ones((2, 2))},
    "norm": {"scale": jnp.ones(2), "bias": jnp.ones(2)},
  }
  tx = make_optimizer(cfg(optimizer=opt, weight_decay=0.1, learning_rate=0.5, schedule="constant"))
  zero = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero, tx.init(params), params)
  assert float(jnp.abs(updates["conv"]["kernel"]).max()) > 0
  assert float(jnp.abs(updates["norm"]["scale"]).max()) == 0
  assert kernel_mask(params) == {"conv": {"kernel": True}, "norm": {"scale": False, "bias": False}}


@pytest.mark.parametrize(
  "field,value,msg",
  [
    ("optimizer", "lamb", "optimizer='lamb' is not allowed"),
    ("schedule", "step", "schedule='step' is not allowed"),
    ("learning_rate", 0.0, "learning_rate=0.0 is not allowed"),
    ("warmup_steps", 1000, "warmup_steps=1000 is not allowed"),
  ],
)
def test_bad_optimizer_fields(field, value, msg):
  with pytest.raises(ValueError, match=msg):
    make_optimizer(cfg(**{field: value}))
