"""tcmalloc for every entry point, without the user asking (docs/benchmarks.md, "Allocator").

XLA:CPU allocates and frees its temporary buffers on every step. With glibc's malloc, large
blocks are mmap'ed and unmapped each time, so every step faults in freshly zeroed pages: about
half of a CPU training run's time was spent in the kernel. tcmalloc keeps those pages, and the same
run is ~1.5x faster with identical numbers. The allocator must be chosen before the process
starts, hence this module: an entry point calls `use_tcmalloc()` as its first statement (before
JAX is imported), and the interpreter re-executes itself once with LD_PRELOAD naming
libtcmalloc_minimal, when that library is installed (Debian: `libtcmalloc-minimal4`).

  PIKELPN_TCMALLOC=0    turns it off (the process keeps the system allocator)
  LD_PRELOAD            already naming tcmalloc: nothing is done

Where the library is absent, or on a platform without LD_PRELOAD, `use_tcmalloc()` does nothing.
`allocator_in_use()` says which allocator the running process has (results.json, benchmark stamps).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Optional, Sequence

OFF_SWITCH = "PIKELPN_TCMALLOC"
# Set in the re-executed process, so it never re-executes again (even if the preload failed).
GUARD = "PIKELPN_TCMALLOC_REEXEC"
LIBRARY_NAMES = (
  "libtcmalloc_minimal.so.4",
  "libtcmalloc_minimal.so",
  "libtcmalloc.so.4",
  "libtcmalloc.so",
)
SEARCH_DIRS = (
  "/usr/lib/x86_64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
  "/usr/lib64",
  "/usr/lib",
  "/usr/local/lib",
  "/lib/x86_64-linux-gnu",
  "/lib/aarch64-linux-gnu",
  "/lib64",
  "/lib",
)
# tcmalloc prints a "large alloc" line for every allocation above 1 GiB by default; XLA makes
# such allocations legitimately (datasets, big batches). 100 GiB silences it.
_REPORT_THRESHOLD = ("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(100 << 30))


def find_tcmalloc(search_dirs: Optional[Sequence[str]] = None) -> Optional[str]:
  """Path of the first tcmalloc library found in search_dirs (default: the usual lib dirs)."""
  for d in SEARCH_DIRS if search_dirs is None else search_dirs:
    for name in LIBRARY_NAMES:
      path = os.path.join(d, name)
      if os.path.isfile(path):
        return path
  return None


def reexec_env(environ=None, search_dirs: Optional[Sequence[str]] = None) -> Optional[dict]:
  """The environment to re-execute with, or None when the process should keep running as is."""
  env = dict(os.environ if environ is None else environ)
  if env.get(OFF_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
    return None
  if env.get(GUARD) or "tcmalloc" in env.get("LD_PRELOAD", ""):
    return None
  if not sys.platform.startswith("linux"):
    return None
  lib = find_tcmalloc(search_dirs)
  if lib is None:
    return None
  preload = env.get("LD_PRELOAD", "").strip()
  env["LD_PRELOAD"] = lib + (":" + preload if preload else "")
  env[GUARD] = "1"
  env.setdefault(*_REPORT_THRESHOLD)
  return env


def use_tcmalloc(search_dirs: Optional[Sequence[str]] = None) -> None:
  """Re-executes this interpreter, with the same command line, under tcmalloc (see module doc).

  Call it first thing in `if __name__ == "__main__":` code or a conftest, before importing JAX:
  the command line is sys.orig_argv, so `python main.py ...`, `python -m pkg ...` and
  `python -m pytest ...` are re-run exactly as typed. Returns only when nothing is to be done.
  """
  argv = list(getattr(sys, "orig_argv", []) or [])
  if len(argv) < 2 or not sys.executable:  # embedded or interactive: nothing to re-run
    return
  env = reexec_env(search_dirs=search_dirs)
  if env is None:
    return
  for stream in (sys.stdout, sys.stderr):
    with contextlib.suppress(AttributeError, ValueError, OSError):
      stream.flush()
  # sys.executable, not argv[0]: "python" might resolve to another interpreter on PATH.
  os.execve(sys.executable, [sys.executable] + argv[1:], env)


def allocator_in_use() -> str:
  """The malloc of this process, from the libraries it has mapped: 'tcmalloc (libtcmalloc_minimal.so.4)',
  'jemalloc (...)', 'mimalloc (...)' or, when none is mapped, 'glibc malloc' / 'system malloc'."""
  try:
    with open("/proc/self/maps") as f:
      libs = {line.split()[-1] for line in f if "/" in line}
  except OSError:
    return "system malloc"
  for name in ("tcmalloc", "jemalloc", "mimalloc"):
    hits = sorted(os.path.basename(p) for p in libs if name in os.path.basename(p))
    if hits:
      return f"{name} ({hits[0]})"
  libc = any(
    os.path.basename(p).startswith("libc.so") or os.path.basename(p).startswith("libc-")
    for p in libs
  )
  return "glibc malloc" if libc else "system malloc"
