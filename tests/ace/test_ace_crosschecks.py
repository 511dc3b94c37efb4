"""External cross-checks: ReActNet-A's ACE with float MACs at 16 bits (by the flag, and traced in
bfloat16 with the widths read from the dtypes) against the 7.9G that PokeBNN's paper reports for it, and PokeBNN-1.0x's per-op element counts against
the official code's op log (google/aqt aqt/jax_legacy/jax/imagenet/pokebnn_test.py,
test_size_stats; PokeBNN-1.0x ACE = 4,222,541,824 is checked in test_ace_zoo.py)."""

import collections
import os
import re

import jax
import pytest

from pikelpn_jax.ace import AceSettings, acev2_report
from pikelpn_jax.ace.api import _input_vals, abstract_variables, model_input_spec
from pikelpn_jax.ace.walker import Walker
from pikelpn_jax.config_base import REPO_ROOT, load_config
from pikelpn_jax.jaxpr_interpreter import split_stack
from pikelpn_jax.models import build_model

# size_stats() of the official PokeBNN-1.0x at 224×224 (sops: scalar ops per image).
OFFICIAL_SOPS = {
  "batch_norm_sops": 17912832,
  "bprelu_sops": 9106944,
  "reshape_add_ch_shrink_sops": 5419008,
  "reshape_add_ch_shrink_mul_sops": 1705984,
  "reshape_add_avg_pool_sops": 7902720,
  "reshape_add_block_residual_sops": 5519360,
  "reshape_add_local_residual_sops": 8805888,
  "se_global_pool_add_sops": 8906240,
  "se_global_pool_mul_sops": 20672,
  "se_relu_sops": 2584,
  "se_relu6_sops": 22656,
  "se_mul_sops": 8805888,
  "pokebnn_global_pool_sops": 100352,
}


def test_reactnet_a_ace_at_16_bit_floats_matches_pokebnns_figure():
  c = load_config(os.path.join(REPO_ROOT, "configs", "reactnet.py:a"))
  r = acev2_report(c, float_bits=16)
  # 4.82e9 binary MACs + 1.2e7 float MACs (first conv, FC) at 16×16: PokeBNN reports 7.9G
  assert abs(r.ace / 7.9e9 - 1) < 0.01, r.ace


def test_reactnet_a_traced_in_bfloat16_gives_pokebnns_figure_from_the_dtypes():
  """No flag: the stem and FC MACs are bfloat16 in the trace, so 16 × 16 bits; binary MACs 1 × 1.
  Every float activation of the trace stays bfloat16 (the RSign/RPReLU terms and the shortcut's
  average pool keep the compute dtype)."""
  c = load_config(os.path.join(REPO_ROOT, "configs", "reactnet.py:a"))
  c.dtype = "bfloat16"
  r = acev2_report(c)
  assert abs(r.ace / 7.9e9 - 1) < 0.01, r.ace
  assert (
    r.ace
    == acev2_report(
      load_config(os.path.join(REPO_ROOT, "configs", "reactnet.py:a")), float_bits=16
    ).ace
  )


@pytest.fixture(scope="module")
def pokebnn_counts():
  """{(module path with block/unit indices as N, category, op): count} of PokeBNN-1.0x."""
  c = load_config(os.path.join(REPO_ROOT, "configs", "pokebnn.py:1.0x"))
  model = build_model(c, dw_impl="grouped")
  x = model_input_spec(c)
  v = abstract_variables(model, x)
  names = sorted(v)
  args = [v[n] for n in names] + [x]
  closed = jax.make_jaxpr(lambda *a: model.apply(dict(zip(names, a[:-1])), a[-1], train=False))(
    *args
  )
  s = AceSettings()
  tally, _ = Walker(s).run(
    closed, _input_vals(closed, args, tuple(range(len(names))), (names.index("params"),), s)
  )
  out = collections.Counter()
  for key, n in tally.costs.items():
    path, cat = split_stack(key.stack)
    forced, op, by = key.category, key.op, key.by
    path = re.sub(r"unit\d", "unitN", re.sub(r"resblock\d+", "blockN", path))
    out[(path, forced or cat, op, by)] += n
  return out


def _count(counts, path_re, op, category=None, by=None):
  return sum(
    n
    for (p, cat, o, b), n in counts.items()
    if re.fullmatch(path_re, p) and o == op and category in (None, cat) and by in (None, b)
  )


def test_pokebnn_element_counts_match_the_official_op_log(pokebnn_counts):
  c, sops = pokebnn_counts, OFFICIAL_SOPS
  # batch norms (both per unit, and PokeInit's two): one multiply per element
  assert (
    _count(c, r"PokeBNN/(init_conv\w*/norm|blockN/unitN/bn(_split)?)", "mul")
    == sops["batch_norm_sops"]
  )
  # DPReLU: one compare and one multiply per element
  dprelu = r"PokeBNN/(init_conv\w*/act|blockN/unitN/dprelu)"
  assert _count(c, dprelu, "mul") == _count(c, dprelu, "cmp") == sops["bprelu_sops"]
  # SE: broadcast multiply + the hard sigmoid's /6; ReLU's compare and the hard sigmoid's two
  # (min(max(s+3, 0), 6): the official log counts that element once, we price both compares)
  se = r"PokeBNN/blockN/unitN/se"
  assert _count(c, se, "mul", "activation") == sops["se_mul_sops"] + sops["se_relu6_sops"]
  assert _count(c, se, "cmp", "activation") == sops["se_relu_sops"] + 2 * sops["se_relu6_sops"]
  assert _count(c, se, "add", "activation") == sops["se_relu6_sops"]  # s + 3
  # SE's global pool: official counts every element, we count n-1 adds per output channel
  assert (
    _count(c, se, "add", "residual_pool")
    == sops["se_global_pool_add_sops"] - sops["se_global_pool_mul_sops"]
  )
  assert _count(c, se, "mul", "residual_pool") == sops["se_global_pool_mul_sops"]
  # residual adds: local (zeropad) + block (tile) shortcuts
  unit = r"PokeBNN/blockN/unitN"
  assert (
    _count(c, unit, "add", "residual_pool", by=32)
    == sops["reshape_add_local_residual_sops"] + sops["reshape_add_block_residual_sops"]
  )
  # channel shrink (mean of 2 or 4: a shift) and the 3×3 average pool (÷9: a multiply); adds
  # are n-1 per output where the official log counts n
  shrink_outputs, pool_outputs = (
    sops["reshape_add_ch_shrink_mul_sops"],
    sops["reshape_add_avg_pool_sops"] // 9,
  )
  assert _count(c, unit, "shift", "residual_pool") == shrink_outputs
  assert _count(c, unit, "mul", "residual_pool") == pool_outputs
  assert (
    _count(c, unit, "add", "residual_pool", by=0)
    == (sops["reshape_add_ch_shrink_sops"] - shrink_outputs) + 8 * pool_outputs
  )
  # the final global mean
  assert (
    _count(c, r"PokeBNN/head", "add", "residual_pool")
    + _count(c, r"PokeBNN/head", "mul", "residual_pool")
    == sops["pokebnn_global_pool_sops"]
  )
