"""Paired-seed statistics of the ablations and the mean ± std of the family table.

Seed k gives every setting the same initialisation and the same data order (a batch is a pure
function of (seed, step), docs/training.md), so an effect is the mean of the per-seed
differences, with a 95 % t-interval over them; an interval containing 0 is no measurable effect.
"""

from __future__ import annotations

import math
import statistics
from typing import Dict, Optional, Sequence

NO_EFFECT = "no measurable effect"


def mean_std(values: Sequence[Optional[float]]):
  """(mean, sample std, n) of the finite values; (None, None, 0) when there are none."""
  vals = [v for v in values if v is not None and math.isfinite(v)]
  if not vals:
    return None, None, 0
  return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0), len(vals)


def paired_interval(
  on: Dict[int, Optional[float]], off: Dict[int, Optional[float]], confidence: float = 0.95
) -> Dict[str, object]:
  """Mean of on[k] − off[k] over the seeds both have, with its two-sided t-interval.

  Returns n, mean, sd (of the differences), half_width, lo, hi, seeds and verdict. With fewer than
  2 pairs there is no interval (lo = hi = None, verdict 'too few seeds').
  """
  from scipy import stats as st

  seeds = sorted(k for k in on if k in off and on[k] is not None and off[k] is not None)
  diffs = [on[k] - off[k] for k in seeds]
  n = len(diffs)
  out = {
    "n": n,
    "seeds": seeds,
    "mean": statistics.mean(diffs) if diffs else None,
    "sd": None,
    "half_width": None,
    "lo": None,
    "hi": None,
    "confidence": confidence,
  }
  if n < 2:
    out["verdict"] = "too few seeds"
    return out
  sd = statistics.stdev(diffs)
  half = float(st.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
  out.update(sd=sd, half_width=half, lo=out["mean"] - half, hi=out["mean"] + half)
  out["verdict"] = verdict(out["lo"], out["hi"])
  # two-sided paired t-test of "no effect" (the p-value the interval's verdict matches at 95 %)
  out["p"] = (
    1.0
    if sd == 0 and out["mean"] == 0
    else (0.0 if sd == 0 else float(2 * st.t.sf(abs(out["mean"]) / (sd / math.sqrt(n)), n - 1)))
  )
  return out


def holm(pvalues: Sequence[Optional[float]]) -> list:
  """Holm's step-down adjusted p-values (None stays None): a family of m tests keeps its
  family-wise error rate at α when each adjusted p is compared with α."""
  idx = sorted((i for i, p in enumerate(pvalues) if p is not None), key=lambda i: pvalues[i])
  m = len(idx)
  out: list = [None] * len(pvalues)
  running = 0.0
  for rank, i in enumerate(idx):
    running = max(running, min(1.0, (m - rank) * pvalues[i]))
    out[i] = running
  return out


def holm_verdicts(items: Sequence[Dict[str, object]], alpha: float = 0.05) -> list:
  """Each paired interval's verdict under Holm's correction across all of `items`: 'gain' or
  'loss' when its adjusted p < α, else no measurable effect; (adjusted p, verdict) each."""
  adjusted = holm([ci.get("p") for ci in items])
  out = []
  for ci, p in zip(items, adjusted):
    if p is None:
      out.append((None, "too few seeds"))
    elif p < alpha:
      out.append((p, "gain" if ci["mean"] > 0 else "loss"))
    else:
      out.append((p, NO_EFFECT))
  return out


def pair_within_numerics(
  on: Dict[int, Dict[Optional[str], object]],
  off: Dict[int, Dict[Optional[str], object]],
  prefer: Optional[Dict[str, int]] = None,
) -> Dict[str, object]:
  """Pairs by seed within one fingerprint when a seed may have records at several: `on[k]` maps
  each fingerprint at which seed k of one side was trained to its value (the current record and
  the superseded ones, experiments/lib/runs.py), `off` likewise.

  The fingerprint shared by the most seeds is kept (ties: the larger `prefer` weight, e.g. how
  many pairs of current records carry it, so current records win over superseded ones; then
  the lexicographically larger), and each
  of its seeds contributes the two values trained at it. A seed both sides have but at no common
  fingerprint is left out as 'mixed'; one they share only at other fingerprints as 'another
  fingerprint'. An unknown fingerprint (None) never pairs. Returns {'numerics', 'seeds',
  'left_out': [{seed, on, off, why}], 'on': {seed: value}, 'off': {seed: value}}.
  """
  both = sorted(k for k in on if k in off and on[k] and off[k])
  common = {k: sorted(fp for fp in on[k] if fp is not None and fp in off[k]) for k in both}
  counts: Dict[str, int] = {}
  for fps in common.values():
    for fp in fps:
      counts[fp] = counts.get(fp, 0) + 1
  prefer = prefer or {}
  best = max(counts, key=lambda fp: (counts[fp], prefer.get(fp, 0), fp)) if counts else None
  # a side trained at several fingerprints is named by all of them, "|"-separated
  label = lambda side: (
    "|".join(sorted(str(fp) for fp in side)) if len(side) > 1 else next(iter(side))
  )
  seeds, left = [], []
  for k in both:
    if best is not None and best in common[k]:
      seeds.append(k)
    elif common[k]:
      fp = max(common[k])
      left.append({"seed": k, "on": fp, "off": fp, "why": "another fingerprint"})
    else:
      left.append({"seed": k, "on": label(on[k]), "off": label(off[k]), "why": "mixed"})
  return {
    "numerics": best,
    "seeds": seeds,
    "left_out": left,
    "on": {k: on[k][best] for k in seeds},
    "off": {k: off[k][best] for k in seeds},
  }


def verdict(lo: float, hi: float) -> str:
  if lo <= 0.0 <= hi:
    return NO_EFFECT
  return "gain" if lo > 0 else "loss"


SUPPORTED = "supported"
CONTRADICTED = "contradicted"
NOT_SETTLED = "not settled"


def claim_check(ci: Dict[str, object], bound: float) -> str:
  """What a paired interval says of the claim "the effect is at least `bound`".

  A claim that a technique costs at most 0.3 points is `bound = -0.003` (top-1 as a fraction);
  one that it recovers at least 2 points is `bound = +0.02`. The claim is supported when the
  whole interval lies at or above the bound, contradicted when it lies wholly below, and not
  settled when the interval straddles it (more seeds would narrow it).
  """
  lo, hi = ci.get("lo"), ci.get("hi")
  if lo is None or hi is None:
    return NOT_SETTLED
  if lo >= bound:
    return SUPPORTED
  if hi < bound:
    return CONTRADICTED
  return NOT_SETTLED
