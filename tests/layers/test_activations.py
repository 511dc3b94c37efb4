"""Activations: the published formulas, quantized slopes, squeeze-excite."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pikelpn_jax.layers import (
  DPReLU,
  PReLU,
  QDense,
  RPReLU,
  RSign,
  SqueezeExcite,
  hard_sigmoid,
  make_activation,
  relu6,
)

X = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 3, 4)) * 3


def _set(v, **params):
  p = dict(v["params"])
  p.update({k: jnp.asarray(a, jnp.float32) for k, a in params.items()})
  return {"params": p}


def test_dprelu_formula():
  m = DPReLU()
  v = _set(
    m.init(jax.random.PRNGKey(0), X),
    bias_x=[0.5, -1, 0, 2],
    bias_y=[1, 0, -1, 0.5],
    pos_slope=[1, 2, 0.5, 1],
    neg_slope=[0.25, 0.1, -0.3, 0],
  )
  p = {k: np.asarray(a) for k, a in v["params"].items()}
  xs = np.asarray(X) - p["bias_x"]
  ref = np.where(xs >= 0, p["pos_slope"], p["neg_slope"]) * xs - p["bias_y"]
  np.testing.assert_allclose(m.apply(v, X), ref, rtol=1e-6)


def test_rprelu_and_rsign_and_prelu():
  m = RPReLU()
  v = _set(
    m.init(jax.random.PRNGKey(0), X),
    gamma=[0.5, -1, 0, 2],
    zeta=[1, 0, -1, 0.5],
    beta=[0.25, 0.1, -0.3, 0],
  )
  p = {k: np.asarray(a) for k, a in v["params"].items()}
  xs = np.asarray(X) - p["gamma"]
  np.testing.assert_allclose(
    m.apply(v, X), np.where(xs > 0, xs, p["beta"] * xs) + p["zeta"], rtol=1e-6
  )
  r = RSign()
  vr = _set(r.init(jax.random.PRNGKey(0), X), alpha=[1, 2, 3, 4])
  np.testing.assert_allclose(r.apply(vr, X), np.asarray(X) - np.array([1, 2, 3, 4]), rtol=1e-6)
  pr = PReLU()
  vp = pr.init(jax.random.PRNGKey(0), X)
  np.testing.assert_allclose(pr.apply(vp, X), np.where(X >= 0, X, 0.25 * X), rtol=1e-6)


def test_quantized_slopes_lie_on_a_pow2_grid():
  m = PReLU(param_bits=4, scale_format="pow2")
  v = _set(m.init(jax.random.PRNGKey(0), X), slope=[0.25, 0.13, -0.07, 0.3])
  y = np.asarray(m.apply(v, X))
  neg = np.asarray(X) < 0
  slopes = y[neg] / np.asarray(X)[neg]
  step = 2.0 ** np.ceil(np.log2(0.3 / 7))
  np.testing.assert_allclose(slopes / step, np.round(slopes / step), atol=1e-4)


def test_hard_sigmoid_and_relu6():
  x = jnp.array([-5.0, -3.0, 0.0, 3.0, 7.0])
  np.testing.assert_allclose(hard_sigmoid(x), [0, 0, 0.5, 1, 1])
  np.testing.assert_allclose(relu6(x), [0, 0, 0, 3, 6])


def test_squeeze_excite_gates_y_from_x_in():
  se = SqueezeExcite(4, ratio=0.5, dense1=QDense, dense2=QDense)
  y = jnp.ones_like(X)
  v = se.init(jax.random.PRNGKey(0), X, y)
  out = se.apply(v, X, y)
  assert out.shape == X.shape
  gate = np.asarray(out)[:, 0, 0, :]
  assert np.all((gate >= 0) & (gate <= 1))
  np.testing.assert_allclose(np.asarray(out), np.broadcast_to(gate[:, None, None, :], X.shape))


def test_unknown_activation():
  with pytest.raises(ValueError, match="activation='gelu' is not allowed"):
    make_activation("gelu")
