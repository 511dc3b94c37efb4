"""Where a train step's time goes: XLA:CPU op time by fusion kind, float MobileNetV1 vs PikeLPN.

    python -m experiments.profile_train_step [--width 1.0] [--batch 64] [--size 32] [--dw_impl shift_add]
    python -m experiments.profile_train_step --quick     # tiny sizes, one traced step

The real train steps bench_layers times (experiments/lib/train_step.py), traced with the profiler
(XLA:CPU per-op events need --xla_cpu_enable_xprof_traceme, set here before JAX starts). Prints, per fusion kind (the fusion
name without its number), the op time summed over both CPU threads and averaged over the traced
steps, for both models, largest PikeLPN − float difference first, and the number of thunks
(operations of the compiled step's entry computation). Use it to see which fused computations a
quantized model adds; names are XLA's and change with its version.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import tempfile

os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true"
).strip()

import jax

from experiments.lib import train_step

NOT_THUNKS = ("parameter", "get-tuple-element", "bitcast", "constant", "tuple")
NOT_OPS = re.compile(r"^\$|Thunk|Pjit|Slinky|PjRt|ParseArguments")


def op_times(run, steps: int) -> dict:
  """ms per step by fusion kind, from a perfetto trace of `steps` calls of run()."""
  with tempfile.TemporaryDirectory() as d:
    with jax.profiler.trace(d, create_perfetto_trace=True):
      for _ in range(steps):
        run()
    with gzip.open(glob.glob(f"{d}/**/*perfetto_trace.json.gz", recursive=True)[0]) as f:
      events = json.load(f)
  events = events["traceEvents"] if isinstance(events, dict) else events
  out = collections.Counter()
  for e in events:
    if e.get("ph") == "X" and not NOT_OPS.search(e["name"]):
      out[re.sub(r"\.\d+$", "", e["name"])] += e["dur"] / 1e3 / steps
  return out


def thunk_count(hlo_text: str) -> int:
  """Operations XLA:CPU runs one by one: the entry computation's instructions, less the free ones."""
  entry = hlo_text[hlo_text.index("ENTRY") :]
  ops = re.findall(r"^\s*(?:ROOT )?%\S+ = \S+ ([\w-]+)\(", entry, re.M)
  return sum(op not in NOT_THUNKS for op in ops)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--width", type=float, default=1.0)
  ap.add_argument("--batch", type=int, default=64)
  ap.add_argument("--size", type=int, default=32)
  ap.add_argument("--dw_impl", default="shift_add", choices=("grouped", "shift_add"))
  ap.add_argument("--steps", type=int, default=5)
  ap.add_argument("--rows", type=int, default=15)
  ap.add_argument("--quick", action="store_true", help="width 0.25, batch 8, 1 traced step")
  args = ap.parse_args(argv)
  if args.quick:
    args.width, args.batch, args.steps = 0.25, 8, 1
  prof, thunks = {}, {}
  for name, spec in (
    ("float", "configs/mobilenet_v1.py:float"),
    ("pikelpn", "configs/pikelpn.py:1x"),
  ):
    step, _ = train_step.compiled(
      spec, width=args.width, image_size=args.size, batch=args.batch, dw_impl=args.dw_impl
    )
    prof[name] = op_times(step.run, args.steps)
    thunks[name] = thunk_count(step.compiled_text())
  f, p = prof["float"], prof["pikelpn"]
  print(
    f"op time per step (ms, both threads summed): float {sum(f.values()):.1f}, "
    f"PikeLPN {sum(p.values()):.1f}; thunks per step: float {thunks['float']}, "
    f"PikeLPN {thunks['pikelpn']}"
  )
  print(f"{'fusion kind':<32} {'float':>8} {'PikeLPN':>8} {'diff':>8}")
  for k in sorted(set(f) | set(p), key=lambda k: -(p[k] - f[k]))[: args.rows]:
    print(f"{k:<32} {f[k]:8.2f} {p[k]:8.2f} {p[k] - f[k]:8.2f}")


if __name__ == "__main__":
  main()
