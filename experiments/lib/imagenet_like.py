"""Writes a generated, ImageNet-like `imagenet2012` in the layout `tfds.data_source` reads.

No TensorFlow needed: the layout of a prepared tfds data set is
    <data_dir>/imagenet2012/<version>/dataset_info.json, features.json, label.labels.txt,
    imagenet2012-<split>.array_record-<shard>-of-<num_shards>
where every ArrayRecord record is a serialized `tf.train.Example` (tfds ships the proto) with the
JPEG bytes under `image`, the class id under `label` and `file_name`. This is what
`tfds build imagenet2012 --file_format=array_record` writes for the real data. A benchmark and
test fixture, not part of the library: used by experiments/bench_input.py, device_check.py and
the tests of the grain path, multi-host and resume. To rehearse a run without ImageNet:

    python -m experiments.lib.imagenet_like /tmp/fake_tfds --train 512 --validation 128
"""

from __future__ import annotations

import io
import os
from typing import Dict, Sequence, Tuple

import numpy as np
from PIL import Image

# The most common ImageNet sizes (landscape and portrait).
IMAGENET_SIZES = ((500, 375), (375, 500), (500, 333), (333, 500))


def _jpeg(
  rng: np.random.Generator, size: Tuple[int, int], noise: np.ndarray, quality: int
) -> bytes:
  w, h = size
  small = rng.integers(0, 256, (max(2, h // 32), max(2, w // 32), 3), np.uint8)
  base = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), np.int16)
  img = np.clip(base + noise[:h, :w], 0, 255).astype(np.uint8)  # photo-like file sizes
  buf = io.BytesIO()
  Image.fromarray(img).save(buf, "JPEG", quality=quality)
  return buf.getvalue()


def write_imagenet_like(
  data_dir: str,
  splits: Dict[str, int],
  *,
  num_classes: int = 1000,
  sizes: Sequence[Tuple[int, int]] = IMAGENET_SIZES,
  quality: int = 90,
  num_shards: int = 1,
  seed: int = 0,
  noise_std: float = 16.0,
) -> str:
  """Writes splits {'train': n, 'validation': m} of JPEGs (w×h from `sizes`, in turn) with labels
  i mod num_classes; returns the dataset directory. `num_classes` must be 1000 for tfds'
  imagenet2012 features (other values are for image_folder-style use only)."""
  import tensorflow_datasets as tfds
  from array_record.python.array_record_module import ArrayRecordWriter
  from tensorflow_datasets.proto import tf_example_pb2

  builder = tfds.builder("imagenet2012", data_dir=data_dir, file_format="array_record")
  out = builder.data_dir
  os.makedirs(out, exist_ok=True)
  rng = np.random.default_rng(seed)
  wmax, hmax = max(s[0] for s in sizes), max(s[1] for s in sizes)
  noises = [rng.normal(0, noise_std, (hmax, wmax, 3)).astype(np.int16) for _ in range(4)]
  template = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
  infos = []
  for split, n in splits.items():
    bounds = [n * k // num_shards for k in range(num_shards + 1)]
    lengths = [b - a for a, b in zip(bounds, bounds[1:])]
    file_template = tfds.core.ShardedFileTemplate(
      data_dir=out,
      template=template,
      dataset_name="imagenet2012",
      split=split,
      filetype_suffix="array_record",
    )
    for shard in range(num_shards):
      writer = ArrayRecordWriter(
        os.fspath(file_template.sharded_filepath(shard_index=shard, num_shards=num_shards)),
        "group_size:1",
      )
      for i in range(bounds[shard], bounds[shard + 1]):  # data_source index i = example i
        ex = tf_example_pb2.Example()
        f = ex.features.feature
        f["image"].bytes_list.value.append(
          _jpeg(rng, sizes[i % len(sizes)], noises[i % len(noises)], quality)
        )
        f["label"].int64_list.value.append(i % num_classes)
        f["file_name"].bytes_list.value.append(f"{split}_{i:08d}.JPEG".encode())
        writer.write(ex.SerializeToString())
      writer.close()
    infos.append(
      tfds.core.SplitInfo(
        name=split, shard_lengths=lengths, num_bytes=0, filename_template=file_template
      )
    )
  builder.info.set_splits(tfds.core.SplitDict(infos))
  builder.info.write_to_directory(out)
  return os.fspath(out)


def main(argv=None) -> None:
  import argparse

  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("data_dir", help="writes <data_dir>/imagenet2012/<version>/")
  p.add_argument("--train", type=int, default=512, help="training images")
  p.add_argument("--validation", type=int, default=128, help="validation images")
  p.add_argument("--num_shards", type=int, default=1)
  args = p.parse_args(argv)
  splits = {"train": args.train, "validation": args.validation}
  print(write_imagenet_like(args.data_dir, splits, num_shards=args.num_shards))


if __name__ == "__main__":
  main()
