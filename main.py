"""Trains and evaluates a model: python main.py --config configs/x.py:variant --workdir DIR.

Kept short on purpose (flax examples/imagenet style); the logic is in pikelpn_jax/train/ and data/.
"""

import sys

if __name__ == "__main__":  # first, before JAX loads: re-executes once under tcmalloc if installed
  from pikelpn_jax.allocator import use_tcmalloc

  use_tcmalloc()

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from pikelpn_jax.config_cli import parse_flags  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
  "config", None, "Config file 'configs/x.py:variant'.", lock_config=True
)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.json.")
flags.DEFINE_bool(
  "distributed", False, "Multi-host: jax.distributed.initialize() with auto-detection."
)
flags.DEFINE_string("coordinator_address", None, "Multi-host: host:port of process 0.")
flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-host: this process's id.")
flags.DEFINE_integer(
  "heartbeat_timeout_s",
  100,
  "Multi-host: a process silent this long counts as dead; the others then exit with an error.",
)
flags.DEFINE_integer(
  "shutdown_timeout_s", 300, "Multi-host: how long a finished process waits for the others."
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv  # parse_flags refuses positional arguments
  from pikelpn_jax.train.cli import run

  sys.exit(
    run(
      FLAGS.config,
      FLAGS.workdir,
      config_flags.get_config_filename(FLAGS["config"]),
      distributed=FLAGS.distributed,
      coordinator_address=FLAGS.coordinator_address,
      num_processes=FLAGS.num_processes,
      process_id=FLAGS.process_id,
      heartbeat_timeout_s=FLAGS.heartbeat_timeout_s,
      shutdown_timeout_s=FLAGS.shutdown_timeout_s,
    )
  )


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
