"""python -m pikelpn_jax.export --workdir DIR --out FILE (the work is in cli.py).

The absl flags are defined here, in the entry point, not in cli.py: a library module that defines
global flags collides with every other CLI imported into the same process (tests, notebooks).
"""

if (
  __name__ == "__main__"
):  # re-executes once under tcmalloc if installed (pikelpn_jax/allocator.py)
  from pikelpn_jax.allocator import use_tcmalloc

  use_tcmalloc()

import sys  # noqa: E402

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from pikelpn_jax.config_cli import parse_flags  # noqa: E402
from pikelpn_jax.export.cli import check_flags, run, saved_config, summary  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
  "config", None, "Override the workdir's config: 'configs/x.py:v'.", lock_config=True
)
flags.DEFINE_string("workdir", None, "Training workdir holding checkpoints/ and config.json.")
flags.DEFINE_string(
  "out", None, "File to write: standard ONNX if it ends in .onnx, else the integer model file."
)
flags.DEFINE_integer("probe_examples", 16, "Test images used to check every op while lowering.")
flags.DEFINE_bool(
  "eval",
  False,
  "Compare with the fake-quant model on the whole test set and "
  "run the ACEv2 analyzer on both forwards; for .onnx, run onnxruntime on the test set "
  "against the integer forward.",
)
flags.DEFINE_integer("eval_examples", -1, "Limit of --eval examples (-1: all).")


def main(argv):
  del argv  # config_cli.parse_flags refuses positional arguments
  from pikelpn_jax.export.format import FormatError
  from pikelpn_jax.export.values import ExportError

  logging.set_verbosity(logging.WARNING)  # orbax logs every restore at INFO
  try:
    check_flags(FLAGS.workdir, FLAGS.out, FLAGS.probe_examples, FLAGS.eval_examples)
    config = FLAGS.config if FLAGS.config is not None else saved_config(FLAGS.workdir)
    report = run(
      config, FLAGS.workdir, FLAGS.out, FLAGS.probe_examples, FLAGS.eval, FLAGS.eval_examples
    )
  except (ExportError, FormatError, ValueError, FileNotFoundError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  print(summary(report))


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
