"""main.py with the test-only tiny net registered (the subprocess tests run this).

Run with the repository root on the path: `PYTHONPATH=<repo> python tests/train/tiny_main.py ...`
(tests/train/train_helpers.py sets it).
"""

import os

if os.environ.get("PIKELPN_FAST_COMPILE", "1") == "1":
  import jax

  jax.config.update("jax_disable_most_optimizations", True)
from absl import app  # noqa: E402

import main  # noqa: E402
from tests.train import tiny_model  # noqa: E402,F401  (registers tiny_test_net)

if __name__ == "__main__":
  app.run(main.main, flags_parser=main.parse_flags)
