"""Rules of the accumulating primitives: MACs (conv_general_dilated, dot_general), reductions,
cumulative ops and pooling windows. rules.RULES lists them with the others (rules.py)."""

from __future__ import annotations

import math

import numpy as np

from pikelpn_jax.ace import ranges
from pikelpn_jax.ace.pricing import FREE, cost, fout, in_size, narrowed, out_size
from pikelpn_jax.ace.values import (
  ACC,
  FIXED,
  INT,
  Val,
  acc_val,
  as_data,
  input_val,
  is_integer,
  rng,
  summed,
  width,
)

# ------------------------------------------------------------------------------------ MACs


def _mac(e, vals, settings, macs: int):
  c = FREE
  x, w = vals[0], vals[1]
  s = settings
  bx = x.bits if x.fmt == FIXED else width(x, s)
  bw = w.bits if w.fmt == FIXED else width(w, s)
  cx, cw = (FIXED if v.fmt == FIXED else v.cls for v in (x, w))
  c += cost("mac", bx, bw, macs, category="mac", cx=cx, cy=cw)
  return [acc_val(s) if is_integer(x) and is_integer(w) else fout(e, s)], c


def valid_taps(n: int, k: int, stride: int, lo: int, hi: int, lhs_dil: int, rhs_dil: int) -> int:
  """Σ over output positions of the kernel taps landing on a real input element (not padding,
  not a hole of lhs dilation), along one spatial dimension."""
  nd = (n - 1) * lhs_dil + 1
  n_out = (nd + lo + hi - ((k - 1) * rhs_dil + 1)) // stride + 1
  if n_out <= 0:
    return 0
  p = np.arange(n_out)[:, None] * stride + np.arange(k)[None, :] * rhs_dil - lo
  ok = (p >= 0) & (p < nd) & (p % lhs_dil == 0)
  return int(ok.sum())


def conv(e, vals, settings):
  """MACs = output elements × kernel taps × input channels / groups, counting taps on border
  padding (count_padded_taps=True, PokeBNN's convention); a conv with input dilation (a
  transposed conv) never counts the zeros the dilation inserts: its taps are those on real input
  pixels, input pixels × k² × C_out / groups for a transposed conv without border cropping."""
  g = e.conv_geometry
  in_feats = g["rhs_in_features"]
  dilated = any(d != 1 for d in g["lhs_dilation"])
  if settings.count_padded_taps and not dilated:
    macs = out_size(e) * math.prod(g["rhs_spatial"]) * in_feats
  elif settings.count_padded_taps:  # every input pixel's k² taps, wherever they land
    spatial = math.prod(g["lhs_spatial"]) * math.prod(g["rhs_spatial"])
    macs = math.prod(g["out_batch_features"]) * in_feats * spatial
  else:
    taps = 1
    for i, n in enumerate(g["lhs_spatial"]):
      taps *= valid_taps(
        n,
        g["rhs_spatial"][i],
        g["strides"][i],
        *g["padding"][i],
        g["lhs_dilation"][i],
        g["rhs_dilation"][i],
      )
    macs = math.prod(g["out_batch_features"]) * in_feats * taps
  return _mac(e, vals, settings, macs)


def dot(e, vals, settings):
  return _mac(e, vals, settings, out_size(e) * e.dot_contracting_size)


# ------------------------------------------------------------------------------- reductions


def _sum_type(x: Val, s, n: int, e) -> Val:
  """A sum of n values of x's type (its range n times wider)."""
  return summed(x, n, s) if is_integer(x) else fout(e, s, ranges.times(rng(x), n))


REDUCE_OPS = {
  "reduce_sum": "add",
  "reduce_max": "cmp",
  "reduce_min": "cmp",
  "reduce_prod": "mul",
  "reduce_and": "cmp",
  "reduce_or": "cmp",
  "reduce_xor": "cmp",
  "argmax": "cmp",
  "argmin": "cmp",
}


def _reduced_type(name: str, x: Val, e, s) -> Val:
  n = in_size(e) // max(1, out_size(e))  # terms per output
  if name == "reduce_sum":
    return _sum_type(x, s, n, e)
  if name == "reduce_prod":
    if not is_integer(x):
      return fout(e, s)
    return Val(ACC if x.cls == ACC else INT, min(width(x, s) * n, s.acc_bits), signed=x.signed)
  if name in ("argmax", "argmin"):
    return input_val(e.out_dtype(0), s, False, 0)
  return as_data(x)


def reduce(e, vals, settings):
  c = FREE
  s = settings
  x = vals[0]
  name = e.prim
  n = in_size(e) - out_size(e)  # n-1 ops per output element
  op = REDUCE_OPS[name]
  if n > 0:
    mul = op == "mul"
    c += cost(op, width(x, s), width(x, s) if mul else 0, n, cx=x.cls, cy=x.cls if mul else "")
  return [_reduced_type(name, x, e, s)], c


CUMULATIVE_OPS = {
  "cumsum": "add",
  "cummax": "cmp",
  "cummin": "cmp",
  "cumprod": "mul",
  "cumlogsumexp": "transc",
}


def cumulative(e, vals, settings):
  c = FREE
  s = settings
  x = vals[0]
  name = e.prim
  shape = e.in_shape(0)
  axis = e.reduce_axes[0]
  n = math.prod(shape) - math.prod(shape) // max(1, shape[axis])
  op = CUMULATIVE_OPS[name]
  two = op in ("mul", "transc")
  c += cost(op, width(x, s), width(x, s) if two else 0, n, cx=x.cls, cy=x.cls if two else "")
  if op == "transc" or (op == "mul" and not is_integer(x)):
    return [fout(e, s)], c
  if op == "mul":
    return [
      Val(ACC if x.cls == ACC else INT, min(width(x, s) * shape[axis], s.acc_bits), signed=x.signed)
    ], c
  return [_sum_type(x, s, shape[axis], e) if op == "add" else as_data(x)], c


WINDOW_OPS = {"reduce_window_sum": "add", "reduce_window_max": "cmp", "reduce_window_min": "cmp"}


def reduce_window(e, vals, settings):
  """Pooling: window−1 adds or compares per output element (padded taps as for MACs)."""
  c = FREE
  s = settings
  x = vals[0]
  g = e.window_geometry
  n_out = out_size(e)
  if s.count_padded_taps:
    taps = n_out * math.prod(g["window"])
  else:
    taps = 1
    for i, n in enumerate(g["in_shape"]):
      taps *= valid_taps(
        n,
        g["window"][i],
        g["strides"][i],
        *g["padding"][i],
        g["base_dilation"][i],
        g["window_dilation"][i],
      )
  name = e.prim
  if taps > n_out:
    c += cost(WINDOW_OPS[name], width(x, s), 0, taps - n_out, cx=x.cls)
  if name == "reduce_window_sum":  # padding adds zeros to a window's terms
    x = narrowed(as_data(x), ranges.union(rng(x), (0, 0)), s)
    return [_sum_type(x, s, math.prod(g["window"]), e)], c
  return [as_data(x)], c
