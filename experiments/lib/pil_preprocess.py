"""The superseded PIL implementation of the input recipe (pikelpn_jax/data/images.py): decode,
Inception or center crop, PIL bicubic resize, flip.

The input pipeline runs OpenCV on the encoded bytes instead (pikelpn_jax/data/decode.py). This one
stays as the reference tests/data/test_decode.py compares the OpenCV path against, and as the
baseline experiments/bench_input.py times it against.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PIL import Image

from pikelpn_jax.data.images import center_crop_box, inception_crop_box


def to_pil(image: np.ndarray, channels: int) -> Image.Image:
  """A PIL image with the requested channel count (grey images are replicated, RGB averaged)."""
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  img = Image.fromarray(np.asarray(image, np.uint8))
  mode = "L" if channels == 1 else "RGB"
  return img if img.mode == mode else img.convert(mode)


def preprocess(
  image: np.ndarray, size: int, channels: int, rng: Optional[np.random.Generator]
) -> np.ndarray:
  """uint8 HWC image -> uint8 (size, size, channels); rng=None gives the eval transform."""
  img = to_pil(image, channels)
  w, h = img.size
  box = inception_crop_box(h, w, rng) if rng is not None else None
  if box is None:
    box = center_crop_box(h, w, size)
  img = img.resize((size, size), Image.BICUBIC, box=box)
  if rng is not None and rng.random() < 0.5:
    img = img.transpose(Image.FLIP_LEFT_RIGHT)
  out = np.asarray(img, np.uint8)
  return out[..., None] if out.ndim == 2 else out
