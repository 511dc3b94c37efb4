"""The experiment scripts: each writes one results/ table, benchmark section or figure.

Run them as modules from the repository root, e.g.

    python -m experiments.family_table --quick --out_dir /tmp/x

(`python experiments/family_table.py` works only where this package is installed, e.g. after
`pip install -e .`, since Python then puts experiments/, not the repository, on sys.path.)
Shared code lives in experiments/lib/; no script imports another script.

A script's process runs under tcmalloc (pikelpn_jax/allocator.py): importing this package as
part of `python -m experiments.NAME` re-executes the interpreter once with tcmalloc preloaded,
before the script or JAX is imported. Importing it from a library, a notebook or a test does
nothing of the kind.
"""

import os
import sys


def _started_as_script() -> bool:
  """Whether this process runs one of the scripts: `python -m experiments.NAME` (while -m locates
  the module, its packages are imported with sys.argv[0] == "-m", see the Python docs of -m) or
  `python experiments/NAME.py` of an installed checkout (the __main__ file lies in this package)."""
  if sys.argv[:1] == ["-m"]:
    return True
  main = getattr(sys.modules.get("__main__"), "__file__", None)
  here = os.path.dirname(os.path.abspath(__file__))
  return bool(main) and os.path.abspath(main).startswith(here + os.sep)


if _started_as_script():
  from pikelpn_jax.allocator import use_tcmalloc

  use_tcmalloc()
