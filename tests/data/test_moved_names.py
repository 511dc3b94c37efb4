"""Names that moved keep working and say where they went."""

import importlib
import sys

import pytest


def test_the_imagenet_like_fixture_under_its_old_name_warns_and_works():
  sys.modules.pop("pikelpn_jax.data.imagenet_like", None)
  with pytest.warns(DeprecationWarning, match="experiments.lib.imagenet_like"):
    old = importlib.import_module("pikelpn_jax.data.imagenet_like")
  from experiments.lib.imagenet_like import write_imagenet_like

  assert old.write_imagenet_like is write_imagenet_like
