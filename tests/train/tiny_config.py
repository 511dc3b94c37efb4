"""Config file for the test-only tiny net: --config tests/train/tiny_config.py:tiny."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_model import tiny_config  # noqa: E402


def get_config(variant: str = "tiny"):
  if variant != "tiny":
    raise ValueError(
      f"tests/train/tiny_config.py: variant {variant!r} is not allowed; use ['tiny']"
    )
  return tiny_config()
