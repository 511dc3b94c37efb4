"""Train-step time of quantized PikeLPN vs float MobileNetV1 at the same width, both depthwise forms.

    python experiments/bench_layers.py [--width 1.0] [--batch 64] [--size 32] [--steps 5] [--rounds 30]

Writes its section of docs/benchmarks.md. Goals (issue "foundation"): quantized ≤ 1.15× float;
shift-and-add ≥ 3× faster than the grouped conv on CPU. Both models also run with their 1×1 convs
as XLA convolutions (config.model.pw_impl='conv', what flax's nn.Conv does) besides the default
matmul form, to show what that choice is worth. All timings of one run come from the same
process, measured side by side (interleaved rounds; medians over rounds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

if __name__ == "__main__":  # before JAX loads: re-executes once under tcmalloc if installed
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from pikelpn_jax.allocator import use_tcmalloc

  use_tcmalloc()

import jax  # noqa: E402
import optax  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments.common import REPO, markdown_table, stamp, write_section  # noqa: E402
from pikelpn_jax.config_base import load_config  # noqa: E402
from pikelpn_jax.layers import resolve_pw_impl  # noqa: E402
from pikelpn_jax.models import build_model  # noqa: E402


def make_step(config, dw_impl, batch, size):
  model = build_model(config, dw_impl=dw_impl)
  x = jax.random.normal(jax.random.PRNGKey(0), (batch, size, size, config.dataset.channels))
  y = jax.random.randint(jax.random.PRNGKey(1), (batch,), 0, config.dataset.num_classes)
  variables = jax.jit(lambda k: model.init(k, x[:1]))(jax.random.PRNGKey(2))
  params, stats = variables["params"], variables.get("batch_stats", {})
  tx = optax.sgd(0.01, momentum=0.9)
  opt = tx.init(params)

  def loss_fn(p, s, x, y):
    logits, upd = model.apply(
      {"params": p, "batch_stats": s}, x, train=True, mutable=["batch_stats"]
    )
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), upd["batch_stats"]

  # The batch is an argument, as in training: a batch closed over is a constant, and XLA folds
  # what depends only on it (the float stem's input transpose for dW) out of the timed step.
  @jax.jit
  def step(p, s, o, x, y):
    (loss, s), g = jax.value_and_grad(loss_fn, has_aux=True)(p, s, x, y)
    upd, o = tx.update(g, o, p)
    return optax.apply_updates(p, upd), s, o, loss

  state = [params, stats, opt]

  def run():
    out = step(*state, x, y)
    jax.block_until_ready(out[3])
    state[:] = out[:3]

  run.compiled_text = lambda: step.lower(*state, x, y).compile().as_text()

  t0 = time.perf_counter()
  run()  # compile + first step
  compile_s = time.perf_counter() - t0
  run()
  return run, compile_s


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--width", type=float, default=1.0)
  ap.add_argument("--batch", type=int, default=64)
  ap.add_argument("--size", type=int, default=32)
  ap.add_argument("--steps", type=int, default=5, help="timed steps per round")
  ap.add_argument("--rounds", type=int, default=30)
  ap.add_argument("--out", default=os.path.join(REPO, "docs", "benchmarks.md"))
  args = ap.parse_args(argv)

  cases = {}
  for name, cfg_name in (
    ("float MobileNetV1", "configs/mobilenet_v1.py:float"),
    ("PikeLPN (quantized)", "configs/pikelpn.py:1x"),
  ):
    cfg = load_config(cfg_name)
    cfg.model.width = args.width
    cfg.dataset.num_classes = 10
    cfg.dataset.image_size = args.size
    for impl, pw in (("grouped", "auto"), ("shift_add", "auto"), ("shift_add", "conv")):
      cfg.model.pw_impl = pw
      cases[(name, impl, pw)] = make_step(cfg, impl, args.batch, args.size)
      print(f"compiled {name} / {impl} / 1×1 {pw}: {cases[(name, impl, pw)][1]:.1f} s", flush=True)

  times = {k: [] for k in cases}
  cpu = {k: [] for k in cases}  # process CPU time (both XLA threads): steadier than wall
  load_start = os.getloadavg()[0]  # time when other jobs share the cores
  for _ in range(args.rounds):  # interleave so drift hits every case alike
    for k, (run, _) in cases.items():
      t0, c0 = time.perf_counter(), time.process_time()
      for _ in range(args.steps):
        run()
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

  ratios = [
    ratio((pk, "grouped", "auto"), (fl, "grouped", "auto"), "≤ 1.15×"),
    ratio((pk, "shift_add", "auto"), (fl, "shift_add", "auto"), "≤ 1.15×"),
    ratio((fl, "grouped", "auto"), (fl, "shift_add", "auto"), "≥ 3×"),
    ratio((pk, "grouped", "auto"), (pk, "shift_add", "auto"), "≥ 3×"),
    ratio((pk, "shift_add", "conv"), (fl, "shift_add", "conv"), "(1×1 as convs)"),
    ratio((fl, "shift_add", "conv"), (fl, "shift_add", "auto"), "(what the matmul form gains)"),
    ratio((pk, "shift_add", "conv"), (pk, "shift_add", "auto"), "(what the matmul form gains)"),
  ]
  body = "\n\n".join(
    [
      "## Layers: train-step time, quantized PikeLPN vs float MobileNetV1 (`bench_layers.py`)",
      stamp(),
      f"Width {args.width}, {args.size}×{args.size} input, batch {args.batch}, 10 classes, "
      f"SGD-momentum train step (forward + backward + update), {args.rounds} interleaved "
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
