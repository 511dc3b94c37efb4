"""QuantNorm: float form equals flax BatchNorm; quantized form is the integer pipeline."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pikelpn_jax.layers import QuantNorm

X = jax.random.normal(jax.random.PRNGKey(0), (4, 5, 5, 6)) * 2.0 + 0.5


def _randomised(v, key):
  """Non-trivial gamma/beta/statistics so the comparison exercises every term."""
  leaves, tree = jax.tree_util.tree_flatten(v)
  keys = jax.random.split(key, len(leaves))
  leaves = [jax.random.uniform(k, l.shape, minval=0.5, maxval=1.5) for k, l in zip(keys, leaves)]
  return jax.tree_util.tree_unflatten(tree, leaves)


def test_float_quantnorm_equals_flax_batchnorm_train_and_eval():
  qn, bn = QuantNorm(bits=None), nn.BatchNorm(momentum=0.9, epsilon=1e-5)
  vq = _randomised(qn.init(jax.random.PRNGKey(1), X), jax.random.PRNGKey(2))
  vb = bn.init(jax.random.PRNGKey(1), X, use_running_average=True)
  vb = {"params": vq["params"], "batch_stats": vq["batch_stats"]}
  yq, uq = qn.apply(vq, X, train=True, mutable=["batch_stats"])
  yb, ub = bn.apply(vb, X, use_running_average=False, mutable=["batch_stats"])
  np.testing.assert_allclose(yq, yb, atol=1e-6, rtol=1e-6)
  for k in ("mean", "var"):
    np.testing.assert_allclose(uq["batch_stats"][k], ub["batch_stats"][k], atol=1e-6, rtol=1e-6)
  np.testing.assert_allclose(
    qn.apply(vq, X), bn.apply(vb, X, use_running_average=True), atol=1e-6, rtol=1e-6
  )


def test_in_scale_folding_matches_norm_of_dequantized_input():
  acc = jnp.round(X * 20)
  s_in = jnp.linspace(0.01, 0.05, 6)
  qn = QuantNorm(bits=None)
  v = _randomised(qn.init(jax.random.PRNGKey(1), X), jax.random.PRNGKey(3))
  folded = qn.apply(v, acc, train=True, in_scale=s_in, mutable=["batch_stats"])[0]
  plain = qn.apply(v, acc * s_in, train=True, mutable=["batch_stats"])[0]
  np.testing.assert_allclose(folded, plain, atol=1e-5)


@pytest.mark.parametrize("fmt", ["none", "pow2", "fixed"])
def test_quantized_form_is_the_integer_pipeline(fmt):
  qn = QuantNorm(bits=8, scale_format=fmt)
  v = _randomised(qn.init(jax.random.PRNGKey(1), X), jax.random.PRNGKey(4))
  acc = jnp.round(X * 20)
  s_in = 0.03
  y = qn.apply(v, acc, in_scale=s_in)
  gamma, beta = v["params"]["scale"], v["params"]["bias"]
  mean, var = v["batch_stats"]["mean"], v["batch_stats"]["var"]
  inv = 1 / np.sqrt(var + 1e-5)
  m = gamma * inv * s_in
  s_m = np.abs(m).max() / 127
  if fmt == "pow2":
    s_m = 2.0 ** np.ceil(np.log2(s_m))
  elif fmt == "fixed":
    e = np.ceil(np.log2(s_m / 255))
    s_m = np.round(s_m / 2**e) * 2**e
  m_int = np.clip(np.floor(m / s_m + 0.5), -127, 127)
  c_int = np.floor((beta - gamma * inv * mean) / s_m + 0.5)
  expected = (np.asarray(acc) * m_int + c_int) * s_m
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
  # Close to the float norm: the multiplier has 8-bit precision.
  ref = QuantNorm(bits=None).apply(v, acc, in_scale=s_in)
  assert float(jnp.max(jnp.abs(y - ref))) < 0.05 * float(jnp.max(jnp.abs(ref)))


def test_quantnorm_trains_gamma_and_beta_through_ste():
  qn = QuantNorm(bits=4)
  v = qn.init(jax.random.PRNGKey(1), X)
  g = jax.grad(
    lambda p: jnp.sum(qn.apply({**v, "params": p}, X, train=True, mutable=["batch_stats"])[0] ** 2)
  )(v["params"])
  assert float(jnp.abs(g["scale"]).sum()) > 0 and float(jnp.abs(g["bias"]).sum()) > 0


@pytest.mark.parametrize(
  "kw,msg", [({"bits": 0}, "QuantNorm.bits=0"), ({"bias_bits": 64}, "QuantNorm.bias_bits=64")]
)
def test_bad_bits(kw, msg):
  with pytest.raises(ValueError, match=msg):
    QuantNorm(**kw).init(jax.random.PRNGKey(0), X)
