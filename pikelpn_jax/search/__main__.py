"""python -m pikelpn_jax.search --config CFG [--workdir TRAINED] --budget ACEV2 --out rules.json"""

import sys

from pikelpn_jax.search.cli import main

if __name__ == "__main__":
  sys.exit(main())
