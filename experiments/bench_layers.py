"""Train-step time of quantized PikeLPN vs float MobileNetV1 at the same width, both depthwise forms.

    python -m experiments.bench_layers [--width 1.0] [--batch 64] [--size 32] [--steps 5] [--rounds 30]
    python -m experiments.bench_layers --quick --out /tmp/b.md    # tiny sizes, seconds

Writes its section of docs/benchmarks.md. The step timed is the project's real train step
(experiments/lib/train_step.py: the config's optimizer and loss, jitted as main.py runs it).
Goals: quantization should cost little training time (quantized ≤ 1.15× float), and the
shift-and-add depthwise form exists because the grouped conv is slow on CPU (≥ 3× faster than
it). Both models also run with their 1×1 convs
as XLA convolutions (config.model.pw_impl='conv', what flax's nn.Conv does) besides the default
matmul form, to show what that choice is worth. All timings of one run come from the same
process, measured side by side (interleaved rounds; medians over rounds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from experiments.lib import train_step
from experiments.lib.common import REPO, markdown_table, stamp, write_section
from pikelpn_jax.layers import resolve_pw_impl


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--width", type=float, default=1.0)
  ap.add_argument("--batch", type=int, default=64)
  ap.add_argument("--size", type=int, default=32)
  ap.add_argument("--steps", type=int, default=5, help="timed steps per round")
  ap.add_argument("--rounds", type=int, default=30)
  ap.add_argument("--out", default=os.path.join(REPO, "docs", "benchmarks.md"))
  ap.add_argument(
    "--quick",
    action="store_true",
    help="width 0.25, batch 8, 2 rounds of 1 step, shift-and-add only",
  )
  args = ap.parse_args(argv)
  if args.quick:
    args.width, args.batch, args.steps, args.rounds = 0.25, 8, 1, 2

  cases = {}
  for name, cfg_name in (
    ("float MobileNetV1", "configs/mobilenet_v1.py:float"),
    ("PikeLPN (quantized)", "configs/pikelpn.py:1x"),
  ):
    forms = (("grouped", "auto"), ("shift_add", "auto"), ("shift_add", "conv"))
    for impl, pw in forms[1:2] if args.quick else forms:
      cases[(name, impl, pw)] = train_step.compiled(
        cfg_name, width=args.width, image_size=args.size, batch=args.batch, dw_impl=impl, pw_impl=pw
      )
      print(f"compiled {name} / {impl} / 1×1 {pw}: {cases[(name, impl, pw)][1]:.1f} s", flush=True)

  times = {k: [] for k in cases}
  cpu = {k: [] for k in cases}  # process CPU time (both XLA threads): steadier than wall
  load_start = os.getloadavg()[0]  # time when other jobs share the cores
  for _ in range(args.rounds):  # interleave so drift hits every case alike
    for k, (step, _) in cases.items():
      t0, c0 = time.perf_counter(), time.process_time()
      for _ in range(args.steps):
        step.run()
      times[k].append((time.perf_counter() - t0) / args.steps)
      cpu[k].append((time.process_time() - c0) / args.steps)
  load_end = os.getloadavg()[0]
  ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
  cpu_ms = {k: 1e3 * statistics.median(v) for k, v in cpu.items()}

  pw_form = {"auto": f"auto = {resolve_pw_impl('auto')}", "conv": "conv"}
  rows = [
    [
      n,
      i,
      pw_form[p],
      f"{ms[(n, i, p)]:.1f}",
      f"{cpu_ms[(n, i, p)]:.1f}",
      f"{args.batch / ms[(n, i, p)] * 1e3:.0f}",
      f"{cases[(n, i, p)][1]:.1f}",
    ]
    for (n, i, p) in cases
  ]
  fl, pk = "float MobileNetV1", "PikeLPN (quantized)"

  def ratio(a, b, goal):
    # Paired by round: both cases of a round ran back to back, so machine drift cancels.
    r = [x / y for x, y in zip(times[a], times[b])]
    rc = [x / y for x, y in zip(cpu[a], cpu[b])]
    label = lambda c: f"{c[0].split()[0]} {c[1]}" + (", 1×1 conv" if c[2] == "conv" else "")
    return [
      f"{label(a)} / {label(b)}",
      f"{statistics.median(r):.2f}×",
      f"{min(r):.2f}–{max(r):.2f}×",
      f"{statistics.median(rc):.2f}×",
      f"{min(rc):.2f}–{max(rc):.2f}×",
      goal,
    ]

  pairs = [
    ((pk, "grouped", "auto"), (fl, "grouped", "auto"), "≤ 1.15×"),
    ((pk, "shift_add", "auto"), (fl, "shift_add", "auto"), "≤ 1.15×"),
    ((fl, "grouped", "auto"), (fl, "shift_add", "auto"), "≥ 3×"),
    ((pk, "grouped", "auto"), (pk, "shift_add", "auto"), "≥ 3×"),
    ((pk, "shift_add", "conv"), (fl, "shift_add", "conv"), "(1×1 as convs)"),
    ((fl, "shift_add", "conv"), (fl, "shift_add", "auto"), "(what the matmul form gains)"),
    ((pk, "shift_add", "conv"), (pk, "shift_add", "auto"), "(what the matmul form gains)"),
  ]
  ratios = [ratio(a, b, goal) for a, b, goal in pairs if a in cases and b in cases]
  body = "\n\n".join(
    [
      "## Layers: train-step time, quantized PikeLPN vs float MobileNetV1 (`experiments.bench_layers`)",
      stamp(),
      f"Width {args.width}, {args.size}×{args.size} input, batch {args.batch}, 10 classes, "
      f"the real train step of each config (its optimizer and loss; forward + backward + "
      f"update, as main.py runs it), {args.rounds} interleaved "
      f"rounds of {args.steps} steps; step ms is the median over rounds, a ratio the median "
      f"(and range) over rounds of the two cases' times in the same round. Wall time and the "
      f"process's CPU time (both XLA threads summed; less sensitive to other jobs on the cores). "
      f"1-minute load average {load_start:.1f} at the start of the timed rounds and "
      f"{load_end:.1f} at the end (above 2, other jobs shared the 2 cores).",
      markdown_table(
        [
          "model",
          "depthwise form",
          "1×1 conv form",
          "step ms (wall)",
          "step ms (CPU)",
          "img/s",
          "compile+1st step s",
        ],
        rows,
      ),
      markdown_table(
        [
          "ratio",
          "median (wall)",
          "range over rounds (wall)",
          "median (CPU)",
          "range over rounds (CPU)",
          "goal",
        ],
        ratios,
      ),
    ]
  )
  write_section(args.out, "bench_layers", body)
  print(body)


if __name__ == "__main__":
  main()
