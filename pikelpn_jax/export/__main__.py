"""python -m pikelpn_jax.export --workdir DIR --out FILE (see cli.py)."""
from absl import app

from pikelpn_jax.export.cli import main

if __name__ == "__main__":
  app.run(main)
