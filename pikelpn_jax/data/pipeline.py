"""The input pipeline: deterministic and sharded per host.

Batch contents are a pure function of (seed, step) (see positions.py). A resumed run therefore
sees exactly the batches an uninterrupted one would, for any number of hosts and workers; host h
takes positions [h·B/H, (h+1)·B/H) of each global batch. The decoded-image data sets
(imagenet2012, image_folder) stream through grain worker processes (grain_input.py) as uint8
batches; the in-memory ones (fashion_mnist, synthetic) are sliced in this process as float32.
"""

from __future__ import annotations

from typing import Iterator, Optional, Tuple

import numpy as np

from pikelpn_jax.config_base import DATASETS
from pikelpn_jax.data import grain_input, image_sources, sources
from pikelpn_jax.data.images import normalize
from pikelpn_jax.data.positions import epoch_permutation, train_seed


def check_dataset_name(name) -> None:
  if name not in DATASETS:
    raise ValueError(f"dataset.name={name!r} is not allowed; use one of {list(DATASETS)}")


def make_source(dcfg, split: str, seed: int):
  """split: 'train' or 'eval'."""
  check_dataset_name(dcfg.name)
  if dcfg.name == "fashion_mnist":
    return sources.fashion_mnist(dcfg, "train" if split == "train" else "test")
  if dcfg.name == "synthetic":
    return sources.synthetic(dcfg, split, seed)
  if dcfg.name == "imagenet2012":
    return image_sources.tfds_source(
      "imagenet2012", dcfg, split, "train" if split == "train" else "validation"
    )
  return image_sources.image_folder_source(dcfg, split)


class InputPipeline:
  """Train batches by step and a fixed sequence of eval batches, for one host."""

  def __init__(self, config, process_index: int = 0, process_count: int = 1):
    dcfg = config.dataset
    self.seed = int(config.seed)
    self.batch_size, self.eval_batch_size = int(config.batch_size), int(config.eval_batch_size)
    for field, b in (("batch_size", self.batch_size), ("eval_batch_size", self.eval_batch_size)):
      if b % process_count:
        raise ValueError(f"{field}={b} must be divisible by the number of hosts ({process_count})")
    self.process_index, self.process_count = process_index, process_count
    self.worker_count = grain_input.resolve_worker_count(dcfg.get("worker_count", -1))
    self.train = make_source(dcfg, "train", self.seed)
    self.eval = make_source(dcfg, "eval", self.seed)
    if len(self.train) == 0 or len(self.eval) == 0:
      raise ValueError(
        f"dataset {dcfg.name!r} has no examples (train {len(self.train)}, eval "
        f"{len(self.eval)}); check train_examples/eval_examples"
      )
    if self.train.num_classes != dcfg.num_classes:
      raise ValueError(
        f"dataset {dcfg.name!r} has {self.train.num_classes} classes but "
        f"dataset.num_classes={dcfg.num_classes}"
      )

  @property
  def streams_uint8(self) -> bool:
    """Whether train_iter/eval_iter yield uint8 images (normalise them with mean/std)."""
    return isinstance(self.train, image_sources.EncodedSource)

  @property
  def mean_std(self) -> Optional[Tuple[tuple, tuple]]:
    return (self.train.mean, self.train.std) if self.streams_uint8 else None

  # -- training ---------------------------------------------------------------------------
  def _local_positions(self, step: int, batch: int) -> np.ndarray:
    per_host = batch // self.process_count
    start = step * batch + self.process_index * per_host
    return np.arange(start, start + per_host, dtype=np.int64)

  def train_indices(self, step: int) -> np.ndarray:
    pos = self._local_positions(step, self.batch_size)
    n = len(self.train)
    epochs, offsets = pos // n, pos % n
    out = np.empty_like(pos)
    for e in np.unique(epochs):
      sel = epochs == e
      out[sel] = epoch_permutation(self.seed, int(e), n)[offsets[sel]]
    return out

  def train_batch(self, step: int) -> Tuple[np.ndarray, np.ndarray]:
    """This host's share of global batch `step`: (float32 NHWC images, int32 labels), computed
    here (tests, benchmarks); training streams them with train_iter."""
    pos = self._local_positions(step, self.batch_size)
    return self.train.get_batch(self.train_indices(step), [train_seed(self.seed, p) for p in pos])

  def train_iter(self, start: int, stop: int) -> Iterator[Tuple[int, np.ndarray, np.ndarray]]:
    """(step, images, labels) for steps start..stop-1: uint8 images from grain's workers when
    streams_uint8, else normalised float32."""
    if not self.streams_uint8:
      for step in range(start, stop):
        yield (step, *self.train_batch(step))
      return
    example = grain_input.TrainExample(
      self.train, self.seed, self.batch_size, self.process_index, self.process_count
    )
    ds = grain_input.batch_dataset(example, start, stop, example.per_host, self.worker_count)
    for step, (images, labels) in zip(range(start, stop), grain_input.iterate(ds)):
      yield step, images, labels

  def train_batches(self, start: int, stop: int) -> Iterator[Tuple[int, np.ndarray, np.ndarray]]:
    """train_iter with the images normalised to float32 on the host."""
    for step, images, labels in self.train_iter(start, stop):
      yield step, self._normalize(images), labels

  def _normalize(self, images: np.ndarray) -> np.ndarray:
    return normalize(images, *self.mean_std) if images.dtype == np.uint8 else images

  # -- evaluation -------------------------------------------------------------------------
  @property
  def num_eval_steps(self) -> int:
    return -(-len(self.eval) // self.eval_batch_size)

  def eval_iter(self) -> Iterator[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """This host's share of each eval batch, in order; padding rows have mask 0. Images as in
    train_iter (uint8 when streams_uint8)."""
    if self.streams_uint8:
      example = grain_input.EvalExample(
        self.eval, self.eval_batch_size, self.process_index, self.process_count
      )
      ds = grain_input.batch_dataset(
        example, 0, self.num_eval_steps, example.per_host, self.worker_count
      )
      yield from grain_input.iterate(ds)
      return
    n = len(self.eval)
    for k in range(self.num_eval_steps):
      pos = self._local_positions(k, self.eval_batch_size)
      mask = (pos < n).astype(np.float32)
      images, labels = self.eval.get_batch(np.where(pos < n, pos, 0))
      yield images, labels, mask

  def eval_batches(self) -> Iterator[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """eval_iter with the images normalised to float32 on the host."""
    for images, labels, mask in self.eval_iter():
      yield self._normalize(images), labels, mask
