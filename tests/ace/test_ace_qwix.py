"""A model quantized by another library: Qwix's post-training quantization of a Flax model stores
int8 (int4) weights and quantizes activations to int8 (int4) on the fly; the analyzer prices it
from the integer dtypes alone (no tag of ours) as 8×8-bit (4×4-bit) MACs."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from pikelpn_jax.ace import analyze

qwix = pytest.importorskip("qwix")


class TinyCNN(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(8, (3, 3))(x))
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(4)(x)


def test_qwix_ptq_model_is_priced_at_int8():
  model = TinyCNN()
  x = jnp.ones((1, 8, 8, 3))
  rules = [qwix.QuantizationRule(module_path=".*", weight_qtype=jnp.int8, act_qtype=jnp.int8)]
  qmodel = qwix.quantize_model(model, qwix.PtqProvider(rules))
  variables = qmodel.init(jax.random.PRNGKey(0), x)
  leaves = jax.tree_util.tree_leaves(variables)
  assert any(leaf.dtype == jnp.int8 for leaf in leaves)  # Qwix stored int8 weights
  r = analyze(lambda v, x: qmodel.apply(v, x), variables, x, const_argnums=0)
  conv_macs, dense_macs = 8 * 8 * 9 * 3 * 8, 8 * 4
  assert dict(r.by_bits)["mac 8x8"]["count"] == conv_macs + dense_macs
  assert r.macs == conv_macs + dense_macs and r.ace == 64 * r.macs
  assert r.unaccounted == ()
  # model bits from the dtypes: int8 kernels at 8 bits, Qwix's float scales and biases at 32
  assert r.model_bits == sum(leaf.size * (8 if leaf.dtype == jnp.int8 else 32) for leaf in leaves)
  # the same float model: 32×32 MACs
  fv = model.init(jax.random.PRNGKey(0), x)
  assert analyze(lambda v, x: model.apply(v, x), fv, x, const_argnums=0).ace == 1024 * r.macs


def test_qwix_ptq_model_is_priced_at_int4():
  model = TinyCNN()
  x = jnp.ones((1, 8, 8, 3))
  rules = [qwix.QuantizationRule(module_path=".*", weight_qtype=jnp.int4, act_qtype=jnp.int4)]
  qmodel = qwix.quantize_model(model, qwix.PtqProvider(rules))
  # abstract init: XLA:CPU cannot run an int4 conv, and only shapes and dtypes are priced
  variables = jax.eval_shape(lambda: qmodel.init(jax.random.PRNGKey(0), x))
  leaves = jax.tree_util.tree_leaves(variables)
  assert any(leaf.dtype == jnp.int4 for leaf in leaves)
  r = analyze(lambda v, x: qmodel.apply(v, x), variables, x, const_argnums=0)
  macs = 8 * 8 * 9 * 3 * 8 + 8 * 4
  assert {k for k in r.by_bits if k.startswith("mac")} == {"mac 4x4"}
  assert r.macs == macs and r.ace == 16 * macs and r.unaccounted == ()
  assert r.model_bits == sum(leaf.size * (4 if leaf.dtype == jnp.int4 else 32) for leaf in leaves)
