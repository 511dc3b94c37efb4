"""The JSON form of a resolved config (config files are loaded by config_base.load_config)."""

from __future__ import annotations

import json
from typing import Any

import ml_collections


def _jsonable(v: Any) -> Any:
  if isinstance(v, ml_collections.ConfigDict):
    v = v.to_dict()
  if isinstance(v, dict):
    return {str(k): _jsonable(x) for k, x in v.items()}
  if isinstance(v, (list, tuple)):
    return [_jsonable(x) for x in v]
  if isinstance(v, (str, int, float, bool)) or v is None:
    return v
  return repr(v)


def config_to_dict(config) -> dict:
  """The resolved config as plain JSON types (tuples become lists)."""
  return _jsonable(config)


def config_to_json(config) -> str:
  return json.dumps(config_to_dict(config), indent=2, sort_keys=True)
