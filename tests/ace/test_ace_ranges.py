"""Value ranges (docs/acev2.md, "Value ranges"): an integer's width is the fewest bits holding its
interval, clips narrow, a float clipped to constant bounds, rounded and converted to an integer
is an integer of its bounds; float widths come from the dtype; transposed convs count real taps."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_dtypes
import pytest

from pikelpn_jax.ace import AceSettings, analyze, ranges

W8 = jnp.ones((16, 4), jnp.int8)
DOT = lambda a, w: jax.lax.dot(a, w, preferred_element_type=jnp.int32)  # noqa: E731


def mac_keys(fn, *args, **kw):
  r = analyze(fn, *args, **kw)
  assert r.unaccounted == ()
  return {k for k in r.by_bits if k.startswith("mac")}, r


@pytest.mark.parametrize(
  "lo, hi, bits",
  [(0, 15, 4), (-8, 7, 4), (-128, 127, 8), (-129, 127, 9), (-3, 3, 3), (-1, 1, 2), (0, 0, 1)],
)
def test_range_bits(lo, hi, bits):
  assert ranges.range_bits(lo, hi) == bits


def test_negative_powers_of_two_cost_k_plus_one_bits():
  # int4 data clipped to [−8, 7] is int4, int8 data clipped to [−128, 127] is int8
  x4 = jnp.ones((2, 16), ml_dtypes.int4)
  keys, _ = mac_keys(
    lambda w, x: DOT(jnp.clip(x.astype(jnp.int8), -8, 7), w), W8, x4, const_argnums=0
  )
  assert keys == {"mac 4x8"}
  x8 = jnp.ones((2, 16), jnp.int8)
  keys, _ = mac_keys(lambda w, x: DOT(jnp.clip(x, -128, 127), w), W8, x8, const_argnums=0)
  assert keys == {"mac 8x8"}
  # a literal −8 is 4 bits: adding it to an int4 grows one bit, as for any int4
  _, r = mac_keys(lambda x: x.astype(jnp.int8) + jnp.int8(-8), x4)
  assert set(r.by_bits) == {"add 4x4"}


def test_clip_min_max_and_masks_narrow_to_their_bounds():
  u8 = jnp.ones((2, 16), jnp.uint8)
  keys, r = mac_keys(lambda w, x: DOT(jnp.clip(x, 0, 15), w), W8, u8, const_argnums=0)
  assert keys == {"mac 4x8"} and r.macs == 2 * 16 * 4
  keys, _ = mac_keys(lambda w, x: DOT(jnp.minimum(x, 15), w), W8, u8, const_argnums=0)
  assert keys == {"mac 4x8"}
  keys, _ = mac_keys(lambda w, x: DOT(x & 7, w), W8, u8, const_argnums=0)
  assert keys == {"mac 3x8"}
  keys, _ = mac_keys(
    lambda w, x: DOT(jax.lax.shift_right_logical(x, jnp.uint8(4)), w), W8, u8, const_argnums=0
  )
  assert keys == {"mac 4x8"}
  # exact subtraction: two uint4 values differ by at most 15 (5 bits signed, not 6)
  u4 = jnp.ones((2, 16), ml_dtypes.uint4)
  _, r = mac_keys(lambda x: (x.astype(jnp.int8) - x.astype(jnp.int8)) * x.astype(jnp.int8), u4)
  assert "mul 5x4" in r.by_bits


def test_float_clipped_rounded_converted_is_an_integer_of_its_bounds():
  x = jnp.ones((2, 16))
  for b in (2, 3, 4, 8):
    q = 2 ** (b - 1) - 1

    def f(w, x, q=q):
      codes = jnp.round(jnp.clip(x * 3.0, -q, q)).astype(jnp.int8)  # int-in-int8
      return DOT(codes, w)

    keys, _ = mac_keys(f, W8, x, const_argnums=0)
    assert keys == {f"mac {b}x8"}, (b, keys)
  # floor after the clip, and the clip after the rounding: the same bounds
  keys, _ = mac_keys(
    lambda w, x: DOT(jnp.clip(jnp.floor(x), 0, 3).astype(jnp.uint8), w), W8, x, const_argnums=0
  )
  assert keys == {"mac 2x8"}
  # a float that nothing clipped is the container's width
  keys, _ = mac_keys(lambda w, x: DOT(jnp.round(x).astype(jnp.int8), w), W8, x, const_argnums=0)
  assert keys == {"mac 8x8"}


def test_float_widths_come_from_the_dtype_unless_float_bits_is_set():
  w = jnp.ones((16, 4))
  for dtype, bits in ((jnp.float32, 32), (jnp.bfloat16, 16), (jnp.float16, 16)):
    f = lambda w, x: x @ w.astype(x.dtype)  # noqa: E731
    keys, r = mac_keys(f, w, jnp.ones((2, 16), dtype), const_argnums=0)
    assert keys == {f"mac {bits}x{bits}"} and r.settings["float_widths"] == "dtype"
  f8 = jnp.ones((2, 16), jnp.float8_e4m3fn)
  keys, _ = mac_keys(lambda w, x: x @ w.astype(x.dtype), w, f8, const_argnums=0)
  assert keys == {"mac 8x8"}
  s = AceSettings(float_bits=16)
  keys, r = mac_keys(lambda w, x: x @ w, w, jnp.ones((2, 16)), const_argnums=0, settings=s)
  assert keys == {"mac 16x16"} and r.settings["float_widths"] == "float_bits"


def test_transposed_conv_counts_real_taps():
  """nn.ConvTranspose stride 2, 3×3, 8×8×16 → 16×16×16: input pixels × k² × C_out
  = 8·8·16 · 9 · 16 = 147,456 MACs (was 16·16·16 · 9 · 16 = 589,824, counting the inserted
  zeros); only taps on real pixels (count_padded_taps=False) = XLA's 135,424."""
  m = nn.ConvTranspose(16, (3, 3), strides=(2, 2))
  x = jnp.ones((1, 8, 8, 16))
  v = jax.eval_shape(lambda: m.init(jax.random.PRNGKey(0), x))
  f = lambda v, x: m.apply(v, x)  # noqa: E731
  assert analyze(f, v, x, const_argnums=0).macs == 8 * 8 * 16 * 9 * 16
  real = analyze(f, v, x, const_argnums=0, settings=AceSettings(count_padded_taps=False))
  assert real.macs == 135_424
  # a plain conv keeps the padded-taps convention: 8·8·16 outputs × 9 × 16
  c = nn.Conv(16, (3, 3))
  cv = jax.eval_shape(lambda: c.init(jax.random.PRNGKey(0), x))
  assert analyze(lambda v, x: c.apply(v, x), cv, x, const_argnums=0).macs == 8 * 8 * 16 * 9 * 16


class _Block(nn.Module):
  features: int
  strides: int = 1

  @nn.compact
  def __call__(self, x):
    y = nn.relu(nn.BatchNorm(use_running_average=True)(nn.Conv(self.features, (3, 3))(x)))
    y = nn.Conv(self.features, (3, 3), strides=self.strides)(y)
    sc = nn.Conv(self.features, (1, 1), strides=self.strides)(x)
    return nn.relu(nn.BatchNorm(use_running_average=True)(y) + sc)


class _ResNet(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.Conv(8, (3, 3))(x)
    for f, s in ((8, 1), (16, 2)):
      x = _Block(f, s)(x)
    return nn.Dense(10)(jnp.mean(x, axis=(1, 2)))


def test_a_resnet_traced_in_bf16_reports_16_bit_float_ops():
  x = jnp.ones((1, 16, 16, 3))
  model = _ResNet()
  v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
  v16 = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, jnp.bfloat16), v)
  f = lambda v, x: model.apply(v, x)  # noqa: E731
  r32 = analyze(f, v, x, const_argnums=0)
  r16 = analyze(f, v16, x.astype(jnp.bfloat16), const_argnums=0)
  assert r32.unaccounted == r16.unaccounted == ()
  assert {k for k in r32.by_bits if k.startswith("mac")} == {"mac 32x32"}
  assert {k for k in r16.by_bits if k.startswith("mac")} == {"mac 16x16"}
  # the same ops, each at 16 bits (MACs 4× cheaper), but for jnp.mean, which sums bfloat16 in
  # float32 (its reduce_sum and its ·(1/64) shift are float32 in the trace)
  assert r16.macs == r32.macs and r16.ace * 4 == r32.ace
  assert {k for k in r16.by_bits if "32" in k} == {"add 32", "shift 32"}
  assert {k.replace("32", "16") for k in r32.by_bits} == {
    k.replace("32", "16") for k in r16.by_bits
  }
  assert r16.model_bits * 2 == r32.model_bits


def test_a_config_trained_in_bf16_is_priced_in_bf16():
  """acev2_report traces the model with inputs in config.dtype: MobileNetV2 (float) with
  dtype=bfloat16 has every MAC at 16×16 (ACE 4× lower); no --float_bits needed."""
  import os

  from pikelpn_jax.ace import acev2_report
  from pikelpn_jax.config_base import REPO_ROOT, load_config

  c = load_config(os.path.join(REPO_ROOT, "configs", "mobilenet_v2.py:float"))
  c.dataset.image_size, c.model.width = 32, 0.35
  r32 = acev2_report(c)
  c.dtype = "bfloat16"
  r16 = acev2_report(c)
  assert {k for k in r32.by_bits if k.startswith("mac")} == {"mac 32x32"}
  assert {k for k in r16.by_bits if k.startswith("mac")} == {"mac 16x16"}
  assert r16.macs == r32.macs and 4 * r16.ace == r32.ace
  assert r16.settings["float_bits"] is None and r16.settings["float_widths"] == "dtype"
