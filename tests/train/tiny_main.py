"""main.py with the test-only tiny net registered (the subprocess tests run this)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(os.path.dirname(HERE))]
if os.environ.get("PIKELPN_FAST_COMPILE", "1") == "1":
  import jax

  jax.config.update("jax_disable_most_optimizations", True)
import tiny_model  # noqa: E402,F401  (registers tiny_test_net)
from absl import app  # noqa: E402

import main  # noqa: E402

if __name__ == "__main__":
  app.run(main.main, flags_parser=main.parse_flags)
