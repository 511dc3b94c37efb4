"""All orbax calls of the project: save/restore of training state, model-only restore, checks.

Layout: <workdir>/checkpoints/<step>/{model, train, config, meta}
  model   {'params', 'batch_stats'}          (what inference, the analyzer and a teacher need)
  train   {'opt_state', 'step'}              (with `model`: the fields of steps.TrainState)
  config  the resolved experiment config (JSON)
  meta    {'config_source', 'model', 'variant', 'step'} (JSON)
A step directory appears only when complete (orbax writes to a temporary name and renames it),
so a kill during a write leaves the previous checkpoint as the latest. A complete checkpoint whose
files were damaged later (tensorstore's checksums catch flipped bytes) raises CheckpointError,
one line naming it; a resumed run skips it for the newest one that restores (newest_restorable)
and moves it aside (set_aside).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import jax
import orbax.checkpoint as ocp
from absl import logging as absl_logging
from flax import traverse_util
from jax.experimental import multihost_utils

from pikelpn_jax import workdir as wd
from pikelpn_jax.config_base import config_to_dict
from pikelpn_jax.train.steps import TrainState, abstract_variables

ITEMS = ("model", "train", "config", "meta")


def quiet_logs() -> None:
  """For CLIs: orbax logs every save and restore at INFO through absl; show warnings and up."""
  absl_logging.set_verbosity(absl_logging.WARNING)


class NoCheckpointError(FileNotFoundError, ValueError):
  """No complete checkpoint in a workdir (caught by `except FileNotFoundError` or `ValueError`)."""


class CheckpointError(ValueError):
  """A complete checkpoint that does not restore (damaged files); the message is one line."""

  def __init__(self, path: str, step: int, reason: str):
    super().__init__(f"checkpoint {path} (step {step}) is unreadable: {reason}")
    self.path, self.step, self.reason = path, step, reason


def failure_reason(e: BaseException, limit: int = 300) -> str:
  """tensorstore's error (a kilobyte on one line, its spec included) cut to its code and cause."""
  text = " ".join(str(e).split()) or type(e).__name__
  text = re.sub(r"\s*\[(source locations|tensorstore_spec)=.*$", "", text)
  files = re.findall(r'local file "([^"]+)"', text)
  parts = text.split(": ")
  if len(parts) > 3:  # 'CODE: context: context: ...: cause: detail' -> 'CODE ... cause: detail'
    text = f"{parts[0]} reading {files[-1] if files else '?'}: " + ": ".join(parts[-2:])
  return text if len(text) <= limit else text[: limit - 3] + "..."


def checkpoint_dir(workdir: str) -> str:
  return wd.join(wd.resolve(workdir), "checkpoints")


def _manager(workdir: str, *, keep: int = 3, read_only: bool = True) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
    max_to_keep=None if read_only else keep,
    save_interval_steps=0 if read_only else 1,
    create=not read_only,
    read_only=read_only,
    enable_async_checkpointing=not read_only,
    cleanup_tmp_directories=not read_only,
  )
  # orbax logs a warning for every read-only manager; a CLI error must stay one line.
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    return ocp.CheckpointManager(
      checkpoint_dir(workdir),
      options=options,
      item_names=ITEMS,
      item_handlers={
        "model": ocp.StandardCheckpointHandler(),
        "train": ocp.StandardCheckpointHandler(),
        "config": ocp.JsonCheckpointHandler(),
        "meta": ocp.JsonCheckpointHandler(),
      },
    )
  finally:
    logger.setLevel(level)


def latest_step(workdir: str) -> Optional[int]:
  """The newest complete checkpoint step in workdir, or None; writes nothing."""
  if not wd.isdir(checkpoint_dir(workdir)):
    return None
  mgr = _manager(workdir)
  try:
    return mgr.latest_step()
  finally:
    mgr.close()


def _shape_tree(tree) -> Dict[str, tuple]:
  flat = traverse_util.flatten_dict(tree, sep="/") if isinstance(tree, dict) else {}
  return {k: tuple(v.shape) for k, v in flat.items()}


def model_meta(config, config_source: str = "", step: int = 0) -> Dict[str, Any]:
  return {
    "config_source": config_source,
    "model": config.model.get("name"),
    "variant": config.model.get("variant"),
    "step": int(step),
  }


class Checkpoints:
  """A CheckpointManager over <workdir>/checkpoints (async saves, keep the last `keep`)."""

  def __init__(self, workdir: str, keep: int = 3, read_only: bool = False):
    self.workdir = workdir
    self._mgr = _manager(workdir, keep=keep, read_only=read_only)

  def all_steps(self) -> List[int]:
    return sorted(self._mgr.all_steps())

  def step_dir(self, step: int) -> str:
    return wd.join(checkpoint_dir(self.workdir), str(step))

  def _read(self, step: int, fn: Callable[[], Any]) -> Any:
    """fn() (an orbax read of `step`), its failures turned into one-line CheckpointErrors."""
    try:
      return fn()
    except Exception as e:  # noqa: BLE001  (tensorstore/orbax raise ValueError, OSError, ...)
      raise CheckpointError(self.step_dir(step), step, failure_reason(e)) from e

  def save(
    self, step: int, state: Union[TrainState, Dict[str, Any]], config, meta: Dict[str, Any]
  ) -> None:
    """Saves `state` (or a dict of its four fields: a checkpoint written without training)."""
    if isinstance(state, dict):
      state = TrainState(**state)
    model = {"params": state.params, "batch_stats": state.batch_stats}
    train = {"opt_state": state.opt_state, "step": state.step}
    self._mgr.save(
      step,
      args=ocp.args.Composite(
        model=ocp.args.StandardSave(model),
        train=ocp.args.StandardSave(train),
        config=ocp.args.JsonSave(config_to_dict(config)),
        meta=ocp.args.JsonSave(meta),
      ),
    )

  def verify(self, step: int, items=("model", "train")) -> None:
    """Reads every stored value of `step` once (tensorstore checks the OCDBT checksums), so that
    a damaged file raises CheckpointError here rather than inside orbax's asyncio restore (whose
    other reads in flight then print 'Event loop is closed' tracebacks)."""
    import tensorstore as ts

    for item in items:
      path = os.path.join(self.step_dir(step), item)
      # Local files only: in a bucket every object is written whole (no torn file to find), and
      # orbax's restore reads and checks them.
      if not wd.is_url(path) and os.path.isfile(os.path.join(path, "manifest.ocdbt")):

        def read_all(path=path):
          kv = ts.KvStore.open({"driver": "ocdbt", "base": f"file://{path}/"}).result()
          for key in kv.list().result():
            kv.read(key).result()

        self._read(step, read_all)

  def restore_state(self, step: int, abstract_state: TrainState) -> TrainState:
    model_t = {"params": abstract_state.params, "batch_stats": abstract_state.batch_stats}
    train_t = {"opt_state": abstract_state.opt_state, "step": abstract_state.step}
    r = self._read(
      step,
      lambda: self._mgr.restore(
        step,
        args=ocp.args.Composite(
          model=ocp.args.StandardRestore(model_t), train=ocp.args.StandardRestore(train_t)
        ),
      ),
    )
    return TrainState(**r["model"], **r["train"])

  def restore_model(self, step: int, abstract_model: Dict[str, Any]) -> Dict[str, Any]:
    r = self._read(
      step,
      lambda: self._mgr.restore(
        step, args=ocp.args.Composite(model=ocp.args.StandardRestore(abstract_model))
      ),
    )
    return dict(r["model"])

  def meta(self, step: int) -> Dict[str, Any]:
    r = self._read(
      step, lambda: self._mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    )
    return dict(r["meta"])

  def model_shapes(self, step: int) -> Dict[str, tuple]:
    return self._read(step, lambda: _shape_tree(self._mgr.item_metadata(step)["model"].tree))

  def wait(self) -> None:
    self._mgr.wait_until_finished()

  def close(self) -> None:
    self._mgr.wait_until_finished()
    self._mgr.close()


def check_matches(
  ckpts: Checkpoints, step: int, config, abstract_model: Dict[str, Any], what: str
) -> None:
  """One-line ValueError when checkpoint `step` holds another model than `config` builds."""
  meta = ckpts.meta(step)
  want = config.model.get("name")
  held = (
    f"model {meta.get('model')!r} (variant {meta.get('variant')!r}, "
    f"config {meta.get('config_source') or '?'})"
  )
  where = f"{what} {ckpts.workdir!r} holds a checkpoint (step {step}) of {held}"
  if meta.get("model") != want:
    raise ValueError(
      f"{where}, but the config asks for model {want!r} "
      f"(variant {config.model.get('variant')!r}); use another workdir or that model's config"
    )
  saved, expected = ckpts.model_shapes(step), _shape_tree(abstract_model)
  if saved != expected:
    diffs = sorted(set(saved) ^ set(expected)) or sorted(
      k for k in saved if saved[k] != expected[k]
    )
    k = diffs[0]
    raise ValueError(
      f"{where} that does not match the config: {k} is {saved.get(k, 'absent')} in the "
      f"checkpoint, {expected.get(k, 'absent')} for the config ({len(diffs)} difference(s)); "
      "use the config the checkpoint was trained with or another workdir"
    )


def restore_latest(workdir: str, config) -> Dict[str, Any]:
  """{'params', 'batch_stats'} of the newest checkpoint in workdir, checked against config.

  Raises a one-line ValueError naming what mismatched and which model/config the checkpoint
  holds, NoCheckpointError (a FileNotFoundError and a ValueError) when there is none, or
  CheckpointError (a ValueError) naming the newest checkpoint when its files do not restore.
  """
  step = latest_step(workdir)
  if step is None:
    raise NoCheckpointError(
      f"no checkpoint in workdir {workdir!r} (looked in {checkpoint_dir(workdir)}); "
      "train first: python main.py --config ... --workdir " + str(workdir)
    )
  abstract = abstract_variables(config)
  ckpts = Checkpoints(workdir, read_only=True)
  try:
    ckpts.verify(step, items=("model",))  # first: orbax's reads of a damaged file print tracebacks
    check_matches(ckpts, step, config, abstract, "workdir")
    return ckpts.restore_model(step, abstract)
  finally:
    ckpts.close()


def newest_restorable(
  workdir: str, config, abstract_state: TrainState
) -> Tuple[Optional[int], Optional[TrainState], List[CheckpointError]]:
  """(step, state, skipped) of the newest checkpoint in workdir that restores, newest first.

  A checkpoint of another model raises ValueError (a wrong workdir, not damage); damaged ones
  are returned in `skipped`, newest first. (None, None, skipped) when no checkpoint restores.
  """
  if latest_step(workdir) is None:
    return None, None, []
  abstract_model = {"params": abstract_state.params, "batch_stats": abstract_state.batch_stats}
  skipped: List[CheckpointError] = []
  ro = Checkpoints(workdir, read_only=True)
  try:
    for step in reversed(ro.all_steps()):
      try:
        ro.verify(step)  # first: orbax's own reads of a damaged file print tracebacks
        check_matches(ro, step, config, abstract_model, "workdir")
        return step, ro.restore_state(step, abstract_state), skipped
      except CheckpointError as e:
        skipped.append(e)
    return None, None, skipped
  finally:
    ro.close()


def set_aside(damaged: List[CheckpointError], resume_step: Optional[int], is_main: bool) -> None:
  """Moves damaged step directories to <workdir>/damaged_checkpoints/ (one warning line each)
  before the manager lists the steps, so their steps are trained and saved again; the files stay
  for inspection."""
  for error in damaged:
    moved = "damaged_checkpoints/"
    if is_main:
      step_dir = error.path.rstrip("/")
      name = step_dir.rsplit("/", 1)[-1]
      root = wd.join(step_dir.rsplit("/", 2)[0], "damaged_checkpoints")
      wd.makedirs(root)
      moved, n = wd.join(root, name), 1
      while wd.exists(moved):
        moved, n = wd.join(root, f"{name}.{n}"), n + 1
      wd.rename(step_dir, moved)
    absl_logging.warning(
      "skipped checkpoint %s, unreadable (%s); resuming from step %d (moved it to %s)",
      error.path,
      error.reason,
      resume_step,
      moved,
    )
  if damaged and jax.process_count() > 1:
    multihost_utils.sync_global_devices("damaged checkpoints set aside")
