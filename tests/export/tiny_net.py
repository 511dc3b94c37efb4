"""A tiny fully quantized network built from pikelpn_jax layers, for the export tests.

stem conv 3×3/2 (8-bit in/weights) → QuantNorm → ReLU → max pool 2×2/1 → depthwise 3×3/2 (4-bit
in, 8-bit per-channel weights) → QuantNorm → ReLU6 → pointwise 1×1 (4-bit per-tensor weights) →
QuantNorm (no activation: signed) → binary conv 3×3 (1-bit in and weights) → QuantNorm → + the
pointwise output (a residual add of two grids) → ReLU → global average pool → dense with float
bias (8-bit). Every scale is a power of two by default.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from pikelpn_jax.layers import QConv, QDense, QDepthwiseConv, QuantNorm, relu, relu6
from pikelpn_jax.quant import FLOAT, act_quant, weight_quant


class TinyNet(nn.Module):
  scale_format: str = "pow2"
  float_layers: tuple = ()  # "pw": float pointwise weights; "norm": float stem norm
  classes: int = 10

  @nn.compact
  def __call__(self, x, train: bool = False):
    f = self.scale_format

    def norm(acc_s, name, float_norm=False):
      acc, s = acc_s
      return QuantNorm(None if float_norm else 8, scale_format=f, name=name)(acc, train, in_scale=s)

    stem = QConv(
      8,
      kernel_size=3,
      strides=2,
      w_quant=weight_quant(8, scale=f),
      x_quant=act_quant(8, signed=True, bound=3.0, scale=f),
      name="stem",
    )
    y = relu(norm(stem(x, train, return_acc=True), "stem_norm", "norm" in self.float_layers))
    y = nn.max_pool(y, (2, 2), (1, 1), "SAME")
    dw = QDepthwiseConv(
      8,
      strides=2,
      impl="grouped",
      w_quant=weight_quant(8, scale=f),
      x_quant=act_quant(4, scale=f, folded=True),
      name="dw",
    )
    y = relu6(norm(dw(y, train, return_acc=True), "dw_norm"))
    pw_w = FLOAT if "pw" in self.float_layers else weight_quant(4, per_channel=False, scale=f)
    pw = QConv(
      16, kernel_size=1, w_quant=pw_w, x_quant=act_quant(4, scale=f, folded=True), name="pw"
    )
    r = norm(pw(y, train, return_acc=True), "pw_norm")
    binary = QConv(
      16,
      kernel_size=3,
      w_quant=weight_quant(1, scale=f, calibration="absmean"),
      x_quant=act_quant(1, signed=True, scale=f),
      name="binary",
    )
    y = relu(norm(binary(r, train, return_acc=True), "binary_norm") + r)
    y = jnp.mean(y, axis=(1, 2))
    head = QDense(
      self.classes,
      use_bias=True,
      w_quant=weight_quant(8, scale=f),
      x_quant=act_quant(8, scale=f),
      name="head",
    )
    return head(y, train)


def calibrated(model: nn.Module, batch: int = 4, steps: int = 3, seed: int = 0):
  """Variables after a few train-mode passes (EMA bounds, running statistics) and randomised
  norm affine parameters, so every QuantNorm term is non-trivial."""
  key = jax.random.PRNGKey(seed)
  x = jax.random.normal(key, (batch, 32, 32, 1))
  v = jax.jit(lambda k, a: model.init(k, a))(key, x)
  step = jax.jit(lambda v, a: model.apply(v, a, train=True, mutable=["batch_stats"])[1])
  for i in range(steps):
    xi = jax.random.normal(jax.random.fold_in(key, i), x.shape)
    v = {**v, **step(v, xi)}
  params = dict(v["params"])
  for i, name in enumerate(sorted(k for k in params if k.endswith("_norm"))):
    k1, k2 = jax.random.split(jax.random.fold_in(key, 100 + i))
    p = params[name]
    params[name] = {
      "scale": p["scale"] * jax.random.uniform(k1, p["scale"].shape, minval=0.5, maxval=1.5),
      "bias": p["bias"] + 0.3 * jax.random.normal(k2, p["bias"].shape),
    }
  params["head"] = {
    **params["head"],
    "bias": 0.1 * jax.random.normal(jax.random.fold_in(key, 7), (model.classes,)),
  }
  return {"params": params, "batch_stats": v["batch_stats"]}
