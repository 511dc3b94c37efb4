"""Fixtures of the training tests: the tiny registered net and a trained tiny workdir."""

import pytest

from tests.train import tiny_model  # registers tiny_test_net


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory):
  """A finished 4-step tiny run (in process): (workdir, results)."""
  from pikelpn_jax.train import train_and_evaluate

  workdir = str(tmp_path_factory.mktemp("tiny_run"))
  c = tiny_model.tiny_config(steps=4)
  return workdir, train_and_evaluate(c, workdir, config_source="tiny")
