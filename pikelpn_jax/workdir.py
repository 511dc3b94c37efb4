"""A run's directory on local disk or in a bucket (`gs://…`, or any URL etils.epath opens).

Training, the analyzer and the exporter read and write a workdir only through these functions,
so a workdir can be a bucket path: orbax writes the checkpoints there through tensorstore, and
the small files (config.json, metrics.jsonl, results.json, acev2.json) go through
`etils.epath` (gcsfs for `gs://`). Local paths keep plain `os` calls, made absolute so a
relative `--workdir` means the same directory to every process and to orbax.

Object stores have no append and no atomic rename of a directory: an appended line rewrites the
object (metrics.jsonl is a few hundred lines), and whole-file writes are atomic by themselves
(an object appears complete or not at all), so only local writes go through a temporary file.
"""

from __future__ import annotations

import os
import shutil

from etils import epath


def is_url(path: str) -> bool:
  return "://" in str(path)


def resolve(workdir: str) -> str:
  """The workdir as every process and orbax should see it: absolute if local, as given if a URL."""
  return str(workdir) if is_url(workdir) else os.path.abspath(workdir)


def join(root: str, *parts: str) -> str:
  return "/".join([str(root).rstrip("/"), *parts]) if is_url(root) else os.path.join(root, *parts)


def exists(path: str) -> bool:
  return epath.Path(path).exists() if is_url(path) else os.path.exists(path)


def isdir(path: str) -> bool:
  return epath.Path(path).is_dir() if is_url(path) else os.path.isdir(path)


def makedirs(path: str) -> None:
  if is_url(path):
    epath.Path(path).mkdir(parents=True, exist_ok=True)
  else:
    os.makedirs(path, exist_ok=True)


def read_text(path: str) -> str:
  if is_url(path):
    return epath.Path(path).read_text()
  with open(path) as f:
    return f.read()


def write_text(path: str, text: str) -> None:
  """Writes the whole file at once: a reader sees the old content or the new, never a part."""
  if is_url(path):
    epath.Path(path).write_text(text)
    return
  tmp = f"{path}.tmp.{os.getpid()}"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def append_text(path: str, text: str) -> None:
  if is_url(path):
    p = epath.Path(path)
    p.write_text((p.read_text() if p.exists() else "") + text)
    return
  with open(path, "a") as f:
    f.write(text)


def rename(src: str, dst: str) -> None:
  """Moves a file or a directory (in a bucket: every object under it, one by one)."""
  if not is_url(src):
    shutil.move(src, dst)
  elif epath.Path(src).is_dir():
    import fsspec

    fsspec.url_to_fs(src)[0].mv(src, dst, recursive=True)
  else:
    epath.Path(src).rename(dst)
