"""Test-wide settings: fast compiles on CPU (the suite must stay under ~15 min on 2 cores)."""
import os

os.environ.setdefault("XLA_FLAGS", "")
import jax  # noqa: E402

jax.config.update("jax_disable_most_optimizations", True)
jax.config.update("jax_platforms", "cpu") if os.environ.get("PIKELPN_TEST_CPU", "1") == "1" else None
