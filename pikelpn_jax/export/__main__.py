"""python -m pikelpn_jax.export --workdir DIR --out FILE (see cli.py)."""
from absl import app

from pikelpn_jax.cli_flags import parse_flags
from pikelpn_jax.export.cli import main

if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
