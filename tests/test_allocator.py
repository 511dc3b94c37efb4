"""The tcmalloc launcher: when it re-executes, when it does not, and allocator detection."""

import os
import subprocess
import sys

import pytest

from pikelpn_jax import allocator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_LIB = allocator.find_tcmalloc()
# Prints what the (possibly re-executed) process sees; extra argv must survive the re-exec.
PROBE = (
  "import os, sys; from pikelpn_jax import allocator as a; a.use_tcmalloc({dirs}); "
  "print(os.environ.get(a.GUARD), os.environ.get('LD_PRELOAD'), sys.argv[1:], "
  "a.allocator_in_use(), sep='|')"
)


def _clean_env(**extra):
  env = {
    k: v
    for k, v in os.environ.items()
    if k
    not in (
      "LD_PRELOAD",
      allocator.GUARD,
      allocator.OFF_SWITCH,
      "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD",
    )
  }
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  env.update(extra)
  return env


def _probe(env, dirs=None):
  code = PROBE.format(dirs="" if dirs is None else repr([str(d) for d in dirs]))
  out = subprocess.run(
    [sys.executable, "-c", code, "x", "--y=1"],
    env=env,
    capture_output=True,
    text=True,
    timeout=60,
    check=True,
  )
  guard, preload, argv, alloc = out.stdout.strip().splitlines()[-1].split("|")
  return guard, preload, argv, alloc, out.stderr


def _fake_lib(tmp_path):
  path = tmp_path / "libtcmalloc_minimal.so.4"
  path.write_bytes(b"not an ELF file")
  return str(path)


def test_find_tcmalloc_searches_given_dirs(tmp_path):
  assert allocator.find_tcmalloc([str(tmp_path)]) is None
  lib = _fake_lib(tmp_path)
  assert allocator.find_tcmalloc([str(tmp_path / "missing"), str(tmp_path)]) == lib


def test_reexec_env_decisions(tmp_path):
  dirs = [str(tmp_path)]
  assert allocator.reexec_env({}, dirs) is None  # library absent
  lib = _fake_lib(tmp_path)
  env = allocator.reexec_env({"LD_PRELOAD": "/x/libother.so", "KEEP": "1"}, dirs)
  assert env["LD_PRELOAD"] == lib + ":/x/libother.so" and env["KEEP"] == "1"
  assert (
    env[allocator.GUARD] == "1" and int(env["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"]) >= 1 << 34
  )
  assert (
    allocator.reexec_env({"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": "5"}, dirs)[
      "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"
    ]
    == "5"
  )  # a user's own setting wins
  for off in ("0", "false", "off"):
    assert allocator.reexec_env({allocator.OFF_SWITCH: off}, dirs) is None
  assert allocator.reexec_env({allocator.OFF_SWITCH: "1"}, dirs) is not None
  assert allocator.reexec_env({"LD_PRELOAD": "/opt/libtcmalloc.so"}, dirs) is None  # already set
  assert allocator.reexec_env({allocator.GUARD: "1"}, dirs) is None  # never loops


def test_reexecs_once_with_same_argv(tmp_path):
  # A fake library: the loader warns and ignores it, which is enough to see the re-exec happen.
  lib = _fake_lib(tmp_path)
  guard, preload, argv, _, _ = _probe(_clean_env(), dirs=[tmp_path])
  assert (guard, preload, argv) == ("1", lib, "['x', '--y=1']")


@pytest.mark.parametrize("why", ["off_switch", "already_set", "absent"])
def test_no_reexec(tmp_path, why):
  libdir = tmp_path / "lib"
  libdir.mkdir()
  if why != "absent":
    _fake_lib(libdir)  # would be preloaded, but for the reason under test
  env = {
    "off_switch": _clean_env(PIKELPN_TCMALLOC="0"),
    "already_set": _clean_env(LD_PRELOAD=str(tmp_path / "libtcmalloc_minimal.so.4")),
    "absent": _clean_env(),
  }[why]
  guard, preload, argv, _, _ = _probe(env, dirs=[libdir])
  assert (guard, argv) == ("None", "['x', '--y=1']")
  assert preload == env.get("LD_PRELOAD", "None")


@pytest.mark.skipif(REAL_LIB is None, reason="libtcmalloc-minimal4 is not installed")
def test_real_tcmalloc_is_detected():
  guard, preload, _, alloc, stderr = _probe(_clean_env())
  assert guard == "1" and preload == REAL_LIB and alloc.startswith("tcmalloc (libtcmalloc")
  assert "large alloc" not in stderr
  *_, alloc_off, _ = _probe(_clean_env(PIKELPN_TCMALLOC="0"))
  assert alloc_off == "glibc malloc"


@pytest.mark.skipif(
  REAL_LIB is None or os.environ.get(allocator.OFF_SWITCH) == "0",
  reason="libtcmalloc-minimal4 is not installed or switched off",
)
def test_suite_runs_under_tcmalloc():
  # tests/conftest.py re-executed pytest under tcmalloc.
  assert allocator.allocator_in_use().startswith("tcmalloc")


def test_every_entry_point_script_preloads_tcmalloc():
  """A new experiments/ script must run under tcmalloc too, or its timings quietly use glibc: the
  package re-executes a script's process before the script loads (experiments/__init__.py), so
  every script must live in a package directory under it (tests/experiments/test_package.py runs
  one and reads the allocator it reports)."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  root = os.path.join(repo, "experiments")
  init = open(os.path.join(root, "__init__.py")).read()
  assert "use_tcmalloc()" in init and "_started_as_script()" in init
  scripts = []
  for d, _, files in os.walk(root):
    for name in files:
      if name.endswith(".py") and 'if __name__ == "__main__"' in open(os.path.join(d, name)).read():
        scripts.append((os.path.relpath(os.path.join(d, name), repo), d))
  assert len(scripts) > 10
  assert [s for s, d in scripts if not os.path.isfile(os.path.join(d, "__init__.py"))] == []
