"""Fingerprint of the numbers a refactor must not change: python -m experiments.check_invariance OUT.json

Writes, for every variant of every configs/*.py, the ACEv2 JSON (batch 1, the config's ace
widths; the analyzer's timings removed), and for a tiny model trained for 4 steps with main.py
(tests/train/tiny_config.py, workdir WORK): results.json's params_sha256, the sha256 of the file
`python -m pikelpn_jax.export` writes and its report (timings and paths removed); and the
params_sha256 of the main job's model (configs/pikelpn.py:fmnist) after 20 training steps, with
the sha256 of its ONNX export. The
tiny model alone missed a change of floating-point summation order in the real train step
(a rewrite of QuantNorm's gradient: same math, different trained bits). Run it before and after a
refactor with the same --work and compare the two files (`cmp`): they must be byte-identical.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "tests/train/tiny_config.py:tiny"


def variants(path: str):
  spec = importlib.util.spec_from_file_location("_inv_cfg", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return list(module.VARIANTS)


def ace_fingerprints() -> dict:
  from pikelpn_jax.ace import acev2_report
  from pikelpn_jax.config_base import load_config

  out = {}
  for path in sorted(glob.glob(os.path.join(REPO, "configs", "*.py"))):
    for v in variants(path):
      spec = f"configs/{os.path.basename(path)}:{v}"
      config = load_config(spec)
      r = acev2_report(
        config, float_bits=config.ace.get("float_bits"), acc_bits=int(config.ace.acc_bits)
      ).to_json()
      r.pop("timing")
      out[spec] = r
      print(f"{spec}: acev2 {r['acev2']}", flush=True)
  return out


def run(*args: str) -> None:
  """`python ARGS` in the repository, failing loudly."""
  subprocess.run(
    [sys.executable, *args],
    cwd=REPO,
    env=dict(os.environ, PYTHONPATH=REPO),
    check=True,
    capture_output=True,
    text=True,
  )


def export_fingerprint(work: str) -> dict:
  shutil.rmtree(work, ignore_errors=True)
  run("main.py", "--config", TINY, "--config.num_train_steps=4", "--workdir", work)
  with open(os.path.join(work, "results.json")) as f:
    results = json.load(f)
  out = os.path.join(work, "tiny.plpn")
  run("-m", "pikelpn_jax.export", "--config", TINY, "--workdir", work, "--out", out)
  with open(out, "rb") as f:
    file_sha = hashlib.sha256(f.read()).hexdigest()
  with open(out + ".report.json") as f:
    report = json.load(f)
  return {
    "params_sha256": results["params_sha256"],
    "export_sha256": file_sha,
    "export_report": report,
  }


def main_job_fingerprint(work: str) -> dict:
  """params_sha256 of configs/pikelpn.py:fmnist after 20 steps (~1 min): the real train step."""
  work = work + "_main_job"
  shutil.rmtree(work, ignore_errors=True)
  run(
    "main.py",
    "--config",
    "configs/pikelpn.py:fmnist",
    "--config.num_train_steps=20",
    "--config.warmup_steps=5",
    "--config.eval_every_steps=20",
    "--config.checkpoint_every_steps=20",
    "--workdir",
    work,
  )
  with open(os.path.join(work, "results.json")) as f:
    results = json.load(f)
  # ONNX needs stored uint8 images to fold the input normalisation: the tiny run's synthetic
  # data has none, Fashion-MNIST has.
  onnx_out = os.path.join(work, "model.onnx")
  run("-m", "pikelpn_jax.export", "--workdir", work, "--out", onnx_out)
  with open(onnx_out, "rb") as f:
    onnx_sha = hashlib.sha256(f.read()).hexdigest()
  return {
    "params_sha256": results["params_sha256"],
    "eval_top1": results["eval_top1"],
    "onnx_sha256": onnx_sha,
  }


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("out")
  p.add_argument("--work", default="/tmp/pikelpn_invariance_work")
  a = p.parse_args()
  fp = {
    "export": export_fingerprint(a.work),
    "main_job_20_steps": main_job_fingerprint(a.work),
    "acev2": ace_fingerprints(),
  }
  with open(a.out, "w") as f:
    json.dump(fp, f, indent=1, sort_keys=True)
  print(f"wrote {a.out}")


if __name__ == "__main__":
  main()
