"""Helpers of the training tests: the tiny net's config file and the CLI in a subprocess."""

import os
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TINY_CONFIG = os.path.join(HERE, "tiny_config.py") + ":tiny"


def repo_env(**extra) -> dict:
  """os.environ with the repository root first on PYTHONPATH (tiny_main.py and tiny_config.py
  import `main`, `configs` and `tests.train.tiny_model` from it), plus `extra`."""
  path = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
  return dict(os.environ, PYTHONPATH=path, **extra)


def run_cli(workdir, *overrides, devices=1, timeout=240, wait=True):
  """python tests/train/tiny_main.py --config tiny --workdir W [--config.x=y ...] in a subprocess
  (the repository root on PYTHONPATH)."""
  env = repo_env(PYTHONUNBUFFERED="1", JAX_PLATFORMS="cpu")
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}" if devices > 1 else ""
  cmd = [
    sys.executable,
    os.path.join(HERE, "tiny_main.py"),
    f"--config={TINY_CONFIG}",
    f"--workdir={workdir}",
    *overrides,
  ]
  if not wait:
    return subprocess.Popen(
      cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
  return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def launch(workdir, *args):
  """tests/train/tiny_main.py in its own process group (so a kill also ends grain's workers)."""
  env = repo_env(PYTHONUNBUFFERED="1", JAX_PLATFORMS="cpu", XLA_FLAGS="")
  cmd = [
    sys.executable,
    os.path.join(HERE, "tiny_main.py"),
    f"--config={TINY_CONFIG}",
    f"--workdir={workdir}",
    *args,
  ]
  return subprocess.Popen(
    cmd,
    cwd=REPO,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    start_new_session=True,
  )


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]
