"""fold='affine': chains of multiplies/adds by per-channel or scalar constants
on one tensor are priced as one multiply and one add; 'none' prices them as written."""

import jax.numpy as jnp
import pytest

from pikelpn_jax._jax_internals import tag
from pikelpn_jax.ace import AceSettings, acev2_report, analyze
from pikelpn_jax.quant import act_quant, quantize

AFFINE = AceSettings(fold="affine")
X = jnp.ones((2, 4, 4, 8))
M = jnp.full((8,), 1.5)  # per-channel constants
C = jnp.full((8,), 0.25)


def test_a_batch_norm_chain_folds_to_one_multiply_and_one_add():
  def bn(p, x):
    m, c = p
    return ((x * 1.3) * m + c) * 0.7 + c  # dequantize, BN, rescale: 3 mul + 2 add

  n = X.size
  none = analyze(bn, (M, C), X, const_argnums=0)
  assert none.acev2 == n * (3 * 1024 + 2 * 32)
  folded = analyze(bn, (M, C), X, const_argnums=0, settings=AFFINE)
  assert folded.acev2 == n * (1024 + 32)
  assert folded.settings["fold"] == "affine" and none.settings["fold"] == "none"


def test_a_tensor_with_another_use_ends_the_chain():
  def two_uses(m, x):
    y = x * m
    return y * 0.7 + y  # y is needed itself: its multiply stays

  n = X.size
  r = analyze(two_uses, M, X, const_argnums=0, settings=AFFINE)
  assert r.acev2 == n * (1024 + 1024 + 32)
  # a data operand (not a constant) is not affine either
  r = analyze(lambda x: (x * x) * 0.7, X, settings=AFFINE)
  assert r.acev2 == 2 * X.size * 1024


def test_a_shift_then_a_multiply_is_one_multiply():
  r = analyze(lambda m, x: (x * 0.5) * m, M, X, const_argnums=0, settings=AFFINE)
  assert dict(r.by_bits) == {"mul 32x32": {"count": X.size, "acev2": X.size * 1024}}


def test_the_requantization_multiply_merges_into_the_chain():
  q = act_quant(4, calibration="fixed")

  def f(p, x):
    m, c = p
    return quantize(x * m + c, q)[0]

  n = X.size
  none = analyze(f, (M, C), X, const_argnums=0)
  folded = analyze(f, (M, C), X, const_argnums=0, settings=AFFINE)
  assert none.acev2 - folded.acev2 == n * 1024  # x·(1/s) merged into x·m

  # integer chains fold too: QuantNorm's acc·M_int + C_int then ·s_M (a shift) is one mul+add
  def qn(p, x):
    m, c = p
    acc = tag(x, bits=32, signed=True, kind="act")
    y = acc * tag(m, bits=8, signed=True, kind="norm") + tag(c, bits=32, signed=True, kind="norm")
    return y * 0.125

  assert analyze(qn, (M, C), X, const_argnums=0).acev2 == n * (256 + 32 + 32)
  assert analyze(qn, (M, C), X, const_argnums=0, settings=AFFINE).acev2 == n * (256 + 32)


@pytest.mark.parametrize("spec", ["mobilenet_v2.py:w4a4"])
def test_done_when_mobilenet_v2_is_cheaper_folded(spec):
  import os

  from pikelpn_jax.config_base import REPO_ROOT, load_config

  c = load_config(os.path.join(REPO_ROOT, "configs", spec))
  c.dataset.image_size = 32
  none, affine = (acev2_report(c, fold=f) for f in ("none", "affine"))
  assert affine.settings["fold"] == "affine"
  assert affine.acev2 < none.acev2 and affine.ace == none.ace and affine.macs == none.macs
  assert affine.unaccounted == () == none.unaccounted

  # What moves, exactly (docs/acev2.md, "Deployment folding"): only float32 multiplies (and, at
  # this size, the global pool's ·(1/1) shift), each BN output keeping its 32-bit add and losing
  # its 32x32 multiply to the dequantization's
  def count(r, k):
    return r.by_class.get(k, {}).get("count", 0)

  changed = {
    k for k in set(none.by_class) | set(affine.by_class) if count(none, k) != count(affine, k)
  }
  assert changed <= {"mul float32xfloat32", "shift float32"} and "mul float32xfloat32" in changed
  muls, shifts = (
    count(none, k) - count(affine, k) for k in ("mul float32xfloat32", "shift float32")
  )
  assert none.acev2 - affine.acev2 == 1024 * muls + 32 * shifts
  norm_outputs = (none.breakdown["norm"] - affine.breakdown["norm"]) // 1024
  assert norm_outputs > 0 and affine.breakdown["norm"] == 32 * norm_outputs
