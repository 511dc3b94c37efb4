"""Sources of variable-size images decoded per example: ImageNet (tfds ArrayRecord) and folders.

Decoding and resizing run in a thread pool (PIL releases the GIL); every example gets its own
numpy Generator from its seed, so the result does not depend on thread scheduling.
"""
from __future__ import annotations

import concurrent.futures
import os
from typing import Callable, List, Sequence, Tuple

import numpy as np
from PIL import Image

from pikelpn_jax.data.images import IMAGENET_MEAN, IMAGENET_STD, normalize, preprocess

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")
EVAL_SPLIT_DIRS = ("validation", "val", "test")


def default_workers() -> int:
  return max(1, min(8, os.cpu_count() or 1))


class DecodedSource:
  """Random access over `load(i) -> (uint8 image, label)`, preprocessed to size×size."""

  def __init__(self, n: int, load: Callable[[int], Tuple[np.ndarray, int]], num_classes: int,
               image_size: int, channels: int, workers: int):
    self.n, self._load, self.num_classes = n, load, num_classes
    self.image_size, self.channels = image_size, channels
    self._pool = concurrent.futures.ThreadPoolExecutor(max(1, workers)) if workers > 1 else None

  def __len__(self) -> int:
    return self.n

  def _one(self, index: int, seed) -> Tuple[np.ndarray, int]:
    image, label = self._load(int(index))
    rng = None if seed is None else np.random.default_rng(seed)
    return preprocess(image, self.image_size, self.channels, rng), int(label)

  def get_batch(self, indices: np.ndarray, seeds=None) -> Tuple[np.ndarray, np.ndarray]:
    seeds = [None] * len(indices) if seeds is None else list(seeds)
    if self._pool is None:
      items = [self._one(i, s) for i, s in zip(indices, seeds)]
    else:
      items = list(self._pool.map(self._one, indices, seeds))
    images = np.stack([im for im, _ in items])
    labels = np.asarray([lb for _, lb in items], np.int32)
    return normalize(images, IMAGENET_MEAN, IMAGENET_STD), labels


def _limit(n: int, limit) -> int:
  return n if limit is None or limit < 0 else min(int(limit), n)


def tfds_source(name: str, dcfg, split: str, tfds_split: str) -> DecodedSource:
  """A prepared ArrayRecord tfds data set through tfds.data_source (TF-free random access)."""
  import tensorflow_datasets as tfds  # slow import; only when this data set is used
  try:
    ds = tfds.data_source(name, split=tfds_split, data_dir=dcfg.data_dir, download=False)
    n = len(ds)
  except Exception as e:  # tfds raises several types for "not prepared"
    raise FileNotFoundError(
        f"{name} split {tfds_split!r} is not prepared under dataset.data_dir={dcfg.data_dir!r} "
        f"({type(e).__name__}); prepare it as ArrayRecord with tfds (file_format='array_record') "
        "and pass --config.dataset.data_dir") from None
  n = _limit(n, dcfg.train_examples if split == "train" else dcfg.eval_examples)

  def load(i):
    ex = ds[i]
    return np.asarray(ex["image"]), int(ex["label"])

  return DecodedSource(n, load, dcfg.num_classes, dcfg.image_size, dcfg.channels,
                       dcfg.get("num_workers", 0) or default_workers())


def _list_images(directory: str) -> List[str]:
  return sorted(f for f in os.listdir(directory)
                if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))


def folder_classes(root: str) -> List[str]:
  return sorted(d for d in os.listdir(root)
                if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))


def image_folder_split_dir(data_dir, split: str) -> str:
  if not data_dir or not os.path.isdir(data_dir):
    raise FileNotFoundError(f"dataset.data_dir={data_dir!r} is not a directory; image_folder needs "
                            "<data_dir>/train/<class>/<image> and <data_dir>/validation|val|test/<class>/<image>")
  names = ("train",) if split == "train" else EVAL_SPLIT_DIRS
  for name in names:
    if os.path.isdir(os.path.join(data_dir, name)):
      return os.path.join(data_dir, name)
  raise FileNotFoundError(f"no {' or '.join(names)} folder in dataset.data_dir={data_dir!r}; "
                          "image_folder needs <data_dir>/train/<class>/... and <data_dir>/val/<class>/...")


def image_folder_source(dcfg, split: str) -> DecodedSource:
  """A user's directory of class folders; class ids are the sorted train folder names."""
  classes = folder_classes(image_folder_split_dir(dcfg.data_dir, "train"))
  root = image_folder_split_dir(dcfg.data_dir, split)
  if len(classes) != dcfg.num_classes:
    raise ValueError(f"image_folder {dcfg.data_dir!r} has {len(classes)} class folders but "
                     f"dataset.num_classes={dcfg.num_classes}; set --config.dataset.num_classes={len(classes)}")
  class_id = {c: i for i, c in enumerate(classes)}
  files: List[Tuple[str, int]] = []
  for c in folder_classes(root):
    if c not in class_id:
      raise ValueError(f"class folder {c!r} in {root!r} is not among the train classes {classes}")
    files += [(os.path.join(root, c, f), class_id[c]) for f in _list_images(os.path.join(root, c))]
  if not files:
    raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {root!r}")
  n = _limit(len(files), dcfg.train_examples if split == "train" else dcfg.eval_examples)

  def load(i):
    path, label = files[i]
    with Image.open(path) as im:
      return np.asarray(im.convert("RGB")), label

  return DecodedSource(n, load, dcfg.num_classes, dcfg.image_size, dcfg.channels,
                       dcfg.get("num_workers", 0) or default_workers())
