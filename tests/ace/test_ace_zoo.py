"""ACEv2 over the model zoo: standard MAC counts, PokeBNN's official ACE, every config variant
priced with nothing unaccounted (under both folds) and unchanged under jit/remat/scan, QuantNorm and Double
Quantization ablations. Variables come from jax.eval_shape (costs depend only on shapes)."""

import functools
import glob
import importlib.util
import os

import jax
import jax.numpy as jnp
import pytest

from pikelpn_jax.ace import AceSettings, acev2_report, analyze
from pikelpn_jax.ace.api import abstract_variables, model_input_spec
from pikelpn_jax.config_base import load_config
from pikelpn_jax.models import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def config(spec: str, image_size=None):
  c = load_config(os.path.join(ROOT, "configs", spec))
  if image_size is not None:
    c.dataset.image_size = image_size
  return c


@functools.lru_cache(maxsize=None)
def _variables(spec: str, image_size):
  c = config(spec, image_size)
  model = build_model(c, dw_impl="grouped")
  return c, model, abstract_variables(model, model_input_spec(c))


def report(spec: str, image_size=None, **kw):
  c, model, v = _variables(spec, image_size)
  return acev2_report(c, v, model=model, strict=True, **kw)


def all_variants():
  out = []
  for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*.py"))):
    spec = importlib.util.spec_from_file_location("_cfg_" + os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for variant in getattr(mod, "VARIANTS", ("",)):
      out.append(f"{os.path.basename(path)}:{variant}")
  return out


@pytest.mark.parametrize(
  "spec,expected",
  [
    ("mobilenet_v1.py:float", 569e6),
    ("mobilenet_v2.py:float", 300e6),
    ("resnet.py:18_float", 1.82e9),
    ("resnet.py:50_float", 4.1e9),
  ],
)
def test_standard_mac_counts_at_224(spec, expected):
  r = report(spec)
  assert abs(r.macs / expected - 1) < 0.005, (spec, r.macs)
  assert r.unaccounted == ()


def test_macs_cross_checked_against_xla_cost_analysis():
  """XLA counts conv taps on real pixels only, and one flop per elementwise op, including the
  ones on parameters that ACEv2 folds offline (BN's rsqrt·γ per channel)."""
  c, model, v = _variables("mobilenet_v1.py:float", 32)
  ours = acev2_report(c, v, model=model, count_padded_taps=False)
  x = model_input_spec(c)
  v_real = jax.tree_util.tree_map(lambda s: jnp.ones(s.shape, s.dtype), v)
  flops = (
    jax.jit(lambda v, x: model.apply(v, x, train=False))
    .lower(v_real, jnp.ones(x.shape))
    .compile()
    .cost_analysis()["flops"]
  )
  elementwise = sum(row.ops - row.macs for row in ours.layers)
  assert abs(flops / 2 / ours.macs - 1) < 0.02
  assert abs((2 * ours.macs + elementwise) / flops - 1) < 0.005
  assert report("mobilenet_v1.py:float", 32).macs > ours.macs  # padded taps counted


def _se(cin, cout):
  hidden = cin // 8
  return (cin * hidden + hidden * cout) * 4 * 4


def pokebnn_ace_by_shape_arithmetic(size=224, classes=1000):
  """paper-notes §10.5-10.6: PokeInit at 8×8 bits, binary body, 4-bit SE on a 1×1 map,
  8-bit dense."""
  h = size // 4  # 4×4 stride-4 VALID stem
  conv = h * h * (4 * 4 * 3) * 32 * 64 + h * h * (3 * 3 * 1) * 64 * 64
  cin = 64
  for stage, (c, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
    for b in range(blocks):
      stride = 2 if b == 0 and stage > 0 else 1
      conv += h * h * cin * c + _se(cin, c)  # 1×1
      h = -(-h // stride)
      conv += h * h * 9 * c * c + _se(c, c)  # 3×3, stride
      conv += h * h * c * 4 * c + _se(c, 4 * c)  # 1×1 expand
      cin = 4 * c
  return conv, cin * classes * 8 * 8


def test_pokebnn_ace_follows_the_official_rules():
  r = report("pokebnn.py:1.0x")
  conv, dense = pokebnn_ace_by_shape_arithmetic()
  # The official regression test (google/aqt pokebnn_test.py, quoted in shared/docs/anchors.md):
  assert (conv, dense) == (4091469824, 131072000)
  heads = [row for row in r.layers if row.macs and "head" in row.path]
  assert sum(row.ace for row in heads) == dense
  assert r.ace == conv + dense
  assert r.ace < r.acev2  # ACE ignores the elementwise work


@pytest.mark.parametrize("spec", all_variants())
def test_every_variant_priced_fully_and_invariant_under_transforms(spec):
  c, model, v = _variables(spec, 32)
  names = sorted(v)
  x = model_input_spec(c)

  def fwd(*a):
    return model.apply(dict(zip(names, a[:-1])), a[-1], train=False)

  def wrapped(*a):
    body = jax.checkpoint(lambda *b: fwd(*b))
    return jax.lax.scan(lambda carry, _: (carry, body(*a)), 0.0, None, length=1)[1][0]

  args = [v[n] for n in names] + [x]
  kw = dict(
    const_argnums=tuple(range(len(names))), param_argnums=(names.index("params"),), strict=False
  )
  plain = analyze(fwd, *args, **kw)
  assert plain.unaccounted == ()
  assert plain.macs > 0 and plain.acev2 > plain.ace > 0
  folded = analyze(fwd, *args, settings=AceSettings(fold="affine"), **kw)
  assert folded.unaccounted == ()
  assert folded.ace == plain.ace and plain.acev2 >= folded.acev2 > folded.ace
  again = analyze(jax.jit(wrapped), *args, **kw)
  strip = lambda r: {k: val for k, val in r.to_json().items() if k != "timing"}
  assert strip(again) == strip(plain)


def mobilenet_v1_norm_elements(size=224, width=1.0):
  """Output elements of every conv followed by a norm (stem + 13 dw/pw pairs; §8.2 geometry)."""
  h, c = size // 2, int(32 * width)
  n = h * h * c
  for out, stride in (
    [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
    + [(512, 1)] * 5
    + [(1024, 2), (1024, 1)]
  ):
    h = -(-h // stride)
    n += h * h * c  # depthwise
    c = int(out * width)
    n += h * h * c  # pointwise
  return n


def test_quantnorm_lowers_the_norm_category():
  on = report("pikelpn.py:1x")
  c = config("pikelpn.py:1x")
  c.model.quantnorm = False
  off = acev2_report(c)
  n = mobilenet_v1_norm_elements()
  assert n == 5042688
  # float norm: acc·m (32·32) + c (32); QuantNorm: acc32·M_int8 + C_int32 (32·8 + 32)
  assert off.breakdown["norm"] == n * (32 * 32 + 32)
  assert on.breakdown["norm"] == n * (32 * 8 + 32)
  assert off.breakdown["norm"] - on.breakdown["norm"] == 768 * n
  assert on.acev2 < off.acev2
  assert on.ace == off.ace


def test_double_quantization_lowers_the_scaling_category():
  on = report("pikelpn.py:1x")
  c = config("pikelpn.py:1x")
  c.model.double_quant = False
  off = acev2_report(c)
  # Rescales that become shifts: QuantNorm's s_M at every norm output, the stem's input
  # quantizer (224²·3), the head's input quantizer (1024) and the head's dequantization (1000).
  shifts = mobilenet_v1_norm_elements() + 224 * 224 * 3 + 1024 + 1000
  assert on.by_bits["shift 32"]["count"] == shifts
  assert off.breakdown["scaling"] - on.breakdown["scaling"] == (32 * 32 - 32) * shifts
  assert {k: v for k, v in off.breakdown.items() if k != "scaling"} == {
    k: v for k, v in on.breakdown.items() if k != "scaling"
  }


@pytest.mark.parametrize("spec", ["pikelpn.py:1x", "mobilenet_v2.py:w4a4"])
def test_report_is_the_same_for_both_pointwise_forms(spec):
  # 1×1 convs trace as dot_general (pw_impl 'dot', CPU default) or conv_general_dilated
  # ('conv', elsewhere): the same MACs, bits and elementwise work, layer by layer.
  out = []
  for form in ("conv", "dot"):
    c = config(spec, 32)
    c.model.pw_impl = form
    model = build_model(c, dw_impl="grouped")
    r = acev2_report(c, abstract_variables(model, model_input_spec(c)), model=model)
    d = {k: val for k, val in r.to_json().items() if k != "timing"}
    # the settings record the config, pw_impl included: equal but for that field
    assert d["settings"].pop("config_model")["pw_impl"] == form
    d["settings"].pop("config_sha256")
    out.append(d)
  assert out[0] == out[1]
