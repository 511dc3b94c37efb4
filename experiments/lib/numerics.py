"""The numerics fingerprint: which numbers training gives on this code, these libraries, this CPU.

Two run records carry equal fingerprints exactly when training the same config and seed gives the
same numbers. It is measured, not inferred from source text, so a refactor that changes no number
keeps it, and a change of summation order (a hand-written VJP, another XLA version, another CPU's
vector units) changes it:

    fingerprint = sha256(jax and jaxlib versions, and for each canary its final parameters'
                         sha256, eval loss and top-1)[:16]

The canaries are 3-step training runs of the study recipe at its own shapes (batch 256, width
× 0.5, 32×32 Fashion-MNIST, the configs' own layer implementations; eval on 500 test images) that
exercise every switch the study compares: PikeLPN-1x with QuantNorm, power-of-two Double Quantization and DHQ on, the same with all
three off, with Double Quantization's 8-bit mantissa × 2^e scales, and float MobileNetV1. A change
that moves only other families' code (PokeBNN, ReActNet) is not seen by them.

A sweep computes the fingerprint once when it starts (a few minutes on 2 cores; cached under
~/.cache/pikelpn_jax/numerics by the hash of the training code, the library versions and the CPU,
since the same files on the same CPU give the same numbers). `--quick` sweeps use one canary at
the quick recipe and say so in the fingerprint's name ('quick-…'), so they never pair with study
records.

Run as a script, it prints the fingerprint of a checkout (used to fingerprint the code that older
records were trained with, experiments/numerics_backfill.py); the checkout's packages must be the
ones imported (fingerprint_of_checkout runs it so):

    python -m experiments.lib.numerics [--quick] [--out FILE]      # this checkout
    PYTHONPATH=/path/to/checkout PYTHONSAFEPATH=1 \
        python -m experiments.lib.numerics --repo /path/to/checkout [--quick] [--out FILE]
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
from typing import Any, Dict, Optional, Tuple

CANARY_VERSION = 2  # bump when the canaries below change: cached fingerprints then go stale
# name -> (config file:variant, model fields set on top of the variant)
CANARIES: Dict[str, Tuple[str, Dict[str, Any]]] = {
  "pikelpn_all_on": ("pikelpn.py:1x", {}),
  "pikelpn_all_off": (
    "pikelpn.py:1x",
    {"quantnorm": False, "double_quant": False, "dhq": False},
  ),
  "pikelpn_dq_fixed": ("pikelpn.py:1x", {"dq_format": "fixed"}),
  "mobilenet_v1_float": ("mobilenet_v1.py:float", {}),
}
QUICK_CANARIES = ("pikelpn_all_on",)
# Recipe fields of the canaries (experiments/lib/recipe.Recipe): the study's own shapes (width
# × 0.5, batch 256, eval batch 500) and layer implementations, for 3 steps. XLA picks fusions and
# reduction orders by shape: at width × 0.125 and batch 16 the canaries of the code before and
# after QuantNorm's hand-written VJP were bit-identical, though the study's runs were not; at the
# study's shapes they differ (docs/results.md, "Numerics fingerprints").
CANARY_RECIPE = dict(
  steps=3,
  batch_size=256,
  warmup_steps=1,
  width_scale=0.5,
  eval_examples=500,
  eval_batch_size=500,
)
# The code whose numbers the fingerprint stands for (the cache key hashes these files).
CODE_PATHS = ("pikelpn_jax", "configs", os.path.join("experiments", "lib", "recipe.py"))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load_config(repo: str, spec: str):
  path, _, variant = spec.partition(":")
  f = os.path.join(repo, "configs", path)
  mspec = importlib.util.spec_from_file_location(f"_canary_cfg_{path[:-3]}", f)
  module = importlib.util.module_from_spec(mspec)
  mspec.loader.exec_module(module)
  return module.get_config(variant)


def canary_results(repo: str, quick: bool = False, log=print) -> Dict[str, Dict[str, Any]]:
  """Trains the canaries with the code imported from `repo`; name -> params_sha256, loss, top-1.

  Only APIs every version of this codebase has are used (configs' get_config, the recipe's
  study_config, train_and_evaluate), so older checkouts can be fingerprinted too.
  """
  import pikelpn_jax
  from experiments.lib import recipe
  from pikelpn_jax.train import train_and_evaluate

  here = os.path.realpath(os.path.dirname(pikelpn_jax.__file__))
  if not here.startswith(os.path.realpath(repo) + os.sep):
    raise RuntimeError(f"pikelpn_jax was imported from {here}, not from {repo}")
  r = recipe.QUICK if quick else recipe.Recipe(**CANARY_RECIPE)
  out = {}
  for name in QUICK_CANARIES if quick else CANARIES:
    spec, fields = CANARIES[name]
    c = _load_config(repo, spec)
    for k, v in fields.items():
      setattr(c.model, k, v)
    c = recipe.study_config(c, r, 0)
    with tempfile.TemporaryDirectory() as workdir:
      res = train_and_evaluate(c, workdir)
    out[name] = {k: res.get(k) for k in ("params_sha256", "eval_loss", "eval_top1")}
    log(f"  canary {name}: params {str(out[name]['params_sha256'])[:12]}")
  return out


def short(fp: Optional[str]) -> str:
  """A fingerprint as tables print it: its first 8 hex digits ('quick-', 'legacy-' and a legacy
  stamp's '@<commit>' kept), or 'none'."""
  if not fp:
    return "none"
  fp, at, commit = fp.partition("@")
  prefix = "".join(p + "-" for p in fp.split("-")[:-1])
  return prefix + fp.split("-")[-1][:8] + at + commit


def library_versions() -> Dict[str, str]:
  import jax
  import jaxlib

  return {"jax": jax.__version__, "jaxlib": jaxlib.__version__}


def combine(canaries: Dict[str, Dict[str, Any]], versions: Dict[str, str], quick: bool) -> str:
  blob = json.dumps({"canaries": canaries, "versions": versions}, sort_keys=True)
  digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
  return ("quick-" if quick else "") + digest


def cpu_identity() -> str:
  """The CPU's model and instruction-set flags: XLA:CPU compiles for what the host supports."""
  model, flags = platform.processor() or platform.machine(), ""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name") and model in ("", platform.machine()):
          model = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
          flags = " ".join(sorted(line.split(":", 1)[1].split()))
          break
  except OSError:
    pass
  return f"{platform.machine()} {model} {hashlib.sha256(flags.encode()).hexdigest()[:12]}"


def code_hash(repo: str = REPO) -> str:
  """sha256 over the training code's files (path and bytes): equal files, equal numbers."""
  h = hashlib.sha256()
  for root in CODE_PATHS:
    full = os.path.join(repo, root)
    files = (
      [full]
      if os.path.isfile(full)
      else glob.glob(os.path.join(full, "**", "*.py"), recursive=True)
    )
    for f in sorted(files):
      h.update(os.path.relpath(f, repo).encode())
      with open(f, "rb") as fh:
        h.update(hashlib.sha256(fh.read()).digest())
  return h.hexdigest()[:16]


def _cache_dir() -> str:
  return os.environ.get("PIKELPN_NUMERICS_CACHE") or os.path.join(
    os.path.expanduser("~"), ".cache", "pikelpn_jax", "numerics"
  )


def fingerprint(
  quick: bool = False, log=print, repo: str = REPO, cache: bool = True
) -> Dict[str, Any]:
  """{'numerics': the fingerprint, 'canaries', 'versions', 'cpu', 'code_hash'} of this process's
  code on this machine, from the cache when the same files were fingerprinted on this CPU."""
  versions = library_versions()
  ident = {
    "canary_version": CANARY_VERSION,
    "quick": quick,
    "code_hash": code_hash(repo),
    "versions": versions,
    "cpu": cpu_identity(),
  }
  key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]
  path = os.path.join(_cache_dir(), key + ".json")
  if cache and os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  log(f"numerics fingerprint: training {1 if quick else len(CANARIES)} canary run(s)")
  canaries = canary_results(repo, quick, log)
  out = dict(ident, numerics=combine(canaries, versions, quick), canaries=canaries)
  if cache:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + f".{os.getpid()}.tmp"
    with open(tmp, "w") as f:
      json.dump(out, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
  log(f"numerics fingerprint: {out['numerics']}")
  return out


def fingerprint_of_checkout(
  checkout: str, quick: bool = False, timeout: Optional[float] = None
) -> Dict[str, Any]:
  """The fingerprint of another checkout's code, trained in a subprocess that imports it."""
  with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
    cmd = [sys.executable, os.path.abspath(__file__), "--repo", checkout, "--out", out.name]
    if quick:
      cmd.append("--quick")
    # The checkout's packages are imported (PYTHONPATH), not this file's directory's modules
    # (PYTHONSAFEPATH: the script's directory is not put on sys.path, Python ≥ 3.11).
    env = dict(os.environ, PYTHONPATH=checkout, PYTHONSAFEPATH="1")
    subprocess.run(cmd, check=True, env=env, timeout=timeout, cwd=checkout)
    return json.load(open(out.name))


def _main(argv) -> None:
  import argparse

  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--repo", default=REPO, help="the checkout whose code is fingerprinted")
  p.add_argument("--quick", action="store_true")
  p.add_argument("--out", default="", help="also write the JSON here")
  args = p.parse_args(argv)
  repo = os.path.abspath(args.repo)  # canary_results refuses packages imported from elsewhere
  try:  # tcmalloc changes speed, not numbers; checkouts older than the launcher lack it
    from pikelpn_jax.allocator import use_tcmalloc

    use_tcmalloc()
  except ImportError:
    pass
  fp = fingerprint(args.quick, repo=repo, log=lambda m: print(m, file=sys.stderr))
  text = json.dumps(fp, indent=1, sort_keys=True)
  print(text)
  if args.out:
    with open(args.out, "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  _main(sys.argv[1:])
