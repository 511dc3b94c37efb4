"""ACEv2 of a configured model: python -m pikelpn_jax.ace --config configs/pikelpn.py:1x
(or python -m pikelpn_jax.ace --workdir DIR: a checkpoint with the config it was trained with)

  --config FILE[:VARIANT]  a config file of configs/; without a variant the file's default
                    variant is priced and the report says so (settings.config_variant_defaulted);
                    without --config, --workdir DIR's config.json (the config DIR was trained
                    with, written by main.py) is priced, and the output says so
  --config.a.b=V    override a config field, as in main.py: --config.model.quantnorm=False
  --workdir DIR     price the latest checkpoint in DIR (refused, exit 1, if it does not match)
  --json FILE       also write the report as JSON (its directory must exist)
  --float_bits B    width of every float operand (default: config.ace.float_bits; if that is
                    unset, each float's dtype gives it: f32 32, bf16/f16 16, f8 8)
  --acc_bits B      integer accumulator width, and the cap of every integer width (default:
                    config.ace.acc_bits, else 32)
  --fold none|affine  price the graph as written (default) or after deployment folding of
                    per-channel multiply/add chains (docs/acev2.md)
  --by layer|category
Bad input exits with code 1 and one line on stderr, before any work.
"""

import json
import os
import sys

if (
  __name__ == "__main__"
):  # re-executes once under tcmalloc if installed (pikelpn_jax/allocator.py)
  from pikelpn_jax.allocator import use_tcmalloc

  use_tcmalloc()

from absl import flags, logging  # noqa: E402

from pikelpn_jax import workdir as wd
from pikelpn_jax.config_cli import (  # noqa: E402
  ConfigSpecError,
  apply_overrides,
  load_config_spec,
  split_config_args,
)

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Price the latest checkpoint of this workdir.")
flags.DEFINE_string("json", None, "Write the report as JSON to this file.")
flags.DEFINE_integer("float_bits", None, "Width of float operands (default: from the dtypes).")
flags.DEFINE_integer("acc_bits", None, "Accumulator width (default config.ace.acc_bits).")
flags.DEFINE_enum("fold", "none", ["none", "affine"], "Deployment folding of affine chains.")
flags.DEFINE_enum("by", "layer", ["layer", "category"], "Table rows: per layer or per category.")


def _ace_default(config, name: str):
  """config.ace.<name>; float_bits may be None (widths from the dtypes)."""
  ace = config.get("ace") or {}
  v = ace.get(name, None if name == "float_bits" else 32)
  return None if v is None else int(v)


def _check_paths(json_path, workdir) -> None:
  if json_path is not None:
    target = os.path.dirname(os.path.abspath(json_path))
    if not json_path or os.path.isdir(json_path):
      raise ValueError(f"--json={json_path!r} is not allowed; use a file path")
    if not os.path.isdir(target):
      raise ValueError(
        f"--json={json_path!r}: directory {target!r} does not exist; create it or use another path"
      )
    if not os.access(target, os.W_OK):
      raise ValueError(f"--json={json_path!r}: directory {target!r} is not writable")
  if workdir is not None and not wd.isdir(workdir):
    raise ValueError(f"--workdir={workdir!r} is not a directory; use a training workdir")


def parse(argv):
  """(config, spec loaded, variant defaulted, overrides applied, settings kwargs) or a one-line
  ValueError; nothing is traced or written here."""
  from pikelpn_jax.ace.values import AceSettings

  spec, overrides, rest = split_config_args(argv[1:])
  try:
    extra = FLAGS(argv[:1] + rest)
  except flags.Error as e:
    raise ValueError(str(e).splitlines()[0]) from None
  if len(extra) > 1:
    raise ValueError(f"unexpected arguments {extra[1:]}; flags only (see --help)")
  # Flag values first (cheap), so a bad number or path fails before the config is even loaded.
  for name in ("float_bits", "acc_bits"):
    v = getattr(FLAGS, name)
    if v is not None:
      AceSettings(**{name: v})
  _check_paths(FLAGS.json, FLAGS.workdir)
  if spec is None and FLAGS.workdir is not None:  # the config the checkpoint was trained with
    from pikelpn_jax.export.cli import saved_config

    config, defaulted = saved_config(FLAGS.workdir), False
    source = wd.join(FLAGS.workdir, "config.json")
  else:
    config, source, defaulted = load_config_spec(spec)
  applied = apply_overrides(config, overrides)
  kw = {
    "float_bits": FLAGS.float_bits
    if FLAGS.float_bits is not None
    else _ace_default(config, "float_bits"),
    "acc_bits": FLAGS.acc_bits if FLAGS.acc_bits is not None else _ace_default(config, "acc_bits"),
    "fold": FLAGS.fold,
  }
  AceSettings(**kw)
  return config, source, defaulted, applied, kw


def main(argv=None) -> int:
  argv = list(sys.argv if argv is None else argv)
  if any(a in ("-h", "--help", "--helpshort", "--helpfull") for a in argv[1:]):
    print(__doc__)
    return 0
  try:
    config, source, defaulted, applied, kw = parse(argv)
  except (ConfigSpecError, ValueError, FileNotFoundError) as e:
    print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
    return 1
  from pikelpn_jax.ace import acev2_report

  if FLAGS.workdir and source == wd.join(FLAGS.workdir, "config.json"):
    print(f"pricing {FLAGS.workdir} with the config it was trained with ({source})")

  logging.set_verbosity(logging.WARNING)  # orbax logs every restore at INFO
  try:
    variables = None
    if FLAGS.workdir:
      from pikelpn_jax.train.checkpoint import restore_latest

      variables = restore_latest(FLAGS.workdir, config)
    report = acev2_report(
      config, variables, config_source=source, overrides=applied, variant_defaulted=defaulted, **kw
    )
  except (ValueError, FileNotFoundError) as e:
    print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
    return 1
  if FLAGS.json:
    with open(FLAGS.json, "w") as f:
      json.dump(report.to_json(), f, indent=1)
  print(report.render(by=FLAGS.by))
  return 0


if __name__ == "__main__":
  sys.exit(main())
