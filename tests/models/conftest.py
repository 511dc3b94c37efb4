"""Shared helpers for the model tests: tiny configs and the bit-width tags of a traced forward."""

import jax
import jax.numpy as jnp
import pytest

from pikelpn_jax import _jax_internals as ji
from pikelpn_jax.config_base import load_config
from pikelpn_jax.jaxpr_interpreter import all_eqns
from pikelpn_jax.models import build_model


def trace_eqns(config, size=32, batch=1, **build_kw):
  """All equations (recursively) of the eval forward, traced only (no compile)."""
  model = build_model(config, **build_kw)
  x = jax.ShapeDtypeStruct((batch, size, size, config.dataset.channels), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x), x)
  jaxpr = jax.make_jaxpr(lambda v, x: model.apply(v, x, train=False))(variables, x)
  return all_eqns(jaxpr.jaxpr), variables


def tags(eqns):
  """{(module path below the model, kind): bits} of every qtag."""
  out = {}
  for e in eqns:
    if ji.is_tag(e):
      path = ji.name_stack(e).split("/", 1)[1]
      p = ji.tag_params(e)
      out[(path, p["kind"])] = p
  return out


@pytest.fixture
def tiny():
  """A config by 'file:variant' with a tiny width, at Fashion-MNIST shape (32×32×1, 10 classes)."""

  def make(spec, width=0.25):
    c = load_config(spec)
    c.model.width = width
    c.dataset.image_size, c.dataset.channels, c.dataset.num_classes = 32, 1, 10
    return c

  return make


@pytest.fixture
def trace():
  """trace(config, **build_kw) -> (tags dict, all eqns, abstract variables)."""

  def run(config, **build_kw):
    eqns, variables = trace_eqns(config, **build_kw)
    return tags(eqns), eqns, variables

  return run
