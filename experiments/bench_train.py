"""Training/eval throughput: float MobileNetV1 vs PikeLPN at equal width, both depthwise forms.

    python -m experiments.bench_train                       # this machine, writes docs/benchmarks.md
    python -m experiments.bench_train --device_note "1×H100" --batch 256 --image_size 224
    python -m experiments.bench_train --quick --out /tmp/b.md     # tiny sizes, seconds

Writes its own section of docs/benchmarks.md, between `<!-- bench_train -->` and
`<!-- /bench_train -->` (other scripts own other sections). Synthetic data, the real train step
(pikelpn_jax.train.steps), timed after compilation.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys

import jax

from experiments.lib import train_step
from experiments.lib.common import REPO, command, write_section
from experiments.lib.train_step import MODELS
from pikelpn_jax.allocator import allocator_in_use

SECTION = "bench_train"  # docs/benchmarks.md holds <!-- bench_train --> … <!-- /bench_train -->


def device_description(note: str) -> str:
  d = jax.devices()[0]
  if note:
    return note
  if d.platform == "cpu":
    model = platform.processor() or "CPU"
    try:
      with open("/proc/cpuinfo") as f:
        model = re.search(r"model name\s*:\s*(.*)", f.read()).group(1)
    except (OSError, AttributeError):
      pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
      f"{model}, {os.cpu_count()} cores (XLA:CPU), jax {jax.__version__}, "
      f"{allocator_in_use()}; 1-minute load "
      f"average {load:.1f} at the end (other jobs share the machine when it exceeds the core count)"
    )
  return f"{jax.device_count()}× {d.device_kind} ({d.platform}), jax {jax.__version__}"


def bench_one(spec: str, dw_impl: str, args) -> dict:
  """The real train step's throughput (experiments/lib/train_step.py)."""
  return train_step.throughput(spec, dw_impl, args)


def render(rows, args, device: str) -> str:
  title = "Training throughput (experiments/bench_train.py)"
  if args.section != SECTION:
    title += f", {args.section}"
  lines = [
    f"## {title}",
    "",
    f"Device: {device}. Synthetic data, width {args.width}, {args.image_size}×{args.image_size}×3, "
    f"{args.num_classes} classes, global batch {args.batch}; mean over {args.steps} steps after "
    f"{args.warmup} warm-up step(s); compile = first step (includes compilation).",
    f"Command: `{command()}`",
    "",
    "| model | depthwise | params | compile s | train img/s | eval img/s |",
    "|---|---|---|---|---|---|",
  ]
  for name, dw, r in rows:
    lines.append(
      f"| {name} | {dw} | {r['params']:,} | {r['compile_s']:.1f} | {r['train']:.1f} | "
      f"{r['eval']:.1f} |"
    )
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument("--width", type=float, default=0.5)
  p.add_argument("--image_size", type=int, default=32)
  p.add_argument("--num_classes", type=int, default=10)
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--steps", type=int, default=5)
  p.add_argument("--warmup", type=int, default=1)
  p.add_argument("--dw_impls", default="grouped,shift_add")
  p.add_argument("--device_note", default="", help="device description (default: auto-detected)")
  p.add_argument("--out", default=os.path.join(REPO, "docs", "benchmarks.md"))
  p.add_argument("--no_write", action="store_true", help="print the table only")
  p.add_argument(
    "--section",
    default=SECTION,
    help="marker name of the section to (re)write, e.g. bench_train_gpu for a GPU run",
  )
  p.add_argument(
    "--skip_pipeline",
    action="store_true",
    help="no effect (kept for recorded commands): the input pipeline is timed by "
    "experiments/bench_input.py",
  )
  p.add_argument(
    "--quick",
    action="store_true",
    help="width 0.25, batch 8, 1 step after 0 warm-up, shift-and-add",
  )
  args = p.parse_args(argv)
  if args.quick:
    args.width, args.batch, args.steps, args.warmup, args.dw_impls = 0.25, 8, 1, 0, "shift_add"
  for field in ("batch", "steps", "image_size", "num_classes"):
    if getattr(args, field) <= 0:
      p.error(f"--{field}={getattr(args, field)} is not allowed; use a positive integer")
  if args.batch % jax.device_count():
    p.error(f"--batch={args.batch} is not divisible by the {jax.device_count()} devices")
  dw_impls = args.dw_impls.split(",")
  bad = [d for d in dw_impls if d not in ("grouped", "shift_add")]
  if bad:
    p.error(f"--dw_impls has {bad}; allowed: grouped, shift_add")
  rows = []
  for name, spec in MODELS:
    for dw in dw_impls:
      r = bench_one(spec, dw, args)
      print(
        f"{name:<36} {dw:<9} compile {r['compile_s']:6.1f}s  train {r['train']:8.1f} img/s  "
        f"eval {r['eval']:8.1f} img/s",
        flush=True,
      )
      rows.append((name, dw, r))
  section = render(rows, args, device_description(args.device_note))
  print(section)
  if not args.no_write:
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    write_section(args.out, args.section, section)
  return 0


if __name__ == "__main__":
  sys.exit(main())
