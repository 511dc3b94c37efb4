"""ImageNet-style preprocessing, mocked imagenet2012 (tfds, no TF) and image folders."""
import numpy as np
import pytest
from PIL import Image

from pikelpn_jax.config_base import base_config
from pikelpn_jax.data import InputPipeline
from pikelpn_jax.data.images import (CROP_PADDING, center_crop_box, inception_crop_box,
                                     preprocess)


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


def imagenet_config():
  c = base_config("x", "imagenet2012")
  c.dataset.image_size, c.batch_size, c.eval_batch_size = 32, 4, 4
  c.dataset.num_workers = 2
  return c


def test_mocked_imagenet2012_train_and_eval():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=10):
    p = InputPipeline(imagenet_config())
    x, y = p.train_batch(1)
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32
    assert y.dtype == np.int32 and ((0 <= y) & (y < 1000)).all()
    np.testing.assert_array_equal(InputPipeline(imagenet_config()).train_batch(1)[0], x)
    halves = [InputPipeline(imagenet_config(), i, 2).train_batch(1)[0] for i in range(2)]
    np.testing.assert_array_equal(np.concatenate(halves), x)   # augmentation seeded per position
    (ex, ey, m), *_ = list(p.eval_batches())
    assert ex.shape == (4, 32, 32, 3) and m.sum() == 4


def test_imagenet_not_prepared_is_one_line(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  c = imagenet_config()
  c.dataset.data_dir = str(tmp_path)
  with pytest.raises(FileNotFoundError) as e:
    InputPipeline(c)
  assert "imagenet2012" in str(e.value) and "\n" not in str(e.value)


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
