"""python -m pikelpn_jax.export --workdir DIR --out FILE (see cli.py)."""

if (
  __name__ == "__main__"
):  # re-executes once under tcmalloc if installed (pikelpn_jax/allocator.py)
  from pikelpn_jax.allocator import use_tcmalloc

  use_tcmalloc()

from absl import app  # noqa: E402

from pikelpn_jax.config_cli import parse_flags  # noqa: E402
from pikelpn_jax.export.cli import main  # noqa: E402

if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
