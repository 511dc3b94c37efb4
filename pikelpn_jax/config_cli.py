"""Command lines of every CLI (main.py, python -m pikelpn_jax.export, python -m pikelpn_jax.ace,
python -m pikelpn_jax.search), with one-line errors: `error: <the bad value>: <what is wrong>;
<what is allowed>` on stderr, exit code 1, before any JAX work and before anything is written.
Every error is a ConfigSpecError (a ValueError) whose message is that one line.

A config is given as `--config configs/x.py[:variant]` plus `--config.a.b=value` overrides. This
module is the one override parser: every CLI (and experiments/lib/eval_swap.py's --set) turns
override text into values here, typed as the field is (parse_override), or, where no field type
is known, read as a literal (parse_value). The ace and search CLIs call it directly and record
what they loaded (the report's settings: config source, overrides, variant defaulted):

    spec, overrides, rest = split_config_args(sys.argv[1:])
    config, source, defaulted = load_config_spec(spec)
    applied = apply_overrides(config, overrides)

main.py and the export CLI declare --config with ml_collections' `config_flags.DEFINE_config_file`
(it loads and locks the config; main.py reads its file name) and parse their flags with

    app.run(main, flags_parser=parse_flags)

which checks the spec and the override names, lets absl parse the other flags and load the
config, then applies the overrides with apply_overrides (ml_collections' own override parsing
only sees an override that indexes into a tuple, `--config.a[0]=...`), and turns what absl or
ml_collections still raise (unknown flag, missing required flag, a stray argument) into one line.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import inspect
import json
import os
import re
import sys
from typing import List, Optional, Sequence, Tuple

import ml_collections
from absl import flags

from pikelpn_jax.config_base import find_config_file, load_config

FLAGS = flags.FLAGS
_TRUE, _FALSE = ("true", "t", "1", "yes"), ("false", "f", "0", "no")


class ConfigSpecError(ValueError):
  """A bad command line: config spec, override or flag (one-line message)."""


# ----------------------------------------------------------------------------- config specs


def split_config_args(
  args: Sequence[str], flag: str = "config"
) -> Tuple[Optional[str], List[Tuple[str, Optional[str]]], List[str]]:
  """(spec, [(dotted field, value or None)], the other args) of a command line (argv[1:]).

  Accepts absl's spellings: --config X, --config=X, -config X; --config.a.b=V, --config.a.b V,
  --config.a.b (a bool set to true), --noconfig.a.b (set to false)."""
  spec, overrides, rest = None, [], []
  args = list(args)
  i = 0
  while i < len(args):
    a = args[i]
    m = re.match(rf"^--?(no)?{re.escape(flag)}(\.[^=]+)?(=(.*))?$", a, re.S)
    if m is None or (m.group(1) and not m.group(2)):
      rest.append(a)
    elif not m.group(2):  # the spec
      if m.group(3) is None:
        if i + 1 >= len(args):
          raise ConfigSpecError(f"--{flag} needs a value: '--{flag} configs/<name>.py:<variant>'")
        spec, i = args[i + 1], i + 1
      else:
        spec = m.group(4)
    else:  # an override
      name, value = m.group(2)[1:], m.group(4)
      if m.group(1):
        value = "false"
      elif value is None and i + 1 < len(args) and not args[i + 1].startswith("-"):
        value, i = args[i + 1], i + 1
      overrides.append((name, value))
    i += 1
  return spec, overrides, rest


def _config_file(path: str, spec: str, what: str) -> str:
  """The file a spec's path names, as load_config finds it; a ConfigSpecError if none."""
  try:
    return find_config_file(path, spec, what)
  except FileNotFoundError as e:
    raise ConfigSpecError(str(e)) from None


def default_variant(path: str, what: str = "config") -> Optional[str]:
  """The default of get_config's first argument in a config file (None if it has none; '' if
  get_config takes no argument: the file has one config and no variants)."""
  found = _config_file(path, path, what)
  spec = importlib.util.spec_from_file_location("_pikelpn_cfg_default", found)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:  # noqa: BLE001 - a config file that does not import is bad input
    raise ConfigSpecError(
      f"{what}={path!r} does not import: {type(e).__name__}: "
      f"{str(e).splitlines()[0] if str(e) else ''}"
    ) from e
  params = list(inspect.signature(getattr(module, "get_config", lambda: None)).parameters.values())
  if not params:
    return ""
  if params[0].default is inspect.Parameter.empty:
    return None
  return str(params[0].default)


def load_config_spec(
  spec: Optional[str], what: str = "config"
) -> Tuple[ml_collections.ConfigDict, str, bool]:
  """(config, 'path:variant' actually loaded, whether the variant was the file's default).

  A spec without ':variant' loads the file's documented default variant (get_config's default)
  and says so through the returned flag."""
  if not spec:
    raise ConfigSpecError(
      f"--{what.lstrip('-')} is required: '--{what.lstrip('-')} configs/<name>.py:<variant>'"
    )
  path, colon, variant = spec.partition(":")
  defaulted = not variant
  if defaulted:
    variant = default_variant(path, what)
    if variant is None:
      raise ConfigSpecError(
        f"{what}={spec!r} names no variant and {path} has no default one; use '{path}:<variant>'"
      )
  loaded = f"{path}:{variant}" if variant else path
  try:
    config = load_config(loaded, what)
  except (ValueError, FileNotFoundError, TypeError, KeyError) as e:
    raise ConfigSpecError(str(e).splitlines()[0] if str(e) else f"{what}={spec!r}") from e
  return config, loaded, defaulted and bool(variant)


# ----------------------------------------------------------------------------- overrides


def config_field(config: ml_collections.ConfigDict, name: str):
  """(the ConfigDict holding dotted field `name`, its key); the field must exist."""
  node, parts = config, name.split(".")
  for i, key in enumerate(parts):
    if not isinstance(node, ml_collections.ConfigDict) or key not in node:
      where = ".".join(parts[:i]) or "the config"
      allowed = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
      raise ConfigSpecError(f"--config.{name}: {where} has no field {key!r}; fields: {allowed}")
    if i < len(parts) - 1:
      node = node[key]
  return node, parts[-1]


NONE_WORDS = ("None", "none_value")


def parse_value(raw: str):
  """Override text where no field type says how to read it: None (for 'None' or 'none_value'),
  else a Python literal (True, 16, 0.5, (1, 2), 'x'), else a number Python's int()/float() read
  (inf, 1_000), else the text itself (ceil, none)."""
  if raw in NONE_WORDS:
    return None
  try:
    return ast.literal_eval(raw)
  except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
    pass
  for cast in (int, float):
    try:
      return cast(raw)
    except ValueError:
      pass
  return raw


def parse_override(name: str, raw: Optional[str], kind: type, current=None):
  """The value of override `--config.<name>=<raw>` for a field of type `kind` (its current value
  `current`); raw None: the flag was given without a value (a bool's spelling for true)."""
  if kind is bool:
    if raw is None or raw.lower() in _TRUE:
      return True
    if raw.lower() in _FALSE:
      return False
    raise ConfigSpecError(
      f"--config.{name}={raw!r} is not allowed; config.{name} is a bool: use true or false"
    )
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
      v = literal_or_json(raw)
      if not isinstance(v, (tuple, list)):
        raise ValueError
      return kind(v)
    if current is None:
      return parse_value(raw)
  except (ValueError, SyntaxError):
    raise ConfigSpecError(
      f"--config.{name}={raw!r} is not allowed; use a {kind.__name__}"
    ) from None
  raise ConfigSpecError(
    f"--config.{name} has type {kind.__name__}: it cannot be set from the command line"
  )


def _tuples(v):
  """JSON arrays as tuples, all the way down (the configs' rules are tuples of pairs)."""
  if isinstance(v, list):
    return tuple(_tuples(x) for x in v)
  if isinstance(v, dict):
    return {k: _tuples(x) for k, x in v.items()}
  return v


def literal_or_json(raw: str):
  """A Python literal, or else JSON (true/false/null; arrays become tuples): a field such as
  config.model.bit_rules takes the JSON that `python -m pikelpn_jax.search` writes."""
  try:
    return ast.literal_eval(raw)
  except (ValueError, SyntaxError):
    try:
      return _tuples(json.loads(raw))
    except ValueError:
      raise ValueError(f"{raw!r} is neither a Python literal nor JSON") from None


def json_overrides_as_literals(argv: Sequence[str]) -> List[str]:
  """argv with each `--config.x=<JSON array or object>` that is not a Python literal rewritten as
  the equal Python literal, which ml_collections' tuple parser reads (ast.literal_eval)."""
  out = []
  for a in argv:
    m = re.match(r"^(--?config\.[^=]+=)([\[{].*)$", a, re.S)
    if m:
      try:
        ast.literal_eval(m.group(2))
      except (ValueError, SyntaxError):
        with contextlib.suppress(ValueError):  # neither: ml_collections' error names it
          a = m.group(1) + repr(_tuples(json.loads(m.group(2))))
    out.append(a)
  return out


def apply_overrides(
  config: ml_collections.ConfigDict, overrides: Sequence[Tuple[str, Optional[str]]]
) -> List[str]:
  """Sets each dotted field (it must exist) from its string value, typed as the field is;
  returns the overrides as 'field=value' strings."""
  applied = []
  for name, raw in overrides:
    node, key = config_field(config, name)
    current = node[key]
    if isinstance(current, ml_collections.ConfigDict):
      raise ConfigSpecError(
        f"--config.{name} is a group of fields; set one of {sorted(current.keys())}"
      )
    value = parse_override(name, raw, node.get_type(key), current)
    try:
      setattr(node, key, value)
    except (TypeError, ValueError) as e:
      raise ConfigSpecError(
        f"--config.{name}={raw!r} is not allowed: {str(e).splitlines()[0]}"
      ) from None
    applied.append(f"{name}={value!r}" if raw is not None else f"{name}=True")
  return applied


# ----------------------------------------------------------------------------- absl flags_parser


def fail(message: str, code: int = 1):
  """Prints `error: <first line of message>` on stderr and exits with `code`."""
  line = str(message).strip().splitlines()[0] if str(message).strip() else "bad input"
  print(f"error: {line}", file=sys.stderr)
  sys.exit(code)


def _program_flags() -> List[str]:
  """The flags this program defines (absl's and ml_collections' own left out)."""
  names = set()
  for module, fl in FLAGS.flags_by_module_dict().items():
    if not module.startswith(("absl", "ml_collections")):
      names.update(f.name for f in fl if "." not in f.name)
  return sorted(names)


def _explain(e: Exception, overrides, config) -> str:
  """absl's and ml_collections' parse errors, as one line naming the value and what is allowed."""
  msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
  m = re.search(r"Unknown command line flag '([^']+)'", msg)
  if m:
    return f"--{m.group(1)} is not a flag of this program; flags: {_program_flags()}"
  m = re.search(r"Flag --(\w+) must have a value other than None", msg)
  if m:
    return f"--{m.group(1)} is required; flags: {_program_flags()}"
  for path, value in overrides:
    if config is not None and f"--config.{path}" in msg:
      node, key = config_field(config, path)
      cur = node[key]
      return (
        f"--config.{path}={value!r} is not allowed: {msg.split(': ', 1)[-1]}; "
        f"config.{path} has type {type(cur).__name__} (now {cur!r})"
      )
  m = re.match(r"flag --(\w+)=(.*?): (.*)$", msg)
  if m and m.group(1) in FLAGS:
    name, value, reason = m.groups()
    return (
      f"--{name}={value!r} is not allowed: {reason}; --{name} takes "
      f"{FLAGS[name].flag_type()} values"
    )
  return msg


def _indexed(path: str) -> bool:
  """An override that indexes into a tuple (`a[0].b`): ml_collections' parser handles it."""
  return "[" in path


def parse_flags(argv: Sequence[str]) -> List[str]:
  """absl's flag parsing (app.run's flags_parser) with one-line errors; no positional args.

  When the program defines ml_collections' --config, its spec is loaded once more here
  (load_config_spec) and each override is checked to name a field (config_field); absl parses the
  other flags and ml_collections loads the config, then apply_overrides sets the overrides on it
  (the parser the other CLIs use)."""
  argv = list(argv)
  config, overrides, spec = None, [], None
  try:
    if "config" in FLAGS:
      spec, overrides, rest = split_config_args(argv[1:])
      if spec is None and overrides:
        raise ConfigSpecError(
          f"--config.{overrides[0][0]} overrides a field of --config, which is not given: "
          "'--config configs/<name>.py:<variant>'"
        )
      if spec is not None:
        config = load_config_spec(spec, what="--config")[0]
        for path, _ in overrides:
          if not _indexed(path):
            config_field(config, path)
        argv = [argv[0], f"--config={spec}", *rest]
        argv += [
          f"--config.{p}" + ("" if v is None else f"={v}") for p, v in overrides if _indexed(p)
        ]
    argv = json_overrides_as_literals(argv)
    # ml_collections finds the overrides it applies in sys.argv, not in FLAGS' argument
    saved, sys.argv = sys.argv, argv
    try:
      rest = FLAGS(argv)
    finally:
      sys.argv = saved
    if len(rest) > 1:
      raise ConfigSpecError(
        f"unexpected arguments {rest[1:]}; every input is a --flag, flags: {_program_flags()}"
      )
    if config is not None:
      if not isinstance(FLAGS["config"].value, ml_collections.ConfigDict):
        # ml_collections reads the path from the cwd only; load_config also from the repo root.
        raise ConfigSpecError(
          f"--config={spec!r}: ml_collections could not load this file from "
          f"{os.getcwd()!r}; give its path from there"
        )
      apply_overrides(FLAGS["config"].value, [(p, v) for p, v in overrides if not _indexed(p)])
  except ConfigSpecError as e:
    fail(str(e))
  except Exception as e:  # noqa: BLE001  (whatever the parsers raise becomes one line)
    fail(_explain(e, overrides, config))
  return rest
