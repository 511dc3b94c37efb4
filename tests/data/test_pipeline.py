"""Input pipelines: idx files, Fashion-MNIST, determinism, host sharding, eval padding."""

import gzip
import os
import struct
import time

import numpy as np
import pytest

from pikelpn_jax.config_base import DATASETS, base_config
from pikelpn_jax.data import FMNIST_INSTALL, InputPipeline, read_idx


def write_idx(path, arr):
  arr = np.asarray(arr, np.uint8)
  header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "wb") as f:
    f.write(header + arr.tobytes())


@pytest.fixture
def fmnist_dir(tmp_path):
  rng = np.random.default_rng(0)
  for split, n in (("train", 20), ("t10k", 7)):
    write_idx(str(tmp_path / f"{split}-images-idx3-ubyte.gz"), rng.integers(0, 256, (n, 28, 28)))
    write_idx(str(tmp_path / f"{split}-labels-idx1-ubyte.gz"), np.arange(n) % 10)
  return str(tmp_path)


def fmnist_config(directory, **kw):
  c = base_config("x", "fashion_mnist")
  c.dataset.fmnist_dir = directory
  c.batch_size, c.eval_batch_size, c.seed = 6, 4, 3
  for k, v in kw.items():
    setattr(c.dataset, k, v)
  return c


def test_read_idx_roundtrip_plain_and_gz(tmp_path):
  a = np.arange(2 * 3 * 5).reshape(2, 3, 5) % 256
  for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
    write_idx(str(tmp_path / name), a)
    np.testing.assert_array_equal(read_idx(str(tmp_path / name)), a)


def test_read_idx_rejects_truncated(tmp_path):
  p = str(tmp_path / "t-idx1-ubyte")
  with open(p, "wb") as f:
    f.write(struct.pack(">HBB", 0, 8, 1) + struct.pack(">I", 10) + bytes(3))
  with pytest.raises(ValueError, match="truncated"):
    read_idx(p)


def test_fmnist_pad_channels_and_normalisation(fmnist_dir):
  p = InputPipeline(fmnist_config(fmnist_dir, channels=3))
  x, y = p.train_batch(0)
  assert x.shape == (6, 32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int32
  np.testing.assert_array_equal(x[..., 0], x[..., 2])  # replicated grey
  border = x[:, :2, :, 0]
  np.testing.assert_allclose(border, -0.2860 / 0.3530, rtol=1e-5)  # zero padding, normalised
  raw = read_idx(os.path.join(fmnist_dir, "train-images-idx3-ubyte.gz"))
  idx = p.train_indices(0)
  np.testing.assert_allclose(x[:, 2:30, 2:30, 0] * 0.3530 * 255 + 0.2860 * 255, raw[idx], atol=1e-3)
  np.testing.assert_array_equal(y, idx % 10)


def test_fmnist_resize_and_bad_resize(fmnist_dir):
  x, _ = InputPipeline(fmnist_config(fmnist_dir, resize="resize", image_size=40)).train_batch(0)
  assert x.shape == (6, 40, 40, 1)
  with pytest.raises(ValueError, match="dataset.resize='crop' is not allowed"):
    InputPipeline(fmnist_config(fmnist_dir, resize="crop"))


def test_fmnist_missing_files_names_install_command(tmp_path):
  with pytest.raises(FileNotFoundError) as e:
    InputPipeline(fmnist_config(str(tmp_path / "nowhere")))
  msg = str(e.value)
  assert FMNIST_INSTALL in msg and "\n" not in msg


def test_real_fmnist_files_when_installed():
  d = base_config("x", "fashion_mnist").dataset.fmnist_dir
  if not os.path.exists(os.path.join(d, "t10k-labels-idx1-ubyte.gz")):
    pytest.skip("dataset-fashion-mnist is not installed")
  labels = read_idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz"))
  assert labels.shape == (10000,) and np.bincount(labels).tolist() == [1000] * 10


def test_unknown_dataset_lists_allowed_names():
  c = base_config("x", "synthetic")
  c.dataset.name = "cifar10"
  with pytest.raises(ValueError) as e:
    InputPipeline(c)
  assert "cifar10" in str(e.value) and all(n in str(e.value) for n in DATASETS)


def test_batches_are_a_pure_function_of_seed_and_step(fmnist_dir):
  c = fmnist_config(fmnist_dir)
  a, b = InputPipeline(c), InputPipeline(c)
  for step in (5, 0, 3):  # any order, fresh objects: same batch
    np.testing.assert_array_equal(a.train_batch(step)[0], b.train_batch(step)[0])
  assert not np.array_equal(a.train_indices(0), a.train_indices(1))
  c.seed = 4
  assert not np.array_equal(InputPipeline(c).train_indices(0), a.train_indices(0))


def test_each_epoch_is_a_permutation(fmnist_dir):
  p = InputPipeline(fmnist_config(fmnist_dir))  # 20 examples, batch 6
  seen = np.concatenate([p.train_indices(s) for s in range(10)])  # 60 = 3 epochs
  for e in range(3):
    assert sorted(seen[20 * e : 20 * (e + 1)]) == list(range(20))
  assert not np.array_equal(seen[:20], seen[20:40])


def test_hosts_split_the_global_batch(fmnist_dir):
  c = fmnist_config(fmnist_dir)
  c.eval_batch_size = 6
  one = InputPipeline(c)
  hosts = [InputPipeline(c, process_index=i, process_count=3) for i in range(3)]
  for step in (0, 4):
    x, y = one.train_batch(step)
    parts = [h.train_batch(step) for h in hosts]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), x)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), y)
  with pytest.raises(ValueError, match="divisible by the number of hosts"):
    InputPipeline(c, process_index=0, process_count=4)


def test_eval_covers_every_example_once_with_mask(fmnist_dir):
  p = InputPipeline(fmnist_config(fmnist_dir))  # 7 eval examples, batch 4
  batches = list(p.eval_batches())
  assert p.num_eval_steps == 2 and len(batches) == 2
  labels = np.concatenate([y for _, y, _ in batches])
  mask = np.concatenate([m for _, _, m in batches])
  assert mask.tolist() == [1] * 7 + [0]
  np.testing.assert_array_equal(labels[:7], np.arange(7) % 10)


def test_streamed_batches_match_direct_batches(fmnist_dir):
  p = InputPipeline(fmnist_config(fmnist_dir))
  got = list(p.train_batches(2, 6))
  assert [s for s, _, _ in got] == [2, 3, 4, 5]
  for s, x, _ in got:
    np.testing.assert_array_equal(x, p.train_batch(s)[0])


def test_device_feeder_places_normalises_and_counts_waiting():
  import jax
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P

  from pikelpn_jax.data.device_input import DeviceFeeder
  from pikelpn_jax.data.images import normalize

  sharding = NamedSharding(jax.sharding.Mesh(np.asarray(jax.devices()), ("data",)), P("data"))
  rng = np.random.default_rng(0)
  host = [
    (s, rng.integers(0, 256, (4, 3, 3, 3), np.uint8), np.arange(4, dtype=np.int32))
    for s in range(5)
  ]
  mean_std = ((10.0, 20.0, 30.0), (2.0, 4.0, 8.0))
  feeder = DeviceFeeder(sharding, mean_std, depth=2)

  def slow():
    for item in host:
      time.sleep(0.05)
      yield item

  out = list(feeder.feed(slow()))
  assert [s for s, _, _ in out] == list(range(5))
  for (_, x, y), (_, hx, hy) in zip(out, host):
    assert isinstance(x, jax.Array) and x.dtype == np.float32 and x.sharding == sharding
    np.testing.assert_allclose(np.asarray(x), normalize(hx, *mean_std), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(y), hy)
  assert 0.25 <= feeder.pop_wait() < 5 and feeder.pop_wait() == 0.0


def test_synthetic_is_learnable_and_sized():
  c = base_config("x", "synthetic")
  c.dataset.image_size, c.dataset.num_classes, c.batch_size = 16, 5, 4
  c.dataset.train_examples = 10
  p = InputPipeline(c)
  assert len(p.train) == 10 and len(p.eval) == 512
  x, y = p.train_batch(0)
  assert x.shape == (4, 16, 16, 3) and y.max() < 5
  idx = p.train_indices(0)
  xe, ye = p.eval.get_batch(idx)  # eval example i is train example i (memorisation)
  np.testing.assert_array_equal(x, xe)


def test_fmnist_augmentation_flips_and_shifts_deterministically(fmnist_dir):
  from pikelpn_jax.data.sources import augment_images

  plain = InputPipeline(fmnist_config(fmnist_dir))
  aug = InputPipeline(fmnist_config(fmnist_dir, augment="flip_shift", max_shift=2))
  xa, ya = aug.train_batch(1)
  xp, yp = plain.train_batch(1)
  np.testing.assert_array_equal(ya, yp)
  assert not np.array_equal(xa, xp)
  np.testing.assert_array_equal(
    xa,
    InputPipeline(fmnist_config(fmnist_dir, augment="flip_shift", max_shift=2)).train_batch(1)[0],
  )  # same seed, same batch
  # Eval images are never augmented.
  np.testing.assert_array_equal(next(aug.eval_batches())[0], next(plain.eval_batches())[0])
  # Each augmented image is its original flipped and/or moved by at most 2 pixels (zero fill).
  img = np.arange(1, 1 + 8 * 8, dtype=np.uint8).reshape(1, 8, 8, 1)
  for seed in range(20):
    out = augment_images(img, [(seed,)], "flip_shift", 2)[0, ..., 0]
    ok = False
    for flip in (False, True):
      src = img[0, ..., 0][:, ::-1] if flip else img[0, ..., 0]
      for dy in range(-2, 3):
        for dx in range(-2, 3):
          ref = np.zeros_like(src)
          ys, xs = slice(max(0, -dy), 8 - max(0, dy)), slice(max(0, -dx), 8 - max(0, dx))
          ref[ys, xs] = src[max(0, dy) : 8 + min(0, dy), max(0, dx) : 8 + min(0, dx)]
          ok |= np.array_equal(out, ref)
    assert ok, seed
  flips = [augment_images(img, [(seed,)], "flip", 0)[0] for seed in range(20)]
  assert all(np.array_equal(f, img[0]) or np.array_equal(f, img[0][:, ::-1]) for f in flips)
  assert any(np.array_equal(f, img[0][:, ::-1]) for f in flips)


@pytest.mark.parametrize(
  "augment,max_shift,msg",
  [("mixup", 2, "dataset.augment='mixup'"), ("shift", -1, "dataset.max_shift=-1")],
)
def test_bad_augment_is_rejected(fmnist_dir, augment, max_shift, msg):
  with pytest.raises(ValueError, match=msg.replace("(", r"\(")):
    InputPipeline(fmnist_config(fmnist_dir, augment=augment, max_shift=max_shift))
