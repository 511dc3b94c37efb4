"""What every experiment script shares: its command line and how it writes results/<name>.*"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Dict, Optional

from experiments.lib.common import REPO, stamp

DEFAULT_OUT = os.path.join(REPO, "results")


def parser(description: str) -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=description)
  p.add_argument(
    "--quick",
    action="store_true",
    help="tiny budget (seconds; for CI): few small models, a few training steps",
  )
  p.add_argument(
    "--out_dir",
    default=DEFAULT_OUT,
    help="where <name>.md/.json/.png go (default: results/ of the repo)",
  )
  return p


def fail(message: str) -> None:
  """The CLI's answer to bad input: one line on stderr, exit code 2."""
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def run_main(main: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> None:
  """Runs main(args); a ValueError about the input becomes one stderr line and exit code 2."""
  try:
    os.makedirs(args.out_dir, exist_ok=True)
  except OSError as e:
    fail(f"--out_dir={args.out_dir!r} cannot be created ({e.strerror})")
  try:
    main(args)
  except ValueError as e:
    fail(str(e))


def write(
  out_dir: str, name: str, title: str, body: str, data: Dict[str, Any], figure: Optional[str] = None
) -> Dict[str, str]:
  """results/<name>.md (title, stamp, body) and <name>.json (data + stamp); returns the paths."""
  line = stamp()
  md = os.path.join(out_dir, name + ".md")
  js = os.path.join(out_dir, name + ".json")
  parts = [f"# {title}", "", line, ""]
  if figure:
    parts += [f"![{title}]({os.path.basename(figure)})", ""]
  parts.append(body.rstrip())
  _atomic(md, "\n".join(parts) + "\n")
  payload = {"name": name, "stamp": line, **data}
  _atomic(js, json.dumps(payload, indent=1, sort_keys=False, default=_plain) + "\n")
  paths = {"md": md, "json": js}
  if figure:
    paths["png"] = figure
  print(f"wrote {', '.join(paths.values())}")
  return paths


def figure_path(out_dir: str, name: str) -> str:
  return os.path.join(out_dir, name + ".png")


def pyplot():
  """matplotlib.pyplot on the Agg backend (no display here or in CI)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def read_json(path: str) -> Optional[Dict[str, Any]]:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


class Clock:
  """Wall time of a script, printed with progress lines so background logs show where it is."""

  def __init__(self):
    self.t0 = time.perf_counter()

  def log(self, msg: str) -> None:
    print(f"[{time.perf_counter() - self.t0:7.1f}s] {msg}", flush=True)

  @property
  def seconds(self) -> float:
    return time.perf_counter() - self.t0


def _atomic(path: str, text: str) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def _plain(v):
  try:
    import numpy as np

    if isinstance(v, np.generic):
      return v.item()
    if isinstance(v, np.ndarray):
      return v.tolist()
  except ImportError:
    pass
  return str(v)


def pct(part: float, total: float) -> str:
  return f"{100.0 * part / total:.1f}" if total else "0.0"


def parse_seeds(arg: str, flag: str = "--seeds"):
  """A comma-separated seed list of a script's flag, e.g. "0,1,2"; ValueError names the flag."""
  try:
    seeds = tuple(int(s) for s in arg.split(","))
  except ValueError as e:
    raise ValueError(f"{flag}={arg!r} is not allowed; use comma-separated integers") from e
  return seeds
