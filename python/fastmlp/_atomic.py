"""Atomic file writes: a reader, or a crash at any moment, sees the old file or the new one,
never a torn one (temp file in the same directory, flush, fsync, rename, fsync the directory)."""
from __future__ import annotations

import os
import tempfile
from typing import Callable


def file_name(path, name: str = "path") -> str:
    """path (str, bytes or os.PathLike) as a str, or TypeError naming the argument."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{name}: expected a file name (str or os.PathLike), got "
                        f"{type(path).__name__} {path!r}")
    return os.fsdecode(os.fspath(path))


def writable_target(path, example: str, name: str = "path") -> str:
    """path checked before anything is written: a file name, not a directory, in a directory
    that exists and may be written (otherwise the error would name write_atomic's temporary
    file instead of the user's path). example: a file name to suggest for a directory."""
    path = file_name(path, name)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{name}: {path!r} is a directory; pass a file name such as "
                                f"{os.path.join(path, example)!r}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{name}: directory {directory!r} does not exist; create it "
                                f"first (os.makedirs)")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"{name}: directory {directory!r} is not writable; choose "
                              f"another location")
    return path


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
