"""QuantNorm's hand-written VJP (layers/norm.scaled_affine) is bit-identical to autodiff for the
layer on its own (a whole compiled train step may sum in another order: docs/benchmarks.md)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pikelpn_jax.layers import QuantNorm
from pikelpn_jax.layers import norm as norm_module

K = jax.random.split(jax.random.PRNGKey(0), 5)
X = jax.random.normal(K[0], (4, 6, 6, 8)) * 40.0  # accumulator-like
M = jnp.round(jax.random.uniform(K[1], (8,), minval=-127, maxval=127))
C = jnp.round(jax.random.normal(K[2], (8,)) * 300.0)
G = jax.random.normal(K[3], X.shape)


def _cotangents(f, s):
  _, vjp = jax.vjp(f, X, M, C, s)
  return jax.jit(vjp)(G)


@pytest.mark.parametrize(
  "s, pow2", [(jnp.float32(2.0**-9), True), (jnp.float32(0.0031), False), (jnp.float32(1.0), True)]
)
def test_scaled_affine_vjp_equals_autodiff_bit_for_bit(s, pow2):
  ours = _cotangents(lambda x, m, c, s_: norm_module.scaled_affine(x, m, c, s_, pow2), s)
  autodiff = _cotangents(norm_module._scaled_affine, s)
  for name, a, b in zip(("dx", "dm", "dc", "ds"), ours, autodiff):
    assert a.shape == b.shape and a.dtype == b.dtype, name
    np.testing.assert_array_equal(a, b, err_msg=name)
  np.testing.assert_array_equal(
    norm_module.scaled_affine(X, M, C, s, pow2), norm_module._scaled_affine(X, M, C, s)
  )


def test_scaled_affine_bfloat16_input_keeps_its_dtype():
  xb = X.astype(jnp.bfloat16)
  _, vjp = jax.vjp(lambda x: norm_module.scaled_affine(x, M, C, jnp.float32(0.25), True), xb)
  (dx,) = vjp(G)
  assert dx.dtype == jnp.bfloat16


@pytest.mark.parametrize("scale_format", ["pow2", "none", "fixed"])
def test_quantnorm_gradients_equal_autodiffs(monkeypatch, scale_format):
  """The whole module (batch statistics, the STE of M and C, the in_scale) trains as before."""
  qn = QuantNorm(bits=8, scale_format=scale_format)
  v = qn.init(jax.random.PRNGKey(1), X, in_scale=jnp.float32(0.125))

  def grads():
    def loss(params, x):
      y, _ = qn.apply(
        {"params": params, "batch_stats": v["batch_stats"]},
        x,
        train=True,
        in_scale=jnp.float32(0.125),
        mutable=["batch_stats"],
      )
      return jnp.sum(jax.nn.relu(y) * G)

    return jax.jit(jax.grad(loss, argnums=(0, 1)))(v["params"], X)

  ours = grads()
  monkeypatch.setattr(
    norm_module, "scaled_affine", lambda x, m, c, s, _p: norm_module._scaled_affine(x, m, c, s)
  )
  autodiff = grads()
  for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(autodiff)):
    np.testing.assert_array_equal(a, b)
