"""Decode + crop + resize of one encoded image with OpenCV (libjpeg-turbo, SIMD bicubic).

The transform is the recipe of images.py (Inception crop: area 8–100 %, aspect 3/4–4/3, 10 tries,
else the center crop; bicubic resize; flip with p = 0.5; the same random draws in the same order),
computed on the encoded bytes, so each example is decoded exactly once. It replaces the PIL path on the
decoded image (kept as the reference: experiments/lib/pil_preprocess.py) because it is faster per core (experiments/bench_input.py). The
bicubic resize is OpenCV's INTER_CUBIC, i.e. the resize of the flax/TF ImageNet recipe
(tf.image.resize bicubic, no antialiasing); PIL's bicubic antialiases when it downscales, so the two
paths differ by a few grey levels (tests/data/test_decode.py states the tolerance).
"""

from __future__ import annotations

import io
from typing import Optional

import cv2
import numpy as np
from PIL import Image

from pikelpn_jax.data.images import center_crop_box, inception_crop_box

# Worker processes are the unit of parallelism; OpenCV's own thread pool would oversubscribe them.
cv2.setNumThreads(1)

# PIL (and tfds) ignore EXIF orientation; so must we, or the two paths would see other pixels.
_COLOR = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
_GREY = cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION


def decode(encoded: bytes, channels: int) -> np.ndarray:
  """uint8 (H, W, channels): BGR for channels=3 (OpenCV's order; decode_crop_resize swaps it)."""
  buf = np.frombuffer(encoded, np.uint8)
  img = cv2.imdecode(buf, _GREY if channels == 1 else _COLOR)
  if img is None:  # a format OpenCV does not read (e.g. GIF): PIL, converted to OpenCV's layout
    with Image.open(io.BytesIO(encoded)) as im:
      img = np.asarray(im.convert("L" if channels == 1 else "RGB"))
    img = img if channels == 1 else img[..., ::-1]
  return img[..., None] if img.ndim == 2 else img


def decode_crop_resize(
  encoded: bytes, size: int, channels: int, rng: Optional[np.random.Generator]
) -> np.ndarray:
  """Encoded image -> uint8 (size, size, channels) RGB; rng=None gives the eval transform."""
  img = decode(encoded, channels)
  h, w = img.shape[:2]
  box = inception_crop_box(h, w, rng) if rng is not None else None
  if box is None:
    box = center_crop_box(h, w, size)
  left, top, right, bottom = box
  out = cv2.resize(img[top:bottom, left:right], (size, size), interpolation=cv2.INTER_CUBIC)
  if out.ndim == 2:
    out = out[..., None]
  flip = rng is not None and rng.random() < 0.5
  out = out[:, ::-1] if flip else out
  return np.ascontiguousarray(out if channels == 1 else out[..., ::-1])
