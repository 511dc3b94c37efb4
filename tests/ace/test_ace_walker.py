"""The walker's structural rules: higher-order primitives, errors, constants, the report API."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from pikelpn_jax._jax_internals import cost_category, tag
from pikelpn_jax.ace import CATEGORIES, AceError, AceSettings, CostReport, analyze
from pikelpn_jax.layers import QConv, QuantNorm, relu
from pikelpn_jax.quant import act_quant, weight_quant

X = jnp.ones((1, 6, 6, 3))


class Tiny(nn.Module):
  @nn.compact
  def __call__(self, x):
    acc, s = QConv(
      8,
      kernel_size=3,
      strides=2,
      w_quant=weight_quant(4, scale="pow2"),
      x_quant=act_quant(4, scale="pow2"),
      name="conv",
    )(x, return_acc=True)
    y = relu(QuantNorm(8, scale_format="pow2", name="bn")(acc, in_scale=s))
    with cost_category("residual_pool"):
      y = y + y
    return jnp.mean(y, axis=(1, 2))


@pytest.fixture(scope="module")
def tiny():
  m = Tiny()
  v = m.init(jax.random.PRNGKey(0), X)
  return (lambda p, b, x: m.apply({"params": p, "batch_stats": b}, x)), v


def _report(fn, v, x=X, **kw):
  return analyze(fn, v["params"], v["batch_stats"], x, const_argnums=(0, 1), param_argnums=0, **kw)


def _costs(r: CostReport):
  d = r.to_json()
  d.pop("timing")
  return d


def test_identical_under_jit_remat_and_scan(tiny):
  fn, v = tiny
  base = _costs(_report(fn, v))
  assert base["acev2"] > base["ace"] > 0
  assert _costs(_report(jax.jit(fn), v)) == base
  assert _costs(_report(jax.checkpoint(fn), v)) == base

  def scanned(p, b, x):
    return jax.lax.scan(lambda c, _: (c, fn(p, b, x)), 0.0, None, length=1)[1][0]

  assert _costs(_report(scanned, v)) == base

  def scanned3(p, b, x):
    return jax.lax.scan(lambda c, _: (c, fn(p, b, x)), 0.0, None, length=3)[1]

  r3 = _report(scanned3, v)
  assert (r3.acev2, r3.macs) == (3 * base["acev2"], 3 * base["macs"])


def test_layers_and_categories_of_a_small_model(tiny):
  fn, v = tiny
  r = _report(fn, v)
  assert tuple(r.breakdown) == CATEGORIES
  assert r.layer("Tiny/conv").macs == r.macs == 3 * 3 * 8 * 9 * 3
  assert r.layer("Tiny/bn").breakdown["norm"] == 72 * (32 * 8 + 32)
  assert r.layer("Tiny/bn").breakdown["scaling"] == 72 * 32  # pow2 s_M: a shift
  assert r.breakdown["activation"] == 72 * 32
  assert r.breakdown["residual_pool"] == 72 * 32
  assert r.breakdown["other"] == 8 * 8 * 32 + 8 * 1024  # mean of 3×3: 8 adds, ·(1/9)
  assert sum(row.acev2 for row in r.layers) == r.acev2
  conv = r.layer("Tiny/conv")
  assert conv.weight_bits == 3 * 3 * 3 * 8 * 4  # the 4-bit kernel, read once
  assert conv.intensity > r.layer("Tiny/bn").intensity  # elementwise: memory bound


def test_scan_carry_changing_type_is_rewalked():
  def f(x):
    def body(c, _):
      return c * c, None  # int4·int4 → acc: the carry widens

    return jax.lax.scan(body, tag(x, bits=4, signed=True, kind="act"), None, length=2)[0]

  r = analyze(f, jnp.ones((3,)))
  assert r.by_bits == {"mul 32x32": {"count": 6, "acev2": 6 * 1024}}


def test_cond_takes_the_costliest_branch_and_flags_it():
  def f(x):
    return jax.lax.cond(x.sum() > 0, lambda x: x * x, lambda x: x, x)

  r = analyze(f, jnp.ones((4,)))
  # reduce_sum (3 adds) + compare (1) + the multiplying branch (4·1024)
  assert r.acev2 == 3 * 32 + 32 + 4 * 1024
  assert any("cond branches disagree" in n for n in r.notes)


def test_unknown_primitive_names_primitive_and_module_path():
  def f(x):
    with jax.named_scope("Net"), jax.named_scope("block3"):
      return jax.jit(jnp.sort)(x)

  with pytest.raises(AceError, match=r"'sort'.*Net/block3"):
    analyze(f, jnp.ones((4,)))
  r = analyze(f, jnp.ones((4,)), strict=False)
  assert r.unaccounted == ("sort at Net/block3",)


def test_a_row_added_to_the_rule_table_prices_its_primitive(monkeypatch):
  from pikelpn_jax.ace import RULES
  from pikelpn_jax.ace.pricing import cost, out_size

  def sort_rule(e, vals, settings):  # a comparator network: priced here as n·log2(n) compares
    n = out_size(e)
    return [vals[0]], cost("cmp", 32, 32, n * (n.bit_length() - 1), cx=vals[0].cls)

  monkeypatch.setitem(RULES, "sort", sort_rule)
  r = analyze(jnp.sort, jnp.ones((8,)))
  assert r.acev2 == 8 * 3 * 32 and r.unaccounted == ()
  monkeypatch.undo()
  with pytest.raises(AceError, match="'sort'.*RULES table"):
    analyze(jnp.sort, jnp.ones((8,)))


def test_the_rule_tables_are_literals_nothing_registers_into():
  """ace/rules.RULES and export/rules.RULES are each built by one literal; no module of
  pikelpn_jax writes into a RULES table (a rule that registered itself on import would be
  missing whenever its module was not imported)."""
  import ast
  import os

  root = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "pikelpn_jax")

  def names_rules(node):
    return (isinstance(node, ast.Name) and node.id == "RULES") or (
      isinstance(node, ast.Attribute) and node.attr == "RULES"
    )

  literals, writes = [], []
  for dirpath, _, files in os.walk(root):
    for f in files:
      if not f.endswith(".py"):
        continue
      path = os.path.join(dirpath, f)
      rel = os.path.relpath(path, root)
      for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
          targets = node.targets if isinstance(node, ast.Assign) else [node.target]
          if any(names_rules(t) for t in targets):
            literals.append((rel, type(node.value).__name__))
          if any(isinstance(t, ast.Subscript) and names_rules(t.value) for t in targets):
            writes.append(rel)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
          if names_rules(node.func.value) and node.func.attr in ("update", "setdefault", "pop"):
            writes.append(rel)
  assert sorted(literals) == [
    (os.path.join("ace", "rules.py"), "Dict"),
    (os.path.join("export", "rules.py"), "Dict"),
  ]
  assert writes == []


def test_while_on_data_is_an_error_but_on_constants_is_free():
  def loop(x):
    return jax.lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 2.0), (0, x))[1]

  with pytest.raises(AceError, match="while"):
    analyze(loop, jnp.ones((2,)))
  r = analyze(lambda w, x: x * loop(w), jnp.ones((2,)), jnp.ones((2,)), const_argnums=0)
  assert r.acev2 == 2 * 1024


def test_untagged_quantizer_is_an_error():
  from pikelpn_jax.quant.ste import quantize_ste

  with pytest.raises(AceError, match="no qtag"):
    analyze(lambda x: quantize_ste(x, 0.5, -7.0, 7.0, False), jnp.ones((2,)))


def test_constants_are_free_and_scale_formats_propagate():
  from pikelpn_jax.quant.ste import round_pow2_ste

  def f(w, x):
    s = tag(
      round_pow2_ste(jnp.abs(w) + 1.0),
      bits=8,
      signed=False,
      kind="scale",
      scale="pow2",
      scale_bits=8,
    )
    s = (s * s / 4.0).reshape(())  # pow2·pow2/pow2 stays pow2: computed offline
    return x * s

  r = analyze(f, jnp.ones(()), jnp.ones((5,)), const_argnums=0)
  assert r.by_bits == {"shift 32": {"count": 5, "acev2": 5 * 32}}
  assert analyze(lambda x: x * 0.25, jnp.ones((5,))).acev2 == 5 * 32  # a literal power of two
  assert analyze(lambda x: x * 3.0, jnp.ones((5,))).acev2 == 5 * 32 * 2  # int literal: 2 bits


def test_pad_widens_a_binary_grid_and_notes_it():
  b = lambda x: tag(x, bits=1, signed=True, kind="act")
  pad = lambda x: jnp.pad(x, 1)
  r = analyze(lambda x: jnp.maximum(pad(b(x)), 0.0), jnp.ones((4,)))
  assert r.acev2 == 6 * 2  # int1 padded with 0 → int2
  assert any("widened to i2" in n for n in r.notes)
  r4 = analyze(
    lambda x: jnp.maximum(pad(tag(x, bits=4, signed=True, kind="act")), 0.0), jnp.ones((4,))
  )
  assert r4.acev2 == 6 * 4 and r4.notes == ()


def test_report_adds_renders_and_serialises(tiny):
  fn, v = tiny
  r = _report(fn, v)
  two = r + r
  assert (two.acev2, two.macs, two.params) == (2 * r.acev2, 2 * r.macs, 2 * r.params)
  assert sum([r, r]).acev2 == two.acev2
  assert two.layer("Tiny/conv").macs == 2 * r.layer("Tiny/conv").macs
  with pytest.raises(ValueError, match="settings"):
    r + _report(fn, v, settings=AceSettings(float_bits=16))
  with pytest.raises(AttributeError):
    r.acev2 = 0
  for by in ("layer", "category"):
    text = r.render(by=by)
    assert "ACEv2" in text
  assert all(c in r.render(by="category") for c in CATEGORIES)
  assert "Tiny/conv" in r.render()
  with pytest.raises(ValueError, match="by="):
    r.render(by="bits")
  d = json.loads(json.dumps(r.to_json()))
  assert {
    "macs",
    "ace",
    "acev2",
    "params",
    "model_bits",
    "breakdown",
    "layers",
    "unaccounted",
    "settings",
    "timing",
  } <= set(d)
  assert set(d["timing"]) == {"trace_s", "walk_s"} and list(d["breakdown"]) == list(CATEGORIES)
  assert d["settings"]["float_bits"] is None and "conventions" in d["settings"]
  assert d["settings"]["float_widths"] == "dtype"
  assert d["by_class"] == {k: dict(v) for k, v in r.by_class.items()}
  assert dict(two.by_class) == {
    k: {"count": 2 * v["count"], "acev2": 2 * v["acev2"]} for k, v in r.by_class.items()
  }


def test_by_class_tells_float_from_an_accumulator_of_the_same_width():
  w = jnp.ones((8, 3))
  q = lambda v, bits, kind: tag(v, bits=bits, signed=True, kind=kind)
  r = analyze(
    lambda w, x: (q(x, 4, "act") @ q(w, 4, "weight")) * (x @ w),
    w,
    jnp.ones((4, 8)),
    const_argnums=0,
  )
  n = 4 * 3
  assert dict(r.by_bits)["mul 32x32"]["count"] == n  # acc32 · float32: one key by width
  assert dict(r.by_class["mul acc32xfloat32"]) == {"count": n, "acev2": n * 1024}
  assert dict(r.by_class["mac int4xint4"])["count"] == dict(r.by_bits["mac 4x4"])["count"]
  assert dict(r.by_class["mac float32xfloat32"]) == dict(r.by_bits["mac 32x32"])
  for field in ("count", "acev2"):  # the same ops and cost, split two ways
    assert sum(v[field] for v in r.by_class.values()) == sum(v[field] for v in r.by_bits.values())
  assert sum(v["acev2"] for v in r.by_class.values()) == r.acev2


def test_float_bits_setting_changes_float_prices(tiny):
  fn, v = tiny
  r32, r16 = _report(fn, v), _report(fn, v, settings=AceSettings(float_bits=16))
  assert r16.ace == r32.ace  # every MAC operand is quantized
  assert r16.breakdown["scaling"] < r32.breakdown["scaling"]  # the float input's quantizer


@pytest.mark.parametrize(
  "kw,field",
  [
    ({"float_bits": 0}, "float_bits"),
    ({"acc_bits": 100}, "acc_bits"),
    ({"transcendental_mults": 0}, "transcendental_mults"),
    ({"count_padded_taps": 1}, "count_padded_taps"),
  ],
)
def test_bad_settings(kw, field):
  with pytest.raises(ValueError, match=field):
    AceSettings(**kw)


def test_bad_category_and_argnums():
  def f(x):
    with cost_category("bogus"):
      return x + 1.0

  with pytest.raises(ValueError, match="bogus"):
    analyze(f, jnp.ones((2,)))
  with pytest.raises(ValueError, match="const_argnums"):
    analyze(lambda x: x, jnp.ones((2,)), const_argnums=3)


def test_rules_are_table_rows_taking_the_eqn_view_and_returning_addable_costs():
  from pikelpn_jax import _jax_internals as jint
  from pikelpn_jax.ace.pricing import FREE, Cost, cost
  from pikelpn_jax.ace.rules import RULES
  from pikelpn_jax.ace.values import Val

  raw = jint.jaxpr_parts(jax.make_jaxpr(lambda a, b: a * b)(jnp.ones((3,)), jnp.ones((3,))))[3][0]
  s = AceSettings()
  outs, c = RULES["mul"](jint.Eqn(raw), [Val("int", 4, signed=True), Val("int", 8, signed=True)], s)
  assert outs == [Val("int", 12, signed=True, lo=-1016, hi=1024)] and c == cost(
    "mul", 4, 8, 3, cx="int", cy="int"
  )  # exact: 4 + 8 bits
  total = c + cost("add", 8, 0, 2, cx="int") + FREE
  assert isinstance(total, Cost) and len(total.ops) == 2
  assert cost("add", 8, 0, 0, cx="int") == FREE
  assert all(RULES[p] for p in ("reshape", "conv_general_dilated", "reduce_window_sum"))
