"""The distribution mismatch DHQ answers: per-channel weight ranges, depthwise vs pointwise.

For every depthwise and pointwise conv of a trained MobileNetV1-geometry model (PikeLPN-1x's
latent float weights by default, or a MobileNetV1), the range of each output channel, max|w| over
the channel, divided by the largest channel's in that layer: the fraction of a per-tensor grid a
channel can use. Both the raw kernel (what our weight quantizers see: the norm comes after the
MAC) and the kernel with the batch norm folded in (w·γ/√(σ²+ε), what a folded-BN deployment
quantizes) are measured. The model is trained here with the study recipe
(experiments/lib/recipe.py, through experiments/lib/runs.py) unless --workdir holds a trained run. Writes
results/dhq_distribution.{md,json,png}; docs/dhq.md explains the numbers.

    python -m experiments.dhq_distribution            # trains PikeLPN-1x (~5-7 min, 2 cores)
    python -m experiments.dhq_distribution --model mobilenet_v1.py:float   # a float model
    python -m experiments.dhq_distribution --model pikelpn.py:1x --workdir DIR   # a trained run
    python -m experiments.dhq_distribution --setting dhq_off --seed 1   # an ablation setting
                             # (experiments/ablations.py); writes dhq_distribution_dhq_off.*
    python -m experiments.dhq_distribution --quick --out_dir /tmp/x
"""

from __future__ import annotations

import os
import re
import statistics

import numpy as np

from experiments.lib import recipe, results, runs, sweep, zoo
from experiments.lib.common import markdown_table

NAME = "dhq_distribution"
DEFAULT_MODEL = "pikelpn.py:1x"
ALLOWED_MODELS = (
  "mobilenet_v1.py:float",
  "mobilenet_v1.py:w8a8",
  "mobilenet_v1.py:w4a4",
  "pikelpn.py:1x",
  "pikelpn.py:2x",
  "pikelpn.py:3x",
  "pikelpn.py:6x",
)
# A 4-bit signed per-tensor grid has 7 positive levels: a channel whose range is below half a
# step (1/14 of the layer's max) rounds to all zeros; below 1.5 steps it keeps at most 1 level.
GRID_LEVELS = 7
KINDS = ("dw", "pw")
BLOCK = re.compile(r"block(\d+)$")


def channel_ranges(variables, folded: bool) -> list:
  """[(block, kind, ratios per output channel)] in block order."""
  params, stats = variables["params"], variables.get("batch_stats", {})
  out = []
  for name in sorted((k for k in params if BLOCK.match(k)), key=lambda k: int(BLOCK.match(k)[1])):
    for kind in KINDS:
      layer = params[name][kind]
      w = np.abs(np.asarray(layer["conv"]["kernel"], np.float64))
      per_channel = w.reshape(-1, w.shape[-1]).max(axis=0)
      if folded:
        gamma = np.asarray(layer["norm"]["scale"], np.float64)
        var = np.asarray(stats[name][kind]["norm"]["var"], np.float64)
        per_channel = per_channel * np.abs(gamma) / np.sqrt(var + 1e-5)
      out.append((int(BLOCK.match(name)[1]), kind, per_channel / max(per_channel.max(), 1e-30)))
  if not out:
    raise ValueError(
      "the model has no block{i}/dw|pw convs; use a MobileNetV1-geometry model "
      f"({list(ALLOWED_MODELS)})"
    )
  return out


def layer_stats(ratios: np.ndarray) -> dict:
  levels = np.round(ratios * GRID_LEVELS)
  return {
    "channels": int(ratios.size),
    "min": float(ratios.min()),
    "median": float(np.median(ratios)),
    "zeroed_at_4bit_per_tensor": float(np.mean(levels == 0)),
    "at_most_1_level": float(np.mean(levels <= 1)),
  }


def summarize(layers) -> dict:
  out = {}
  for kind in KINDS:
    sel = [layer_stats(r) for _, k, r in layers if k == kind]
    pooled = np.concatenate([r for _, k, r in layers if k == kind])
    out[kind] = {
      "layers": len(sel),
      "channels": int(pooled.size),
      "median_of_layer_medians": statistics.median(s["median"] for s in sel),
      "min_of_layer_medians": min(s["median"] for s in sel),
      "min": float(pooled.min()),
      "pooled_median": float(np.median(pooled)),
      "zeroed_at_4bit_per_tensor": float(np.mean(np.round(pooled * GRID_LEVELS) == 0)),
      "at_most_1_level": float(np.mean(np.round(pooled * GRID_LEVELS) <= 1)),
    }
  return out


def plot(raw, folded, path, title) -> None:
  plt = results.pyplot()
  fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
  colors = {"dw": "#c44e52", "pw": "#4c72b0"}
  names = {"dw": "depthwise 3×3", "pw": "pointwise 1×1"}
  ax = axes[0]
  for kind in KINDS:
    sel = [(b, r) for b, k, r in raw if k == kind]
    pos = [b + (-0.18 if kind == "dw" else 0.18) for b, _ in sel]
    bp = ax.boxplot(
      [r for _, r in sel],
      positions=pos,
      widths=0.3,
      showfliers=True,
      patch_artist=True,
      flierprops=dict(markersize=2),
      manage_ticks=False,
    )
    for box in bp["boxes"]:
      box.set_facecolor(colors[kind])
      box.set_alpha(0.6)
    ax.plot([], [], color=colors[kind], lw=6, alpha=0.6, label=names[kind])
  ax.axhline(0.5 / GRID_LEVELS, color="k", ls=":", lw=1, label="½ step of a 4-bit per-tensor grid")
  ax.set_yscale("log")
  blocks = sorted({b for b, _, _ in raw})
  ax.set_xticks(blocks)
  ax.set_xticklabels([str(b) for b in blocks])
  ax.set_xlabel("block")
  ax.set_ylabel("channel max|w| / layer max|w|")
  ax.set_title("raw kernels, per layer", fontsize=10)
  ax.legend(fontsize=7, loc="lower left")
  for ax, layers, sub in ((axes[1], raw, "raw kernels"), (axes[2], folded, "norm folded in")):
    bins = np.logspace(-2, 0, 41)
    for kind in KINDS:
      pooled = np.concatenate([r for _, k, r in layers if k == kind])
      ax.hist(
        np.clip(pooled, 1e-2, 1),
        bins=bins,
        alpha=0.55,
        color=colors[kind],
        density=True,
        label=f"{names[kind]} ({pooled.size} channels)",
      )
    ax.axvline(0.5 / GRID_LEVELS, color="k", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("channel max|w| / layer max|w|")
    ax.set_ylabel("density")
    ax.set_title(f"all layers pooled, {sub}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
  fig.suptitle(title, fontsize=11)
  fig.tight_layout()
  fig.savefig(path, dpi=130)
  plt.close(fig)


def init_ranges(config, seed: int) -> list:
  """Raw-kernel ratios at initialisation (the norm folds to identity there: γ = 1, σ² = 1)."""
  import jax

  from pikelpn_jax.train.steps import init_variables

  return channel_ranges(jax.device_get(init_variables(config, jax.random.PRNGKey(seed))), False)


def summary_table(raw_sum, folded_sum, init_sum) -> str:
  header = [
    "weights",
    "layer kind",
    "layers",
    "channels",
    "median of layer medians",
    "lowest layer median",
    "min channel",
    "channels zeroed by a 4-bit per-tensor grid %",
    "channels with ≤ 1 level %",
  ]
  body = []
  for which, s in (
    ("raw, trained", raw_sum),
    ("norm folded, trained", folded_sum),
    ("raw, at initialisation", init_sum),
  ):
    for kind in KINDS:
      k = s[kind]
      body.append(
        [
          which,
          "depthwise" if kind == "dw" else "pointwise",
          k["layers"],
          k["channels"],
          f"{k['median_of_layer_medians']:.3f}",
          f"{k['min_of_layer_medians']:.3f}",
          f"{k['min']:.2e}",
          f"{100 * k['zeroed_at_4bit_per_tensor']:.1f}",
          f"{100 * k['at_most_1_level']:.1f}",
        ]
      )
  return markdown_table(header, body)


def per_layer_table(raw, folded) -> str:
  body = []
  for b in sorted({b for b, _, _ in raw}):
    cells = [str(b)]
    for kind in KINDS:
      r = layer_stats(next(x for bb, k, x in raw if bb == b and k == kind))
      f = layer_stats(next(x for bb, k, x in folded if bb == b and k == kind))
      cells += [
        str(r["channels"]),
        f"{r['median']:.3f}",
        f"{100 * r['at_most_1_level']:.0f}",
        f"{f['median']:.3f}",
        f"{100 * f['at_most_1_level']:.0f}",
      ]
    body.append(cells)
  head = ["block"]
  for kind in KINDS:
    head += [
      f"{kind} channels",
      f"{kind} median (raw)",
      f"{kind} ≤ 1 level % (raw)",
      f"{kind} median (folded)",
      f"{kind} ≤ 1 level % (folded)",
    ]
  return markdown_table(head, body)


def output_name(setting: str) -> str:
  """results/dhq_distribution.* for the model as configured, ..._<setting>.* for an ablation."""
  return f"{NAME}_{setting}" if setting else NAME


def model_config(model: str, setting: str):
  """The config of `model`, or of one ablation setting of PikeLPN-1x (experiments/ablations.py):
  how a model trained with DHQ off (4-bit per-tensor depthwise weights) spreads its channels is
  the other half of the DHQ question (docs/dhq.md)."""
  if not setting:
    return zoo.load(model)
  from experiments.lib import ablation_settings as ablations

  if setting not in ablations.SETTINGS:
    raise ValueError(f"--setting={setting!r} is not allowed; use one of {list(ablations.SETTINGS)}")
  if model != ablations.BASE:
    raise ValueError(
      f"--setting={setting!r} needs --model {ablations.BASE} (the ablations' base), not {model!r}"
    )
  return ablations.setting_config(setting)


def setting_words(setting: str) -> str:
  if not setting:
    return ""
  from experiments.lib import ablation_settings as ablations

  return f", ablation setting `{setting}` ({ablations.DESCRIPTION[setting]})"


def main(args) -> None:
  from pikelpn_jax.train.checkpoint import restore_latest

  clock = results.Clock()
  if args.model not in ALLOWED_MODELS:
    raise ValueError(f"--model={args.model!r} is not allowed; use one of {list(ALLOWED_MODELS)}")
  name, base = output_name(args.setting), model_config(args.model, args.setting)
  budget = recipe.recipe(args.quick)
  config = recipe.study_config(base, budget, args.seed)
  workdir = args.workdir
  trained_here = not workdir
  if trained_here:
    work_root = args.work_root or sweep.default_work_root(args.out_dir, args.quick, NAME)
    sweep.enable_compile_cache(os.path.join(work_root, "jax_cache"))
    tag = args.model.replace(".py:", "_") + (f"_{args.setting}" if args.setting else "")
    workdir = os.path.join(work_root, tag + f"_seed{args.seed}")
    clock.log(f"training {args.model} in {workdir}")
    res = runs.trained_checkpoint(config, workdir, log=clock.log)
    if res.get("eval_top1") is None:
      raise RuntimeError(f"training {args.model} failed: {res.get('error')}")
  elif not os.path.isdir(workdir):
    raise ValueError(f"--workdir={workdir!r} is not a directory; train first or leave it out")
  try:
    variables = restore_latest(workdir, config)
  except FileNotFoundError as e:
    raise ValueError(str(e)) from e
  run_results = results.read_json(os.path.join(workdir, "results.json")) or {}
  raw, folded = channel_ranges(variables, False), channel_ranges(variables, True)
  raw_sum, folded_sum = summarize(raw), summarize(folded)
  init_sum = summarize(init_ranges(config, args.seed))
  figure = results.figure_path(args.out_dir, name)
  top1 = run_results.get("eval_top1")
  setting = f", ablation setting {args.setting}" if args.setting else ""
  title = (
    f"{zoo.label(args.model)}{setting} on Fashion-MNIST (width {config.model.width:g}, "
    f"top-1 {'-' if top1 is None else f'{100 * top1:.2f}%'})"
  )
  plot(raw, folded, figure, title)
  source = (
    f"trained here with the budget: {budget.describe()}, seed {args.seed}"
    if trained_here
    else f"restored from --workdir (its config must be the budget's: {budget.describe()})"
  )
  body = "\n\n".join(
    [
      f"Model {args.model} ({zoo.label(args.model)}; quantized models: the latent float weights "
      f"the quantizers read){setting_words(args.setting)}, {source}; step {run_results.get('step')}, "
      f"Fashion-MNIST top-1 {'-' if top1 is None else f'{100 * top1:.2f}%'}.",
      "Ratio of a channel = max|w| over the channel ÷ max|w| over the layer. *zeroed*: the channel "
      f"rounds to all zeros on a 4-bit signed per-tensor grid (ratio < 0.5/{GRID_LEVELS}); "
      f"*≤ 1 level*: ratio < 1.5/{GRID_LEVELS}. What DHQ does about it: docs/dhq.md.",
      "## Summary",
      summary_table(raw_sum, folded_sum, init_sum),
      "## Per layer",
      per_layer_table(raw, folded),
      f"Wall time: {clock.seconds:.0f} s.",
    ]
  )
  to_json = lambda layers: [
    {"block": b, "kind": k, **layer_stats(r), "ratios": [round(float(x), 6) for x in r]}
    for b, k, r in layers
  ]
  results.write(
    args.out_dir,
    name,
    "Depthwise vs pointwise per-channel weight ranges" + setting,
    body,
    {
      "model": args.model,
      "setting": args.setting or None,
      "workdir": workdir,
      "trained_here": trained_here,
      "eval_top1": top1,
      "budget": budget.__dict__,
      "seed": args.seed,
      "summary": {"raw": raw_sum, "folded": folded_sum, "raw_at_init": init_sum},
      "layers": {"raw": to_json(raw), "folded": to_json(folded)},
    },
    figure,
  )


if __name__ == "__main__":
  p = results.parser(__doc__.split("\n")[0])
  p.add_argument("--model", default=DEFAULT_MODEL, help=f"one of {list(ALLOWED_MODELS)}")
  p.add_argument(
    "--workdir",
    default="",
    help="a finished training run of --model under the budget (default: train one here)",
  )
  p.add_argument(
    "--setting",
    default="",
    help="an ablation setting of PikeLPN-1x (experiments/ablations.py SETTINGS, e.g. dhq_off); "
    "the outputs are then named dhq_distribution_<setting>.* (default: the model as configured)",
  )
  p.add_argument("--seed", type=int, default=0)
  p.add_argument(
    "--work_root",
    default="",
    help="where to train (default: "
    "/tmp/pikelpn_experiments/dhq_distribution; --quick: inside --out_dir)",
  )
  results.run_main(main, p.parse_args())
