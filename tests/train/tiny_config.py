"""Config file for the test-only tiny net: --config tests/train/tiny_config.py:tiny."""

from tests.train.tiny_model import tiny_config


def get_config(variant: str = "tiny"):
  if variant != "tiny":
    raise ValueError(
      f"tests/train/tiny_config.py: variant {variant!r} is not allowed; use ['tiny']"
    )
  return tiny_config()
