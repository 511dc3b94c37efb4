"""ACEv2 against numbers computed by hand (each expected value is derived in a comment).

Unit costs (float_bits = acc_bits = 32): float×float multiply 32·32 = 1024; requantization of a
float input with a float scale 1024 (multiply) + 32 (round) + 2·32 (clip) = 1120 per element.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from pikelpn_jax._jax_internals import cost_category, tag
from pikelpn_jax.ace import AceSettings, analyze
from pikelpn_jax.layers import QConv, QDense, QuantNorm
from pikelpn_jax.quant import act_quant, weight_quant
from pikelpn_jax.quant.quantizer import quantize

REQUANT_FLOAT = 32 * 32 + 32 + 2 * 32  # 1120


def module_report(module, x, settings=None, **apply_kw):
  v = module.init(jax.random.PRNGKey(0), x)
  cols = sorted(v)

  def fn(*a):
    return module.apply(dict(zip(cols, a[:-1])), a[-1], **apply_kw)

  return analyze(
    fn,
    *[v[c] for c in cols],
    x,
    const_argnums=tuple(range(len(cols))),
    param_argnums=(cols.index("params"),),
    settings=settings,
  )


def test_dense_layer():
  x = jnp.ones((1, 16))
  r = module_report(
    QDense(4, w_quant=weight_quant(8), x_quant=act_quant(8), use_bias=True, name="fc"), x
  )
  assert r.macs == 16 * 4
  assert r.ace == 64 * 8 * 8  # 4096
  assert r.breakdown["mac"] == 4096
  # input quantizer 16·1120 = 17920; dequantization acc·(s_x·s_w): 4 outputs · 32·32 = 4096
  assert r.breakdown["scaling"] == 16 * REQUANT_FLOAT + 4 * 1024
  assert r.breakdown["other"] == 4 * 32  # the float bias add
  assert r.acev2 == 17920 + 4096 + 4096 + 128 == 26240
  assert r.params == 16 * 4 + 4
  assert r.model_bits == 64 * 8 + 4 * 32  # kernel at its tag's 8 bits
  assert r.unaccounted == ()
  assert {row.path for row in r.layers} == {"fc", "fc/x_quant"}


def test_strided_grouped_conv_same_padding():
  # 7×7×4 input, 3×3 kernel, stride 2, SAME, 2 groups, 8 outputs: output 4×4×8.
  x = jnp.ones((1, 7, 7, 4))
  conv = QConv(
    8,
    kernel_size=3,
    strides=2,
    feature_group_count=2,
    w_quant=weight_quant(4),
    x_quant=act_quant(4),
    name="conv",
  )
  r = module_report(conv, x)
  assert r.macs == 4 * 4 * 8 * (3 * 3 * 4 // 2)  # 2304: padded taps counted
  assert r.ace == 2304 * 4 * 4
  assert r.breakdown["scaling"] == 7 * 7 * 4 * REQUANT_FLOAT + 4 * 4 * 8 * 1024
  assert r.acev2 == 36864 + 219520 + 131072
  # Without padded taps: SAME pads (1,1); outputs 0..3 see 2,3,3,2 real rows → 10 per dim.
  valid = module_report(conv, x, settings=AceSettings(count_padded_taps=False))
  assert valid.macs == 8 * 2 * 10 * 10  # 1600


def test_conv_dequantization_with_pow2_scales_is_a_shift():
  x = jnp.ones((1, 2, 2, 3))
  conv = QConv(
    4,
    kernel_size=1,
    w_quant=weight_quant(4, scale="pow2"),
    x_quant=act_quant(4, scale="pow2"),
    name="conv",
  )
  r = module_report(conv, x)
  # input: shift + round + clip = 4·32 per element; s_x·s_w is pow2·pow2 = pow2: a 32-bit shift
  assert r.breakdown["scaling"] == 12 * 4 * 32 + 16 * 32
  assert r.by_bits["shift 32"]["count"] == 12 + 16


class ConvNorm(nn.Module):
  norm_bits: int = 8
  scale_format: str = "none"
  fold: bool = True

  @nn.compact
  def __call__(self, x):
    conv = QConv(4, kernel_size=1, w_quant=weight_quant(4), x_quant=act_quant(4), name="conv")
    if self.fold:
      acc, s = conv(x, return_acc=True)
      return QuantNorm(self.norm_bits, scale_format=self.scale_format, name="bn")(acc, in_scale=s)
    return QuantNorm(self.norm_bits, scale_format=self.scale_format, name="bn")(conv(x))


@pytest.mark.parametrize(
  "bits,fmt,fold,norm,scaling",
  [
    # QuantNorm 8-bit: acc32·M_int8 = 256, + C_int32 = 32 per element; then ·s_M (float 1024)
    (8, "none", True, 16 * (256 + 32), 16 * 1024),
    # Double Quantization: s_M is a power of two, a 32-bit shift
    (8, "pow2", True, 16 * (256 + 32), 16 * 32),
    # float BN folded with the conv's scale: acc·m (32·32) + c (32), no separate dequantization
    (None, "none", True, 16 * (1024 + 32), 0),
    # float BN after a dequantizing conv: the dequantization multiply is paid in 'scaling'
    (None, "none", False, 16 * (1024 + 32), 16 * 1024),
  ],
)
def test_folded_batch_norm_on_quantized_conv(bits, fmt, fold, norm, scaling):
  x = jnp.ones((1, 2, 2, 3))
  r = module_report(ConvNorm(bits, fmt, fold), x)
  assert r.macs == 16 * 3 and r.breakdown["mac"] == 48 * 16
  assert r.breakdown["norm"] == norm
  assert r.breakdown["scaling"] == 12 * REQUANT_FLOAT + scaling
  assert r.acev2 == 768 + 12 * REQUANT_FLOAT + norm + scaling


def test_residual_add_float_and_integer():
  def add(x, y):
    with cost_category("residual_pool"):
      return x + y

  x = jnp.ones((1, 4, 4, 8))
  assert analyze(add, x, x).breakdown["residual_pool"] == 128 * 32

  def add_int(x, y):
    s = add(tag(x, bits=4, signed=False, kind="act"), tag(y, bits=8, signed=True, kind="act"))
    with cost_category("activation"):
      return jnp.maximum(s, 0.0)

  r = analyze(add_int, x, x)
  assert r.breakdown["residual_pool"] == 128 * 8  # max(4, 8)
  # u4 + s8 is exact in 9 signed bits (u4 needs 5 as signed, +1 for the carry)
  assert r.breakdown["activation"] == 128 * 9


def test_average_and_max_pooling():
  x = jnp.ones((1, 7, 7, 4))  # 3×3/2 SAME → 4×4×4 = 64 outputs
  avg = analyze(lambda x: nn.avg_pool(x, (3, 3), (2, 2), "SAME"), x)
  # 8 adds per output (padded taps counted) at 32 bits, then ·(1/9): a float multiply
  assert avg.acev2 == 64 * 8 * 32 + 64 * 1024
  mx = analyze(lambda x: nn.max_pool(x, (3, 3), (2, 2), "SAME"), x)
  assert mx.acev2 == 64 * 8 * 32
  q = lambda x: tag(x, bits=4, signed=False, kind="act")
  assert analyze(lambda x: nn.max_pool(q(x), (3, 3), (2, 2), "SAME"), x).acev2 == 64 * 8 * 4
  # integer sum at the input's 4 bits; a sum of 9 u4 fits u8, so ·(1/9) is 8·32
  assert (
    analyze(lambda x: nn.avg_pool(q(x), (3, 3), (2, 2), "SAME"), x).acev2
    == 64 * 8 * 4 + 64 * 8 * 32
  )
  valid = analyze(
    lambda x: nn.max_pool(x, (3, 3), (2, 2), "SAME"),
    x,
    settings=AceSettings(count_padded_taps=False),
  )
  assert valid.acev2 == (10 * 10 * 4 - 64) * 32  # 10 real taps per dim
  # global average pool of 4×4: 15 adds per channel, then /16 is a shift of the u8 sum
  gap = analyze(lambda x: jnp.mean(q(x), axis=(1, 2)), jnp.ones((1, 4, 4, 8)))
  assert gap.acev2 == 8 * 15 * 4 + 8 * 8


@pytest.mark.parametrize(
  "quant,per_element",
  [
    (act_quant(4, calibration="fixed"), 1024 + 32 + 64),  # float scale
    (act_quant(4, calibration="fixed", scale="pow2"), 32 + 32 + 64),  # shift
    (act_quant(4, calibration="fixed", scale="fixed", scale_bits=8), 32 * 8 + 96),
    (act_quant(4, calibration="fixed", folded=True), 32 + 64),  # no multiply
    (act_quant(1, signed=True, calibration="fixed"), 32),  # sign: one compare
  ],
)
def test_quantizer_scales(quant, per_element):
  x = jnp.ones((3, 5))
  r = analyze(lambda x: quantize(x, quant)[0], x)
  assert r.acev2 == 15 * per_element
  assert r.breakdown["scaling"] == r.acev2


def test_requantizing_an_integer_and_const_weights():
  x = jnp.ones((3, 5))
  q = act_quant(4, calibration="fixed", scale="pow2")
  r = analyze(lambda x: quantize(tag(x, bits=8, signed=True, kind="act"), q)[0], x)
  assert r.acev2 == 15 * (8 + 8 + 2 * 8)
  # Quantizing a constant (a weight) is free and its codes price the MAC at their bits.
  w = jnp.ones((5, 2))

  def mac(w, x):
    return tag(x, bits=2, signed=True, kind="act") @ quantize(w, weight_quant(3))[0]

  r = analyze(mac, w, x, const_argnums=0)
  assert r.acev2 == r.ace == 3 * 2 * 5 * 2 * 3
  assert r.model_bits == 10 * 3


@pytest.mark.parametrize("low,ratio", [(4, 0.25), (1, 1 / 64)])
def test_mac_ace_ratio_invariants(low, ratio):
  class Net(nn.Module):
    bits: int

    @nn.compact
    def __call__(self, x):
      a = act_quant(self.bits, signed=True)
      y = QConv(8, kernel_size=3, w_quant=weight_quant(self.bits), x_quant=a, name="c1")(x)
      y = QConv(8, kernel_size=1, w_quant=weight_quant(self.bits), x_quant=a, name="c2")(y)
      return QDense(3, w_quant=weight_quant(self.bits), x_quant=a, name="fc")(y.mean((1, 2)))

  x = jnp.ones((1, 6, 6, 3))
  hi, lo = module_report(Net(8), x), module_report(Net(low), x)
  assert hi.macs == lo.macs
  assert lo.ace / hi.ace == ratio
