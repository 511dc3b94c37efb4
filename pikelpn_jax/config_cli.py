"""Config specs on a command line, with one-line errors: `--config configs/x.py:variant` plus
`--config.a.b=value` overrides, parsed without ml_collections' config_flags (whose errors are
tracebacks). Shared by the command-line tools; every error is a ConfigSpecError (a ValueError)
whose message is one line naming the bad value and what is allowed.

    spec, overrides, rest = split_config_args(sys.argv[1:])
    config, source, defaulted = load_config_spec(spec)
    applied = apply_overrides(config, overrides)
"""
from __future__ import annotations

import ast
import importlib.util
import inspect
import os
from typing import List, Optional, Sequence, Tuple

import ml_collections

from pikelpn_jax.config_base import REPO_ROOT, load_config

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


class ConfigSpecError(ValueError):
  """A bad --config spec or override (one-line message)."""


def split_config_args(args: Sequence[str], flag: str = "config"
                      ) -> Tuple[Optional[str], List[Tuple[str, Optional[str]]], List[str]]:
  """(spec, [(dotted field, value or None)], the other args) of a command line (argv[1:])."""
  spec, overrides, rest = None, [], []
  args = list(args)
  i = 0
  while i < len(args):
    a = args[i]
    if a in (f"--{flag}", f"-{flag}"):
      if i + 1 >= len(args):
        raise ConfigSpecError(f"--{flag} needs a value: '--{flag} configs/<name>.py:<variant>'")
      spec, i = args[i + 1], i + 2
      continue
    if a.startswith(f"--{flag}="):
      spec = a.split("=", 1)[1]
    elif a.startswith(f"--{flag}."):
      name, eq, value = a[len(flag) + 3:].partition("=")
      overrides.append((name, value if eq else None))
    else:
      rest.append(a)
    i += 1
  return spec, overrides, rest


def default_variant(path: str) -> Optional[str]:
  """The default of get_config's first argument in a config file (None if it has none)."""
  found = next((p for p in (path, os.path.join(REPO_ROOT, path)) if os.path.isfile(p)), None)
  if found is None or not path.endswith(".py"):
    raise ConfigSpecError(f"config={path!r}: no config file {path!r}; use "
                          "'configs/<name>.py:<variant>'")
  spec = importlib.util.spec_from_file_location("_pikelpn_cfg_default", found)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:  # noqa: BLE001 - a config file that does not import is bad input
    raise ConfigSpecError(f"config={path!r} does not import: {type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}") from e
  params = list(inspect.signature(getattr(module, "get_config", lambda: None)).parameters.values())
  if not params or params[0].default is inspect.Parameter.empty:
    return None
  return str(params[0].default)


def load_config_spec(spec: Optional[str], what: str = "config"
                     ) -> Tuple[ml_collections.ConfigDict, str, bool]:
  """(config, 'path:variant' actually loaded, whether the variant was the file's default).

  A spec without ':variant' loads the file's documented default variant (get_config's default)
  and says so through the returned flag."""
  if not spec:
    raise ConfigSpecError(f"--{what} is required: '--{what} configs/<name>.py:<variant>'")
  path, colon, variant = spec.partition(":")
  defaulted = not variant
  if defaulted:
    variant = default_variant(path)
    if variant is None:
      raise ConfigSpecError(f"{what}={spec!r} names no variant and {path} has no default one; "
                            f"use '{path}:<variant>'")
  try:
    config = load_config(f"{path}:{variant}", what)
  except (ValueError, FileNotFoundError, TypeError, KeyError) as e:
    raise ConfigSpecError(str(e).splitlines()[0] if str(e) else f"{what}={spec!r}") from e
  return config, f"{path}:{variant}", defaulted


def _parse(name: str, raw: Optional[str], kind: type, current):
  if kind is bool:
    if raw is None or raw.lower() in _TRUE:
      return True
    if raw.lower() in _FALSE:
      return False
    raise ConfigSpecError(f"--config.{name}={raw!r} is not allowed; use true or false")
  if raw is None:
    raise ConfigSpecError(f"--config.{name} needs a value: '--config.{name}=<value>'")
  try:
    if kind is int:
      return int(raw)
    if kind is float:
      return float(raw)
    if kind is str:
      return raw
    if kind in (tuple, list):
      v = ast.literal_eval(raw)
      if not isinstance(v, (tuple, list)):
        raise ValueError
      return kind(v)
    if current is None:
      try:
        return ast.literal_eval(raw)
      except (ValueError, SyntaxError):
        return raw
  except (ValueError, SyntaxError):
    raise ConfigSpecError(f"--config.{name}={raw!r} is not allowed; use a {kind.__name__}") \
        from None
  raise ConfigSpecError(f"--config.{name} has type {kind.__name__}: it cannot be set from the "
                        "command line")


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Sequence[Tuple[str, Optional[str]]]) -> List[str]:
  """Sets each dotted field (it must exist) from its string value, typed as the field is;
  returns the overrides as 'field=value' strings."""
  applied = []
  for name, raw in overrides:
    node, parts = config, name.split(".")
    for i, key in enumerate(parts):
      if not isinstance(node, ml_collections.ConfigDict) or key not in node:
        where = ".".join(parts[:i]) or "the config"
        allowed = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
        raise ConfigSpecError(f"--config.{name}: {where} has no field {key!r}; fields: "
                              f"{allowed}")
      if i < len(parts) - 1:
        node = node[key]
    key = parts[-1]
    current = node[key]
    if isinstance(current, ml_collections.ConfigDict):
      raise ConfigSpecError(f"--config.{name} is a group of fields; set one of "
                            f"{sorted(current.keys())}")
    value = _parse(name, raw, node.get_type(key), current)
    try:
      setattr(node, key, value)
    except (TypeError, ValueError) as e:
      raise ConfigSpecError(f"--config.{name}={raw!r} is not allowed: "
                            f"{str(e).splitlines()[0]}") from None
    applied.append(f"{name}={value!r}" if raw is not None else f"{name}=True")
  return applied
