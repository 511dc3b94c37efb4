"""configs/pikelpn.py's ablation variants ('<base>_<setting>') are the ablation
settings (experiments/lib/ablation_settings.py): the 1x ones are exactly the configs the ablation prices and trains (its run records in
results/runs/ are keyed by a hash of them), the fmnist ones train its seed-k runs through main.py.
"""

import os

import jax
import jax.numpy as jnp
import pytest

from experiments.lib import ablation_settings as ablations
from experiments.lib import recipe, runs
from pikelpn_jax.config_base import config_to_dict, load_config
from pikelpn_jax.models import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PIKELPN = os.path.join(ROOT, "configs", "pikelpn.py")
SETTINGS = list(ablations.SETTINGS)


def _load(variant):
  return load_config(f"{PIKELPN}:{variant}")


def _reference(name):
  """The setting as ablations.py built it from PikeLPN-1x before the variants existed: its
  switches (SETTINGS, DQ_FORMAT) laid over the 1x config, the depthwise rule's bits set."""
  qn, dq, dhq, dw_bits = ablations.SETTINGS[name]
  c = _load("1x")
  c.model.quantnorm, c.model.double_quant, c.model.dhq = qn, dq, dhq
  if name in ablations.DQ_FORMAT:
    c.model.dq_format = ablations.DQ_FORMAT[name]
  c.model.bit_rules = tuple(
    (p, dict(o, w_bits=dw_bits) if p == ablations.DW_RULE else dict(o))
    for p, o in c.model.bit_rules
  )
  return c


def test_every_setting_has_both_variants():
  assert set(SETTINGS) == {
    "all_on",
    "quantnorm_off",
    "double_quant_off",
    "dhq_off",
    "all_off",
    "dhq_on_dw4",
    "dq_fixed",
  }
  for name in SETTINGS:
    for base in ("1x", "fmnist"):
      _load(f"{base}_{name}")


@pytest.mark.parametrize("name", SETTINGS)
def test_1x_variant_is_the_ablation_setting(name):
  want = config_to_dict(_reference(name))
  assert config_to_dict(_load(f"1x_{name}")) == want
  assert config_to_dict(ablations.setting_config(name)) == want
  sized = config_to_dict(ablations.setting_config(name, 32))
  assert sized["dataset"]["image_size"] == 32 and dict(sized, dataset=want["dataset"]) == want


@pytest.mark.parametrize("name", SETTINGS)
def test_study_configs_and_run_keys_are_unchanged(name):
  """The sweeps train recipe.study_config(setting_config(name), ...): the same as built from the
  reference, at every seed and budget they use."""
  for seed, steps in ((0, None), (3, None), (1, 4000)):
    new = recipe.study_config(ablations.setting_config(name), recipe.STUDY, seed, steps=steps)
    old = recipe.study_config(_reference(name), recipe.STUDY, seed, steps=steps)
    assert config_to_dict(new) == config_to_dict(old)
    assert runs.key(new) == runs.key(old)


@pytest.mark.parametrize("name", SETTINGS)
def test_fmnist_variant_trains_the_settings_runs(name):
  """main.py --config configs/pikelpn.py:fmnist_<name> [--config.seed=k] is the ablation's seed-k
  run of the setting: the same run key (the hash of what changes training, seed, steps)."""
  c = _load(f"fmnist_{name}")
  assert runs.key(c) == runs.key(
    recipe.study_config(ablations.setting_config(name), recipe.STUDY, 0)
  )
  c.seed, c.num_train_steps = 3, 4000
  assert runs.key(c) == runs.key(
    recipe.study_config(ablations.setting_config(name), recipe.STUDY, 3, steps=4000)
  )
  m = c.model
  qn, dq, dhq, dw_bits = ablations.SETTINGS[name]
  assert (m.quantnorm, m.double_quant, m.dhq) == (qn, dq, dhq)
  assert dict(m.bit_rules)[ablations.DW_RULE]["w_bits"] == dw_bits
  assert m.dq_format == ablations.DQ_FORMAT.get(name, "pow2")


def test_all_on_is_the_base():
  assert config_to_dict(_load("1x_all_on")) == config_to_dict(_load("1x"))
  assert config_to_dict(_load("fmnist_all_on")) == config_to_dict(_load("fmnist"))


def test_committed_records_of_seed_0_are_found():
  """The records of results/runs/ stay reachable from the variants (their keys did not move)."""
  for name in SETTINGS:
    path = os.path.join(runs.DEFAULT_DIR, runs.record_name(runs.key(_load(f"fmnist_{name}"))))
    assert os.path.exists(path), (name, path)


@pytest.mark.parametrize("name", SETTINGS)
def test_fmnist_variant_builds(name):
  c = _load(f"fmnist_{name}")
  model = build_model(c)
  x = jax.ShapeDtypeStruct((2, 32, 32, 1), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x), x)
  logits = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
  assert logits.shape == (2, 10)


def test_docstring_gives_the_command_of_every_fmnist_variant():
  doc = open(PIKELPN).read().split('"""')[1]
  for name in SETTINGS:
    assert f"python main.py --config configs/pikelpn.py:fmnist_{name} --workdir" in doc, name


def test_unknown_ablation_variant_names_the_allowed_ones():
  with pytest.raises(ValueError, match=r"variant 'fmnist_nope' is not allowed.*'fmnist_dhq_off'"):
    _load("fmnist_nope")
  with pytest.raises(ValueError, match=r"setting 'nope' is not allowed; use one of \['all_on'"):
    ablations.setting_config("nope")
