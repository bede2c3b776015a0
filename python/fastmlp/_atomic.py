"""Atomic file writes: a reader, or a crash at any moment, sees the old file or the new one,
never a torn one (temp file in the same directory, flush, fsync, rename, fsync the directory)."""
from __future__ import annotations

import os
import tempfile
from typing import Callable


def write_atomic(path, write: Callable, *, binary: bool = True) -> None:
    """Calls write(f) on a temporary file next to path, then renames it over path."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=directory)
    try:
        if hasattr(os, "fchmod"):
            # mkstemp creates the file private (0600); outputs are as readable as any file.
            os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else
                                                          {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Makes the rename itself durable: without it a power cut can lose the new directory
    entry, leaving the old file (or, for a first write, none) after a reboot."""
    if not hasattr(os, "O_DIRECTORY"):  # Windows: no directory handles to sync
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
