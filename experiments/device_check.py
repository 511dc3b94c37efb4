"""The accelerator check: one command, sized for ≤ 8 minutes on one GPU, measuring what needs one.

    python -m experiments.device_check                            # on the GPU; writes docs/benchmarks.md
    python -m experiments.device_check --quick --out /tmp/b.md    # CPU, tiny sizes (the CI test)

Writes a dated section `device_check_<date>_<device>` of docs/benchmarks.md with:
1. train-step throughput of PikeLPN-1x and float MobileNetV1, float32 and bfloat16, at 224×224,
   batch sized to the device (halved on out-of-memory), and the quantized/float ratio
   (experiments/lib/train_step.throughput: synthetic data, the real train step, timed after compiling);
2. the grain input pipeline on all host cores but one over a generated ImageNet-like set
   (experiments/lib/imagenet_like.py; experiments/bench_input's steady-state measurement), against
   what the bfloat16 PikeLPN-1x step consumes;
3. a 200-step bfloat16 PikeLPN-1x run of the training loop on that set (grain, DeviceFeeder,
   checkpoint, eval), with its `input_wait_fraction`;
4. peak device memory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import types

import jax
import numpy as np

from experiments.lib import train_step
from experiments.lib.common import REPO, markdown_table, stamp, write_section
from experiments.lib.imagenet_like import write_imagenet_like
from experiments.lib.input_rate import new_pipeline, steady_rate
from experiments.lib.train_step import MODELS
from pikelpn_jax.config_base import load_config
from pikelpn_jax.data.grain_input import auto_worker_count

GiB = 1024**3
FULL = dict(
  width=1.0, image_size=224, steps=20, warmup=3, train_images=2000, eval_images=256, run_steps=200
)
QUICK = dict(
  width=0.25, image_size=32, steps=2, warmup=1, train_images=32, eval_images=16, run_steps=4
)


def device_memory():
  """(peak bytes in use, bytes limit) of the first device, or (None, None) where not reported."""
  stats = jax.local_devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use"), stats.get("bytes_limit")


def auto_batch(quick: bool) -> int:
  """Global batch: 8 per device on CPU / --quick; on an accelerator by its memory (PikeLPN-1x at
  224×224 in float32 trains with batch 128 in well under 16 GiB)."""
  limit = device_memory()[1]
  if quick or jax.default_backend() == "cpu" or not limit:
    per = 8
  else:
    per = 512 if limit >= 60 * GiB else 256 if limit >= 24 * GiB else 128
  return per * jax.device_count()


def out_of_memory(e: Exception) -> bool:
  return "RESOURCE_EXHAUSTED" in str(e) or "out of memory" in str(e).lower()


def throughput(args, batch: int):
  """{(model name, dtype): throughput()'s result}, all at one batch: the largest that fits, from
  `batch` halving on out-of-memory."""
  while True:
    try:
      rows = {}
      for dtype in ("float32", "bfloat16"):
        for name, spec in MODELS:
          ns = types.SimpleNamespace(
            width=args.width,
            image_size=args.image_size,
            num_classes=1000,
            batch=batch,
            steps=args.steps,
            warmup=args.warmup,
            dtype=dtype,
            eval=False,
          )
          r = rows[(name, dtype)] = train_step.throughput(spec, args.dw_impl, ns)
          print(
            f"{name:<34} {dtype:<9} batch {batch}: compile {r['compile_s']:.1f} s, "
            f"train {r['train']:.0f} img/s",
            flush=True,
          )
      return rows, batch
    except Exception as e:  # noqa: BLE001  (XLA reports OOM as a runtime error)
      if not out_of_memory(e) or batch <= jax.device_count():
        raise
      batch //= 2
      print(f"out of memory: batch halved to {batch}; timing every model again", flush=True)


def pipeline_rate(data_dir: str, workers: int, batch: int, size: int, timed: int):
  """(img/s, consumer CPU ms/img, workers CPU ms/img) of grain's train batches."""
  pipe = new_pipeline(data_dir, workers, batch, size, -1)
  warm = 3 * workers + 3
  it = (b for _, *b in pipe.train_iter(0, warm + timed))
  return steady_rate(it, warm, timed, batch)


def training_run(data_dir: str, args, batch: int, workdir: str) -> dict:
  """The training loop, bfloat16 PikeLPN-1x on the generated set; its metrics and results."""
  from pikelpn_jax.train import checkpoint, train_and_evaluate

  checkpoint.quiet_logs()
  c = load_config("configs/pikelpn.py:1x")
  c.model.width, c.model.dw_impl, c.dtype = args.width, args.dw_impl, "bfloat16"
  c.dataset.data_dir, c.dataset.image_size, c.dataset.worker_count = data_dir, args.image_size, -1
  c.dataset.train_examples, c.dataset.eval_examples = -1, -1
  c.batch_size = c.eval_batch_size = batch
  n = args.run_steps
  c.num_train_steps = c.eval_every_steps = c.checkpoint_every_steps = n
  c.log_every_steps = max(1, n // 10)
  t = time.perf_counter()
  results = train_and_evaluate(c, workdir, config_source="configs/pikelpn.py:1x")
  wall = time.perf_counter() - t
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    waits = [r["input_wait_fraction"] for r in map(json.loads, f) if "input_wait_fraction" in r]
  return {
    "wall_s": wall,
    "images_per_sec": results["train_images_per_sec"],
    "wait_all": float(np.mean(waits)),
    "wait_after_first": float(np.mean(waits[1:])) if len(waits) > 1 else float("nan"),
    "steps": results["step"],
    "eval_top1": results["eval_top1"],
  }


def gib(x) -> str:
  return "not reported (XLA:CPU)" if x is None else f"{x / GiB:.2f} GiB"


def render(args, batch, rows, pipe, run, memory, times) -> str:
  dev = jax.devices()[0]
  quant, flt = MODELS[1][0], MODELS[0][0]
  table = []
  for dtype in ("float32", "bfloat16"):
    for name, _ in MODELS:
      r = rows[(name, dtype)]
      table.append((name, dtype, f"{r['compile_s']:.1f}", f"{r['train']:.0f}"))
  ratios = ", ".join(
    f"{d} {rows[(quant, d)]['train'] / rows[(flt, d)]['train']:.2f}×"
    for d in ("float32", "bfloat16")
  )
  consumes = rows[(quant, "bfloat16")]["train"]
  rate, main_ms, worker_ms = pipe
  peak, limit = memory
  return "\n".join(
    [
      f"## Device check {time.strftime('%Y-%m-%d', time.gmtime())}: {jax.device_count()}× "
      f"{dev.device_kind} (experiments/device_check.py{' --quick' if args.quick else ''})",
      "",
      stamp(),
      "",
      f"Wall time: {times['total']:.0f} s (throughput {times['throughput']:.0f} s, generating "
      f"the set {times['generate']:.0f} s, pipeline {times['pipeline']:.0f} s, training run "
      f"{times['run']:.0f} s).",
      "",
      f"**Train step** (experiments/lib/train_step.throughput): synthetic data, width {args.width}, "
      f"{args.image_size}×{args.image_size}×3, 1000 classes, global batch {batch}, depthwise "
      f"`{args.dw_impl}`; mean over {args.steps} steps after {args.warmup} warm-up steps; "
      "compile = the first step.",
      "",
      markdown_table(("model", "dtype", "compile s", "train img/s"), table),
      "",
      f"Quantized/float train throughput (PikeLPN-1x over MobileNetV1): {ratios}.",
      "",
      f"**Input pipeline**: grain, {args.workers} worker process(es) ({os.cpu_count()} host "
      f"cores), generated imagenet2012 ({args.train_images} train JPEGs at ImageNet's common "
      f"sizes), train batches of {batch} at {args.image_size}×{args.image_size}: **{rate:.0f} "
      f"img/s** (CPU ms per image: workers {worker_ms:.2f}, consumer {main_ms:.2f}); the "
      f"bfloat16 PikeLPN-1x step consumes {consumes:.0f} img/s, so the pipeline delivers "
      f"**{rate / consumes:.2f}×** what the model consumes.",
      "",
      f"**Training run**: `train_and_evaluate`, PikeLPN-1x, bfloat16, {run['steps']} steps on the "
      f"generated set (batch {batch}, dataset.worker_count=-1, a checkpoint and an eval at the "
      f"end): {run['wall_s']:.0f} s wall, {run['images_per_sec']} train img/s (intervals that "
      f"compiled excluded), input_wait_fraction **{run['wait_after_first']:.3f}** (mean over the "
      f"logged intervals after the first; {run['wait_all']:.3f} with it).",
      "",
      f"**Peak device memory**: {gib(peak)} of {gib(limit)} (the whole check).",
    ]
  )


def main(argv=None) -> int:
  p = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument("--quick", action="store_true", help="tiny sizes, for CPU and CI")
  p.add_argument("--batch", type=int, default=0, help="global batch (default: by device memory)")
  p.add_argument("--dw_impl", default="", help="depthwise form (default: auto; --quick: grouped)")
  p.add_argument("--data_dir", default="", help="reuse/keep the generated set here (default: temp)")
  p.add_argument("--out", default=os.path.join(REPO, "docs", "benchmarks.md"))
  p.add_argument("--section", default="", help="default: device_check_<date>_<device>")
  args = p.parse_args(argv)
  for k, v in (QUICK if args.quick else FULL).items():
    setattr(args, k, v)
  args.dw_impl = args.dw_impl or ("grouped" if args.quick else "auto")
  bad = None
  if args.dw_impl not in ("auto", "grouped", "shift_add"):
    bad = f"--dw_impl={args.dw_impl!r} is not allowed; use auto, grouped or shift_add"
  elif args.batch < 0 or args.batch % jax.device_count():
    bad = (
      f"--batch={args.batch} is not allowed; use 0 (by device memory) or a positive multiple "
      f"of the {jax.device_count()} device(s)"
    )
  if bad:
    print(f"error: {bad}", file=sys.stderr)
    return 2
  args.workers = auto_worker_count()
  kind = re.sub(r"[^a-z0-9]+", "_", jax.devices()[0].device_kind.lower()).strip("_")
  section = args.section or f"device_check_{time.strftime('%Y-%m-%d', time.gmtime())}_{kind}"

  times, t0 = {}, time.perf_counter()
  rows, batch = throughput(args, args.batch or auto_batch(args.quick))
  times["throughput"] = time.perf_counter() - t0
  with tempfile.TemporaryDirectory() as tmp:
    data_dir = args.data_dir or os.path.join(tmp, "tfds")
    t = time.perf_counter()
    if not os.path.isdir(os.path.join(data_dir, "imagenet2012")):
      sizes = {"sizes": ((48, 36), (36, 48))} if args.quick else {}
      splits = {"train": args.train_images, "validation": args.eval_images}
      write_imagenet_like(data_dir, splits, num_shards=4, **sizes)
    times["generate"] = time.perf_counter() - t
    t = time.perf_counter()
    pipe = pipeline_rate(data_dir, args.workers, batch, args.image_size, 2 if args.quick else 16)
    times["pipeline"] = time.perf_counter() - t
    print(f"input pipeline, {args.workers} workers: {pipe[0]:.0f} img/s", flush=True)
    t = time.perf_counter()
    run = training_run(data_dir, args, batch, os.path.join(tmp, "run"))
    times["run"] = time.perf_counter() - t
    print(f"training run: input_wait_fraction {run['wait_after_first']:.3f}", flush=True)
  times["total"] = time.perf_counter() - t0
  body = render(args, batch, rows, pipe, run, device_memory(), times)
  print(body)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  write_section(args.out, section, body)
  return 0


if __name__ == "__main__":
  sys.exit(main())
