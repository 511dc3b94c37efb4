"""ACEv2 of a configured model: python -m pikelpn_jax.ace --config configs/pikelpn.py:1x

  --workdir DIR     price the latest checkpoint in DIR (refused, exit 1, if it does not match)
  --json FILE       also write the report as JSON
  --float_bits B    width of float operands (default: config.ace.float_bits, else 32)
  --acc_bits B      integer accumulator width (default: config.ace.acc_bits, else 32)
  --by layer|category
Config fields can be overridden as in main.py: --config.model.quantnorm=False.
Bad input exits with code 1 and one line on stderr.
"""
import json
import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file 'configs/x.py:variant'.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Price the latest checkpoint of this workdir.")
flags.DEFINE_string("json", None, "Write the report as JSON to this file.")
flags.DEFINE_integer("float_bits", None, "Width of float operands (default config.ace.float_bits).")
flags.DEFINE_integer("acc_bits", None, "Accumulator width (default config.ace.acc_bits).")
flags.DEFINE_enum("by", "layer", ["layer", "category"], "Table rows: per layer or per category.")
flags.mark_flags_as_required(["config"])


def _ace_default(config, name: str) -> int:
  ace = config.get("ace") or {}
  return int(ace.get(name, 32))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  from pikelpn_jax.ace import acev2_report
  logging.set_verbosity(logging.WARNING)   # orbax logs every restore at INFO
  config = FLAGS.config
  float_bits, acc_bits = FLAGS.float_bits, FLAGS.acc_bits
  if float_bits is None:
    float_bits = _ace_default(config, "float_bits")
  if acc_bits is None:
    acc_bits = _ace_default(config, "acc_bits")
  try:
    variables = None
    if FLAGS.workdir:
      from pikelpn_jax.train.checkpoint import restore_latest
      variables = restore_latest(FLAGS.workdir, config)
    report = acev2_report(config, variables, float_bits=float_bits, acc_bits=acc_bits)
  except (ValueError, FileNotFoundError) as e:
    print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
    sys.exit(1)
  print(report.render(by=FLAGS.by))
  if FLAGS.json:
    with open(FLAGS.json, "w") as f:
      json.dump(report.to_json(), f, indent=1)
  if report.unaccounted:
    print(f"error: unaccounted primitives: {list(report.unaccounted)}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
