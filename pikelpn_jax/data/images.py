"""Per-image preprocessing helpers in numpy (no TensorFlow): Inception crop, center crop, normalise.

Follows the PokeBNN / flax ImageNet recipe (paper-notes §9.2): training takes a random crop of
8–100 % of the area with aspect ratio in [3/4, 4/3] (10 tries, else the eval crop), resizes it
bicubically and flips it half the time; evaluation resizes a center crop of
size/(size+CROP_PADDING) of the shorter side.

The crop boxes here are what decode.decode_crop_resize (OpenCV, on the encoded bytes; what the
input pipeline runs) cuts. The PIL implementation of the same recipe, which it replaced, is kept
outside the library as a reference and benchmark baseline: experiments/lib/pil_preprocess.py.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

CROP_PADDING = 32
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def center_crop_box(h: int, w: int, size: int) -> Tuple[int, int, int, int]:
  """(left, top, right, bottom) of the eval crop: size/(size+CROP_PADDING) of the shorter side."""
  crop = max(1, int(size / (size + CROP_PADDING) * min(h, w)))
  top, left = (h - crop + 1) // 2, (w - crop + 1) // 2
  return left, top, left + crop, top + crop


def inception_crop_box(
  h: int,
  w: int,
  rng: np.random.Generator,
  area_range=(0.08, 1.0),
  ratio_range=(3 / 4, 4 / 3),
  attempts: int = 10,
) -> Optional[Tuple[int, int, int, int]]:
  """A random crop box, or None when 10 tries found none that fits (caller falls back)."""
  area = h * w
  log_lo, log_hi = math.log(ratio_range[0]), math.log(ratio_range[1])
  for _ in range(attempts):
    target = area * rng.uniform(*area_range)
    ratio = math.exp(rng.uniform(log_lo, log_hi))
    cw = int(round(math.sqrt(target * ratio)))
    ch = int(round(math.sqrt(target / ratio)))
    if 0 < cw <= w and 0 < ch <= h:
      top = int(rng.integers(0, h - ch + 1))
      left = int(rng.integers(0, w - cw + 1))
      return left, top, left + cw, top + ch
  return None


def normalize(images_u8: np.ndarray, mean, std) -> np.ndarray:
  """(x - mean) / std in float32, per channel; RGB statistics on grey images use their average."""
  c = images_u8.shape[-1]
  m, s = np.atleast_1d(np.asarray(mean, np.float32)), np.atleast_1d(np.asarray(std, np.float32))
  if m.size != c:
    m, s = m.mean(keepdims=True), s.mean(keepdims=True)
  return (images_u8.astype(np.float32) - m) / s
