"""Sensitivities as JSON (choice and global labels as keys), so a measured one is reused."""

from __future__ import annotations

import json

from pikelpn_jax.search import space as sp


def sensitivity_json(sens: dict) -> dict:
  out = {k: v for k, v in sens.items() if k not in ("layers", "globals")}
  out["layers"] = {p: {c.label(): v for c, v in d.items()} for p, d in sens["layers"].items()}
  out["globals"] = {g.label(): v for g, v in sens["globals"].items()}
  return out


def from_json(data: dict, space: sp.Space, where: str = "sensitivity") -> dict:
  """The sensitivity of every choice of `space`, read from sensitivity_json's form."""
  layers = {}
  for p in space.layers:
    have = data.get("layers", {}).get(p)
    if have is None:
      raise ValueError(f"{where} has no layer {p!r}; it has {sorted(data.get('layers', {}))}")
    layers[p] = {}
    for c in space.choices(p):
      if c.label() not in have:
        raise ValueError(f"{where}: layer {p!r} has no choice {c.label()!r}")
      layers[p][c] = float(have[c.label()])
  glob = {g: float(data.get("globals", {}).get(g.label(), 0.0)) for g in space.globals}
  return dict(data, layers=layers, globals=glob)


def load_sensitivity(path: str, space: sp.Space) -> dict:
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f"--sensitivity={path!r} cannot be read as JSON: {e}") from None
  return from_json(data, space, f"--sensitivity={path!r}")
