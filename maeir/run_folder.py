"""Run folders: one run at a time per folder, complete checkpoints only, and which checkpoint to resume.

* :class:`RunLock`: ``OUTPUT_DIR/.maeir.lock`` holds the owner's PID and host. A second run into the
  same folder stops at once with a message naming the owner; a lock whose PID is no longer alive on
  this host (a killed run) is stale and taken over with a warning.
* :func:`checkpoint_problem` / :func:`last_complete_checkpoint`: a checkpoint is complete when it holds
  its weights as safetensors, the optimizer, the scheduler, the RNG state and the trainer state. Resume
  (``--resume_from_checkpoint last``) takes the newest complete one; an explicitly named checkpoint
  that is incomplete, or holds pickle weights (``pytorch_model.bin``), is refused with the missing file.
* :func:`prepare_output_dir`: a folder that holds a finished run (or the checkpoints of another run) is
  refused unless the run resumes or ``--overwrite_output_dir`` is given (then its checkpoints go).
* :func:`rotate_checkpoints`: ``save_total_limit`` rotation that removes old checkpoints crash-safely
  (:func:`maeir.io_utils.remove_directory`).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import socket
import struct
import time
from pathlib import Path
from typing import Any

from .errors import ConfigError, InputError
from .io_utils import remove_directory, umask_mode

logger = logging.getLogger(__name__)

LOCK_NAME = ".maeir.lock"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
#: Files the final save of a run writes: their presence means the folder holds a finished run.
FINISHED_MARKERS = ("trainer_state.json", "maeir_run.json")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "training_args.bin.weights")


# ---------------------------------------------------------------------------------------------
# The lock


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``folder/.maeir.lock`` held by this process (re-entrant within it).

    Raises :class:`~maeir.errors.ConfigError` (field ``output_dir``) when another live process holds it.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.created_folder = False
        self.held = False

    def owner(self) -> dict[str, Any] | None:
        """The lock file's content, or None when there is none (an unreadable one counts as stale)."""
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}

    def acquire(self) -> RunLock:
        if not self.folder.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            self.created_folder = True
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, umask_mode())
            except FileExistsError:
                owner = self.owner()
                if owner is None:
                    continue
                pid, host = owner.get("pid"), owner.get("host")
                if pid == me["pid"] and host == me["host"]:
                    self.held = True
                    return self
                if isinstance(pid, int) and host is not None and (host != me["host"] or pid_alive(pid)):
                    raise ConfigError(
                        None,
                        None,
                        f"{self.folder} is in use by another run (PID {pid} on {host}, since "
                        f"{owner.get('since', '?')}; lock file {self.path}): wait for it to end or choose "
                        "another --output_dir",
                        field="output_dir",
                    ) from None
                logger.warning(
                    "taking over the stale lock %s of a run that is no longer alive (PID %s on %s)",
                    self.path,
                    pid,
                    host,
                )
                stale = self.path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}")
                try:
                    os.replace(self.path, stale)
                    os.unlink(stale)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(me, handle)
            self.held = True
            return self
        raise ConfigError(None, None, f"could not take the lock {self.path}", field="output_dir")

    def release(self) -> None:
        """Remove the lock file (if this process holds it) and the folder if the lock created it empty."""
        if not self.held:
            return
        owner = self.owner()
        if owner and owner.get("pid") == os.getpid():
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        self.held = False
        if self.created_folder:
            try:
                self.folder.rmdir()  # only when empty: a run that stopped before writing anything
            except OSError:
                pass

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


_HELD: dict[str, RunLock] = {}
_LAST: list[Path] = []


def last_run_folder() -> Path | None:
    """The run folder this process locked last (for the Ctrl-C message), or None."""
    return _LAST[-1] if _LAST else None


def lock_run_folder(folder: str | os.PathLike) -> RunLock:
    """Take (or keep) this process's lock on ``folder``; :func:`release_run_folders` gives it back."""
    key = os.path.realpath(folder)
    lock = _HELD.get(key)
    if lock is None or not lock.held:
        if not _HELD:
            atexit.register(release_run_folders)
        lock = _HELD[key] = RunLock(folder).acquire()
        _LAST[:] = [lock.folder]
    return lock


def release_run_folders() -> None:
    """Release every run-folder lock this process took with :func:`lock_run_folder`."""
    while _HELD:
        _, lock = _HELD.popitem()
        lock.release()


def locked_run_folders() -> list[Path]:
    """The run folders this process holds the lock of (newest first)."""
    return [lock.folder for lock in reversed(list(_HELD.values())) if lock.held]


# ---------------------------------------------------------------------------------------------
# Checkpoints


def checkpoint_step(path: str | os.PathLike) -> int | None:
    match = CHECKPOINT_PATTERN.match(Path(path).name)
    return int(match.group(1)) if match else None


def checkpoints(folder: str | os.PathLike) -> list[Path]:
    """The ``checkpoint-N`` folders of a run, oldest (smallest N) first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=checkpoint_step)


def safetensors_problem(path: str | os.PathLike) -> str | None:
    """Why a safetensors file is damaged (truncated, bad header), or None; reads only the header."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            raw = handle.read(8)
            if len(raw) < 8:
                return f"{path}: truncated safetensors file ({size} bytes)"
            (length,) = struct.unpack("<Q", raw)
            if length > size - 8:
                return f"{path}: truncated safetensors file (header of {length} bytes, file of {size})"
            header = json.loads(handle.read(length))
    except (OSError, ValueError) as err:
        return f"{path}: unreadable safetensors file ({err})"
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + length + end > size:
        return f"{path}: truncated safetensors file ({size} bytes, the header describes {8 + length + end})"
    return None


def checkpoint_problem(path: str | os.PathLike) -> str | None:
    """What keeps ``path`` from being an exact resume point (a missing or damaged file), or None."""
    path = Path(path)
    if not path.is_dir():
        return f"{path} is not a folder"
    names = set(os.listdir(path))
    pickled = sorted(n for n in names if n in PICKLE_WEIGHTS or re.match(r"pytorch_model.*\.bin$", n))
    if pickled:
        return f"{path / pickled[0]}: pickle weights; maeir resumes from safetensors weights only"
    if "trainer_state.json" not in names:
        return f"{path / 'trainer_state.json'} is missing"
    if "latest" in names:  # a DeepSpeed checkpoint: weights, optimizer and scheduler in global_step*/
        return None
    if "model.safetensors" in names:
        damaged = safetensors_problem(path / "model.safetensors")
        if damaged:
            return damaged
    elif "model.safetensors.index.json" not in names:
        return f"{path / 'model.safetensors'} is missing"
    for name in ("optimizer.pt", "scheduler.pt"):
        if name not in names:
            return f"{path / name} is missing"
    if not any(re.match(r"rng_state(_\d+)?\.pth$", n) for n in names):
        return f"{path / 'rng_state.pth'} is missing"
    return None


def last_complete_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The newest complete ``checkpoint-N`` of a run folder (incomplete newer ones are skipped, with a warning)."""
    for path in reversed(checkpoints(folder)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        logger.warning("skipping the incomplete checkpoint %s: %s", path, problem)
    return None


def resolve_resume(training_args: Any) -> str | None:
    """The checkpoint to resume from: ``--resume_from_checkpoint last`` (or ``true``) takes the newest
    complete one (none: a fresh start, with a warning); a named folder must be complete."""
    value = training_args.resume_from_checkpoint
    if value in (None, "", "false", "False", False):
        return None
    if value in ("last", "true", "True", True):
        last = last_complete_checkpoint(training_args.output_dir)
        if last is None:
            logger.warning(
                "no complete checkpoint in %s to resume from: starting fresh", training_args.output_dir
            )
            return None
        logger.info("resuming from %s", last)
        return str(last)
    problem = checkpoint_problem(value) if os.path.exists(value) else f"{value} does not exist"
    if problem:
        raise ConfigError(
            None, None, f"cannot resume from {value}: {problem}", field="resume_from_checkpoint"
        )
    return str(value)


def checkpoint_load_error(checkpoint: str | os.PathLike, what: str, err: Exception) -> InputError:
    """The error for a checkpoint file that cannot be read: it names the checkpoint and the file."""
    return InputError(Path(checkpoint) / what, None, f"damaged checkpoint file ({type(err).__name__}: {err})")


def rotate_checkpoints(folder: str | os.PathLike, save_total_limit: int | None, keep: set[str]) -> None:
    """Keep at most ``save_total_limit`` checkpoints (never those in ``keep``), removing the oldest
    crash-safely: each is renamed out of the ``checkpoint-*`` namespace before it is deleted."""
    if not save_total_limit or save_total_limit <= 0:
        return
    found = checkpoints(folder)
    keep = {os.path.realpath(p) for p in keep if p}
    excess = len(found) - max(save_total_limit, len(keep))
    for path in found:
        if excess <= 0:
            break
        if os.path.realpath(path) in keep:
            continue
        logger.info("deleting older checkpoint %s (save_total_limit=%d)", path, save_total_limit)
        remove_directory(path)
        excess -= 1


# ---------------------------------------------------------------------------------------------
# The output folder of a new run


def holds_finished_run(folder: str | os.PathLike) -> bool:
    folder = Path(folder)
    return any((folder / name).is_file() for name in FINISHED_MARKERS)


def prepare_output_dir(training_args: Any, overwrite: bool = False) -> None:
    """Refuse (``ConfigError`` on ``output_dir``) a folder holding a finished run or another run's
    checkpoints, unless this run resumes; with ``overwrite``, remove those checkpoints first."""
    folder = Path(training_args.output_dir)
    if not folder.is_dir():
        return
    resuming = training_args.resume_from_checkpoint not in (None, "", "false", "False", False)
    finished, found = holds_finished_run(folder), checkpoints(folder)
    if resuming or not (finished or found):
        return
    if not overwrite:
        what = "a finished run" if finished else f"the checkpoints of another run ({found[-1].name})"
        raise ConfigError(
            None,
            None,
            f"{folder} holds {what}: resume it with --resume_from_checkpoint last, replace it with "
            "--overwrite_output_dir true, or choose another --output_dir",
            field="output_dir",
        )
    for path in found:
        logger.warning("--overwrite_output_dir: deleting %s", path)
        remove_directory(path)
    for name in FINISHED_MARKERS:
        (folder / name).unlink(missing_ok=True)
