"""Moved: the generated ImageNet-like data set is a test and benchmark fixture, now
experiments.lib.imagenet_like (`python -m experiments.lib.imagenet_like DIR --train N
--validation M`). This name keeps working for scripts written against it, with a warning."""

import warnings

from experiments.lib.imagenet_like import *  # noqa: F403
from experiments.lib.imagenet_like import write_imagenet_like  # noqa: F401

warnings.warn(
  "pikelpn_jax.data.imagenet_like moved to experiments.lib.imagenet_like "
  "(python -m experiments.lib.imagenet_like DIR --train N --validation M)",
  DeprecationWarning,
  stacklevel=2,
)
