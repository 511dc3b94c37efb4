"""Config files ('configs/x.py:variant') and the JSON form of a resolved config."""
from __future__ import annotations

import importlib.util
import json
import os
from typing import Any

import ml_collections

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_config_file(spec: str, what: str = "config") -> ml_collections.ConfigDict:
  """'path/to/file.py:variant' -> get_config(variant); the path is tried from the cwd, then the repo."""
  path, _, variant = spec.partition(":")
  candidates = [path, os.path.join(REPO_ROOT, path)]
  found = next((p for p in candidates if os.path.isfile(p)), None)
  if found is None or not path.endswith(".py"):
    raise FileNotFoundError(f"{what}={spec!r}: no config file {path!r}; use 'configs/<name>.py:<variant>'")
  module_spec = importlib.util.spec_from_file_location(
      f"_pikelpn_cfg_{abs(hash(os.path.abspath(found)))}", found)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"{what}={spec!r}: {found} has no get_config()")
  return module.get_config(variant) if variant else module.get_config()


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
