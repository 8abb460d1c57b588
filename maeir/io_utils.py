"""Atomic file and folder writes: a crash mid-write never leaves a half-written file behind.

Files are written to a temporary sibling and moved into place with ``os.replace`` (atomic on POSIX
within one filesystem); folders are built in a staging sibling and renamed into place.
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


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{path.name}-", dir=path.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
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
    """Delete staging folders that a killed run left in ``folder``; return what was removed."""
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name.startswith(STAGING_PREFIX) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed
