"""ImageNet-style preprocessing, a generated imagenet2012 (tfds ArrayRecord, no TF), image folders,
and the grain worker processes over them."""

import contextlib
import os
import signal
import time

import numpy as np
import pytest
from PIL import Image

from experiments.lib.pil_preprocess import preprocess
from pikelpn_jax.config_base import base_config
from pikelpn_jax.data import InputPipeline
from pikelpn_jax.data.images import CROP_PADDING, center_crop_box, inception_crop_box


def test_center_crop_box_uses_crop_padding():
  left, top, right, bottom = center_crop_box(256, 320, 224)
  side = int(224 / (224 + CROP_PADDING) * 256)
  assert (right - left, bottom - top) == (side, side)
  assert top == (256 - side + 1) // 2 and left == (320 - side + 1) // 2


def test_inception_crop_boxes_fit_area_and_ratio():
  rng = np.random.default_rng(0)
  for _ in range(200):
    h, w = rng.integers(20, 300, 2)
    box = inception_crop_box(int(h), int(w), rng)
    if box is None:
      continue
    l, t, r, b = box
    assert 0 <= l < r <= w and 0 <= t < b <= h
    area = (r - l) * (b - t) / (h * w)
    assert 0.06 <= area <= 1.0 + 1e-9
    assert 0.6 <= (r - l) / (b - t) <= 1.6


def test_preprocess_shapes_flip_and_determinism():
  img = np.random.default_rng(1).integers(0, 256, (50, 70, 3), np.uint8)
  a = preprocess(img, 32, 3, np.random.default_rng(7))
  b = preprocess(img, 32, 3, np.random.default_rng(7))
  np.testing.assert_array_equal(a, b)
  assert a.shape == (32, 32, 3) and preprocess(img, 24, 1, None).shape == (24, 24, 1)
  e1, e2 = preprocess(img, 32, 3, None), preprocess(img, 32, 3, None)
  np.testing.assert_array_equal(e1, e2)


@pytest.fixture(scope="module")
def imagenet_dir(tmp_path_factory):
  """A generated imagenet2012 (ArrayRecord, real JPEG bytes) in the layout tfds.data_source reads."""
  pytest.importorskip("tensorflow_datasets")
  from experiments.lib.imagenet_like import write_imagenet_like

  root = str(tmp_path_factory.mktemp("tfds"))
  write_imagenet_like(
    root, {"train": 10, "validation": 6}, sizes=((60, 45), (45, 60)), num_shards=2
  )
  return root


def imagenet_config(data_dir):
  c = base_config("x", "imagenet2012")
  c.dataset.data_dir = data_dir
  c.dataset.image_size, c.batch_size, c.eval_batch_size = 32, 4, 4
  c.dataset.worker_count = 0
  return c


def test_generated_imagenet2012_train_and_eval(imagenet_dir):
  p = InputPipeline(imagenet_config(imagenet_dir))
  assert len(p.train) == 10 and len(p.eval) == 6
  x, y = p.train_batch(1)
  assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32
  assert y.dtype == np.int32 and ((y >= 0) & (y < 10)).all()
  np.testing.assert_array_equal(y, p.train_indices(1))  # label i of example i
  np.testing.assert_array_equal(InputPipeline(imagenet_config(imagenet_dir)).train_batch(1)[0], x)
  halves = [InputPipeline(imagenet_config(imagenet_dir), i, 2).train_batch(1)[0] for i in range(2)]
  np.testing.assert_array_equal(np.concatenate(halves), x)  # augmentation seeded per position
  batches = list(p.eval_batches())
  assert len(batches) == 2 and batches[0][0].shape == (4, 32, 32, 3)
  assert np.concatenate([m for _, _, m in batches]).tolist() == [1] * 6 + [0] * 2


def test_grain_workers_give_the_batches_of_the_seed_and_step(imagenet_dir):
  """2 worker processes, a start in the middle, 2 hosts: the batches train_batch computes here."""
  c = imagenet_config(imagenet_dir)
  c.dataset.worker_count = 2
  p = InputPipeline(c)
  got = list(p.train_iter(2, 5))  # resumes at step 2, crosses an epoch (10 ex.)
  assert [s for s, _, _ in got] == [2, 3, 4]
  for step, images, labels in got:
    assert images.dtype == np.uint8
    x, y = p.train_batch(step)
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_allclose(p._normalize(images), x, rtol=1e-6)
  c.dataset.worker_count = 0
  halves = [next(InputPipeline(c, h, 2).train_batches(3, 4))[1] for h in range(2)]  # in process
  np.testing.assert_allclose(np.concatenate(halves), p.train_batch(3)[0], rtol=1e-6)
  ev = list(p.eval_iter())
  np.testing.assert_array_equal(np.concatenate([m for _, _, m in ev]), [1] * 6 + [0] * 2)
  np.testing.assert_allclose(p._normalize(ev[0][0]), next(p.eval_batches())[0], rtol=1e-6)


def test_grain_workers_leave_sigterm_and_sigint_to_the_training_process(imagenet_dir):
  """A terminal's Ctrl-C and Slurm signal every process: the workers carry on, so the training
  process can finish its step and save (pikelpn_jax/train/preemption.py)."""
  c = imagenet_config(imagenet_dir)
  c.dataset.worker_count = 2
  p = InputPipeline(c)
  it = p.train_iter(0, 6)
  got = [next(it), next(it)]  # one batch from each worker: both have started
  workers = []
  for d in filter(str.isdigit, os.listdir("/proc")):
    with contextlib.suppress(OSError):
      with open(f"/proc/{d}/stat") as f:
        parent = int(f.read().rsplit(")", 1)[1].split()[1])
      with open(f"/proc/{d}/cmdline") as f:
        if parent == os.getpid() and "spawn_main" in f.read():
          workers.append(int(d))
  assert len(workers) == 2
  for pid in workers:
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGINT)
  time.sleep(0.5)
  got += list(it)
  assert [s for s, _, _ in got] == list(range(6))
  for step, images, labels in got:
    np.testing.assert_allclose(p._normalize(images), p.train_batch(step)[0], rtol=1e-6)
    np.testing.assert_array_equal(p.train_batch(step)[1], labels)


def test_imagenet_not_prepared_is_one_line(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  c = imagenet_config(str(tmp_path))
  with pytest.raises(FileNotFoundError) as e:
    InputPipeline(c)
  assert "imagenet2012" in str(e.value) and "\n" not in str(e.value)


def test_bad_worker_count_is_one_line(imagenet_dir):
  c = imagenet_config(imagenet_dir)
  c.dataset.worker_count = -3
  with pytest.raises(ValueError, match=r"dataset.worker_count=-3 is not allowed"):
    InputPipeline(c)


def make_folder(root, classes=("cat", "dog"), n=3):
  rng = np.random.default_rng(0)
  for split in ("train", "val"):
    for c in classes:
      d = root / split / c
      d.mkdir(parents=True)
      for i in range(n):
        h, w = rng.integers(20, 60, 2)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(d / f"{i}.png")


def folder_config(root, num_classes=2):
  c = base_config("x", "image_folder")
  c.dataset.data_dir = str(root)
  c.dataset.image_size, c.dataset.num_classes = 24, num_classes
  c.batch_size, c.eval_batch_size = 4, 4
  return c


def test_image_folder_classes_and_batches(tmp_path):
  make_folder(tmp_path)
  p = InputPipeline(folder_config(tmp_path))
  assert len(p.train) == 6 and len(p.eval) == 6
  x, y = p.train_batch(0)
  assert x.shape == (4, 24, 24, 3) and set(y.tolist()) <= {0, 1}
  labels = np.concatenate([lb for _, lb, _ in p.eval_batches()])[:6]
  assert labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_image_folder_errors(tmp_path):
  make_folder(tmp_path)
  with pytest.raises(ValueError, match="has 2 class folders but dataset.num_classes=5"):
    InputPipeline(folder_config(tmp_path, 5))
  with pytest.raises(FileNotFoundError, match="is not a directory"):
    InputPipeline(folder_config(tmp_path / "missing"))
