"""Atomic file and folder writes: a crash mid-write never leaves a half-written file behind.

Files are written to a temporary sibling and moved into place with ``os.replace`` (atomic on POSIX
within one filesystem); folders are built in a staging sibling and renamed into place. A folder is
removed by renaming it to a ``.trash-*`` sibling first, so a crash mid-removal never leaves a
half-deleted folder under its own name. Files and folders get the permissions of the process umask
(like every other tool), not the 0600/0700 of ``tempfile``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STAGING_PREFIX = ".staging-"
TRASH_PREFIX = ".trash-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def umask_mode(directory: bool = False) -> int:
    """The mode a new file (0666) or folder (0777) gets under the process umask."""
    return (0o777 if directory else 0o666) & ~_umask()


def make_staging_directory(parent: str | os.PathLike, prefix: str) -> Path:
    """A fresh staging folder in ``parent`` with the umask's permissions (``mkdtemp`` makes it 0700)."""
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(staging, umask_mode(directory=True))
    return staging


def apply_umask(folder: str | os.PathLike) -> None:
    """Give every file and folder under ``folder`` (itself included) the umask's permissions.

    Some writers (``tempfile``, the safetensors writer of recent ``transformers``) create files 0600;
    run folders are meant to be shared like any other tool's output.
    """
    folder = Path(folder)
    file_mode, dir_mode = umask_mode(), umask_mode(directory=True)
    os.chmod(folder, dir_mode)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), dir_mode)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, file_mode)


def remove_directory(path: str | os.PathLike) -> None:
    """Delete a folder crash-safely: rename it to a ``.trash-*`` sibling, then delete that.

    A kill at any moment leaves either the complete folder or nothing under its name (a leftover
    ``.trash-*`` folder is removed by :func:`remove_stale_staging`).
    """
    path = Path(path)
    trash = path.parent / f"{TRASH_PREFIX}{path.name}-{os.getpid()}"
    if trash.exists():
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, umask_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging folder; on success it replaces ``path`` as a whole, on error it is removed.

    An existing ``path`` is moved aside first and deleted only once the new folder is in place, so at
    every moment either the old or the new complete folder exists under a known name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = make_staging_directory(path.parent, f"{STAGING_PREFIX}{path.name}-")
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    apply_umask(staging)
    replace_directory(staging, path)


def replace_directory(new: str | os.PathLike, path: str | os.PathLike) -> None:
    """Move the complete folder ``new`` to ``path``, replacing what was there."""
    new, path = Path(new), Path(path)
    old = None
    if path.exists():
        old = path.parent / f"{STAGING_PREFIX}old-{path.name}-{os.getpid()}"
        os.replace(path, old)
    os.replace(new, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def move_contents_into(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Move every entry of ``src`` into ``dst`` one at a time, each move atomic, then remove ``src``.

    Used when ``dst`` holds other things that must stay (a run folder with its checkpoints): each
    file is either the old or the new complete version, never a partial one.
    """
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    # Weights before the config that describes them: a reader never sees a new config with old weights
    # missing; sub-folders are swapped whole.
    entries = sorted(src.iterdir(), key=lambda p: (p.name.endswith(".json"), p.name))
    for entry in entries:
        target = dst / entry.name
        if entry.is_dir():
            replace_directory(entry, target)
        else:
            os.replace(entry, target)
    shutil.rmtree(src, ignore_errors=True)


def remove_stale_staging(folder: str | os.PathLike) -> list[Path]:
    """Delete the staging and trash folders that a killed run left in ``folder``; return what was removed.

    Only call it while holding the folder's run lock (:mod:`maeir.run_folder`): another run's staging
    folder is work in progress.
    """
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name.startswith((STAGING_PREFIX, TRASH_PREFIX)) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed
