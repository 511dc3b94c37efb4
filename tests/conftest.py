"""Test-wide settings: tcmalloc and fast compiles on CPU (the suite must stay under ~15 min on 2 cores)."""

import os

import pytest

from pikelpn_jax.allocator import use_tcmalloc


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
  # Here, not at import: pytest captures stdout/stderr while conftests are imported, and a
  # re-executed pytest would inherit the capture file instead of the terminal.
  use_tcmalloc()  # re-executes `python -m pytest ...` once under tcmalloc if installed
  os.environ.setdefault("XLA_FLAGS", "")
  import jax

  jax.config.update("jax_disable_most_optimizations", True)
  if os.environ.get("PIKELPN_TEST_CPU", "1") == "1":
    jax.config.update("jax_platforms", "cpu")
