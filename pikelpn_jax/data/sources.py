"""In-memory sources: Fashion-MNIST (Debian idx files) and synthetic data.

A source is random access: `get_batch(indices, seeds)` returns (float32 NHWC images, int32
labels); `seeds` (one per example, or None for evaluation) drive any augmentation, so a batch
depends only on which examples it holds and their seeds, never on call order.
"""

from __future__ import annotations

import gzip
import os
import struct
from typing import Optional, Tuple

import numpy as np
from PIL import Image

from pikelpn_jax.data.images import IMAGENET_MEAN, IMAGENET_STD, normalize

FMNIST_INSTALL = "sudo apt-get install -y dataset-fashion-mnist"
FMNIST_FILES = {
  "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
  "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
AUGMENTS = ("none", "flip", "shift", "flip_shift")
# Statistics of the Fashion-MNIST training images (pixel units).
FMNIST_MEAN, FMNIST_STD = 0.2860 * 255, 0.3530 * 255


def read_idx(path: str) -> np.ndarray:
  """Reads an idx file (optionally .gz): the big-endian format of (Fashion-)MNIST."""
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    data = f.read()
  zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
  if zero != 0 or dtype_code != 0x08:
    raise ValueError(f"{path} is not a uint8 idx file (header {data[:4]!r})")
  shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
  arr = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
  if arr.size != int(np.prod(shape)):
    raise ValueError(f"{path} is truncated: header says {shape}, found {arr.size} bytes")
  return arr.reshape(shape)


def _find_idx(directory: str, stem: str) -> Optional[str]:
  for name in (stem + ".gz", stem):
    path = os.path.join(directory, name)
    if os.path.exists(path):
      return path
  return None


def check_fmnist_files(directory: str) -> None:
  """One-line error with the install command when any of the four idx files is missing."""
  missing = [
    stem for pair in FMNIST_FILES.values() for stem in pair if _find_idx(directory, stem) is None
  ]
  if missing:
    raise FileNotFoundError(
      f"Fashion-MNIST files {missing} not found in dataset.fmnist_dir={directory!r}; install them "
      f"with `{FMNIST_INSTALL}` or point --config.dataset.fmnist_dir at the idx(.gz) files"
    )


def _fit_size(images: np.ndarray, size: int, mode: str) -> np.ndarray:
  """28×28 -> size×size by zero padding (centred) or bilinear resizing."""
  h = images.shape[1]
  if h == size:
    return images
  if mode == "pad":
    if size < h:
      raise ValueError(
        f"dataset.image_size={size} is smaller than the {h}×{h} images; "
        "use resize='resize' or image_size >= 28"
      )
    lo = (size - h) // 2
    return np.pad(images, ((0, 0), (lo, size - h - lo), (lo, size - h - lo)))
  if mode == "resize":
    return np.stack(
      [np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images]
    )
  raise ValueError(f"dataset.resize={mode!r} is not allowed; use 'pad' or 'resize'")


def check_augment(augment, max_shift) -> None:
  if augment not in AUGMENTS:
    raise ValueError(f"dataset.augment={augment!r} is not allowed; use one of {list(AUGMENTS)}")
  if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
    raise ValueError(f"dataset.max_shift={max_shift!r} is not allowed; use an int >= 0")


def augment_images(x: np.ndarray, seeds, augment: str, max_shift: int) -> np.ndarray:
  """Random horizontal flip and/or translation by up to max_shift pixels (zero fill), per
  example from its own seed, so an example's augmentation never depends on its batch."""
  if augment == "none" or seeds is None:
    return x
  out = np.empty_like(x)
  m = max_shift if "shift" in augment else 0
  h, w = x.shape[1], x.shape[2]
  padded = np.pad(x, ((0, 0), (m, m), (m, m), (0, 0))) if m else x
  for k, seed in enumerate(seeds):
    rng = np.random.default_rng(seed)
    dy, dx = rng.integers(-m, m + 1, 2) if m else (0, 0)
    im = padded[k, m + dy : m + dy + h, m + dx : m + dx + w]
    if "flip" in augment and rng.random() < 0.5:
      im = im[:, ::-1]
    out[k] = im
  return out


class ArraySource:
  """uint8 images (N, H, W) or (N, H, W, C) in memory, normalised and channel-expanded per batch.

  augment / max_shift: training augmentation (see augment_images); evaluation passes no seeds.
  """

  def __init__(
    self,
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    channels: int,
    mean,
    std,
    augment: str = "none",
    max_shift: int = 0,
  ):
    check_augment(augment, max_shift)
    self.images, self.labels = images, labels.astype(np.int32)
    self.num_classes, self.channels, self.mean, self.std = num_classes, channels, mean, std
    self.augment, self.max_shift = augment, max_shift

  def __len__(self) -> int:
    return len(self.labels)

  def uint8_batch(self, indices: np.ndarray, seeds=None) -> np.ndarray:
    """The images as stored (uint8 NHWC, after the pad or resize), before normalisation."""
    x = self.images[indices]
    if x.ndim == 3:
      x = x[..., None]
    x = augment_images(x, seeds, self.augment, self.max_shift)
    if x.shape[-1] != self.channels:
      x = np.repeat(x, self.channels, axis=-1) if x.shape[-1] == 1 else x[..., : self.channels]
    return x

  def get_batch(self, indices: np.ndarray, seeds=None) -> Tuple[np.ndarray, np.ndarray]:
    return normalize(self.uint8_batch(indices, seeds), self.mean, self.std), self.labels[indices]


def _prefix(n_total: int, limit: int) -> int:
  return n_total if limit is None or limit < 0 else min(int(limit), n_total)


def fashion_mnist(dcfg, split: str) -> ArraySource:
  """split: 'train' (a prefix of train_examples) or 'test' (eval_examples)."""
  check_fmnist_files(dcfg.fmnist_dir)
  img_stem, lbl_stem = FMNIST_FILES[split]
  images = read_idx(_find_idx(dcfg.fmnist_dir, img_stem))
  labels = read_idx(_find_idx(dcfg.fmnist_dir, lbl_stem))
  n = _prefix(len(labels), dcfg.train_examples if split == "train" else dcfg.eval_examples)
  images = _fit_size(images[:n], dcfg.image_size, dcfg.get("resize", "pad"))
  augment, max_shift = (
    ("none", 0) if split != "train" else (dcfg.get("augment", "none"), dcfg.get("max_shift", 0))
  )
  return ArraySource(
    images, labels[:n], 10, dcfg.channels, FMNIST_MEAN, FMNIST_STD, augment, max_shift
  )


class SyntheticSource:
  """A virtual data set of `n` examples drawn from a fixed pool of random images and labels.

  Example i is pool[i % P]: labels are learnable (memorisation), generation costs nothing per
  batch, so benchmarks measure the model, not the input pipeline.
  """

  def __init__(self, n: int, image_size: int, channels: int, num_classes: int, seed: int):
    pool = max(1, min(n, 1024, (1 << 24) // (image_size * image_size * channels)))
    rng = np.random.default_rng([seed, 0x5157])
    self.images = rng.integers(0, 256, (pool, image_size, image_size, channels), np.uint8)
    self.labels = rng.integers(0, num_classes, (pool,)).astype(np.int32)
    self.n, self.num_classes, self.channels = n, num_classes, channels

  def __len__(self) -> int:
    return self.n

  def get_batch(self, indices: np.ndarray, seeds=None) -> Tuple[np.ndarray, np.ndarray]:
    j = np.asarray(indices) % len(self.labels)
    return normalize(self.images[j], IMAGENET_MEAN, IMAGENET_STD), self.labels[j]


def synthetic(dcfg, split: str, seed: int) -> SyntheticSource:
  default = 50_000 if split == "train" else 512
  limit = dcfg.train_examples if split == "train" else dcfg.eval_examples
  n = default if limit is None or limit < 0 else int(limit)
  return SyntheticSource(n, dcfg.image_size, dcfg.channels, dcfg.num_classes, seed)
