"""Stop requests: SIGTERM to one of two processes stops both at one saved step (exit 0); a
SIGKILLed process: the survivor exits with one error line within the heartbeat timeout; the rerun
equals an uninterrupted run. One process: a repeated SIGTERM is ignored, a SIGINT during the save
kills it with the previous checkpoint intact, the rerun equals an uninterrupted run."""

import json
import os
import re
import signal
import time

import numpy as np
import pytest

from tests.train.train_helpers import free_port, launch

STEPS = 300  # a tiny step takes ~10 ms: jax's notice needs ~0.3 s to reach every process
RUN = (
  f"--config.num_train_steps={STEPS}",
  f"--config.eval_every_steps={STEPS}",
  "--config.checkpoint_every_steps=1000",  # only the final and the requested checkpoints
  "--config.log_every_steps=1",  # the loop waits for every step: the signal lands mid-run
  "--heartbeat_timeout_s=5",
  "--shutdown_timeout_s=30",
)
PREEMPTED = re.compile(r"^preempted: stopped by (.+) at step (\d+): saved checkpoint (\S+); ")


def start(workdir, processes):
  if processes == 1:
    return [launch(workdir, *RUN)]
  port = free_port()
  return [
    launch(
      workdir,
      *RUN,
      f"--coordinator_address=127.0.0.1:{port}",
      f"--num_processes={processes}",
      f"--process_id={i}",
    )
    for i in range(processes)
  ]


def finish(procs, timeout=240):
  """(return codes, stderr texts) once every process exited."""
  errs = [p.communicate(timeout=timeout)[1] for p in procs]
  return [p.returncode for p in procs], errs


def logged_step(workdir) -> int:
  try:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      return max((json.loads(x)["step"] for x in f if "train_loss" in x), default=0)
  except (FileNotFoundError, ValueError):
    return 0


def wait_for(condition, procs, timeout=240, poll=0.005):
  end = time.monotonic() + timeout
  while not condition():
    assert time.monotonic() < end, "timed out"
    assert all(p.poll() is None for p in procs), [finish(procs)[1]]
    time.sleep(poll)


def complete_steps(workdir):
  d = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(d) if n.isdigit())


def sha(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)["params_sha256"]


def logged_steps(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(x)["step"] for x in f if "train_loss" in x]


def last_line(err):
  return err.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
  """params_sha256 of uninterrupted 1- and 2-process runs (their sums differ in order)."""
  out = {}
  for n in (1, 2):
    workdir = str(tmp_path_factory.mktemp(f"ref{n}"))
    codes, errs = finish(start(workdir, n))
    assert codes == [0] * n, errs
    out[n] = sha(workdir)
  return out


@pytest.mark.slow
def test_two_processes_sigterm_to_one_stops_both_at_one_step_then_sigkill_then_resume(
  references, tmp_path
):
  work = str(tmp_path / "work")
  at = int(np.random.default_rng().integers(3, STEPS // 4))
  procs = start(work, 2)
  wait_for(lambda: logged_step(work) >= at, procs)
  procs[1].send_signal(signal.SIGTERM)
  codes, errs = finish(procs)
  assert codes == [0, 0], errs
  said = [PREEMPTED.match(last_line(e)) for e in errs]
  assert all(said), [last_line(e) for e in errs]
  step = int(said[0][2])
  assert [int(m[2]) for m in said] == [step, step] and at <= step < STEPS
  assert said[0][3] == os.path.join(work, "checkpoints", str(step))
  assert complete_steps(work) == [step]
  assert not os.path.exists(os.path.join(work, "results.json"))

  # The rerun resumes; SIGKILL one process: the survivor exits 1 with one error line, at once
  # (its next collective fails) or at the latest after the heartbeat timeout (5 s).
  procs = start(work, 2)
  wait_for(lambda: logged_step(work) >= step + 3, procs)
  procs[1].send_signal(signal.SIGKILL)
  killed = time.monotonic()
  codes, errs = finish(procs, timeout=60)
  assert time.monotonic() - killed < 5 + 25
  assert codes == [1, -signal.SIGKILL], errs
  line = last_line(errs[0])
  assert line.startswith("error: process 0 of 2: "), line
  assert "another process of the run has probably died" in line, line
  assert line.endswith(f"resume from the newest checkpoint in {os.path.join(work, 'checkpoints')}")
  assert complete_steps(work) == [step]

  codes, errs = finish(start(work, 2))
  assert codes == [0, 0], errs
  assert sha(work) == references[2]
  assert logged_steps(work) == list(range(1, STEPS + 1))


@pytest.mark.slow
def test_one_process_second_sigterm_ignored_sigint_during_save_keeps_previous(references, tmp_path):
  work = str(tmp_path / "work")
  # SIGTERM twice: the second is ignored, the run saves the step it stopped at and exits 0.
  (proc,) = procs = start(work, 1)
  wait_for(lambda: logged_step(work) >= 4, procs)
  proc.send_signal(signal.SIGTERM)
  proc.send_signal(signal.SIGTERM)
  codes, errs = finish(procs)
  assert codes == [0], errs
  said = PREEMPTED.match(last_line(errs[0]))
  assert said and said[1] == "SIGTERM", errs[0][-2000:]
  first = int(said[2])
  assert complete_steps(work) == [first]

  # SIGTERM, then SIGINT while the checkpoint is being written: it dies at once; the previous
  # checkpoint stays the newest and restores (the rerun below starts from it).
  (proc,) = procs = start(work, 1)
  wait_for(lambda: logged_step(work) >= first + 4, procs)
  proc.send_signal(signal.SIGTERM)
  ckpts = os.path.join(work, "checkpoints")
  wait_for(lambda: any("tmp" in n for n in os.listdir(ckpts)), procs, poll=0.001)
  proc.send_signal(signal.SIGINT)
  codes, errs = finish(procs)
  assert codes == [-signal.SIGINT], errs
  assert complete_steps(work) == [first]
  with open(os.path.join(work, "metrics.jsonl")) as f:
    kept = [x for x in f if "train_loss" in x][:first]

  codes, errs = finish(start(work, 1))
  assert codes == [0], errs
  assert sha(work) == references[1]
  with open(os.path.join(work, "metrics.jsonl")) as f:
    assert [x for x in f if "train_loss" in x][:first] == kept  # resumed, not retrained
  assert logged_steps(work) == list(range(1, STEPS + 1))


def test_stop_requests_in_process():
  """One process without jax.distributed: our handlers; restored afterwards."""
  from pikelpn_jax.train.preemption import StopRequests

  before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
  stop = StopRequests().install()
  try:
    assert not stop.synced and not stop.reached(1)
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGTERM)  # again: ignored, the process lives on
    assert stop.reached(2) and stop.reason == "SIGTERM"
  finally:
    stop.uninstall()
  assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
