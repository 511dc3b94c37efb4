"""Per-element grids (scales) and integer bounds of lowered values, as small NumPy arrays.

A lowered value holds integers T whose real value is T·S. S (the grid) and the bounds [lo, hi] of
T are float64 arrays of the value's rank, compacted: an axis along which they do not vary has
size 1 (so a per-tensor scale is all ones-shaped, a per-channel scale varies on the last axis).
Layout ops move S and the bounds exactly as they move the values.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np


def compact(a, ndim: Optional[int] = None) -> np.ndarray:
  """`a` as float64 with size-1 axes wherever it is constant along the axis."""
  a = np.asarray(a, np.float64)
  if ndim is not None and a.ndim < ndim:
    a = a.reshape((1,) * (ndim - a.ndim) + a.shape)
  for axis in range(a.ndim):
    if a.shape[axis] > 1:
      first = np.take(a, [0], axis=axis)
      if np.all(a == first):
        a = first
  return a


def uniform(a) -> Optional[float]:
  """The single value of `a`, or None when it varies."""
  a = np.asarray(a)
  flat = a.reshape(-1)
  return float(flat[0]) if flat.size and np.all(flat == flat[0]) else None


def full(a, shape: Sequence[int]) -> np.ndarray:
  return np.broadcast_to(np.asarray(a, np.float64), tuple(shape))


def pow2_exponent(a) -> Optional[np.ndarray]:
  """Integer e with a == 2^e exactly (elementwise), or None if some element is not a power of 2."""
  a = np.asarray(a, np.float64)
  if np.any(a <= 0) or not np.all(np.isfinite(a)):
    return None
  mant, exp = np.frexp(a)
  if not np.all(mant == 0.5):
    return None
  return (exp - 1).astype(np.int64)


def is_integer_valued(a) -> bool:
  a = np.asarray(a, np.float64)
  return bool(np.all(np.isfinite(a)) and np.all(a == np.round(a)))


def bits_for(lo: float, hi: float) -> Tuple[int, bool]:
  """(bits, signed) of the narrowest two's-complement (or unsigned) integer holding [lo, hi]."""
  lo, hi = int(np.floor(lo)), int(np.ceil(hi))
  if lo >= 0:
    return max(1, hi.bit_length()), False
  return max(hi.bit_length(), (-lo - 1).bit_length()) + 1, True


def layout(
  prim: str, params: dict, a: np.ndarray, in_shape: Sequence[int], out_shape: Sequence[int]
) -> np.ndarray:
  """Applies layout primitive `prim` to a compact per-element array (grid or bound)."""
  a = np.asarray(a, np.float64)
  if prim in ("copy", "convert_element_type"):
    return a
  if uniform(a) is not None:
    return np.full((1,) * len(out_shape), uniform(a))
  if prim == "reshape":
    return compact(full(a, in_shape).reshape(out_shape))
  if prim == "broadcast_in_dim":
    target = [1] * len(out_shape)
    for i, d in enumerate(params["broadcast_dimensions"]):
      target[d] = a.shape[i]
    return compact(a.reshape(target))
  if prim == "squeeze":
    return np.squeeze(a, axis=tuple(params["dimensions"]))
  if prim == "expand_dims":
    return np.expand_dims(a, tuple(params["dimensions"]))
  if prim == "transpose":
    return np.transpose(a, tuple(params["permutation"]))
  if prim == "rev":
    return np.flip(a, axis=tuple(d for d in params["dimensions"] if a.shape[d] > 1))
  if prim == "slice":
    strides = params.get("strides") or (1,) * a.ndim
    idx = tuple(
      slice(None) if a.shape[d] == 1 else slice(s, l, st)
      for d, (s, l, st) in enumerate(zip(params["start_indices"], params["limit_indices"], strides))
    )
    return compact(a[idx])
  if prim == "pad":
    cfg = params["padding_config"]
    if any(a.shape[d] > 1 and c[2] for d, c in enumerate(cfg)):
      raise ValueError("interior padding of a value with a varying grid is not supported")
    widths = [
      (0, 0) if a.shape[d] == 1 else (max(c[0], 0), max(c[1], 0)) for d, c in enumerate(cfg)
    ]
    out = np.pad(a, widths, mode="edge")
    idx = tuple(
      slice(None) if a.shape[d] == 1 else slice(-min(c[0], 0), out.shape[d] + min(c[1], 0))
      for d, c in enumerate(cfg)
    )
    return compact(out[idx])
  raise ValueError(f"layout prim={prim!r} has no grid rule")
