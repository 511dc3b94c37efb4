"""The same short training with and without tcmalloc, side by side in one invocation.

    python -m experiments.bench_alloc [--steps 300] [--repeats 1] [--config configs/pikelpn.py:fmnist]

Runs `main.py --config CONFIG --config.num_train_steps=STEPS` into fresh temporary workdirs as
child processes, alternating glibc malloc (PIKELPN_TCMALLOC=0) and tcmalloc (main.py's own
launcher, pikelpn_jax/allocator.py), and reports each child's wall time, user and sys CPU time,
minor page faults and peak RSS (os.wait4, which covers the re-executed process too), plus the
training's own images/s. It also checks that both allocators train the same parameters
(results.json's params_sha256). Writes the `bench_alloc` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from experiments.lib.common import REPO, markdown_table, stamp, write_section
from pikelpn_jax import allocator

MODES = {"glibc malloc": {allocator.OFF_SWITCH: "0"}, "tcmalloc": {allocator.OFF_SWITCH: "1"}}


def _env(mode: str) -> dict:
  env = {
    k: v
    for k, v in os.environ.items()
    if k not in ("LD_PRELOAD", allocator.GUARD, allocator.OFF_SWITCH)
  }
  env.update(MODES[mode])
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  return env


def run_once(mode: str, config: str, steps: int, extra) -> dict:
  workdir = tempfile.mkdtemp(prefix="bench_alloc_")
  cmd = [
    sys.executable,
    os.path.join(REPO, "main.py"),
    f"--config={config}",
    f"--workdir={workdir}",
    f"--config.num_train_steps={steps}",
    *extra,
  ]
  try:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
      cmd, env=_env(mode), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    err = proc.stderr.read()
    _, status, ru = os.wait4(proc.pid, 0)  # rusage of the child (and of its re-executed image)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
      raise SystemExit(
        f"{mode} run failed (exit {proc.returncode}): {' '.join(cmd)}\n{err[-2000:]}"
      )
    with open(os.path.join(workdir, "results.json")) as f:
      res = json.load(f)
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  return {
    "wall": wall,
    "user": ru.ru_utime,
    "sys": ru.ru_stime,
    "minflt": ru.ru_minflt,
    "maxrss_mb": ru.ru_maxrss / 1024,
    "img_s": res.get("train_images_per_sec"),
    "train_wall": res.get("train_wall_s"),
    "allocator": res.get("allocator"),
    "sha": res.get("params_sha256"),
    "top1": res.get("eval_top1"),
  }


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", default="configs/pikelpn.py:fmnist")
  p.add_argument("--steps", type=int, default=300)
  p.add_argument("--repeats", type=int, default=1, help="runs per allocator, alternating")
  p.add_argument("--out", default=os.path.join(REPO, "docs", "benchmarks.md"))
  p.add_argument("--section", default="bench_alloc")
  p.add_argument("extra", nargs="*", help="more main.py flags, e.g. --config.batch_size=128")
  args = p.parse_args()
  if allocator.find_tcmalloc() is None:
    raise SystemExit(
      "bench_alloc: libtcmalloc_minimal is not installed (Debian: apt-get install "
      "libtcmalloc-minimal4); nothing to compare"
    )
  load_start = os.getloadavg()[0]
  runs = {m: [] for m in MODES}
  for r in range(args.repeats):
    for mode in MODES if r % 2 == 0 else reversed(list(MODES)):
      runs[mode].append(run_once(mode, args.config, args.steps, args.extra))
      print(mode, runs[mode][-1], flush=True)
  load_end = os.getloadavg()[0]

  keys = ("wall", "user", "sys", "minflt", "maxrss_mb", "img_s", "train_wall")
  med = {m: {k: statistics.median(x[k] or 0.0 for x in v) for k in keys} for m, v in runs.items()}
  same = len({x["sha"] for v in runs.values() for x in v}) == 1
  rows = [
    [
      m,
      runs[m][0]["allocator"],
      f"{d['wall']:.1f}",
      f"{d['user']:.1f}",
      f"{d['sys']:.1f}",
      f"{d['sys'] / (d['user'] + d['sys']):.0%}",
      f"{d['minflt'] / 1e6:.2f}M",
      f"{d['minflt'] / args.steps:,.0f}",
      f"{d['maxrss_mb']:.0f}",
      f"{d['train_wall']:.1f}",
      f"{d['img_s']:.0f}" if d["img_s"] else "—",
    ]
    for m, d in med.items()
  ]
  g, t = med["glibc malloc"], med["tcmalloc"]
  extra = ["--", *args.extra] if args.extra else []
  cmd = "python -m experiments.bench_alloc " + " ".join(
    [f"--steps {args.steps}", f"--repeats {args.repeats}", f"--config {args.config}", *extra]
  )
  body = "\n\n".join(
    [
      "## Allocator: glibc malloc vs tcmalloc, same training side by side (`bench_alloc.py`)",
      stamp(),
      f"Command: `flock /tmp/pikelpn_bench.lock {cmd}` — each run is `python main.py --config "
      f"{args.config} --config.num_train_steps={args.steps} --workdir <fresh temp dir>` "
      f"(start-up, compile, training, the final evaluation on 10,000 test images and the ACEv2 "
      f"report), as a child process; wall, user, sys, minor page faults and peak RSS from "
      f"`os.wait4`; medians over {args.repeats} run(s) per allocator, alternating. 1-minute load "
      f"average {load_start:.1f} at the start and {load_end:.1f} at the end (other engineers' "
      f"jobs share the 2 cores: the wall times are inflated, the CPU times and fault counts "
      f"much less).",
      markdown_table(
        [
          "allocator",
          "results.json `allocator`",
          "wall s",
          "user s",
          "sys s",
          "sys share",
          "minor faults",
          "faults / step",
          "peak RSS MB",
          "training s (results.json)",
          "train img/s",
        ],
        rows,
      ),
      f"tcmalloc vs glibc: **{g['wall'] / t['wall']:.2f}× faster end to end** (wall), "
      f"{g['train_wall'] / t['train_wall']:.2f}× on the training loop alone, "
      f"{(g['user'] + g['sys']) / (t['user'] + t['sys']):.2f}× less CPU time, "
      f"{g['minflt'] / max(t['minflt'], 1):.0f}× fewer minor page faults. "
      + (
        "Both allocators trained bit-identical parameters (same `params_sha256`)."
        if same
        else "**The runs' `params_sha256` differ.**"
      ),
    ]
  )
  write_section(args.out, args.section, body)
  print(body)
  if not same:
    raise SystemExit("bench_alloc: parameters differ between runs")


if __name__ == "__main__":
  main()
