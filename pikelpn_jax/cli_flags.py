"""Flag parsing of the command-line tools, with one-line errors (main.py, export, ace).

  app.run(main, flags_parser=cli_flags.parse_flags)

absl and ml_collections report a bad flag with a traceback or a usage page; a user of this project
gets one line instead: `error: <the bad value>: <what is wrong>; <what is allowed>` on stderr, exit
code 1, before any JAX work and before anything is written. Covered: a config file that does not
exist, a variant the file does not define, an override of a field the config does not have or with
a value of the wrong type, an unknown flag, a missing required flag and a stray argument.

The config flags themselves stay ml_collections' (`config_flags.DEFINE_config_file`, overrides
`--config.a.b=v`): the config is loaded once more here, by config_base.load_config, only to
check the spec and the override names before absl parses them.
"""
from __future__ import annotations

import os
import re
import sys
from typing import List, Sequence

import ml_collections
from absl import flags

from pikelpn_jax.config_base import load_config

FLAGS = flags.FLAGS


class FlagError(ValueError):
  """A bad command line; its message is the one line the user sees."""


def fail(message: str, code: int = 1):
  """Prints `error: <first line of message>` on stderr and exits with `code`."""
  line = str(message).strip().splitlines()[0] if str(message).strip() else "bad input"
  print(f"error: {line}", file=sys.stderr)
  sys.exit(code)


def config_spec(argv: Sequence[str], name: str = "config"):
  """The value of --<name> in argv ('--config=x' or '--config x'), or None."""
  for i, arg in enumerate(argv):
    m = re.match(rf"^-{{1,2}}{re.escape(name)}(=|$)", arg)
    if m:
      if m.group(1):
        return arg.split("=", 1)[1]
      return argv[i + 1] if i + 1 < len(argv) else None
  return None


def overrides(argv: Sequence[str], name: str = "config"):
  """[(field path, value or None)] of the --<name>.a.b[=v] / --no<name>.a.b flags in argv."""
  out = []
  for i, arg in enumerate(argv):
    m = re.match(rf"^-{{1,2}}(no)?{re.escape(name)}\.([^=]+)(=(.*))?$", arg, re.S)
    if not m:
      continue
    value = m.group(4)
    if value is None and not m.group(1) and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
      value = argv[i + 1]
    out.append((m.group(2), value))
  return out


def field(config, path: str, name: str = "config"):
  """config's value at 'a.b.c'; FlagError naming the flag and the fields allowed there."""
  node, walked = config, name
  for part in path.split("."):
    if not isinstance(node, (ml_collections.ConfigDict, dict)) or part not in node:
      allowed = sorted(node.keys()) if isinstance(node, (ml_collections.ConfigDict, dict)) else []
      where = f"{walked} has no field {part!r}" if allowed else f"{walked} is not a ConfigDict"
      raise FlagError(f"--{name}.{path}: {where}; fields of {walked}: {allowed}")
    node, walked = node[part], f"{walked}.{part}"
  return node


def check_config_flag(argv: Sequence[str], name: str = "config"):
  """Loads --<name>'s config file and checks each override names a field; returns the config."""
  spec = config_spec(argv, name)
  if spec is None:
    return None
  try:
    config = load_config(spec, what=f"--{name}")
  except (FileNotFoundError, ValueError) as e:
    raise FlagError(str(e)) from None
  for path, _ in overrides(argv, name):
    if "[" not in path:   # indexing into a tuple is left to ml_collections
      field(config, path, name)
  return config


def _program_flags() -> List[str]:
  """The flags this program defines (absl's and ml_collections' own left out)."""
  names = set()
  for module, fl in FLAGS.flags_by_module_dict().items():
    if not module.startswith(("absl", "ml_collections")):
      names.update(f.name for f in fl if "." not in f.name)
  return sorted(names)


def _explain(e: Exception, argv: Sequence[str], configs: dict) -> str:
  """absl's and ml_collections' parse errors, as one line naming the value and what is allowed."""
  msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
  m = re.search(r"Unknown command line flag '([^']+)'", msg)
  if m:
    return f"--{m.group(1)} is not a flag of this program; flags: {_program_flags()}"
  m = re.search(r"Flag --(\w+) must have a value other than None", msg)
  if m:
    return f"--{m.group(1)} is required; flags: {_program_flags()}"
  for name, config in configs.items():
    for path, value in overrides(argv, name):
      if config is not None and f"--{name}.{path}" in msg:
        cur = field(config, path, name)
        return (f"--{name}.{path}={value!r} is not allowed: {msg.split(': ', 1)[-1]}; "
                f"{name}.{path} has type {type(cur).__name__} (now {cur!r})")
  m = re.match(r"flag --(\w+)=(.*?): (.*)$", msg)
  if m and m.group(1) in FLAGS:
    name, value, reason = m.groups()
    return (f"--{name}={value!r} is not allowed: {reason}; --{name} takes "
            f"{FLAGS[name].flag_type()} values")
  return msg


def parse_flags(argv: Sequence[str], config_flags: Sequence[str] = ("config",)) -> List[str]:
  """absl's flag parsing (app.run's flags_parser) with one-line errors; no positional args."""
  argv = list(argv)
  configs = {}
  try:
    for name in config_flags:
      if name in FLAGS:
        configs[name] = check_config_flag(argv, name)
    rest = FLAGS(argv)
    if len(rest) > 1:
      raise FlagError(f"unexpected arguments {rest[1:]}; every input is a --flag, "
                      f"flags: {_program_flags()}")
    for name, config in configs.items():
      if config is not None and not isinstance(FLAGS[name].value, ml_collections.ConfigDict):
        # ml_collections reads the path from the cwd only; load_config also from the repo root.
        raise FlagError(f"--{name}={config_spec(argv, name)!r}: ml_collections could not load "
                        f"this file from {os.getcwd()!r}; give its path from there")
  except FlagError as e:
    fail(str(e))
  except Exception as e:    # noqa: BLE001  (whatever the parsers raise becomes one line)
    fail(_explain(e, argv, configs))
  return rest
