"""Schedules, optimizers (weight decay on kernels only), losses and accuracy counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pikelpn_jax.config_base import base_config
from pikelpn_jax.train import losses
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


def test_label_smoothing_and_kd():
  logits = jnp.array([[2.0, 0.0, -1.0]])
  y = jnp.array([0])
  ce = float(losses.cross_entropy(logits, y)[0])
  assert ce == pytest.approx(-float(jax.nn.log_softmax(logits)[0, 0]))
  smooth = float(losses.cross_entropy(logits, y, 0.3)[0])
  lsm = np.asarray(jax.nn.log_softmax(logits)[0])
  assert smooth == pytest.approx(-(0.8 * lsm[0] + 0.1 * lsm[1] + 0.1 * lsm[2]), rel=1e-5)
  # KD against a one-hot-like teacher equals CE; against itself it is the entropy.
  kd = float(losses.distillation(logits, jnp.array([[100.0, 0.0, 0.0]]))[0])
  assert kd == pytest.approx(ce, rel=1e-4)
  grad = jax.grad(lambda t: losses.distillation(logits, t).sum())(logits)
  assert float(jnp.abs(grad).max()) == 0.0  # no gradient into the teacher


def test_topk_correct():
  logits = jnp.array([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05]])
  labels = jnp.array([2, 0])
  assert losses.topk_correct(logits, labels, 1).tolist() == [0.0, 1.0]
  assert losses.topk_correct(logits, labels, 2).tolist() == [1.0, 1.0]
  assert losses.topk_correct(logits, labels, 5).tolist() == [1.0, 1.0]  # k capped at 3 classes
