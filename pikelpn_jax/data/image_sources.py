"""Sources of variable-size encoded images: ImageNet (tfds ArrayRecord) and folders of files.

A source holds the *encoded* bytes (tfds with SkipDecoding, or the raw file), so each example is
decoded once, by decode.decode_crop_resize (OpenCV), inside grain's worker processes (grain_input.py).
Every example's augmentation comes from its own numpy Generator, so the result does not depend
on which worker computed it.
"""

from __future__ import annotations

import os
from typing import Callable, List, Sequence, Tuple

import numpy as np

from pikelpn_jax.data.decode import decode_crop_resize
from pikelpn_jax.data.images import IMAGENET_MEAN, IMAGENET_STD, normalize

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")
EVAL_SPLIT_DIRS = ("validation", "val", "test")


class EncodedSource:
  """Random access over `read(i) -> (encoded bytes, label)`, transformed to size×size uint8.

  Picklable (grain sends it to its worker processes). `mean`/`std` are the normalisation the
  consumer applies (on the device, see device_input.py).
  """

  mean, std = IMAGENET_MEAN, IMAGENET_STD

  def __init__(
    self,
    n: int,
    read: Callable[[int], Tuple[bytes, int]],
    num_classes: int,
    image_size: int,
    channels: int,
  ):
    self.n, self._read, self.num_classes = n, read, num_classes
    self.image_size, self.channels = image_size, channels

  def __len__(self) -> int:
    return self.n

  def example(self, index: int, seed) -> Tuple[np.ndarray, int]:
    """(uint8 (size, size, channels), label); seed=None gives the eval transform."""
    encoded, label = self._read(int(index))
    rng = None if seed is None else np.random.default_rng(seed)
    return decode_crop_resize(encoded, self.image_size, self.channels, rng), int(label)

  def get_batch(self, indices: np.ndarray, seeds=None) -> Tuple[np.ndarray, np.ndarray]:
    """Normalised float32 batch, in this process (tests and one-off use; training uses grain)."""
    seeds = [None] * len(indices) if seeds is None else list(seeds)
    items = [self.example(i, s) for i, s in zip(indices, seeds)]
    images = np.stack([im for im, _ in items])
    labels = np.asarray([lb for _, lb in items], np.int32)
    return normalize(images, self.mean, self.std), labels


class _TfdsRead:
  """ds[i] -> (encoded image bytes, label) of a tfds data source opened with SkipDecoding."""

  def __init__(self, ds):
    self.ds = ds

  def __call__(self, i: int) -> Tuple[bytes, int]:
    ex = self.ds[i]
    return ex["image"], int(ex["label"])


class _FileRead:
  def __init__(self, files: Sequence[Tuple[str, int]]):
    self.files = files

  def __call__(self, i: int) -> Tuple[bytes, int]:
    path, label = self.files[i]
    with open(path, "rb") as f:
      return f.read(), label


def _limit(n: int, limit) -> int:
  return n if limit is None or limit < 0 else min(int(limit), n)


def tfds_source(name: str, dcfg, split: str, tfds_split: str) -> EncodedSource:
  """A prepared ArrayRecord tfds data set through tfds.data_source (TF-free random access)."""
  import tensorflow_datasets as tfds  # slow import; only when this data set is used

  try:
    ds = tfds.data_source(
      name,
      split=tfds_split,
      data_dir=dcfg.data_dir,
      download=False,
      decoders={"image": tfds.decode.SkipDecoding()},
    )
    n = len(ds)
  except Exception as e:  # tfds raises several types for "not prepared"
    raise FileNotFoundError(
      f"{name} split {tfds_split!r} is not prepared under dataset.data_dir={dcfg.data_dir!r} "
      f"({type(e).__name__}); prepare it as ArrayRecord with tfds (file_format='array_record') "
      "and pass --config.dataset.data_dir"
    ) from None
  n = _limit(n, dcfg.train_examples if split == "train" else dcfg.eval_examples)
  return EncodedSource(n, _TfdsRead(ds), dcfg.num_classes, dcfg.image_size, dcfg.channels)


def _list_images(directory: str) -> List[str]:
  return sorted(
    f
    for f in os.listdir(directory)
    if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
  )


def folder_classes(root: str) -> List[str]:
  return sorted(
    d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith(".")
  )


def image_folder_split_dir(data_dir, split: str) -> str:
  if not data_dir or not os.path.isdir(data_dir):
    raise FileNotFoundError(
      f"dataset.data_dir={data_dir!r} is not a directory; image_folder needs "
      "<data_dir>/train/<class>/<image> and <data_dir>/validation|val|test/<class>/<image>"
    )
  names = ("train",) if split == "train" else EVAL_SPLIT_DIRS
  for name in names:
    if os.path.isdir(os.path.join(data_dir, name)):
      return os.path.join(data_dir, name)
  raise FileNotFoundError(
    f"no {' or '.join(names)} folder in dataset.data_dir={data_dir!r}; "
    "image_folder needs <data_dir>/train/<class>/... and <data_dir>/val/<class>/..."
  )


def image_folder_source(dcfg, split: str) -> EncodedSource:
  """A user's directory of class folders; class ids are the sorted train folder names."""
  classes = folder_classes(image_folder_split_dir(dcfg.data_dir, "train"))
  root = image_folder_split_dir(dcfg.data_dir, split)
  if len(classes) != dcfg.num_classes:
    raise ValueError(
      f"image_folder {dcfg.data_dir!r} has {len(classes)} class folders but "
      f"dataset.num_classes={dcfg.num_classes}; set --config.dataset.num_classes={len(classes)}"
    )
  class_id = {c: i for i, c in enumerate(classes)}
  files: List[Tuple[str, int]] = []
  for c in folder_classes(root):
    if c not in class_id:
      raise ValueError(f"class folder {c!r} in {root!r} is not among the train classes {classes}")
    files += [(os.path.join(root, c, f), class_id[c]) for f in _list_images(os.path.join(root, c))]
  if not files:
    raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {root!r}")
  n = _limit(len(files), dcfg.train_examples if split == "train" else dcfg.eval_examples)
  return EncodedSource(n, _FileRead(files[:n]), dcfg.num_classes, dcfg.image_size, dcfg.channels)
