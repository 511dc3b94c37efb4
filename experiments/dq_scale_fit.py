"""How the trained pointwise weights sit on their Double-Quantized 4-bit grids: why Double
Quantization costs accuracy.

For every 4-bit per-tensor pointwise kernel (blocks 0-12) of the ablation sweep's trained runs
(experiments/ablations.py), the scale the quantizer derives, s = max|w| / 7, is compared with the
scale the setting's Double Quantization format makes of it, s_q: a power of two (2^round(log2 s),
the study recipe's rounding to nearest), an 8-bit mantissa × 2^e, or s itself when Double
Quantization is off. r = s_q / s < 1 means the grid ends below max|w|: the weights beyond 7·s_q
get no gradient (the STE's clip, pikelpn_jax/quant/ste.py) and those beyond 7.5·s_q are clipped.
Every setting is also measured against the power-of-two scale its weights *would* get, so the
settings trained without power-of-two scales are the control: if training did not react to the
rounding, log2 s would fall anywhere between two powers of two and r < 1 in about half the
tensors. Reads the checkpoints the sweeps left in their work roots (checkpoints are not committed;
the records in results/runs/ are), trains nothing, and says which runs it did not find.
Writes results/dq_scale_fit.{md,json}; docs/results.md §3 discusses the numbers.

    python -m experiments.dq_scale_fit                 # all on, dq_fixed, DQ off; seeds 5-19
    python -m experiments.dq_scale_fit --settings all_on,quantnorm_off --seeds 5,6,7
    python -m experiments.dq_scale_fit --quick --out_dir /tmp/x   # after ablations.py --quick
"""

from __future__ import annotations

import os

import numpy as np

from experiments.lib import ablation_settings as ablations
from experiments.lib import recipe, results, runs, sweep
from experiments.lib.common import markdown_table

NAME = "dq_scale_fit"
DEFAULT_SETTINGS = "all_on,dq_fixed,double_quant_off"
DEFAULT_SEEDS = ",".join(map(str, range(5, 20)))  # the claim seeds: their checkpoints are kept
QUICK_SETTINGS, QUICK_SEEDS = "all_on,all_off", "0,1"  # what ablations.py --quick trains
QUANTILES = (5, 25, 50, 75, 95)
TRAINED_BY = ("ablations", "family_table")  # the scripts whose work roots hold the runs


def format_scale(s: np.ndarray, fmt: str) -> np.ndarray:
  """The scale Double Quantization makes of s, by the same functions training uses."""
  import jax.numpy as jnp

  from pikelpn_jax.quant import ste

  if fmt == "none":
    return s
  if fmt == "pow2":
    return np.asarray(ste.round_pow2_ste(jnp.asarray(s, jnp.float32), False), np.float64)
  if fmt == "fixed":
    return np.asarray(ste.round_fixed_ste(jnp.asarray(s, jnp.float32), 8), np.float64)
  raise ValueError(f"scale format {fmt!r} is not allowed; use 'none', 'pow2' or 'fixed'")


def pointwise_kernels(variables) -> list:
  """[(block, kernel)] of the pointwise convs, in block order."""
  params = variables["params"]
  names = sorted((k for k in params if k.startswith("block")), key=lambda k: int(k[5:]))
  out = [(int(n[5:]), np.asarray(params[n]["pw"]["conv"]["kernel"], np.float64)) for n in names]
  if not out:
    raise ValueError("the model has no block{i}/pw convs; use an ablation setting of PikeLPN-1x")
  return out


def tensor_fit(w: np.ndarray, qmax: float, fmt: str) -> dict:
  """One kernel on its grid: r = s_q / s for the power-of-two and the setting's own format, and
  the share of its weights beyond the own grid (no gradient) and clipped."""
  s = max(float(np.abs(w).max()), 1e-8) / qmax  # static_bound's abs-max, its epsilon
  own = float(format_scale(np.asarray([s]), fmt)[0])
  pow2 = float(format_scale(np.asarray([s]), "pow2")[0])
  a = np.abs(w)
  # qmax·(max|w|/qmax) can land an ulp below max|w|: "beyond" means by more than rounding error.
  edge = qmax * own * (1 + 1e-9)
  return {
    "r_pow2": pow2 / s,
    "r_own": own / s,
    "beyond_grid": float(np.mean(a > edge)),
    "clipped": float(np.mean(a >= (qmax + 0.5) * own)),
  }


def summarize(fits: list) -> dict:
  r_pow2 = np.asarray([f["r_pow2"] for f in fits])
  r_own = np.asarray([f["r_own"] for f in fits])
  return {
    "tensors": len(fits),
    "r_pow2_quantiles": {str(q): float(np.percentile(r_pow2, q)) for q in QUANTILES},
    "share_r_pow2_below_1": float(np.mean(r_pow2 < 1)),
    "share_own_grid_below_max": float(np.mean(r_own < 1)),
    "mean_beyond_grid": float(np.mean([f["beyond_grid"] for f in fits])),
    "mean_clipped": float(np.mean([f["clipped"] for f in fits])),
  }


def parse_settings(arg: str) -> tuple:
  items = tuple(x.strip() for x in arg.split(",") if x.strip())
  if not items or any(x not in ablations.SETTINGS for x in items):
    raise ValueError(
      f"--settings={arg!r} is not allowed; use names from {list(ablations.SETTINGS)}"
    )
  return items


def check_rounding(config) -> None:
  """format_scale rounds log2 s to nearest, as the study recipe trains; refuse anything else."""
  if config.model.get("dq_round", "auto") != "nearest":
    raise ValueError(
      f"config.model.dq_round={config.model.get('dq_round', 'auto')!r} is not measured here; "
      "this tool measures the study recipe's 'nearest' rounding (experiments/lib/recipe.py)"
    )


def main(args) -> None:
  from pikelpn_jax.train.checkpoint import checkpoint_dir, restore_latest

  clock = results.Clock()
  settings = parse_settings(args.settings or (QUICK_SETTINGS if args.quick else DEFAULT_SETTINGS))
  seeds = results.parse_seeds(args.seeds or (QUICK_SEEDS if args.quick else DEFAULT_SEEDS))
  r = recipe.recipe(args.quick)
  # The run cache is shared: a run may have been trained by another script (the family table
  # trains PikeLPN-1x, which is the ablations' all on at seed 0), so every root is searched.
  roots = [x for x in args.work_root.split(",") if x] or [
    sweep.default_work_root(args.out_dir, args.quick, n) for n in TRAINED_BY
  ]
  rows, missing, found = {}, {}, 0
  for name in settings:
    fmt = ablations.dq_format(name)
    fits, used = [], []
    for seed in seeds:
      config = recipe.study_config(ablations.setting_config(name), r, seed)
      check_rounding(config)
      run = runs.record_name(runs.key(config))[: -len(".json")]
      workdirs = [os.path.join(root, run) for root in roots]
      workdir = next((w for w in workdirs if os.path.isdir(checkpoint_dir(w))), None)
      if workdir is None:
        missing.setdefault(name, []).append(seed)
        continue
      variables = restore_latest(workdir, config)
      qmax = float(2 ** (int(config.model.quant.w_bits) - 1) - 1)
      fits += [tensor_fit(w, qmax, fmt) for _, w in pointwise_kernels(variables)]
      used.append(seed)
      found += 1
    clock.log(f"{name}: {len(used)} run(s), {len(fits)} pointwise kernels")
    rows[name] = {"format": fmt, "seeds": used, **(summarize(fits) if fits else {"tensors": 0})}
  if not found:
    raise ValueError(
      f"no trained run of {list(settings)} on seeds {list(seeds)} under {roots}; "
      "train them with experiments/ablations.py (same --quick/--out_dir) first"
    )
  header = ["setting", "DQ format", "runs", "kernels"]
  header += [f"pow2 r, {q}th pct" for q in QUANTILES]
  header += [
    "kernels with pow2 r < 1 %",
    "own grid ends below the largest weight %",
    "weights beyond the own grid %",
  ]
  header += ["weights clipped %"]
  body = []
  for name, row in rows.items():
    if not row["tensors"]:
      body.append([ablations.DESCRIPTION[name], row["format"], 0, 0] + ["-"] * 9)
      continue
    q = row["r_pow2_quantiles"]
    body.append(
      [ablations.DESCRIPTION[name], row["format"], len(row["seeds"]), row["tensors"]]
      + [f"{q[str(p)]:.3f}" for p in QUANTILES]
      + [f"{100 * row['share_r_pow2_below_1']:.1f}", f"{100 * row['share_own_grid_below_max']:.1f}"]
      + [f"{100 * row['mean_beyond_grid']:.3f}", f"{100 * row['mean_clipped']:.3f}"]
    )
  notes = [
    "Pointwise kernels: 4-bit signed per-tensor grids (±7 levels), s = max|w| / 7 (abs-max "
    "calibration). *pow2 r*: 2^round(log2 s) / s, the power-of-two scale the kernel's weights "
    "get or would get (between 0.707 and 1.414; below 1, the grid ends below max|w|). *own "
    "grid*: the setting's own scale format (none: s itself, so nothing is beyond it). *beyond "
    "the own grid*: |w| > 7·s_q, where the STE passes no gradient; *clipped*: |w| ≥ 7.5·s_q. "
    "If the trained weights ignored the rounding, about half the kernels would have pow2 r < 1.",
    f"Runs: the sweep's checkpoints under {', '.join(f'`{x}`' for x in roots)} ({r.describe()}).",
  ]
  if missing:
    notes.append(
      "**Runs not found** (no checkpoint in the work roots; their records may exist, but "
      "checkpoints stay on the machine that trained them): "
      + "; ".join(
        f"{ablations.DESCRIPTION[n]}: seeds {', '.join(map(str, s))}" for n, s in missing.items()
      )
      + "."
    )
  body_md = "\n\n".join(
    [markdown_table(header, body), *notes, f"Wall time: {clock.seconds:.0f} s."]
  )
  results.write(
    args.out_dir,
    NAME,
    "Double Quantization: how the trained pointwise weights sit on their 4-bit grids",
    body_md,
    {"work_roots": roots, "seeds": list(seeds), "settings": rows, "missing": missing},
  )


if __name__ == "__main__":
  p = results.parser(__doc__.split("\n")[0])
  p.add_argument(
    "--settings",
    default="",
    help=f"ablation settings (default {DEFAULT_SETTINGS}; --quick: {QUICK_SETTINGS})",
  )
  p.add_argument("--seeds", default="", help=f"default {DEFAULT_SEEDS} (--quick: {QUICK_SEEDS})")
  p.add_argument(
    "--work_root",
    default="",
    help="comma-separated work roots to search for the runs (default: the ablations' and the "
    "family table's, /tmp/pikelpn_experiments/<script>; --quick: inside --out_dir)",
  )
  results.run_main(main, p.parse_args())
