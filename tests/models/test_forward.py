"""One real forward and train step of a tiny PikeLPN (the only compiled model test)."""

import jax
import jax.numpy as jnp
import numpy as np

from pikelpn_jax.models import build_model


def test_tiny_pikelpn_trains_and_both_depthwise_and_pointwise_impls_agree(tiny):
  config = tiny("configs/pikelpn.py:fmnist", width=0.25)
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 32, 32, 1))
  labels = jnp.array([0, 3, 5, 9])
  grouped = build_model(config, dw_impl="grouped")
  variables = jax.jit(lambda x: grouped.init(jax.random.PRNGKey(0), x))(x)
  assert set(variables) == {"params", "batch_stats"}

  def loss_fn(params, batch_stats):
    logits, updates = grouped.apply(
      {"params": params, "batch_stats": batch_stats}, x, train=True, mutable=["batch_stats"]
    )
    onehot = jax.nn.one_hot(labels, 10)
    return -jnp.mean(jnp.sum(onehot * jax.nn.log_softmax(logits), -1)), (logits, updates)

  (loss, (logits, updates)), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(
    variables["params"], variables["batch_stats"]
  )
  assert logits.shape == (4, 10) and np.isfinite(float(loss))
  # A real step: finite gradients reaching the first and last layers, statistics updated.
  assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
  assert float(jnp.abs(grads["head"]["dense"]["kernel"]).sum()) > 0
  assert float(jnp.abs(grads["stem"]["conv"]["kernel"]).sum()) > 0
  old = variables["batch_stats"]["block0"]["pw"]["norm"]["mean"]
  assert not np.allclose(updates["batch_stats"]["block0"]["pw"]["norm"]["mean"], old)

  # The shift-and-add depthwise conv computes the same function (training forward).
  shift_add = build_model(config, dw_impl="shift_add")
  logits_s, updates_s = jax.jit(
    lambda v: shift_add.apply(v, x, train=True, mutable=["batch_stats"])
  )(variables)
  np.testing.assert_allclose(logits_s, logits, atol=1e-5, rtol=1e-5)
  jax.tree_util.tree_map(
    lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5), updates_s, updates
  )

  # So do 1×1 convs as convolutions instead of matmuls (config.model.pw_impl).
  config.model.pw_impl = "conv" if config.model.pw_impl != "conv" else "dot"
  other = build_model(config, dw_impl="grouped")
  logits_c = jax.jit(lambda v: other.apply(v, x, train=True, mutable=["batch_stats"])[0])(variables)
  np.testing.assert_allclose(logits_c, logits, atol=1e-5, rtol=1e-5)
